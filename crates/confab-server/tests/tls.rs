//! TLS on every front-end, through a real rustls client that trusts the server's
//! self-signed certificate: the line protocol and IRC over TLS, HTTPS and WSS, clients
//! that fail or stall their handshake, and `tls_only`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Client, PATIENCE};
use confab_server::{Config, Frontend, Limits, Server, TlsConfig, TlsIdentity};
use futures::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A server with a fresh self-signed certificate, every listener on port 0.
struct TlsServer {
    identity: TlsIdentity,
    /// Every bound address by what it speaks.
    addrs: Vec<(Frontend, SocketAddr)>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TlsServer {
    async fn start() -> TlsServer {
        Self::with(false, Duration::from_secs(10)).await
    }

    async fn with(tls_only: bool, handshake_timeout: Duration) -> TlsServer {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let identity = TlsIdentity::self_signed().expect("a self-signed certificate");
        let config = Config {
            line_listen: vec![any],
            irc_listen: vec![any],
            http_listen: vec![any],
            limits: Limits {
                shutdown_grace: Duration::from_millis(500),
                // Some tests send hundreds of lines at once to fill TLS records; flood
                // control has its own tests (limits.rs).
                flood_rate: 0,
                ..Limits::default()
            },
            tls: Some(TlsConfig {
                line_listen: vec![any],
                irc_listen: vec![any],
                https_listen: vec![any],
                tls_only,
                handshake_timeout,
                ..TlsConfig::new(identity.clone())
            }),
            ..Config::default()
        };
        let server = Server::bind(config).await.expect("bind");
        let addrs = server.local_addrs();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TlsServer {
            identity,
            addrs,
            stop: Some(stop),
            task,
        }
    }

    /// The one address of `frontend`.
    fn addr(&self, frontend: Frontend) -> SocketAddr {
        let found: Vec<_> = self.addrs.iter().filter(|(f, _)| *f == frontend).collect();
        assert_eq!(
            found.len(),
            1,
            "one {frontend:?} listener in {:?}",
            self.addrs
        );
        found[0].1
    }

    /// Opens a TLS connection to `frontend`'s listener, checking the certificate
    /// against `name`.
    async fn tls(&self, frontend: Frontend, name: &str, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(
                self.identity.certificate_der().to_vec(),
            ))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = TcpStream::connect(self.addr(frontend))
            .await
            .expect("connect");
        let name = ServerName::try_from(name.to_string()).unwrap();
        tokio::time::timeout(
            PATIENCE,
            TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .expect("handshake in time")
        .expect("TLS handshake")
    }

    /// A line-protocol client over TLS that has read the greeting.
    async fn line_client(&self) -> Lines {
        let mut client = Lines::new(self.tls(Frontend::LineTls, "localhost", &[]).await);
        let first = client.line().await;
        assert!(
            first.contains("You are connected from: 127.0.0.1:"),
            "{first}"
        );
        client.expect("* Register with #name").await;
        client
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("server stops in time")
            .unwrap();
    }
}

/// Lines over a TLS stream, read with timeouts instead of sleeps.
struct Lines {
    io: BufReader<TlsStream<TcpStream>>,
}

impl Lines {
    fn new(stream: TlsStream<TcpStream>) -> Lines {
        Lines {
            io: BufReader::new(stream),
        }
    }

    async fn send(&mut self, line: &str) {
        let stream = self.io.get_mut();
        stream
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stream.flush().await.unwrap();
    }

    /// The next line without its line ending, or `None` at a clean end of stream.
    async fn next_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(PATIENCE, self.io.read_until(b'\n', &mut buf))
            .await
            .expect("timed out waiting for a line")
            .expect("read");
        if n == 0 {
            return None;
        }
        let line = String::from_utf8(buf).expect("UTF-8");
        Some(line.trim_end_matches(['\r', '\n']).to_string())
    }

    async fn line(&mut self) -> String {
        self.next_line()
            .await
            .expect("the server closed the connection")
    }

    /// Reads lines until one starts with `prefix`, returning it.
    async fn expect(&mut self, prefix: &str) -> String {
        loop {
            let line = self.line().await;
            if line.starts_with(prefix) {
                return line;
            }
            assert!(!line.starts_with("! "), "error {line:?} before {prefix:?}");
        }
    }

    /// Reads lines until one contains `needle`, returning it.
    async fn expect_containing(&mut self, needle: &str) -> String {
        loop {
            let line = self.line().await;
            if line.contains(needle) {
                return line;
            }
        }
    }
}

/// The next JSON event on a WebSocket, skipping pings.
async fn next_event(ws: &mut WebSocketStream<TlsStream<TcpStream>>) -> Value {
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("an event in time");
        match frame {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

/// Registers a plain line-protocol user.
async fn plain_user(addr: SocketAddr, name: &str) -> Client {
    let mut client = Client::connect(addr).await;
    client.send(&format!("#{name}")).await;
    client.expect("* Members of lobby").await;
    client
}

/// What a raw TCP client gets until the server closes, which it must do in time. A
/// reset counts as a close: the server may drop a connection with unread input.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut bytes))
        .await
        .expect("the server closes the connection in time");
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    bytes
}

#[tokio::test]
async fn the_line_protocol_over_tls_meets_plain_users() {
    let server = TlsServer::start().await;
    let mut alice = plain_user(server.addr(Frontend::Line), "alice").await;
    let mut bob = server.line_client().await;
    bob.send("#bob").await;
    bob.expect("* Your user detail saved as : bob").await;
    bob.expect("* Members of lobby (2): alice, bob").await;
    alice.expect("* bob joined lobby").await;

    bob.send("hello from TLS").await;
    assert_eq!(alice.line().await, "[lobby] bob: hello from TLS");
    alice.send("@bob:hello, encrypted bob").await;
    assert_eq!(bob.line().await, "[dm] alice: hello, encrypted bob");

    // Enough text to take many TLS records and more than one socket buffer.
    let long = "x".repeat(3000);
    for i in 0..200 {
        alice.send(&format!("{i} {long}")).await;
    }
    for i in 0..200 {
        assert_eq!(bob.line().await, format!("[lobby] alice: {i} {long}"));
    }

    // Shutdown reaches the TLS client as a last line (perhaps after alice's quit,
    // whose connection may close first), then a clean TLS close.
    server.stop().await;
    bob.expect("* Server is shutting down").await;
    assert_eq!(bob.next_line().await, None);
}

#[tokio::test]
async fn irc_over_tls_registers() {
    let server = TlsServer::start().await;
    // Checked against the certificate's IP address this time, not its DNS name.
    let mut carol = Lines::new(server.tls(Frontend::IrcTls, "127.0.0.1", &[]).await);
    carol.send("NICK carol").await;
    carol.send("USER carol 0 * :Carol").await;
    let welcome = carol.expect_containing(" 001 carol ").await;
    assert!(
        welcome.starts_with(":confab.local 001 carol :Welcome"),
        "{welcome}"
    );
    carol.send("JOIN #lobby").await;
    carol.expect(":carol!~carol@127.0.0.1 JOIN #lobby").await;

    let mut alice = plain_user(server.addr(Frontend::Line), "alice").await;
    carol.expect(":alice!").await;
    alice.send("hello IRC").await;
    carol
        .expect(":alice!alice@127.0.0.1 PRIVMSG #lobby :hello IRC")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn https_serves_healthz_and_the_websocket() {
    let server = TlsServer::start().await;
    let https = server.addr(Frontend::Https);

    let mut stream = server
        .tls(Frontend::Https, "localhost", &[b"h2", b"http/1.1"])
        .await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response))
        .await
        .expect("a response in time")
        .expect("read");
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nok\n"), "{response}");

    // WSS from the page's own origin, as a browser on https://localhost:PORT sends it.
    let mut alice = plain_user(server.addr(Frontend::Line), "alice").await;
    let stream = server
        .tls(Frontend::Https, "localhost", &[b"http/1.1"])
        .await;
    let port = https.port();
    let mut request = format!("wss://localhost:{port}/ws")
        .into_client_request()
        .unwrap();
    let origin = format!("https://localhost:{port}");
    request
        .headers_mut()
        .insert("Origin", HeaderValue::from_str(&origin).unwrap());
    let (mut ws, _) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("WebSocket handshake in time")
            .expect("WebSocket handshake");
    assert_eq!(next_event(&mut ws).await["type"], "hello");
    ws.send(Message::text(
        json!({"type": "register", "name": "dave"}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        let event = next_event(&mut ws).await;
        assert_ne!(event["type"], "error", "{event}");
        if event["type"] == "registered" {
            assert_eq!(event, json!({"type": "registered", "name": "dave"}));
            break;
        }
    }
    alice.expect("* dave joined lobby").await;
    server.stop().await;
}

#[tokio::test]
async fn garbage_instead_of_a_client_hello_is_dropped_alone() {
    let server = TlsServer::start().await;
    let mut alice = plain_user(server.addr(Frontend::Line), "alice").await;
    let mut bob = server.line_client().await;
    bob.send("#bob").await;
    bob.expect("* Members of lobby").await;
    alice.expect("* bob joined lobby").await;

    for (frontend, garbage) in [
        (Frontend::LineTls, &b"#mallory\nhello everyone\n"[..]),
        (Frontend::IrcTls, b"NICK mallory\r\nUSER m 0 * :M\r\n"),
        (
            Frontend::Https,
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
    ] {
        let mut mallory = TcpStream::connect(server.addr(frontend)).await.unwrap();
        mallory.write_all(garbage).await.unwrap();
        let answer = read_until_closed(&mut mallory).await;
        // At most a TLS alert record (content type 21), never a line of the protocol.
        assert!(
            answer.is_empty() || answer[0] == 21,
            "{frontend:?} answered {answer:?}"
        );
    }

    // Everyone else carried on, and mallory never became a user.
    bob.send("still here").await;
    assert_eq!(alice.line().await, "[lobby] bob: still here");
    alice.send("/who").await;
    assert_eq!(alice.line().await, "* Members of lobby (2): alice, bob");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_dropped() {
    let server = TlsServer::with(false, Duration::from_millis(300)).await;
    for frontend in [Frontend::LineTls, Frontend::IrcTls, Frontend::Https] {
        // Silent from the start: the registration timeout (a minute) and the HTTP
        // header timeout (30 s) are far beyond the test's patience; only the
        // handshake deadline closes these in time.
        let mut silent = TcpStream::connect(server.addr(frontend)).await.unwrap();
        assert_eq!(read_until_closed(&mut silent).await, b"", "{frontend:?}");
        // Half a ClientHello, then silence.
        let mut stalled = TcpStream::connect(server.addr(frontend)).await.unwrap();
        stalled.write_all(&[22, 3, 1, 0, 200, 1, 0]).await.unwrap();
        read_until_closed(&mut stalled).await;
    }
    // The listeners still work afterwards.
    let mut bob = server.line_client().await;
    bob.send("#bob").await;
    bob.expect("* Your user detail saved as : bob").await;
    server.stop().await;
}

#[tokio::test]
async fn tls_only_leaves_no_plain_listener() {
    let server = TlsServer::with(true, Duration::from_secs(10)).await;
    let kinds: Vec<Frontend> = server.addrs.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        kinds,
        [Frontend::LineTls, Frontend::IrcTls, Frontend::Https],
        "{:?}",
        server.addrs
    );
    let mut bob = server.line_client().await;
    bob.send("#bob").await;
    bob.expect("* Your user detail saved as : bob").await;
    server.stop().await;
}

#[tokio::test]
async fn without_tls_nothing_changes() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = Config {
        line_listen: vec![any],
        irc_listen: vec![any],
        http_listen: vec![any],
        ..Config::default()
    };
    let server = Server::bind(config).await.expect("bind");
    let kinds: Vec<Frontend> = server.local_addrs().iter().map(|(f, _)| *f).collect();
    assert_eq!(kinds, [Frontend::Line, Frontend::Irc, Frontend::Http]);
    assert!(kinds.iter().all(|f| !f.is_tls()));
}
