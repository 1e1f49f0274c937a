//! A lossy UDP relay between two peers, for the tests and the benchmark: it drops,
//! duplicates, delays (and so reorders) and optionally alters datagrams, with a seeded
//! random generator so that every run sees the same trouble.
//!
//! Peer A sends to [`Relay::addr_for_a`] and peer B to [`Relay::addr_for_b`]; each sees
//! the relay's address as its friend's. Datagrams from anyone else are ignored.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

/// Rewrites a datagram in flight; called for every datagram that is forwarded.
pub type Tamper = Arc<dyn Fn(&mut Vec<u8>) + Send + Sync>;

/// What the relay does to traffic.
#[derive(Clone)]
pub struct RelayConfig {
    /// Chance that a datagram is dropped.
    pub drop: f64,
    /// Chance that a datagram is sent twice (the copy a little later).
    pub duplicate: f64,
    /// Chance that a datagram is held back 1 to 20 ms, letting later ones overtake it.
    pub reorder: f64,
    pub seed: u64,
    pub tamper: Option<Tamper>,
}

impl RelayConfig {
    /// A relay that only forwards.
    pub fn clean() -> RelayConfig {
        RelayConfig::lossy(0.0, 0.0, 0.0, 1)
    }

    pub fn lossy(drop: f64, duplicate: f64, reorder: f64, seed: u64) -> RelayConfig {
        RelayConfig {
            drop,
            duplicate,
            reorder,
            seed,
            tamper: None,
        }
    }
}

/// What the relay did so far.
#[derive(Debug, Default)]
pub struct RelayStats {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub delayed: AtomicU64,
}

/// Datagrams held back at once at most; beyond it they are dropped, as a full router
/// queue would.
const MAX_HELD: usize = 4096;

/// A running relay; dropping it stops it.
pub struct Relay {
    addr_for_a: SocketAddr,
    addr_for_b: SocketAddr,
    stats: Arc<RelayStats>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Starts relaying between `a` and `b` on two fresh loopback ports.
    pub async fn start(
        a: SocketAddr,
        b: SocketAddr,
        config: RelayConfig,
    ) -> std::io::Result<Relay> {
        let loopback: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, 0).into();
        let facing_a = crate::bind_udp(loopback)?;
        let facing_b = crate::bind_udp(loopback)?;
        let stats = Arc::new(RelayStats::default());
        let relay = Relay {
            addr_for_a: facing_a.local_addr()?,
            addr_for_b: facing_b.local_addr()?,
            stats: stats.clone(),
            task: tokio::spawn(relay([facing_a, facing_b], [a, b], config, stats)),
        };
        Ok(relay)
    }

    /// Where peer A sends: its `--to`.
    pub fn addr_for_a(&self) -> SocketAddr {
        self.addr_for_a
    }

    /// Where peer B sends: its `--to`.
    pub fn addr_for_b(&self) -> SocketAddr {
        self.addr_for_b
    }

    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A seeded SplitMix64: small, fast and good enough to decide a datagram's fate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn delay(&mut self) -> Duration {
        Duration::from_millis(1 + self.next() % 20)
    }
}

/// A datagram held back: release time, arrival order (so equal times stay first-in
/// first-out), the side to send it from, and its bytes.
type Held = (Instant, u64, usize, Vec<u8>);

async fn relay(
    sockets: [UdpSocket; 2],
    peers: [SocketAddr; 2],
    config: RelayConfig,
    stats: Arc<RelayStats>,
) {
    let mut rng = Rng(config.seed);
    let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut bufs = [vec![0u8; 65536], vec![0u8; 65536]];
    loop {
        let next_release = held.peek().map(|Reverse((t, ..))| *t);
        let [buf_a, buf_b] = &mut bufs;
        let (side, received) = tokio::select! {
            r = sockets[0].recv_from(buf_a) => (0, r),
            r = sockets[1].recv_from(buf_b) => (1, r),
            () = sleep_until(next_release.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))),
                if next_release.is_some() => {
                let now = Instant::now();
                while held.peek().is_some_and(|Reverse((t, ..))| *t <= now) {
                    if let Some(Reverse((_, _, out, datagram))) = held.pop() {
                        let _ = sockets[out].send_to(&datagram, peers[out]).await;
                    }
                }
                continue;
            }
        };
        let Ok((len, from)) = received else { continue };
        // Only the peer this socket faces may use it.
        if from != peers[side] {
            continue;
        }
        if rng.chance(config.drop) {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut datagram = bufs[side][..len].to_vec();
        if let Some(tamper) = &config.tamper {
            tamper(&mut datagram);
        }
        let out = 1 - side;
        let copies = if rng.chance(config.duplicate) {
            stats.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        for copy in 0..copies {
            let delayed = copy > 0 || rng.chance(config.reorder);
            if delayed && held.len() < MAX_HELD {
                stats.delayed.fetch_add(1, Ordering::Relaxed);
                order += 1;
                held.push(Reverse((
                    Instant::now() + rng.delay(),
                    order,
                    out,
                    datagram.clone(),
                )));
            } else {
                let _ = sockets[out].send_to(&datagram, peers[out]).await;
            }
            stats.forwarded.fetch_add(1, Ordering::Relaxed);
        }
    }
}
