//! Server configuration: where to listen and every limit, each with a sane default.

use std::net::SocketAddr;
use std::time::Duration;

/// The tutorials' port, used for the line protocol when no address is given.
pub const DEFAULT_LINE_ADDR: &str = "127.0.0.1:12345";
/// IRC's registered plain-text port; `confab serve` listens there by default.
pub const DEFAULT_IRC_ADDR: &str = "127.0.0.1:6667";
/// Where `confab serve` serves the web page by default.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";

/// Everything `confab serve` needs to start.
///
/// `Config::default()` listens for the line protocol only, on the tutorials' port;
/// `confab serve` adds IRC and HTTP listeners by default on the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses that speak the line protocol.
    pub line_listen: Vec<SocketAddr>,
    /// Addresses that speak IRC.
    pub irc_listen: Vec<SocketAddr>,
    /// Addresses that serve the web page and its WebSocket.
    pub http_listen: Vec<SocketAddr>,
    /// Origins allowed to open the WebSocket (besides the page's own host). Empty means
    /// same-origin only.
    pub allowed_origins: Vec<String>,
    /// The room every line-protocol user joins on registering.
    pub default_room: String,
    /// Where the SQLite database lives; `None` keeps no history.
    pub data_dir: Option<std::path::PathBuf>,
    pub limits: Limits,
    pub irc: IrcConfig,
    /// TLS listeners beside (or, with `tls_only`, instead of) the plain ones; `None`
    /// means no TLS at all.
    pub tls: Option<crate::tls::TlsConfig>,
}

/// What the IRC front-end tells clients about the server, and who may become an IRC
/// operator.
#[derive(Debug, Clone)]
pub struct IrcConfig {
    /// The server's name in IRC prefixes and numerics.
    pub server_name: String,
    /// The network name in the welcome message and ISUPPORT.
    pub network: String,
    /// The message of the day, one entry a line; empty means none.
    pub motd: Vec<String>,
    /// Operator credentials for OPER: (name, password).
    pub opers: Vec<(String, String)>,
}

impl Default for IrcConfig {
    fn default() -> Self {
        IrcConfig {
            server_name: "confab.local".into(),
            network: "confab".into(),
            motd: vec!["Welcome to confab: one chat for nc, IRC and the web.".into()],
            opers: Vec::new(),
        }
    }
}

/// Bounds on what any one client can make the server hold or do.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest input line in bytes, newline excluded. Longer lines get an error and are
    /// discarded; the connection stays.
    pub max_line: usize,
    /// Bytes that may wait to be written to one client before it is disconnected for not
    /// reading ("send queue exceeded").
    pub send_queue: usize,
    /// Connections served at once; more are told the server is full and closed.
    pub max_connections: usize,
    /// Time a new connection has to register before it is closed.
    pub registration_timeout: Duration,
    /// Time a registered client may send nothing before it is closed. `confab join`
    /// pings well within it; TCP keepalive separately finds peers that vanished.
    pub idle_timeout: Duration,
    /// Time a client using a registered name has to log in before it is renamed.
    pub login_grace: Duration,
    /// Silence after which an IRC client is pinged, and then the time it has to answer.
    pub ping_interval: Duration,
    /// Idle time before the kernel starts TCP keepalive probes on a connection.
    pub tcp_keepalive: Duration,
    /// How long shutdown waits for connections to flush their last lines.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 4096,
            send_queue: 1 << 20,
            max_connections: 10_000,
            registration_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(3600),
            ping_interval: Duration::from_secs(90),
            login_grace: Duration::from_secs(60),
            tcp_keepalive: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            line_listen: vec![DEFAULT_LINE_ADDR.parse().expect("valid address")],
            irc_listen: Vec::new(),
            http_listen: Vec::new(),
            allowed_origins: Vec::new(),
            irc: IrcConfig::default(),
            default_room: "lobby".into(),
            data_dir: None,
            limits: Limits::default(),
            tls: None,
        }
    }
}
