//! Helpers shared by the server's integration tests: a server on port 0 and a raw
//! line-protocol client that reads with timeouts instead of sleeping.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use confab_server::{Config, Frontend, IrcConfig, Limits, Server};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any single expected line may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestServer {
    /// The line protocol's address.
    pub addr: SocketAddr,
    pub irc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with_limits(Limits::default()).await
    }

    /// A server with `limits`, except that shutdown waits at most half a second for
    /// clients to close their side, since test clients stay open until they are dropped.
    pub async fn with_limits(limits: Limits) -> TestServer {
        Self::with_config(limits, IrcConfig::default()).await
    }

    /// A server keeping its history in `dir`.
    pub async fn with_data(dir: &std::path::Path) -> TestServer {
        Self::with_data_and_limits(dir, Limits::default()).await
    }

    /// A server keeping its history in `dir`, with `limits`.
    pub async fn with_data_and_limits(dir: &std::path::Path, limits: Limits) -> TestServer {
        Self::build(limits, IrcConfig::default(), Some(dir.to_path_buf())).await
    }

    /// A server with `limits` and IRC settings `irc`.
    pub async fn with_config(limits: Limits, irc: IrcConfig) -> TestServer {
        Self::build(limits, irc, None).await
    }

    async fn build(
        limits: Limits,
        irc: IrcConfig,
        data_dir: Option<std::path::PathBuf>,
    ) -> TestServer {
        let limits = Limits {
            shutdown_grace: Duration::from_millis(500),
            ..limits
        };
        let config = Config {
            irc,
            data_dir,
            line_listen: vec!["127.0.0.1:0".parse().unwrap()],
            irc_listen: vec!["127.0.0.1:0".parse().unwrap()],
            http_listen: vec!["127.0.0.1:0".parse().unwrap()],
            limits,
            ..Config::default()
        };
        let server = Server::bind(config).await.expect("bind");
        let addr = server.line_addrs()[0];
        let irc_addr = server.addrs(Frontend::Irc)[0];
        let http_addr = server.addrs(Frontend::Http)[0];
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            irc_addr,
            http_addr,
            stop: Some(stop),
            task,
        }
    }

    /// Connects a raw client and reads the two greeting lines.
    pub async fn connect(&self) -> Client {
        let mut client = Client::connect(self.addr).await;
        let first = client.line().await;
        assert!(
            first.contains("You are connected from: 127.0.0.1:"),
            "{first}"
        );
        let second = client.line().await;
        assert!(second.contains("#name"), "{second}");
        client
    }

    /// Connects and registers `name`, reading everything up to the room announcement.
    pub async fn user(&self, name: &str) -> Client {
        let mut client = self.connect().await;
        client.send(&format!("#{name}")).await;
        client
            .expect(&format!("* Your user detail saved as : {name}"))
            .await;
        client.expect("* Members of lobby").await;
        client
    }

    /// Starts shutdown and waits until the server has finished.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("server stops in time")
            .unwrap();
    }
}

pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (read, writer) = stream.into_split();
        Client {
            reader: BufReader::new(read),
            writer,
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes()).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// The next line, without its newline; panics on timeout or end of stream.
    pub async fn line(&mut self) -> String {
        self.next_line()
            .await
            .expect("the server closed the connection")
    }

    /// The next line, or `None` at end of stream.
    pub async fn next_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(PATIENCE, self.reader.read_until(b'\n', &mut buf))
            .await
            .expect("timed out waiting for a line")
            .expect("read");
        if n == 0 {
            return None;
        }
        assert_eq!(buf.pop(), Some(b'\n'), "lines end with a newline");
        Some(String::from_utf8(buf).expect("the server sends UTF-8"))
    }

    /// Reads lines until one starts with `prefix`, returning it. Every line skipped on
    /// the way must not be an error.
    pub async fn expect(&mut self, prefix: &str) -> String {
        loop {
            let line = self.line().await;
            if line.starts_with(prefix) {
                return line;
            }
            assert!(
                !line.starts_with("! "),
                "unexpected error {line:?} while waiting for {prefix:?}"
            );
        }
    }

    /// Reads lines until the server closes, returning them all.
    pub async fn rest(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.next_line().await {
            lines.push(line);
        }
        lines
    }

    /// Every byte until the server closes, split into complete lines; a last line cut
    /// short by the close is dropped.
    pub async fn rest_raw(&mut self) -> Vec<String> {
        use tokio::io::AsyncReadExt;
        let mut bytes = Vec::new();
        tokio::time::timeout(PATIENCE, self.reader.read_to_end(&mut bytes))
            .await
            .expect("timed out waiting for the close")
            .expect("read");
        let mut lines: Vec<String> = String::from_utf8_lossy(&bytes)
            .split('\n')
            .map(str::to_string)
            .collect();
        lines.pop();
        lines
    }

    /// Proves nothing else is queued: a ping round trip returns `* pong` first.
    pub async fn expect_quiet(&mut self) {
        self.send("/ping").await;
        assert_eq!(self.line().await, "* pong");
    }
}

/// One HTTP/1.1 GET over a fresh connection: the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut bytes))
        .await
        .expect("timed out waiting for the response")
        .expect("read");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}
