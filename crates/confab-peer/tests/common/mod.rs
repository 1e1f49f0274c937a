//! Helpers shared by the peer tests: parsing options as the binary does, running a peer
//! in this process with in-memory pipes for its input, output and notices, and bounded
//! waits for what it prints.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use confab_peer::{bind_udp, run_with, Link, PeerArgs, Report};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// The longest any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: PeerArgs,
}

/// Parses `confab peer` options.
pub fn args(argv: &[&str]) -> PeerArgs {
    let argv = std::iter::once("peer").chain(argv.iter().copied());
    Cli::try_parse_from(argv).expect("valid options").args
}

/// Options for a UDP peer on `socket` talking to `to`, plus `extra`.
pub fn udp_args(socket: &UdpSocket, to: SocketAddr, extra: &[&str]) -> PeerArgs {
    let bind = socket.local_addr().unwrap().to_string();
    let to = to.to_string();
    let mut argv = vec!["--udp", "--bind", &bind, "--to", &to];
    argv.extend_from_slice(extra);
    args(&argv)
}

pub fn loopback_udp() -> UdpSocket {
    bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("binding a loopback UDP socket")
}

/// A peer running in this process.
pub struct Peer {
    /// Its standard input; dropping it is the end of input.
    pub input: Option<DuplexStream>,
    output: Lines<BufReader<DuplexStream>>,
    notices: mpsc::Receiver<String>,
    /// Every notice seen so far, for assertions after the fact.
    pub seen_notices: Vec<String>,
    pub task: JoinHandle<anyhow::Result<Report>>,
}

impl Peer {
    pub fn spawn(args: PeerArgs, link: Link) -> Peer {
        let (input, peer_input) = tokio::io::duplex(64 * 1024);
        let (peer_output, output) = tokio::io::duplex(1024 * 1024);
        let (peer_notices, notices) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(run_with(
            args,
            link,
            BufReader::new(peer_input),
            peer_output,
            peer_notices,
        ));
        // Notices are read all the time, so that a test that ignores them never stalls
        // the peer on a full pipe.
        let (tx, rx) = mpsc::channel(10_000);
        tokio::spawn(async move {
            let mut lines = BufReader::new(notices).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).await.is_err() {
                    break;
                }
            }
        });
        Peer {
            input: Some(input),
            output: BufReader::new(output).lines(),
            notices: rx,
            seen_notices: Vec::new(),
            task,
        }
    }

    pub async fn send(&mut self, line: &str) {
        let input = self.input.as_mut().expect("input still open");
        input.write_all(line.as_bytes()).await.unwrap();
        input.write_all(b"\n").await.unwrap();
    }

    /// The next line of output.
    pub async fn line(&mut self) -> String {
        timeout(WAIT, self.output.next_line())
            .await
            .expect("timed out waiting for a line")
            .unwrap()
            .expect("output ended")
    }

    /// The next `n` lines of output.
    pub async fn lines(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.line().await);
        }
        out
    }

    /// Whatever output is left until the peer closes it.
    pub async fn rest(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(line) = timeout(WAIT, self.output.next_line())
            .await
            .expect("timed out waiting for the output to end")
            .unwrap()
        {
            out.push(line);
        }
        out
    }

    /// Waits for a notice containing `needle`, within `within`.
    pub async fn notice(&mut self, needle: &str, within: Duration) -> String {
        let found = timeout(within, async {
            while let Some(line) = self.notices.recv().await {
                self.seen_notices.push(line.clone());
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!(
                "no notice with {needle:?} within {within:?}; saw {:?}",
                self.seen_notices
            ),
        }
    }

    pub fn close_input(&mut self) {
        self.input = None;
    }

    /// Waits for the peer to end.
    pub async fn finish(mut self) -> anyhow::Result<Report> {
        self.close_input();
        timeout(WAIT, self.task)
            .await
            .expect("the peer did not end in time")
            .expect("the peer panicked")
    }
}
