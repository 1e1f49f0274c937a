//! A benchmark of reliable mode over loopback: two peers in this process, each the real
//! UDP transport in pipe mode, joined through a [`Relay`] that drops a given share of
//! datagrams. It measures throughput (a burst of messages, end to end) and one-way
//! latency (one message at a time, from writing it to one peer's input to reading it from
//! the other's output).
//!
//! `cargo run --release -p confab-peer --example peer_bench` prints a table; the `confab`
//! binary can wire [`bench`] into `confab bench peer`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::time::timeout;

use crate::relay::{Relay, RelayConfig};
use crate::{bind_udp, run_with, Link, PeerArgs, Report};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Messages in the throughput burst.
    pub messages: usize,
    /// Messages sent one at a time for the latency figures.
    pub latency_samples: usize,
    /// Bytes in each message.
    pub message_size: usize,
    /// Share of datagrams the relay drops, in each direction.
    pub loss: f64,
    /// Run with a secret, so that every packet is encrypted.
    pub encrypted: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            messages: 10_000,
            latency_samples: 500,
            message_size: 64,
            loss: 0.0,
            encrypted: false,
        }
    }
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub config: BenchConfig,
    /// Messages per second in the burst, first written to last read.
    pub per_second: f64,
    pub burst: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// The sender's protocol counters at the end.
    pub sender: Report,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "loss {:>4.0}%{}: {:>8.0} msg/s ({} x {} B in {:.2?}); latency p50 {:.2?}, p99 {:.2?}, max {:.2?}; {} retransmissions",
            self.config.loss * 100.0,
            if self.config.encrypted { " encrypted" } else { "" },
            self.per_second,
            self.config.messages,
            self.config.message_size,
            self.burst,
            self.p50,
            self.p99,
            self.max,
            self.sender.stats.retransmissions,
        )
    }
}

/// A peer running in this task's runtime, fed and read through in-memory pipes.
struct BenchPeer {
    input: DuplexStream,
    output: tokio::io::Lines<BufReader<DuplexStream>>,
    task: tokio::task::JoinHandle<anyhow::Result<Report>>,
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: PeerArgs,
}

fn spawn_peer(
    socket: tokio::net::UdpSocket,
    to: SocketAddr,
    encrypted: bool,
) -> anyhow::Result<BenchPeer> {
    let mut argv = vec![
        "peer".to_owned(),
        "--udp".into(),
        "--bind".into(),
        socket.local_addr()?.to_string(),
        "--to".into(),
        to.to_string(),
        "--reliable".into(),
        "--linger".into(),
        "5".into(),
    ];
    if encrypted {
        argv.extend(["--secret".into(), "benchmark passphrase".into()]);
    }
    let args = Cli::try_parse_from(argv)?.args;
    let (input, peer_input) = tokio::io::duplex(64 * 1024);
    let (peer_output, output) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(run_with(
        args,
        Link::Udp(socket),
        BufReader::new(peer_input),
        peer_output,
        tokio::io::sink(),
    ));
    Ok(BenchPeer {
        input,
        output: BufReader::new(output).lines(),
        task,
    })
}

/// Runs one measurement.
pub async fn bench(config: BenchConfig) -> anyhow::Result<BenchReport> {
    let loopback: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
    let (sa, sb) = (bind_udp(loopback)?, bind_udp(loopback)?);
    let relay = Relay::start(
        sa.local_addr()?,
        sb.local_addr()?,
        RelayConfig::lossy(config.loss, 0.0, 0.0, 42),
    )
    .await?;
    let mut a = spawn_peer(sa, relay.addr_for_a(), config.encrypted)?;
    let mut b = spawn_peer(sb, relay.addr_for_b(), config.encrypted)?;
    let limit = Duration::from_secs(120);
    let body = "x".repeat(config.message_size.saturating_sub(8));

    // Warm up: the handshake completes and the first round trips set the RTO.
    for i in 0..10 {
        a.input.write_all(format!("warm{i}\n").as_bytes()).await?;
        next_line(&mut b, limit).await?;
    }

    let mut latencies = Vec::with_capacity(config.latency_samples);
    for i in 0..config.latency_samples {
        let start = Instant::now();
        a.input
            .write_all(format!("{i:07} {body}\n").as_bytes())
            .await?;
        next_line(&mut b, limit).await?;
        latencies.push(start.elapsed());
    }

    let start = Instant::now();
    let messages = config.messages;
    let mut writer = a.input;
    let feed = tokio::spawn(async move {
        let mut batch = String::new();
        for i in 0..messages {
            batch.push_str(&format!("{i:07} {body}\n"));
            if batch.len() > 32 * 1024 || i + 1 == messages {
                writer.write_all(batch.as_bytes()).await?;
                batch.clear();
            }
        }
        anyhow::Ok(writer)
    });
    for _ in 0..messages {
        next_line(&mut b, limit).await?;
    }
    let burst = start.elapsed();
    let writer = feed.await??;

    drop(writer);
    drop(b.input);
    let sender = a.task.await??;
    let _ = b.task.await?;
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(BenchReport {
        per_second: messages as f64 / burst.as_secs_f64(),
        burst,
        p50: pick(0.5),
        p99: pick(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        sender,
        config,
    })
}

async fn next_line(peer: &mut BenchPeer, limit: Duration) -> anyhow::Result<String> {
    timeout(limit, peer.output.next_line())
        .await
        .context("the benchmark stalled")??
        .context("the receiving peer ended early")
}
