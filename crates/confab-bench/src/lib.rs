//! `confab bench`: a load generator for confab and other chat servers.
//!
//! It speaks confab's line protocol and IRC (and raw lines, for the relay that serves
//! as the ceiling), so that the same workloads measure confab and other servers alike.
//! Every run is bounded in time and refuses targets outside loopback. Each ends with a
//! report for people and one `RESULT key=value ...` line for scripts.
//!
//! Layout:
//! - [`options`]: flags every workload shares, and the loopback check.
//! - `wire`: the bytes each protocol sends and the replies it waits for; the payload
//!   (sender, sequence, timestamp) that messages carry; a fast line splitter.
//! - `client`: one connection with non-blocking buffered I/O and the set-up exchanges.
//! - `shard`: generator threads, each a single-threaded event loop with its own share
//!   of the clients and its own counters, and the signals between them and the run.
//! - `messaging` (`fanout`, `dm`), `flood`, `connect`, `idle`: the workloads.
//! - [`stats`]: counters, latency histograms and the report.
//! - `relay`: `confab bench relay`, the raw relay.
//! - `sys`: a server's resident memory, and the open-file limit.

use std::process::ExitCode;

use anyhow::bail;

mod client;
mod connect;
mod flood;
mod idle;
mod messaging;
pub mod options;
mod relay;
mod shard;
pub mod stats;
mod sys;
mod wire;

pub use messaging::TrafficArgs;
pub use options::{Protocol, TargetArgs};
pub use relay::{Relay, RelayArgs};
pub use stats::Report;

/// Command-line options of `confab bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub workload: Workload,
}

/// What to measure.
#[derive(Debug, clap::Subcommand)]
pub enum Workload {
    /// N clients join one room; S of them send M messages each, and every client
    /// counts what it receives.
    Fanout(FanoutArgs),
    /// P pairs of clients send each other direct messages.
    Dm(DmArgs),
    /// The paced fanout measured twice: quiet, then while F more clients flood the
    /// room as fast as they can; reports both p99s and their ratio.
    Flood(FloodArgs),
    /// Hold N registered connections and, given the server's pid, report its resident
    /// memory per connection.
    Idle(IdleArgs),
    /// Registrations per second: connect, register, quit, again and again.
    Connect(ConnectArgs),
    /// Run a raw relay (every line to every other connection, unparsed) as the ceiling
    /// to compare servers with; load it with `--protocol raw`.
    Relay(RelayArgs),
}

/// Options of `confab bench fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Clients in the room.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 100)]
    pub clients: u64,
    /// How many of the clients send.
    #[arg(long, short = 's', value_name = "S", default_value_t = 10)]
    pub senders: u64,
    /// The room to use (without `#`).
    #[arg(long, value_name = "ROOM", default_value = "bench")]
    pub room: String,
    #[command(flatten)]
    pub traffic: TrafficArgs,
}

/// Options of `confab bench dm`.
#[derive(Debug, Clone, clap::Args)]
pub struct DmArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Pairs of clients; each client sends M messages to its partner.
    #[arg(long, short = 'p', value_name = "P", default_value_t = 50)]
    pub pairs: u64,
    #[command(flatten)]
    pub traffic: TrafficArgs,
}

/// Options of `confab bench flood`. Its defaults keep the paced senders under a
/// default `confab serve`'s flood budget (a burst of 20 lines, then 5 a second), so that
/// only the flooders meet flood control; run such a server with
/// `--max-connections-per-ip 0 --connection-rate-per-ip 0`, since every client comes
/// from one address.
#[derive(Debug, Clone, clap::Args)]
pub struct FloodArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Clients in the room, not counting the flooders.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 100)]
    pub clients: u64,
    /// How many of the clients send, at the paced rate.
    #[arg(long, short = 's', value_name = "S", default_value_t = 100)]
    pub senders: u64,
    /// Messages each paced sender sends in each phase.
    #[arg(long, short = 'm', value_name = "M", default_value_t = 40)]
    pub messages: u64,
    /// Messages per second per paced sender, on a fixed schedule; latency counts from
    /// when a message was due.
    #[arg(long, value_name = "R", default_value_t = 4.0)]
    pub rate: f64,
    /// Extra clients that flood the room as fast as the server reads them during the
    /// second phase (0 measures the quiet case twice, which shows the noise).
    #[arg(long, short = 'f', value_name = "F", default_value_t = 1)]
    pub flooders: u64,
    /// Seconds the flooders flood before the paced senders start, so that the paced
    /// messages meet flooders that have spent their burst.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub warmup: f64,
    /// Leave a flooder the server disconnects disconnected; by default it connects
    /// again under a new name and goes on, as a determined flooder would.
    #[arg(long)]
    pub no_reconnect: bool,
    /// The room to use (without `#`).
    #[arg(long, value_name = "ROOM", default_value = "bench")]
    pub room: String,
    /// Most paced lines in one write.
    #[arg(long, value_name = "K", default_value_t = 64)]
    pub batch: usize,
    /// Pad message texts, the paced and the flooders' alike, to this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub size: usize,
    /// Seconds to wait in each phase, after the last message was sent, for the rest to
    /// arrive.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub drain_timeout: f64,
}

/// Options of `confab bench idle`.
#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Connections to hold.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 1000)]
    pub clients: u64,
    /// The server's process id, to read its resident memory before and after (Linux).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Seconds to keep holding the connections after measuring (within --duration).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub hold: f64,
    /// The room IRC clients join, as line-protocol clients join the default room; an
    /// empty one (`--room ''`) has IRC clients join no room at all.
    #[arg(long, value_name = "ROOM", default_value = "bench")]
    pub room: String,
}

/// Options of `confab bench connect`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Registrations to perform, --concurrency at a time.
    #[arg(long, short = 'n', value_name = "N", default_value_t = 1000)]
    pub clients: u64,
}

/// Runs one benchmark workload (or the relay) and prints its report. The exit code
/// is a failure when anything was lost, duplicated, refused or disconnected.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Workload::Relay(relay) = args.workload {
        return relay::serve(relay).await;
    }
    let report = measure(args.workload).await?;
    print!("{}", report.render());
    Ok(if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one workload and returns its report without printing it.
pub async fn measure(workload: Workload) -> anyhow::Result<Report> {
    match workload {
        Workload::Fanout(args) => {
            if args.senders > args.clients {
                bail!(
                    "--senders ({}) cannot exceed --clients ({})",
                    args.senders,
                    args.clients
                );
            }
            if args.clients == 0 {
                bail!("--clients must be at least 1");
            }
            sys::ensure_fds(args.clients)?;
            let plan = shard::Plan::new(&args.target, args.clients).await?;
            let exchange = messaging::Exchange {
                plan,
                pattern: messaging::Pattern::Fanout {
                    senders: args.senders,
                    room: args.room,
                },
                clients: args.clients,
                traffic: args.traffic,
                flood: None,
            };
            messaging::run(exchange, &args.target).await
        }
        Workload::Flood(args) => flood::run(args).await,
        Workload::Dm(args) => {
            if args.pairs == 0 {
                bail!("--pairs must be at least 1");
            }
            let clients = args.pairs * 2;
            sys::ensure_fds(clients)?;
            let plan = shard::Plan::new(&args.target, clients).await?;
            let exchange = messaging::Exchange {
                plan,
                pattern: messaging::Pattern::Dm,
                clients,
                traffic: args.traffic,
                flood: None,
            };
            messaging::run(exchange, &args.target).await
        }
        Workload::Idle(args) => {
            if args.clients == 0 {
                bail!("--clients must be at least 1");
            }
            sys::ensure_fds(args.clients)?;
            let hold = if args.hold > 0.0 {
                options::seconds("--hold", args.hold)?
            } else {
                std::time::Duration::ZERO
            };
            let plan = shard::Plan::new(&args.target, args.clients).await?;
            let idle = idle::Idle {
                plan,
                clients: args.clients,
                room: args.room,
                pid: args.pid,
                hold,
            };
            idle::run(idle, &args.target).await
        }
        Workload::Connect(args) => {
            sys::ensure_fds(args.target.concurrency as u64)?;
            // Closed connections linger in TIME_WAIT and hold their ports, so source
            // addresses are planned for every registration, not just the live ones.
            let plan = shard::Plan::new(&args.target, args.clients).await?;
            connect::run(plan, args.clients, &args.target).await
        }
        Workload::Relay(_) => bail!("the relay is a server, not a measurement: use `run`"),
    }
}
