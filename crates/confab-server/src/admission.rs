//! Admission at accept: the server-wide connection cap, and per-address limits on
//! connections held at once and new connections per window, with the slot a connection
//! holds until it ends.
//!
//! Addresses are counted as IPv4 addresses and IPv6 /64 prefixes (one host usually has a
//! whole /64, so counting single IPv6 addresses would limit nothing). Memory is
//! bounded: entries that hold no connection and whose rate budget is full again are
//! dropped as the table grows, and past a hard cap the rate history of idle addresses is
//! forgotten rather than kept.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::{Limits, CONNECTION_RATE_WINDOW};
use crate::frontend::Frontend;
use crate::metrics::{Metrics, Refused};

/// The table is swept of stale entries when it reaches this size, or twice its size
/// after the last sweep, whichever is larger, so sweeping costs O(1) per accept.
const MIN_SWEEP: usize = 1024;
/// Entries kept for addresses that hold no connection, at most.
const MAX_IDLE_ENTRIES: usize = 65_536;

/// One address's connections and connection-rate budget.
#[derive(Debug)]
struct Entry {
    open: usize,
    /// When the rate budget will be full again (see `flood::FloodControl` for the
    /// same representation).
    full_at: Instant,
}

struct Table {
    entries: HashMap<IpAddr, Entry>,
    sweep_at: usize,
}

/// Decides which connections are served; one per server, in `Shared`.
pub(crate) struct Admission {
    slots: Arc<Semaphore>,
    table: Mutex<Table>,
    max_per_ip: usize,
    /// Time for one connection of the per-address rate to come back; `None` when the
    /// rate is unlimited.
    interval: Option<Duration>,
    /// `connection_rate_per_ip` intervals: how far ahead `full_at` may run.
    depth: Duration,
    metrics: Arc<Metrics>,
}

/// A connection's place on the server, given back when it is dropped.
///
/// It holds one of the server's permits without the `OwnedSemaphorePermit` (which
/// would keep a second pointer to the semaphore in every connection): the permit is
/// forgotten when taken and added back when the slot is dropped.
pub(crate) struct Slot {
    admission: Arc<Admission>,
    /// The counted address, when per-address limits are on.
    key: Option<IpAddr>,
    frontend: Frontend,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.slots.add_permits(1);
        self.admission.metrics.closed(self.frontend);
        if let Some(key) = self.key {
            let mut table = self.admission.lock();
            if let Some(entry) = table.entries.get_mut(&key) {
                entry.open = entry.open.saturating_sub(1);
            }
        }
    }
}

/// Why a connection is refused; each front-end words it for its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    ServerFull,
    TooMany,
    TooFast,
}

/// The address as counted: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

impl Admission {
    pub(crate) fn new(limits: &Limits, metrics: Arc<Metrics>) -> Arc<Admission> {
        let rate = limits.connection_rate_per_ip;
        let interval = (rate > 0).then(|| CONNECTION_RATE_WINDOW / rate);
        Arc::new(Admission {
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            table: Mutex::new(Table {
                entries: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
            max_per_ip: limits.max_connections_per_ip,
            interval,
            depth: interval.unwrap_or_default().saturating_mul(rate),
            metrics,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `ip` on a `frontend` listener, or says why not.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, frontend: Frontend) -> Result<Slot, Refusal> {
        let refused = |why: Refusal| {
            self.metrics.refused(match why {
                Refusal::ServerFull => Refused::ServerFull,
                Refusal::TooMany => Refused::PerIpCount,
                Refusal::TooFast => Refused::PerIpRate,
            });
            Err(why)
        };
        if self.max_per_ip == 0 && self.interval.is_none() {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                return refused(Refusal::ServerFull);
            };
            self.metrics.opened(frontend);
            return Ok(self.slot(permit, None, frontend));
        }
        let key = key_of(ip);
        let now = Instant::now();
        let mut table = self.lock();
        if table.entries.len() >= table.sweep_at {
            self.sweep(&mut table, now);
        }
        if let Some(entry) = table.entries.get(&key) {
            if self.max_per_ip > 0 && entry.open >= self.max_per_ip {
                return refused(Refusal::TooMany);
            }
            if let Some(interval) = self.interval {
                if entry.full_at.saturating_duration_since(now) + interval > self.depth {
                    return refused(Refusal::TooFast);
                }
            }
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return refused(Refusal::ServerFull);
        };
        let entry = table.entries.entry(key).or_insert(Entry {
            open: 0,
            full_at: now,
        });
        entry.open += 1;
        if let Some(interval) = self.interval {
            entry.full_at = entry.full_at.max(now) + interval;
        }
        drop(table);
        self.metrics.opened(frontend);
        Ok(self.slot(permit, Some(key), frontend))
    }

    fn slot(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        key: Option<IpAddr>,
        frontend: Frontend,
    ) -> Slot {
        permit.forget();
        Slot {
            admission: self.clone(),
            key,
            frontend,
        }
    }

    /// Drops entries that remember nothing (no connection, full rate budget); past the
    /// cap, forgets the rate budget of every address that holds no connection.
    fn sweep(&self, table: &mut Table, now: Instant) {
        table.entries.retain(|_, e| e.open > 0 || e.full_at > now);
        let idle = table.entries.values().filter(|e| e.open == 0).count();
        if idle > MAX_IDLE_ENTRIES {
            table.entries.retain(|_, e| e.open > 0);
        }
        table.sweep_at = (table.entries.len() * 2).max(MIN_SWEEP);
    }

    /// Addresses tracked, for tests of the bound.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_per_ip: usize, rate: u32) -> Arc<Admission> {
        let limits = Limits {
            max_connections: 1000,
            max_connections_per_ip: max_per_ip,
            connection_rate_per_ip: rate,
            ..Limits::default()
        };
        Admission::new(&limits, Arc::default())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn counts_and_rates_are_per_address() {
        let admission = admission(2, 3);
        let a = ip("10.0.0.1");
        let first = admission.admit(a, Frontend::Line).unwrap();
        let _second = admission.admit(a, Frontend::Irc).unwrap();
        assert_eq!(
            admission.admit(a, Frontend::Line).err(),
            Some(Refusal::TooMany)
        );
        // Another address is not affected.
        let _other = admission.admit(ip("10.0.0.2"), Frontend::Line).unwrap();
        drop(first);
        // A slot is free again, and the third connection of the window is allowed...
        let third = admission.admit(a, Frontend::Line).unwrap();
        drop(third);
        // ...but not a fourth within the window.
        assert_eq!(
            admission.admit(a, Frontend::Line).err(),
            Some(Refusal::TooFast)
        );
        tokio::time::advance(CONNECTION_RATE_WINDOW / 3).await;
        assert!(admission.admit(a, Frontend::Line).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_is_counted_by_its_64() {
        let admission = admission(1, 0);
        let _held = admission.admit(ip("2001:db8::1"), Frontend::Line).unwrap();
        assert_eq!(
            admission.admit(ip("2001:db8::2"), Frontend::Line).err(),
            Some(Refusal::TooMany)
        );
        assert!(admission
            .admit(ip("2001:db8:0:1::1"), Frontend::Line)
            .is_ok());
        assert_eq!(key_of(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[tokio::test(start_paused = true)]
    async fn memory_stays_bounded() {
        let admission = admission(5, 20);
        for i in 0..10_000u32 {
            let addr = IpAddr::V4(i.into());
            drop(admission.admit(addr, Frontend::Line).unwrap());
        }
        // Entries remember their rate budget for the window, then go at the next sweep.
        assert!(admission.tracked() <= 2 * 10_000);
        tokio::time::advance(CONNECTION_RATE_WINDOW).await;
        for i in 0..7000u32 {
            drop(admission.admit(IpAddr::V4((1_000_000 + i).into()), Frontend::Line));
        }
        assert!(admission.tracked() < 10_000, "{}", admission.tracked());
    }

    #[test]
    fn the_server_cap_still_applies() {
        let limits = Limits {
            max_connections: 1,
            ..Limits::default()
        };
        let admission = Admission::new(&limits, Arc::default());
        let _held = admission.admit(ip("10.0.0.1"), Frontend::Line).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.2"), Frontend::Line).err(),
            Some(Refusal::ServerFull)
        );
    }
}
