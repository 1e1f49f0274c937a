//! Tests of `confab serve` with TLS through the built binary: the TLS listeners it
//! announces, IRC over TLS with `openssl s_client` (a rustls client where openssl is
//! missing), the line protocol over TLS with a rustls client that trusts the written
//! self-signed certificate, and a clear error for a bad certificate file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const PATIENCE: Duration = Duration::from_secs(10);

/// Every plain and TLS listener on a free port.
const ALL_LISTENERS: [&str; 12] = [
    "--listen",
    "127.0.0.1:0",
    "--irc-listen",
    "127.0.0.1:0",
    "--http-listen",
    "127.0.0.1:0",
    "--tls-listen",
    "127.0.0.1:0",
    "--irc-tls-listen",
    "127.0.0.1:0",
    "--https-listen",
    "127.0.0.1:0",
];

/// A file under the system's temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("confab-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempFile(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Lines from a child's output, read on a thread so that every wait has a timeout.
fn lines_of(output: impl Read + Send + 'static) -> Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { return };
            if send.send(line).is_err() {
                return;
            }
        }
    });
    receive
}

/// The next line, which must come in time; `None` when the output ended.
fn next(lines: &Receiver<String>) -> Option<String> {
    match lines.recv_timeout(PATIENCE) {
        Ok(line) => Some(line),
        Err(mpsc::RecvTimeoutError::Disconnected) => None,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("timed out waiting for output"),
    }
}

/// A child process killed when dropped, so that a failing test leaves none behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `confab serve` with `args` (and no history on disk), and the first `listeners`
/// lines it prints, as (what, address) pairs.
fn serve(args: &[&str], listeners: usize) -> (Killed, Vec<(String, SocketAddr)>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["serve", "--no-history"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn confab serve");
    let stdout: ChildStdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let lines = lines_of(stdout);
    let mut found = Vec::new();
    while found.len() < listeners {
        let line = next(&lines).expect("confab serve printed its listeners");
        let (what, addr) = line
            .strip_prefix("confab: ")
            .and_then(|rest| rest.split_once(" listening on "))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        found.push((what.to_string(), addr.parse().unwrap()));
    }
    (child, found)
}

/// The address announced for `what`.
fn addr_of(listeners: &[(String, SocketAddr)], what: &str) -> SocketAddr {
    listeners
        .iter()
        .find(|(w, _)| w == what)
        .unwrap_or_else(|| panic!("no {what:?} listener in {listeners:?}"))
        .1
}

/// A rustls client that trusts only the certificate in `pem`.
fn rustls_connect(
    addr: SocketAddr,
    pem: &Path,
) -> BufReader<StreamOwned<ClientConnection, TcpStream>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pem).expect("the certificate file") {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    BufReader::new(StreamOwned::new(conn, tcp))
}

/// Reads lines until one contains `needle`.
fn read_until(reader: &mut impl BufRead, needle: &str) -> String {
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read a line in time");
        assert!(!line.is_empty(), "connection closed before {needle:?}");
        if line.contains(needle) {
            return line;
        }
    }
}

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn irc_over_tls_answers_a_real_tls_client() {
    let cert = TempFile::new("irc-cert.pem");
    let mut args = vec!["--tls-self-signed", "--tls-self-signed-out", cert.arg()];
    args.extend(ALL_LISTENERS);
    let (_server, listeners) = serve(&args, 6);
    let kinds: Vec<&str> = listeners.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "line protocol",
            "IRC",
            "web page and WebSocket",
            "line protocol over TLS",
            "IRC over TLS",
            "web page and WebSocket over HTTPS",
        ]
    );
    let addr = addr_of(&listeners, "IRC over TLS");
    let register = "NICK olga\r\nUSER olga 0 * :Olga\r\n";

    if !have_openssl() {
        eprintln!("openssl is not installed; speaking IRC over TLS with rustls instead");
        let mut client = rustls_connect(addr, &cert.0);
        client.get_mut().write_all(register.as_bytes()).unwrap();
        read_until(&mut client, " 001 olga ");
        return;
    }
    // The certificate is verified against the file the server wrote, for the
    // address it was made for.
    let mut openssl = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-quiet"])
        .args(["-CAfile", cert.arg(), "-verify_return_error"])
        .args(["-verify_ip", "127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn openssl s_client");
    let mut stdin = openssl.stdin.take().unwrap();
    let stdout = openssl.stdout.take().unwrap();
    let _openssl = Killed(openssl);
    let replies = lines_of(stdout);
    stdin.write_all(register.as_bytes()).unwrap();
    stdin.flush().unwrap();
    loop {
        let line = next(&replies).expect("openssl s_client ended before 001");
        if line.contains(" 001 olga ") {
            assert!(
                line.starts_with(":confab.local 001 olga :Welcome"),
                "{line}"
            );
            break;
        }
    }
}

#[test]
fn the_written_certificate_is_trusted_by_rustls_for_the_line_protocol() {
    let cert = TempFile::new("line-cert.pem");
    let mut args = vec!["--tls-self-signed", "--tls-self-signed-out", cert.arg()];
    args.extend(ALL_LISTENERS);
    let (_server, listeners) = serve(&args, 6);
    let mut client = rustls_connect(addr_of(&listeners, "line protocol over TLS"), &cert.0);
    read_until(&mut client, "You are connected from: 127.0.0.1:");
    client.get_mut().write_all(b"#pia\n").unwrap();
    read_until(&mut client, "* Your user detail saved as : pia");
}

#[test]
fn tls_only_announces_only_tls_listeners() {
    let mut args = vec!["--tls-self-signed", "--tls-only"];
    args.extend(ALL_LISTENERS);
    let (_server, listeners) = serve(&args, 3);
    let kinds: Vec<&str> = listeners.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "line protocol over TLS",
            "IRC over TLS",
            "web page and WebSocket over HTTPS"
        ]
    );
}

#[test]
fn a_bad_certificate_file_is_named_at_startup() {
    let cert = TempFile::new("not-a-cert.pem");
    let key = TempFile::new("not-a-key.pem");
    std::fs::write(&cert.0, "this is no certificate\n").unwrap();
    std::fs::write(&key.0, "nor a key\n").unwrap();
    let mut args = vec!["--tls-cert", cert.arg(), "--tls-key", key.arg()];
    args.extend(ALL_LISTENERS);
    let output = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["serve", "--no-history"])
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run confab serve");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no listener was announced");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(cert.arg()), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
}

#[test]
fn help_documents_the_tls_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--tls-cert",
        "--tls-key",
        "--tls-self-signed",
        "--tls-self-signed-out",
        "--tls-listen",
        "--irc-tls-listen",
        "--https-listen",
        "--tls-only",
        "--tls-handshake-timeout",
    ] {
        assert!(help.contains(flag), "{flag} is missing from:\n{help}");
    }
}
