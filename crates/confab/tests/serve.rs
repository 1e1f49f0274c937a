//! Tests through the built `confab` binary: it starts, says where it listens, serves
//! the line protocol and shuts down cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);

/// A `confab serve` child process on a free port, killed when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--irc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn confab serve");
        // The readiness signal: the line naming the bound address.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("confab: line protocol listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Serve { child, addr }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(addr: SocketAddr) -> (BufReader<TcpStream>, TcpStream) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    (BufReader::new(stream.try_clone().unwrap()), stream)
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.trim_end_matches('\n').to_string()
}

fn read_until(reader: &mut BufReader<TcpStream>, prefix: &str) -> String {
    loop {
        let line = read_line(reader);
        assert!(!line.is_empty(), "connection closed before {prefix:?}");
        if line.starts_with(prefix) {
            return line;
        }
    }
}

#[test]
fn help_documents_every_serve_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen",
        "--max-line",
        "--send-queue",
        "--max-connections",
        "--registration-timeout",
        "--idle-timeout",
        "--default-room",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn two_netcat_style_users_chat_through_the_binary() {
    let serve = Serve::start(&[]);
    let (mut alice_in, mut alice) = connect(serve.addr);
    let (mut bob_in, mut bob) = connect(serve.addr);
    assert!(read_line(&mut alice_in).contains("You are connected from: 127.0.0.1:"));
    alice.write_all(b"#alice\n").unwrap();
    read_until(&mut alice_in, "* Members of lobby");
    bob.write_all(b"#bob\n").unwrap();
    read_until(&mut bob_in, "* Members of lobby");
    read_until(&mut alice_in, "* bob joined lobby");
    alice.write_all(b"hello bob\n@bob:just you\n").unwrap();
    assert_eq!(read_line(&mut bob_in), "[lobby] alice: hello bob");
    assert_eq!(read_line(&mut bob_in), "[dm] alice: just you");
}

#[cfg(unix)]
#[test]
fn sigterm_tells_clients_the_server_is_going_down() {
    let mut serve = Serve::start(&[]);
    let (mut reader, mut writer) = connect(serve.addr);
    writer.write_all(b"#alice\n").unwrap();
    read_until(&mut reader, "* Members of lobby");
    let status = Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "* Server is shutting down\n");
    drop((reader, writer));
    assert!(serve.child.wait().unwrap().success(), "exits 0 after SIGTERM");
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let serve = Serve::start(&[]);
    let output = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["serve", "--listen", &serve.addr.to_string()])
        .args(["--irc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {}", serve.addr)),
        "{stderr}"
    );
}
