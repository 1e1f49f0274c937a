//! The server's counters and gauges, and their Prometheus text exposition at
//! `GET /metrics` on the HTTP listeners.
//!
//! Everything here is a relaxed atomic bumped where the event happens: no lock on the
//! hot path, no allocation. Message totals are the exception: the core counts them
//! itself (it is the one that knows the recipients, and it is already locked when it
//! routes), and they are read from it when the metrics are scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::frontend::Frontend;

/// Why a client was disconnected, as a metric label. Every front-end's end reasons map
/// onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Quit,
    Closed,
    SendQueue,
    Flood,
    PartialLine,
    RegistrationTimeout,
    Idle,
    PingTimeout,
    Killed,
    Shutdown,
    FrameTooLarge,
    ProtocolError,
    IoError,
}

impl Reason {
    const ALL: [Reason; 13] = [
        Reason::Quit,
        Reason::Closed,
        Reason::SendQueue,
        Reason::Flood,
        Reason::PartialLine,
        Reason::RegistrationTimeout,
        Reason::Idle,
        Reason::PingTimeout,
        Reason::Killed,
        Reason::Shutdown,
        Reason::FrameTooLarge,
        Reason::ProtocolError,
        Reason::IoError,
    ];

    /// The label value, also the `reason` field of the disconnect log line.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reason::Quit => "quit",
            Reason::Closed => "closed",
            Reason::SendQueue => "send_queue",
            Reason::Flood => "flood",
            Reason::PartialLine => "partial_line",
            Reason::RegistrationTimeout => "registration_timeout",
            Reason::Idle => "idle",
            Reason::PingTimeout => "ping_timeout",
            Reason::Killed => "killed",
            Reason::Shutdown => "shutdown",
            Reason::FrameTooLarge => "frame_too_large",
            Reason::ProtocolError => "protocol_error",
            Reason::IoError => "io_error",
        }
    }
}

/// Why a connection was refused at accept, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_connections` reached.
    ServerFull,
    /// `max_connections_per_ip` reached for the address.
    PerIpCount,
    /// `connection_rate_per_ip` exceeded for the address.
    PerIpRate,
}

impl Refused {
    const ALL: [Refused; 3] = [Refused::ServerFull, Refused::PerIpCount, Refused::PerIpRate];

    fn label(self) -> &'static str {
        match self {
            Refused::ServerFull => "server_full",
            Refused::PerIpCount => "per_ip_count",
            Refused::PerIpRate => "per_ip_rate",
        }
    }
}

const FRONTENDS: [Frontend; 6] = [
    Frontend::Line,
    Frontend::Irc,
    Frontend::Http,
    Frontend::LineTls,
    Frontend::IrcTls,
    Frontend::Https,
];

fn frontend_label(frontend: Frontend) -> &'static str {
    match frontend {
        Frontend::Line => "line",
        Frontend::Irc => "irc",
        Frontend::Http => "web",
        Frontend::LineTls => "line_tls",
        Frontend::IrcTls => "irc_tls",
        Frontend::Https => "web_tls",
    }
}

fn frontend_index(frontend: Frontend) -> usize {
    match frontend {
        Frontend::Line => 0,
        Frontend::Irc => 1,
        Frontend::Http => 2,
        Frontend::LineTls => 3,
        Frontend::IrcTls => 4,
        Frontend::Https => 5,
    }
}

/// Upper bounds of the history commit latency buckets, in seconds: from a fast SSD's
/// fsync to a disk in trouble.
const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Every counter and gauge of one server.
#[derive(Default)]
pub(crate) struct Metrics {
    /// Open connections by listener kind (for the web, HTTP connections, WebSockets
    /// included).
    connections: [AtomicI64; 6],
    accepted: [AtomicU64; 6],
    refused: [AtomicU64; 3],
    disconnects: [AtomicU64; 13],
    /// Group commits of the history thread, and the messages they wrote.
    history_batches: AtomicU64,
    history_messages: AtomicU64,
    history_errors: AtomicU64,
    /// Messages delivered while writes fail, waiting in memory to be written.
    history_waiting: AtomicU64,
    /// Messages delivered but never written (writes failed too long, or for good).
    history_lost: AtomicU64,
    /// Commit latency: a count per bucket (not cumulative; the exposition sums them),
    /// the overflow past the last bucket, and the total in nanoseconds.
    commit_buckets: [AtomicU64; 13],
    commit_nanos: AtomicU64,
}

/// What the core knows, read under its lock when the metrics are rendered.
pub(crate) struct CoreSnapshot {
    pub stats: confab_core::Stats,
    pub clients: usize,
    pub users: usize,
    pub rooms: usize,
}

impl Metrics {
    pub(crate) fn opened(&self, frontend: Frontend) {
        let i = frontend_index(frontend);
        self.connections[i].fetch_add(1, Ordering::Relaxed);
        self.accepted[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, frontend: Frontend) {
        self.connections[frontend_index(frontend)].fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, why: Refused) {
        let i = Refused::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.refused[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn disconnected(&self, why: Reason) {
        let i = Reason::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.disconnects[i].fetch_add(1, Ordering::Relaxed);
    }

    /// One history commit of `messages` messages that took `took`.
    pub(crate) fn history_commit(&self, messages: usize, took: Duration, ok: bool) {
        if !ok {
            self.history_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.history_batches.fetch_add(1, Ordering::Relaxed);
        self.history_messages
            .fetch_add(messages as u64, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = COMMIT_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(COMMIT_BUCKETS.len());
        self.commit_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.commit_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// How many delivered messages wait in memory for a failing store.
    pub(crate) fn history_waiting(&self, messages: usize) {
        self.history_waiting
            .store(messages as u64, Ordering::Relaxed);
    }

    /// Delivered messages that history will never have.
    pub(crate) fn history_lost(&self, messages: usize) {
        self.history_lost
            .fetch_add(messages as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4) of every series.
    pub(crate) fn render(&self, core: &CoreSnapshot) -> String {
        let mut out = String::with_capacity(4096);
        self.render_connections(&mut out);
        render_chat(&mut out, core);
        self.render_history(&mut out);
        out
    }

    /// Connections open, accepted and refused, and disconnects by reason.
    fn render_connections(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        header(
            out,
            "confab_connections",
            "gauge",
            "Open connections by front-end (web: HTTP connections, WebSockets included).",
        );
        for f in FRONTENDS {
            let open = self.connections[frontend_index(f)].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "confab_connections{{frontend=\"{}\"}} {}",
                frontend_label(f),
                open.max(0)
            );
        }
        header(
            out,
            "confab_connections_accepted_total",
            "counter",
            "Connections accepted by front-end.",
        );
        for f in FRONTENDS {
            let n = load(&self.accepted[frontend_index(f)]);
            let _ = writeln!(
                out,
                "confab_connections_accepted_total{{frontend=\"{}\"}} {n}",
                frontend_label(f)
            );
        }
        header(
            out,
            "confab_connections_refused_total",
            "counter",
            "Connections refused at accept, by reason.",
        );
        for (i, why) in Refused::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "confab_connections_refused_total{{reason=\"{}\"}} {}",
                why.label(),
                load(&self.refused[i])
            );
        }
        header(
            out,
            "confab_disconnects_total",
            "counter",
            "Clients disconnected, by reason.",
        );
        for (i, why) in Reason::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "confab_disconnects_total{{reason=\"{}\"}} {}",
                why.label(),
                load(&self.disconnects[i])
            );
        }
    }

    /// The store thread: group commits, writes, failures and commit times.
    fn render_history(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        header(
            out,
            "confab_history_batches_total",
            "counter",
            "History group commits.",
        );
        let _ = writeln!(
            out,
            "confab_history_batches_total {}",
            load(&self.history_batches)
        );
        header(
            out,
            "confab_history_messages_written_total",
            "counter",
            "Messages written to history.",
        );
        let _ = writeln!(
            out,
            "confab_history_messages_written_total {}",
            load(&self.history_messages)
        );
        header(
            out,
            "confab_history_write_errors_total",
            "counter",
            "History commits that failed.",
        );
        let _ = writeln!(
            out,
            "confab_history_write_errors_total {}",
            load(&self.history_errors)
        );
        header(
            out,
            "confab_history_unsaved_messages",
            "gauge",
            "Messages delivered while history writes fail, waiting in memory to be written.",
        );
        let _ = writeln!(
            out,
            "confab_history_unsaved_messages {}",
            load(&self.history_waiting)
        );
        header(
            out,
            "confab_history_lost_messages_total",
            "counter",
            "Messages delivered but never written to history.",
        );
        let _ = writeln!(
            out,
            "confab_history_lost_messages_total {}",
            load(&self.history_lost)
        );
        header(
            out,
            "confab_history_commit_seconds",
            "histogram",
            "Time to write and commit one history batch.",
        );
        let mut cumulative = 0;
        for (i, bound) in COMMIT_BUCKETS.iter().enumerate() {
            cumulative += load(&self.commit_buckets[i]);
            let _ = writeln!(
                out,
                "confab_history_commit_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += load(&self.commit_buckets[COMMIT_BUCKETS.len()]);
        let _ = writeln!(
            out,
            "confab_history_commit_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let seconds = load(&self.commit_nanos) as f64 / 1e9;
        let _ = writeln!(out, "confab_history_commit_seconds_sum {seconds}");
        let _ = writeln!(out, "confab_history_commit_seconds_count {cumulative}");
    }
}

/// What the chat core counts: clients, users, rooms and messages.
fn render_chat(out: &mut String, core: &CoreSnapshot) {
    header(
        out,
        "confab_clients",
        "gauge",
        "Clients connected to the chat, registered or not.",
    );
    let _ = writeln!(out, "confab_clients {}", core.clients);
    header(out, "confab_users", "gauge", "Registered users online.");
    let _ = writeln!(out, "confab_users {}", core.users);
    header(out, "confab_rooms", "gauge", "Rooms that exist.");
    let _ = writeln!(out, "confab_rooms {}", core.rooms);
    header(
        out,
        "confab_messages_received_total",
        "counter",
        "Messages accepted from clients.",
    );
    let _ = writeln!(
        out,
        "confab_messages_received_total {}",
        core.stats.messages
    );
    header(
        out,
        "confab_messages_delivered_total",
        "counter",
        "Message copies routed to recipients (one per recipient).",
    );
    let _ = writeln!(
        out,
        "confab_messages_delivered_total {}",
        core.stats.deliveries
    );
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_series_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.opened(Frontend::Irc);
        metrics.opened(Frontend::Irc);
        metrics.closed(Frontend::Irc);
        metrics.disconnected(Reason::Flood);
        metrics.refused(Refused::PerIpRate);
        metrics.history_commit(3, Duration::from_micros(700), true);
        metrics.history_commit(1, Duration::from_secs(5), true);
        metrics.history_commit(1, Duration::from_millis(1), false);
        metrics.history_waiting(7);
        metrics.history_lost(2);
        let text = metrics.render(&CoreSnapshot {
            stats: confab_core::Stats {
                messages: 4,
                deliveries: 9,
            },
            clients: 2,
            users: 1,
            rooms: 1,
        });
        for line in [
            "confab_connections{frontend=\"irc\"} 1",
            "confab_connections_accepted_total{frontend=\"irc\"} 2",
            "confab_connections{frontend=\"web_tls\"} 0",
            "confab_disconnects_total{reason=\"flood\"} 1",
            "confab_connections_refused_total{reason=\"per_ip_rate\"} 1",
            "confab_messages_received_total 4",
            "confab_messages_delivered_total 9",
            "confab_history_batches_total 2",
            "confab_history_messages_written_total 4",
            "confab_history_write_errors_total 1",
            "confab_history_unsaved_messages 7",
            "confab_history_lost_messages_total 2",
            "confab_history_commit_seconds_bucket{le=\"0.0005\"} 0",
            "confab_history_commit_seconds_bucket{le=\"0.001\"} 1",
            "confab_history_commit_seconds_bucket{le=\"2.5\"} 1",
            "confab_history_commit_seconds_bucket{le=\"+Inf\"} 2",
            "confab_history_commit_seconds_count 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every series has its HELP and TYPE.
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
    }
}
