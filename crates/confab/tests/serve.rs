//! Tests through the built `confab` binary: it starts, says where it listens, serves
//! the line protocol and shuts down cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);

/// A `confab serve` child process on a free port, killed when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
    /// The data directory, unless the caller gave one.
    _data: Option<tempfile::TempDir>,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        let data = tempfile::tempdir().unwrap();
        let mut serve = Self::with_data(data.path(), extra);
        serve._data = Some(data);
        serve
    }

    /// A server keeping its history in `data`.
    fn with_data(data: &std::path::Path, extra: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data")
            .arg(data)
            .args([
                "--irc-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
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
        Serve {
            child,
            addr,
            _data: None,
        }
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
        "--max-connections-per-ip",
        "--connection-rate-per-ip",
        "--flood-burst",
        "--flood-rate",
        "--flood-grace",
        "--partial-line-timeout",
        "--max-rooms-per-user",
        "--max-members-per-room",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

/// The allocator's settings are compiled in (src/main.rs); one it does not know would
/// only be a warning on stderr at every start, and the setting silently lost.
#[test]
fn the_binary_starts_without_allocator_warnings() {
    let output = Command::new(env!("CARGO_BIN_EXE_confab"))
        .arg("--version")
        .env_remove("_RJEM_MALLOC_CONF")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "stderr: {stderr}");
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

#[test]
fn absurdly_long_timeouts_mean_forever_not_a_crash() {
    // Every deadline is `now + timeout`; an unbounded one used to overflow and panic
    // each connection's task.
    let max = u64::MAX.to_string();
    let flags = [
        "--idle-timeout",
        "--registration-timeout",
        "--flood-grace",
        "--partial-line-timeout",
        "--tcp-keepalive",
    ];
    let args: Vec<&str> = flags.iter().flat_map(|f| [*f, max.as_str()]).collect();
    let serve = Serve::start(&args);
    let (mut alice_in, mut alice) = connect(serve.addr);
    alice
        .write_all(
            b"#alice
hello
/ping
",
        )
        .unwrap();
    read_until(&mut alice_in, "* pong");
}

#[cfg(unix)]
#[test]
fn sigterm_tells_clients_the_server_is_going_down() {
    use std::io::Read;
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
    assert!(
        serve.child.wait().unwrap().success(),
        "exits 0 after SIGTERM"
    );
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let serve = Serve::start(&[]);
    let output = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["serve", "--no-history", "--listen", &serve.addr.to_string()])
        .args([
            "--irc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {}", serve.addr)),
        "{stderr}"
    );
}

/// Registers `name` on a raw connection and reads up to the lobby's member list.
fn user(addr: SocketAddr, name: &str) -> (BufReader<TcpStream>, TcpStream) {
    let (mut reader, mut writer) = connect(addr);
    writer.write_all(format!("#{name}\n").as_bytes()).unwrap();
    read_until(&mut reader, "* Members of lobby");
    (reader, writer)
}

/// Reads `/history lobby 500` and returns the message texts, oldest first.
fn history_texts(addr: SocketAddr) -> Vec<String> {
    let (mut reader, mut writer) = user(addr, "historian");
    writer.write_all(b"/history lobby 500\n").unwrap();
    read_until(&mut reader, "* History of lobby");
    let mut texts = Vec::new();
    loop {
        let line = read_line(&mut reader);
        if line == "* End of history" {
            return texts;
        }
        let text = line.split_once("] sender: ").map(|(_, t)| t.to_string());
        texts.push(text.unwrap_or_else(|| panic!("not a history line: {line:?}")));
    }
}

#[test]
fn history_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut first = Serve::with_data(data.path(), &[]);
    let (mut listener, _l) = user(first.addr, "listener");
    let (_s, mut sender) = user(first.addr, "sender");
    read_until(&mut listener, "* sender joined lobby");
    for i in 0..5 {
        sender
            .write_all(format!("before restart {i}\n").as_bytes())
            .unwrap();
        assert_eq!(
            read_line(&mut listener),
            format!("[lobby] sender: before restart {i}")
        );
    }
    Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status()
        .unwrap();
    first.child.wait().unwrap();

    let second = Serve::with_data(data.path(), &[]);
    let texts = history_texts(second.addr);
    let expected: Vec<String> = (0..5).map(|i| format!("before restart {i}")).collect();
    assert_eq!(texts, expected);
}

/// The durability guarantee: kill -9 at an arbitrary moment under load, restart, and
/// every message that any client received is in the history.
#[cfg(unix)]
#[test]
fn every_message_a_client_saw_survives_kill_9() {
    use std::io::Read;
    let data = tempfile::tempdir().unwrap();
    // The sender floods on purpose, so flood control is off.
    let mut server = Serve::with_data(data.path(), &["--flood-rate", "0"]);
    let mut listeners: Vec<_> = (0..3)
        .map(|i| user(server.addr, &format!("listener{i}")).0)
        .collect();
    let (_s, mut sender) = user(server.addr, "sender");
    for listener in &mut listeners {
        read_until(listener, "* sender joined lobby");
    }
    // The sender writes as fast as it can in a thread; the kill lands while messages
    // are in flight, at a point that depends on timing rather than on a fixed count.
    let total = 400;
    let writer = std::thread::spawn(move || {
        for i in 0..total {
            if sender
                .write_all(format!("message {i}\n").as_bytes())
                .is_err()
            {
                break;
            }
        }
        sender
    });
    let mut seen = std::collections::BTreeSet::new();
    let kill_after = 100;
    for _ in 0..kill_after {
        let line = read_line(&mut listeners[0]);
        seen.insert(line.trim_start_matches("[lobby] sender: ").to_string());
    }
    Command::new("kill")
        .args(["-KILL", &server.child.id().to_string()])
        .status()
        .unwrap();
    server.child.wait().unwrap();
    let _ = writer.join();
    // Whatever else reached any listener before the kill counts too.
    for listener in &mut listeners {
        let mut rest = String::new();
        let _ = listener.read_to_string(&mut rest);
        for line in rest.lines() {
            if let Some(text) = line.strip_prefix("[lobby] sender: ") {
                seen.insert(text.to_string());
            }
        }
    }
    assert!(seen.len() >= kill_after);

    let restarted = Serve::with_data(data.path(), &[]);
    let stored: std::collections::BTreeSet<String> =
        history_texts(restarted.addr).into_iter().collect();
    let missing: Vec<_> = seen.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "received but not in history: {missing:?}"
    );
}
