//! The `confab` binary: one command-line entry point for every mode of the product.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use confab_server::{seconds, Config, Frontend, IrcConfig, Limits, Server};

/// jemalloc rather than the system allocator: a server holds tens of thousands of small,
/// long-lived objects per connection kind, and jemalloc's size classes keep them with
/// less overhead and fragmentation than glibc's malloc (19,000 idle IRC clients: 1.7
/// KiB each against 1.9; docs/performance.md). Not on MSVC, where it does not build.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start: a background thread returns freed pages to
/// the system, so that memory comes back after thousands of clients leave at once,
/// even when the server then sits idle (jemalloc otherwise purges only while it is
/// being called). With glibc's malloc the server had to call `malloc_trim` for that
/// (bench/mass-reconnect.sh measured 1.1 GB kept with nobody connected). Freed pages
/// go back after 1 s unused rather than jemalloc's default 10 s: bursts such as 5,000
/// users filling one room (each join told to everyone) leave megabytes of emptied
/// queues behind, which otherwise stayed resident for ten seconds (22.8 KiB per user
/// measured right after the last join, against 1.8 with this setting, and 1.7 once the
/// default had caught up). The purging is the background thread's, off the request
/// path; fanout and paced runs showed no difference.
#[cfg(not(target_env = "msvc"))]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,max_background_threads:1,dirty_decay_ms:1000".as_ptr());

/// A C string pointer that may be a `static`: it points at a literal, never written.
#[cfg(not(target_env = "msvc"))]
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a constant string literal; nothing ever writes through it.
#[cfg(not(target_env = "msvc"))]
unsafe impl Sync for MallocConf {}

mod tls;

/// confab: a chat server, client and peer-to-peer chat in one binary.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Run the multi-user chat server.
    Serve(Box<ServeArgs>),
    /// Chat through a server from the terminal (or from a script, when stdin is not a terminal).
    Join(confab_client::JoinArgs),
    /// Chat directly with one friend, with no server, over TCP or UDP.
    Peer(confab_peer::PeerArgs),
    /// Measure a chat server (confab or another) under load; loopback targets only.
    Bench(confab_bench::BenchArgs),
}

/// Options of `confab serve`. Every limit has a default that suits a small public server.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address for the line protocol (usable with nc); repeat the flag for several.
    #[arg(
        long = "listen",
        value_name = "ADDR",
        value_parser = parse_listen_addr,
        default_value = "127.0.0.1:12345"
    )]
    listen: Vec<SocketAddr>,
    /// Address for IRC clients (irssi, WeeChat, HexChat...); repeat for several.
    #[arg(
        long = "irc-listen",
        value_name = "ADDR",
        value_parser = parse_listen_addr,
        default_value = "127.0.0.1:6667"
    )]
    irc_listen: Vec<SocketAddr>,
    /// Address for the web page and its WebSocket; repeat for several.
    #[arg(
        long = "http-listen",
        value_name = "ADDR",
        value_parser = parse_listen_addr,
        default_value = "127.0.0.1:8080"
    )]
    http_listen: Vec<SocketAddr>,
    /// Web origin allowed to open the WebSocket besides the page's own (for example
    /// https://chat.example.org); repeat for several.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// The server's name in IRC prefixes and numerics.
    #[arg(long, value_name = "NAME", default_value = "confab.local")]
    server_name: String,
    /// The network name IRC clients are welcomed to.
    #[arg(long, value_name = "NAME", default_value = "confab")]
    network: String,
    /// File whose lines are the IRC message of the day (default: a one-line greeting).
    #[arg(long, value_name = "FILE")]
    motd: Option<std::path::PathBuf>,
    /// IRC operator credentials as NAME:PASSWORD, for OPER; repeat for several. The
    /// CONFAB_OPERS variable may hold a comma-separated list instead, to keep
    /// passwords out of the process list.
    #[arg(
        long = "oper",
        value_name = "NAME:PASSWORD",
        env = "CONFAB_OPERS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    opers: Vec<String>,
    /// Directory for the SQLite database (history, accounts, offline messages); created
    /// on first run. Default: $XDG_DATA_HOME/confab, ~/.local/share/confab, or
    /// %APPDATA%\confab on Windows.
    #[arg(
        long = "data",
        value_name = "DIR",
        env = "CONFAB_DATA",
        hide_env_values = true
    )]
    data: Option<std::path::PathBuf>,
    /// PostgreSQL database for history, accounts and offline messages instead of the
    /// SQLite file in --data, as postgres://USER:PASSWORD@HOST:PORT/DATABASE; every
    /// node of a cluster uses the same one. Prefer the CONFAB_DATABASE_URL variable,
    /// which keeps the password out of the process list. The connection is not
    /// encrypted: keep the database on loopback or a private network.
    #[arg(
        long = "database-url",
        value_name = "URL",
        env = "CONFAB_DATABASE_URL",
        hide_env_values = true,
        conflicts_with = "no_history"
    )]
    database_url: Option<String>,
    /// Join a cluster through this NATS server (nats://HOST:PORT, JetStream enabled):
    /// nodes sharing one NATS and one --database-url serve one chat.
    #[arg(
        long = "nats",
        value_name = "URL",
        env = "CONFAB_NATS",
        hide_env_values = true,
        requires = "node"
    )]
    nats: Option<String>,
    /// This node's name in the cluster (letters, digits, - and _), unique among nodes.
    #[arg(
        long = "node",
        value_name = "NAME",
        env = "CONFAB_NODE",
        hide_env_values = true,
        requires = "nats"
    )]
    node: Option<String>,
    /// Keep no history at all: nothing is written to disk.
    #[arg(long, conflicts_with = "data")]
    no_history: bool,
    /// Room every line-protocol user joins on registering.
    #[arg(long, value_name = "ROOM", default_value = "lobby")]
    default_room: String,
    /// Longest input line in bytes; longer lines get an error and are discarded.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_line)]
    max_line: usize,
    /// Bytes queued for one client before it is disconnected for not reading.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().send_queue)]
    send_queue: usize,
    /// Connections served at once; more are told the server is full.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Connections served at once from one address (IPv6: one /64); 0 for no limit.
    /// Raise it for load tests from one machine (confab bench).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections_per_ip)]
    max_connections_per_ip: usize,
    /// New connections accepted from one address (IPv6: one /64) per 10 seconds; 0 for
    /// no limit.
    #[arg(long, value_name = "N", default_value_t = Limits::default().connection_rate_per_ip)]
    connection_rate_per_ip: u32,
    /// Input lines (web: requests) a client may send at once before --flood-rate applies.
    #[arg(long, value_name = "N", default_value_t = Limits::default().flood_burst)]
    flood_burst: u32,
    /// Input lines (web: requests) per second a client may send, sustained; faster
    /// clients are slowed, then disconnected after --flood-grace. 0 turns flood control
    /// off.
    #[arg(long, value_name = "PER_SEC", default_value_t = Limits::default().flood_rate)]
    flood_rate: u32,
    /// Seconds a client may stay over its flood budget before it is disconnected.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().flood_grace.as_secs())]
    flood_grace: u64,
    /// Seconds an input line may stay unfinished before the client is disconnected; 0
    /// for no limit.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().partial_line_timeout.as_secs())]
    partial_line_timeout: u64,
    /// Rooms one user may be in at once; 0 for no limit.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_rooms_per_user)]
    max_rooms_per_user: usize,
    /// Members one room may have; 0 for no limit.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_members_per_room)]
    max_members_per_room: usize,
    /// Seconds a new connection has to register.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().registration_timeout.as_secs())]
    registration_timeout: u64,
    /// Seconds a registered client may stay silent before it is disconnected.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().idle_timeout.as_secs())]
    idle_timeout: u64,
    /// Seconds of silence before TCP keepalive probes check that a peer still exists.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().tcp_keepalive.as_secs())]
    tcp_keepalive: u64,
    #[command(flatten)]
    tls: tls::TlsArgs,
}

impl ServeArgs {
    fn config(self) -> anyhow::Result<Config> {
        let defaults = Limits::default();
        let mut irc = IrcConfig {
            server_name: self.server_name,
            network: self.network,
            ..IrcConfig::default()
        };
        if let Some(path) = &self.motd {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the MOTD file {}", path.display()))?;
            irc.motd = text.lines().map(str::to_string).collect();
        }
        for oper in &self.opers {
            irc.opers.push(confab_server::parse_oper(oper)?);
        }
        // With a database URL the SQLite directory is not used, so none is made.
        let data_dir = if self.no_history || self.database_url.is_some() {
            None
        } else {
            Some(self.data.unwrap_or_else(default_data_dir))
        };
        let cluster = match (self.nats, self.node) {
            (Some(nats_url), Some(node)) => {
                if self.database_url.is_none() {
                    anyhow::bail!(
                        "a cluster node needs --database-url: every node shares one PostgreSQL \
                         database for history and accounts"
                    );
                }
                Some(confab_server::ClusterConfig { nats_url, node })
            }
            _ => None,
        };
        Ok(Config {
            cluster,
            data_dir,
            database_url: self.database_url,
            irc,
            line_listen: self.listen,
            irc_listen: self.irc_listen,
            http_listen: self.http_listen,
            allowed_origins: self.allow_origin,
            tls: self.tls.config()?,
            default_room: self.default_room,
            limits: Limits {
                max_line: self.max_line,
                send_queue: self.send_queue,
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip,
                connection_rate_per_ip: self.connection_rate_per_ip,
                flood_burst: self.flood_burst,
                flood_rate: self.flood_rate,
                flood_grace: seconds(self.flood_grace),
                partial_line_timeout: seconds(self.partial_line_timeout),
                max_rooms_per_user: self.max_rooms_per_user,
                max_members_per_room: self.max_members_per_room,
                registration_timeout: seconds(self.registration_timeout),
                idle_timeout: seconds(self.idle_timeout),
                tcp_keepalive: seconds(self.tcp_keepalive.max(1)),
                ..defaults
            },
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(log_colour())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // The server logs connections by default; the interactive modes stay quiet
                // so that logs never mix into a chat screen.
                match cli.command {
                    Mode::Serve(_) => "info".into(),
                    _ => "warn".into(),
                }
            }),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("confab: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Mode::Serve(args) => serve(*args).await,
            Mode::Join(args) => confab_client::run(args).await,
            Mode::Peer(args) => confab_peer::run(args).await,
            Mode::Bench(args) => confab_bench::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("confab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let server = Server::bind(args.config()?)
        .await
        .context("starting the server")?;
    let shutdown = shutdown_signal();
    for (frontend, addr) in server.local_addrs() {
        // Printed on stdout, not in the log, so that scripts and tests can wait for it.
        let what = match frontend {
            Frontend::Line => "line protocol",
            Frontend::Irc => "IRC",
            Frontend::Http => "web page and WebSocket",
            Frontend::LineTls => "line protocol over TLS",
            Frontend::IrcTls => "IRC over TLS",
            Frontend::Https => "web page and WebSocket over HTTPS",
        };
        // A closed stdout (`confab serve | head -1`) must not stop the server.
        let _ = writeln!(std::io::stdout(), "confab: {what} listening on {addr}");
    }
    let _ = std::io::stdout().flush();
    server.run(shutdown).await;
    Ok(ExitCode::SUCCESS)
}

/// Parses a listening address for clap. The standard parser says only "invalid socket
/// address syntax" for `127.0.0.1:99999`, which hides the actual mistake, so a port that
/// does not fit in 16 bits is named. Port 0 stays valid: it asks for any free port.
fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    if let Some((_, port)) = text.rsplit_once(':') {
        let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
        if digits && port.parse::<u16>().is_err() {
            return Err(format!("port {port} is out of range (1-65535)"));
        }
    }
    Err(format!(
        "{text:?} is not an address as IP:PORT (for example 127.0.0.1:12345 or [::1]:12345)"
    ))
}

/// Where the database lives when `--data` is not given, following each platform's
/// convention for per-user application data.
fn default_data_dir() -> std::path::PathBuf {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    };
    if cfg!(windows) {
        if let Some(appdata) = var("APPDATA") {
            return appdata.join("confab");
        }
    } else if let Some(xdg) = var("XDG_DATA_HOME") {
        return xdg.join("confab");
    } else if let Some(home) = var("HOME") {
        return home.join(".local").join("share").join("confab");
    }
    std::path::PathBuf::from("confab-data")
}

/// Whether the log may use colour: only on a terminal, and never when `NO_COLOR` is set
/// to anything non-empty (no-color.org), so that logs redirected to a file or a
/// service manager carry no escape codes.
fn log_colour() -> bool {
    use std::io::IsTerminal as _;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}

/// Resolves on Ctrl-C, or on SIGTERM where there is such a thing. The handlers are
/// installed when this is called, not when the future is first polled: the server is
/// called before it says it listens, so that a SIGTERM sent as soon as it answers (as
/// scripts and tests do) finds a handler rather than killing the process outright.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    let wait = |signal: Option<Signal>| async move {
        match signal {
            Some(mut signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    async move {
        tokio::select! {
            () = wait(interrupt) => {}
            () = wait(terminate) => {}
        }
    }
}

/// Resolves on Ctrl-C (or the console closing), its handler installed now for the
/// same reason as on Unix.
#[cfg(windows)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let ctrl_c = tokio::signal::windows::ctrl_c().ok();
    async move {
        match ctrl_c {
            Some(mut ctrl_c) => {
                ctrl_c.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}
