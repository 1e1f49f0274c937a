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

/// The addresses a server printed on stdout, by front-end, and its stderr log lines as
/// they come (read on a thread of their own so that the pipe never fills).
struct Logged {
    child: Child,
    line: SocketAddr,
    irc: SocketAddr,
    web: SocketAddr,
    irc_tls: SocketAddr,
    log: std::sync::mpsc::Receiver<String>,
    /// Every log line seen so far.
    seen: Vec<String>,
}

impl Logged {
    fn start() -> Logged {
        let mut child = Command::new(env!("CARGO_BIN_EXE_confab"))
            .args(["serve", "--no-history"])
            .args(["--listen", "127.0.0.1:0", "--irc-listen", "127.0.0.1:0"])
            .args(["--http-listen", "127.0.0.1:0", "--tls-self-signed"])
            .args([
                "--tls-listen",
                "127.0.0.1:0",
                "--irc-tls-listen",
                "127.0.0.1:0",
            ])
            .args(["--https-listen", "127.0.0.1:0"])
            // The log's default level is what the README describes.
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn confab serve");
        // One line per listener, six of them: what each serves, and where.
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let listening: std::collections::HashMap<String, SocketAddr> = stdout
            .lines()
            .take(6)
            .map(|line| {
                let line = line.unwrap();
                let rest = line.strip_prefix("confab: ");
                let (what, addr) = rest
                    .and_then(|r| r.split_once(" listening on "))
                    .unwrap_or_else(|| panic!("unexpected line {line:?}"));
                (what.to_string(), addr.parse().unwrap())
            })
            .collect();
        let addr = |what: &str| listening[what];
        let (line, irc, web) = (
            addr("line protocol"),
            addr("IRC"),
            addr("web page and WebSocket"),
        );
        let irc_tls = addr("IRC over TLS");
        let (tx, log) = std::sync::mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Logged {
            child,
            line,
            irc,
            web,
            irc_tls,
            log,
            seen: Vec::new(),
        }
    }

    /// Waits for the log line that contains every one of `parts` (or finds it among
    /// those already read: lines of different tasks come in any order).
    fn expect(&mut self, parts: &[&str]) -> String {
        let matches = |line: &str| parts.iter().all(|p| line.contains(p));
        if let Some(line) = self.seen.iter().find(|l| matches(l)) {
            return line.clone();
        }
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.log.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no log line with {parts:?}; the log was:\n{}",
                    self.seen.join("\n")
                )
            });
            self.seen.push(line.clone());
            if matches(&line) {
                return line;
            }
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The README promises that the server logs every connection and why it ended. At the
/// default level each front-end's open and close are logged, with the peer written as
/// `127.0.0.1:5000` (not `Some(...)`), and a log that is not a terminal has no colour.
#[test]
fn every_connection_s_open_and_close_are_logged_plainly() {
    let mut serve = Logged::start();
    for listening in [serve.line, serve.irc, serve.web, serve.irc_tls] {
        serve.expect(&["listening", &format!("addr={listening}")]);
    }

    // A line-protocol user who registers and hangs up.
    let (mut reader, mut writer) = connect(serve.line);
    let peer = format!("peer={}", writer.local_addr().unwrap());
    serve.expect(&["connected", &peer, "frontend=\"line\""]);
    writer.write_all(b"#alice\n").unwrap();
    read_until(&mut reader, "* Members of lobby");
    drop((reader, writer));
    serve.expect(&["client disconnected", &peer, "reason=\"closed\""]);

    // An IRC user who quits.
    let (mut reader, mut writer) = connect(serve.irc);
    let peer = format!("peer={}", writer.local_addr().unwrap());
    serve.expect(&["connected", &peer, "frontend=\"irc\""]);
    writer
        .write_all(b"NICK bob\r\nUSER bob 0 * :Bob\r\nQUIT :bye\r\n")
        .unwrap();
    read_until(&mut reader, "ERROR");
    serve.expect(&["client disconnected", &peer, "reason=\"quit\""]);

    // A TLS client that leaves during its handshake.
    let tls = TcpStream::connect(serve.irc_tls).unwrap();
    let peer = format!("peer={}", tls.local_addr().unwrap());
    serve.expect(&["connected", &peer, "frontend=\"irc-tls\""]);
    drop(tls);
    serve.expect(&["client disconnected", &peer]);

    // A WebSocket client (a hand-made upgrade request) that goes away.
    let (mut reader, mut writer) = connect(serve.web);
    let peer = format!("peer={}", writer.local_addr().unwrap());
    write!(
        writer,
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        serve.web
    )
    .unwrap();
    assert!(read_line(&mut reader).starts_with("HTTP/1.1 101"));
    serve.expect(&["WebSocket connected", &peer]);
    drop((reader, writer));
    serve.expect(&["WebSocket client disconnected", &peer]);

    for line in &serve.seen {
        assert!(!line.contains("\x1b["), "colour code in {line:?}");
        assert!(!line.contains("Some("), "Debug-printed option in {line:?}");
    }
}

/// Runs the binary with `args` and no server-related variables, and returns its exit
/// success, stdout and stderr.
fn run_confab(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(args)
        .env_remove("CONFAB_DATA")
        .env_remove("CONFAB_NATS")
        .env_remove("CONFAB_NODE")
        .output()
        .unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (
        output.status.success(),
        text(output.stdout),
        text(output.stderr),
    )
}

#[test]
fn a_port_out_of_range_is_named() {
    for flag in ["--listen", "--irc-listen", "--http-listen", "--tls-listen"] {
        let (ok, _, stderr) = run_confab(&["serve", flag, "127.0.0.1:99999"]);
        assert!(!ok);
        assert!(
            stderr.contains("port 99999 is out of range (1-65535)"),
            "{flag}: {stderr}"
        );
        assert!(
            !stderr.contains("invalid socket address syntax"),
            "{stderr}"
        );
    }
    // Not a port problem: the message says what an address looks like.
    let (ok, _, stderr) = run_confab(&["serve", "--listen", "localhost"]);
    assert!(!ok);
    assert!(stderr.contains("IP:PORT"), "{stderr}");
}

/// The cause's wording is the system's: this one is Unix's.
#[cfg(unix)]
#[test]
fn a_bad_data_directory_names_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let data = file.join("data");
    let (ok, _, stderr) = run_confab(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--irc-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "cannot open the data directory {}",
            data.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.matches("Not a directory").count(), 1, "{stderr}");
}

#[test]
fn serve_help_shows_unset_variables_and_windows_paths_plainly() {
    let (ok, help, _) = run_confab(&["serve", "--help"]);
    assert!(ok);
    assert!(help.contains("[env: CONFAB_DATA]"), "{help}");
    assert!(!help.contains("CONFAB_DATA="), "{help}");
    assert!(!help.contains("CONFAB_NATS="), "{help}");
    assert!(!help.contains("CONFAB_NODE="), "{help}");
    assert!(help.contains(r"%APPDATA%\confab"), "{help}");
    assert!(!help.contains(r"\\"), "{help}");
}

#[test]
fn join_help_uses_the_server_s_default_port() {
    let (ok, help, _) = run_confab(&["join", "--help"]);
    assert!(ok);
    assert!(help.contains("127.0.0.1:12345"), "{help}");
    assert!(!help.contains("7878"), "{help}");
}
