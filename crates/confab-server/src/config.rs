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
    /// Where the SQLite database lives; `None` keeps no history (unless
    /// `database_url` is set).
    pub data_dir: Option<std::path::PathBuf>,
    /// A PostgreSQL database (`postgres://USER:PASSWORD@HOST:PORT/DB`) for history,
    /// accounts and offline messages, shared by every node of a cluster; when set it
    /// is used instead of `data_dir`. It holds the password: never log it.
    pub database_url: Option<String>,
    pub limits: Limits,
    pub irc: IrcConfig,
    /// TLS listeners beside (or, with `tls_only`, instead of) the plain ones; `None`
    /// means no TLS at all.
    pub tls: Option<crate::tls::TlsConfig>,
    /// The cluster this node joins; `None` runs a single node.
    pub cluster: Option<ClusterConfig>,
}

/// How a node joins a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The NATS server, `nats://host:port`.
    pub nats_url: String,
    /// This node's name, unique in the cluster: letters, digits, `-` and `_`.
    pub node: String,
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

/// Bounds on what any one client, or any one address, can make the server hold or do.
///
/// Every limit of `confab serve` is here, each with its `confab serve` flag;
/// docs/limits.md tables them with what happens when one is hit. For the counts and
/// rates below, zero means "no limit".
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest input line in bytes, newline excluded. Longer lines get an error and are
    /// discarded; the connection stays. `--max-line`.
    pub max_line: usize,
    /// Bytes that may wait to be written to one client before it is disconnected for not
    /// reading ("send queue exceeded"). `--send-queue`.
    pub send_queue: usize,
    /// Connections served at once; more are told the server is full and closed.
    /// `--max-connections`.
    pub max_connections: usize,
    /// Connections served at once from one address (IPv6: one /64); more are refused.
    /// `--max-connections-per-ip`.
    pub max_connections_per_ip: usize,
    /// New connections accepted from one address (IPv6: one /64) per
    /// [`CONNECTION_RATE_WINDOW`], as a bucket refilled evenly over the window; more
    /// are refused. `--connection-rate-per-ip`.
    pub connection_rate_per_ip: u32,
    /// Input lines (or WebSocket requests) a client may send at once before the rate
    /// applies. `--flood-burst`.
    pub flood_burst: u32,
    /// Input lines (or WebSocket requests) per second a client may send, sustained.
    /// Past it the server stops reading from the client until its budget refills.
    /// `--flood-rate`.
    pub flood_rate: u32,
    /// How long a client may stay over its budget without a pause before it is
    /// disconnected for flooding ("Excess Flood"). `--flood-grace`.
    pub flood_grace: Duration,
    /// How long an input line may stay unfinished (bytes without their newline) before
    /// the client is disconnected, so that a trickle of bytes cannot hold a connection
    /// open. `--partial-line-timeout`.
    pub partial_line_timeout: Duration,
    /// Rooms one user may be in at once (IRC `CHANLIMIT`). `--max-rooms-per-user`.
    pub max_rooms_per_user: usize,
    /// Members one room may have, whatever its `+l` says. `--max-members-per-room`.
    pub max_members_per_room: usize,
    /// Time a new connection has to register before it is closed.
    /// `--registration-timeout`.
    pub registration_timeout: Duration,
    /// Time a registered client may send nothing before it is closed. `confab join`
    /// pings well within it; TCP keepalive separately finds peers that vanished.
    /// `--idle-timeout`.
    pub idle_timeout: Duration,
    /// Time a client using a registered name has to log in before it is renamed.
    pub login_grace: Duration,
    /// Silence after which an IRC client is pinged, and then the time it has to answer.
    pub ping_interval: Duration,
    /// Idle time before the kernel starts TCP keepalive probes on a connection.
    /// `--tcp-keepalive`.
    pub tcp_keepalive: Duration,
    /// How long shutdown waits for connections to flush their last lines.
    pub shutdown_grace: Duration,
}

/// The window of [`Limits::connection_rate_per_ip`].
pub const CONNECTION_RATE_WINDOW: Duration = Duration::from_secs(10);

impl Limits {
    /// The limits the chat core enforces itself.
    pub fn core(&self) -> confab_core::CoreLimits {
        confab_core::CoreLimits {
            max_rooms_per_user: self.max_rooms_per_user,
            max_members_per_room: self.max_members_per_room,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        let core = confab_core::CoreLimits::default();
        Limits {
            max_line: 4096,
            send_queue: 1 << 20,
            max_connections: 10_000,
            max_connections_per_ip: 50,
            connection_rate_per_ip: 20,
            flood_burst: 20,
            flood_rate: 5,
            flood_grace: Duration::from_secs(10),
            partial_line_timeout: Duration::from_secs(30),
            max_rooms_per_user: core.max_rooms_per_user,
            max_members_per_room: core.max_members_per_room,
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
            database_url: None,
            limits: Limits::default(),
            tls: None,
            cluster: None,
        }
    }
}

/// The longest time any setting may name: ten years is as good as forever, and keeps
/// every deadline computed from it representable (`Instant + Duration` panics when it
/// overflows, and `--idle-timeout 18446744073709551615` would have made every
/// connection do so).
pub const MAX_SETTING: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A time setting given in seconds, capped at [`MAX_SETTING`].
pub fn seconds(secs: u64) -> Duration {
    Duration::from_secs(secs).min(MAX_SETTING)
}

/// A value of `confab serve`'s configuration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--oper takes NAME:PASSWORD, both non-empty")]
    Oper,
}

/// Parses an operator credential, `NAME:PASSWORD` (the password may hold colons).
pub fn parse_oper(value: &str) -> Result<(String, String), ConfigError> {
    value
        .split_once(':')
        .filter(|(name, password)| !name.is_empty() && !password.is_empty())
        .map(|(name, password)| (name.to_string(), password.to_string()))
        .ok_or(ConfigError::Oper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn operator_credentials_need_both_halves() {
        assert_eq!(parse_oper("root:a:b"), Ok(("root".into(), "a:b".into())));
        for bad in ["", ":", "root", "root:", ":pw"] {
            assert_eq!(parse_oper(bad), Err(ConfigError::Oper), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_oper_value_parses_or_is_refused(value in any::<String>()) {
            if let Ok((name, password)) = parse_oper(&value) {
                prop_assert_eq!(format!("{name}:{password}"), value);
            }
        }

        #[test]
        fn any_number_of_seconds_makes_a_usable_deadline(secs in any::<u64>()) {
            let duration = seconds(secs);
            prop_assert!(duration <= MAX_SETTING);
            // What the connection loop does with it must not overflow.
            let _ = tokio::time::Instant::now() + duration + duration;
        }
    }
}
