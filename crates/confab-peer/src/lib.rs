//! `confab peer`: direct 1:1 chat with no server, over TCP or UDP.
//!
//! Over TCP one side listens and the other connects, and both type at any time; lines are
//! plain text, so `nc` and the tutorial's scripts can be the friend. Over UDP each side
//! binds its own address and sends to the friend's, as in the tutorial; when both ends
//! are confab they agree on a reliable, ordered (and with `--secret`, encrypted)
//! protocol, and otherwise they speak the tutorial's one-line-per-datagram plain text.
//! The protocol itself is the pure state machine [`confab_wire::peer::Session`]; the
//! design, wire format and measurements are in `docs/peer.md`.
//!
//! # Layout
//! - This file: the command-line options, [`open`]ing the socket, and the entry points
//!   [`run`] (the real terminal) and [`run_with`] (any reader and writers: tests, scripts).
//! - `chat`: what the user does and what to show, as passed between the transport and
//!   the front-end, so either side can be swapped.
//! - `udp`, `tcp`: the transports: a loop over the socket, the user and the timers.
//! - `pipe`, `tui`: the front-ends: lines on stdin and stdout, or a full-screen terminal.
//! - standard input comes from `confab_client::stdin`, a thread that cannot hold up exit.
//! - `secret`: the passphrase's key derivation (Argon2id).
//! - [`relay`]: a lossy UDP relay for the tests and the benchmark.
//! - [`bench`]: messages per second and latency over loopback.
//!
//! # Invariants
//! - Only datagrams from the friend's address reach the protocol; the rest are counted.
//! - Everything is bounded: line length, queued messages, the time spent leaving.
//! - The terminal is restored on every way out of the full-screen UI, panics included.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

pub use confab_wire::peer::Stats;

pub mod bench;
mod chat;
mod pipe;
pub mod relay;
mod secret;
mod tcp;
mod tui;
mod udp;

/// The environment variable that can hold the secret instead of `--secret`.
pub const SECRET_ENV: &str = "CONFAB_PEER_SECRET";

/// Command-line options of `confab peer`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("transport").required(true).args(["listen", "connect", "udp"])))]
pub struct PeerArgs {
    /// TCP: wait on this address (HOST:PORT) for the friend to connect.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// TCP: connect to the friend listening at this address (HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    pub connect: Option<String>,
    /// UDP: chat over datagrams, as in the tutorial; needs --bind and --to.
    #[arg(long, requires_all = ["bind", "to"])]
    pub udp: bool,
    /// UDP: this side's own address (HOST:PORT), where the friend sends.
    #[arg(long, value_name = "ADDR", requires = "udp")]
    pub bind: Option<String>,
    /// UDP: the friend's address (HOST:PORT); datagrams from anyone else are ignored.
    #[arg(long, value_name = "ADDR", requires = "udp")]
    pub to: Option<String>,
    /// UDP: speak only the tutorial's plain text, one line per datagram, for its script.
    #[arg(long, requires = "udp", conflicts_with = "reliable")]
    pub plain: bool,
    /// UDP: never fall back to plain text; wait as long as it takes for a confab friend.
    #[arg(long, requires = "udp")]
    pub reliable: bool,
    /// UDP: a passphrase shared with the friend. Everything is then encrypted and
    /// authenticated, and plain text is never spoken.
    #[arg(long, value_name = "PASSPHRASE", env = SECRET_ENV, hide_env_values = true)]
    pub secret: Option<Secret>,
    /// UDP: seconds to wait for an answer to confab's handshake before speaking plain text.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_secs)]
    pub handshake_timeout: Duration,
    /// Seconds to wait, when leaving, for the friend to acknowledge everything sent.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub linger: Duration,
    /// Read lines from stdin and print messages to stdout instead of the full-screen UI.
    /// This is the default when stdin or stdout is not a terminal.
    #[arg(long)]
    pub pipe: bool,
}

/// A passphrase; kept out of `Debug` output so that it never reaches a log.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|e| format!("not a number of seconds: {e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("not a number of seconds: {e}"))
}

/// What a chat ended with.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Messages the friend never acknowledged (UDP reliable mode), or lines that could
    /// not be written to the connection (TCP). Plain-text UDP has no receipts, so its
    /// messages never count here.
    pub undelivered: usize,
    /// Messages sent and received.
    pub sent: usize,
    pub received: usize,
    /// The UDP protocol's counters; zero over TCP.
    pub stats: Stats,
}

impl Report {
    /// 0 when everything sent was delivered, 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        if self.undelivered == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// The socket a chat runs over, opened before it starts so that callers (and tests, with
/// port 0) can learn its address first.
#[derive(Debug)]
pub enum Link {
    /// UDP, bound to this side's address; the friend's comes from `--to`.
    Udp(UdpSocket),
    /// TCP, waiting for the friend to connect; only the first connection is taken.
    Listener(TcpListener),
    /// TCP, connected to the friend.
    Stream(TcpStream),
}

/// The receive and send buffer asked of the OS for a UDP socket, so that a window's worth
/// of datagrams is not dropped by the kernel before confab reads them.
const UDP_BUFFER: usize = 1 << 20;

/// Binds a UDP socket for a peer, with room for a window of datagrams.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // A smaller buffer only costs retransmissions, so a refusal is not an error.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Resolves HOST:PORT to its first address.
async fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} has no address"))
}

/// Opens the socket the options ask for: binds (UDP), listens, or connects.
pub async fn open(args: &PeerArgs) -> anyhow::Result<Link> {
    if let Some(addr) = &args.listen {
        let listener = TcpListener::bind(resolve(addr).await?)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        return Ok(Link::Listener(listener));
    }
    if let Some(addr) = &args.connect {
        let stream = TcpStream::connect(resolve(addr).await?)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        return Ok(Link::Stream(stream));
    }
    let addr = args.bind.as_deref().context("--udp needs --bind")?;
    let socket = bind_udp(resolve(addr).await?).with_context(|| format!("binding {addr}"))?;
    Ok(Link::Udp(socket))
}

/// Runs one peer chat until it ends, on the real terminal.
///
/// The full-screen UI is used when stdin and stdout are terminals and `--pipe` is not
/// given; otherwise lines from stdin are sent and messages printed one per line. Exit
/// status 1 means messages were left undelivered.
pub async fn run(args: PeerArgs) -> anyhow::Result<ExitCode> {
    check(&args)?;
    let link = open(&args).await?;
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let report = if interactive && !args.pipe {
        tui::run(args, link).await?
    } else {
        let stdin = confab_client::stdin::ThreadStdin::spawn().context("reading stdin")?;
        run_with(args, link, stdin, tokio::io::stdout(), tokio::io::stderr()).await?
    };
    Ok(report.exit_code())
}

/// Runs one peer chat over `link` in pipe mode: each line of `input` is a message (an
/// exit word or the end of input leaves), each message from the friend is one line of
/// `output`, and what happens (online, offline, delivery failures) goes to `notices`.
pub async fn run_with<R, W, N>(
    args: PeerArgs,
    link: Link,
    input: R,
    output: W,
    notices: N,
) -> anyhow::Result<Report>
where
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    N: AsyncWrite + Unpin + Send + 'static,
{
    check(&args)?;
    let (user, show, front) = pipe::start(input, output, notices);
    let result = chat::drive(args, link, user, show).await;
    // The front-end prints everything it was given before the chat counts as over.
    front.finish().await;
    result
}

/// Rejects combinations clap cannot see, such as a secret from the environment.
fn check(args: &PeerArgs) -> anyhow::Result<()> {
    if args.secret.is_some() && !args.udp {
        anyhow::bail!(
            "a secret works over UDP only (TCP speaks plain lines for nc); unset {SECRET_ENV} or add --udp"
        );
    }
    if args.secret.is_some() && args.plain {
        anyhow::bail!("--plain cannot be encrypted; drop --plain or the secret ({SECRET_ENV})");
    }
    Ok(())
}
