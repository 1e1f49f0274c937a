//! Options every workload shares, and the check that keeps the generator on loopback.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context as _};

/// The wire protocol the generated clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// confab's line protocol: `#name` to register, plain lines to talk.
    Line,
    /// IRC: NICK/USER, JOIN, PRIVMSG; for confab's IRC front-end and other IRC servers.
    Irc,
    /// Bare lines for `confab bench relay`, whose greeting stands for registration.
    Raw,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Line => "line",
            Protocol::Irc => "irc",
            Protocol::Raw => "raw",
        }
    }

    fn default_addr(self) -> &'static str {
        match self {
            Protocol::Line | Protocol::Raw => "127.0.0.1:12345",
            Protocol::Irc => "127.0.0.1:6667",
        }
    }
}

/// Where to connect, how, and for how long at most.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Protocol the clients speak: confab's line protocol, IRC, or raw lines (for `bench relay`).
    #[arg(long, value_enum, default_value_t = Protocol::Line)]
    pub protocol: Protocol,
    /// Server to load, as HOST:PORT; only loopback addresses are accepted
    /// [default: 127.0.0.1:12345 for line and raw, 127.0.0.1:6667 for irc]. Several,
    /// separated by commas (the nodes of a cluster), take the clients in turn.
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// Upper bound on the whole run in seconds, connecting and draining included.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub duration: f64,
    /// Generator threads, each running its share of the clients on its own event loop
    /// [default: the CPUs this process may use].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Connections being set up at the same time; keeps the server's accept backlog from
    /// overflowing.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub concurrency: usize,
    /// Spread connections over the source addresses 127.0.0.1 to 127.0.0.K, for more
    /// connections than one address has ephemeral ports [default: one address per
    /// 20,000 connections].
    #[arg(long, value_name = "K")]
    pub sources: Option<u8>,
    /// Nicknames are this prefix and the client's number [default: "b" and three
    /// characters of the run id, so that runs never collide].
    #[arg(long, value_name = "PREFIX")]
    pub nick_prefix: Option<String>,
}

impl TargetArgs {
    /// The address to connect to, resolved and checked to be loopback.
    pub async fn resolve(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.resolve_all().await?[0])
    }

    /// Every address given, resolved and checked to be loopback.
    pub async fn resolve_all(&self) -> anyhow::Result<Vec<SocketAddr>> {
        let text = self.addr.as_deref().unwrap_or(self.protocol.default_addr());
        let mut addrs = Vec::new();
        for one in text.split(',') {
            addrs.push(resolve_loopback(one.trim()).await?);
        }
        Ok(addrs)
    }

    pub fn duration(&self) -> anyhow::Result<Duration> {
        seconds("--duration", self.duration)
    }

    /// The number of generator threads to run.
    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    /// Source addresses for `connections` simultaneous connections to `target`; empty
    /// means the operating system chooses. Only IPv4 loopback has more than one.
    pub fn sources(&self, target: SocketAddr, connections: u64) -> Vec<IpAddr> {
        let wanted = match self.sources {
            Some(k) => u64::from(k),
            None => connections.div_ceil(PORTS_PER_SOURCE),
        };
        if wanted <= 1 || !target.is_ipv4() {
            return Vec::new();
        }
        (1..=wanted.min(254) as u8)
            .map(|k| IpAddr::from([127, 0, 0, k]))
            .collect()
    }
}

/// Connections put on one source address before another is used: comfortably below
/// Linux's default ephemeral range of 28,232 ports.
const PORTS_PER_SOURCE: u64 = 20_000;

/// A duration flag, checked to be positive and finite.
pub fn seconds(flag: &str, secs: f64) -> anyhow::Result<Duration> {
    if !(secs.is_finite() && secs > 0.0) {
        bail!("{flag} must be a positive number of seconds, not {secs}");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Resolves HOST:PORT and refuses anything that is not on this machine's loopback.
/// A load generator pointed elsewhere is an attack, not a benchmark.
pub async fn resolve_loopback(text: &str) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = match text.parse::<SocketAddr>() {
        Ok(addr) => vec![addr],
        Err(_) => tokio::net::lookup_host(text)
            .await
            .with_context(|| format!("cannot resolve {text} (expected HOST:PORT)"))?
            .collect(),
    };
    let Some(first) = addrs.first() else {
        bail!("{text} resolves to no address");
    };
    if let Some(outside) = addrs.iter().find(|a| !is_loopback(a.ip())) {
        bail!(
            "refusing to load {text} ({}): confab bench only targets loopback addresses \
             (127.0.0.0/8 or ::1)",
            outside.ip()
        );
    }
    Ok(*first)
}

/// Loopback in the strict sense: 0.0.0.0 reaches this machine too, but says nothing
/// about intent, so it is refused along with everything else.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn check(text: &str, allowed: bool) {
        let result = resolve_loopback(text).await;
        assert_eq!(result.is_ok(), allowed, "{text}: {result:?}");
        if let Err(e) = result {
            let message = e.to_string();
            assert!(
                message.contains("loopback") || message.contains("resolve"),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn only_loopback_targets_are_accepted() {
        check("127.0.0.1:12345", true).await;
        check("127.3.2.1:6667", true).await;
        check("[::1]:6667", true).await;
        check("[::ffff:127.0.0.1]:6667", true).await;
        check("localhost:6667", true).await;
        check("10.0.0.1:6667", false).await;
        check("192.168.1.10:12345", false).await;
        check("8.8.8.8:53", false).await;
        check("0.0.0.0:12345", false).await;
        check("[2001:db8::1]:6667", false).await;
        check("not an address", false).await;
    }

    #[test]
    fn many_connections_spread_over_source_addresses() {
        let args = TargetArgs {
            protocol: Protocol::Line,
            addr: None,
            duration: 60.0,
            threads: None,
            concurrency: 128,
            sources: None,
            nick_prefix: None,
        };
        let target: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(args.sources(target, 5_000).is_empty());
        let sources = args.sources(target, 50_000);
        assert_eq!(sources.len(), 3);
        assert_eq!(sources[2], IpAddr::from([127, 0, 0, 3]));
        assert!(args.sources("[::1]:1".parse().unwrap(), 50_000).is_empty());
    }
}
