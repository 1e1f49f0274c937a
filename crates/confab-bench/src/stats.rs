//! What a run counts, merged from every generator thread, and the report it ends with:
//! a few lines for people and one `RESULT` line for scripts.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::options::Protocol;

/// Counters and the latency histogram of one generator thread, later merged.
pub struct Tally {
    /// Latencies in nanoseconds: of deliveries, or of registrations.
    pub latency: Histogram<u64>,
    /// Messages of this run that arrived in order, each once.
    pub received: u64,
    /// Messages that arrived again, or out of order after a later one.
    pub duplicates: u64,
    /// Payloads that were damaged or came from a client that should not send to us.
    pub stray: u64,
    /// Flooders' lines received (flood), which show how much of a flood got through.
    pub flood_lines: u64,
    /// Error lines from the server (`! ...`, IRC error numerics).
    pub errors: u64,
    /// Connections the server closed while the run still needed them.
    pub disconnects: u64,
    /// Registrations completed (connect and idle).
    pub registrations: u64,
    /// Registrations that failed (connect).
    pub failures: u64,
    /// Clock reading of the last delivery, in nanoseconds from the run's base.
    pub last_delivery: u64,
    /// The first error line or failure, to show people what went wrong.
    pub first_error: Option<String>,
}

/// Highest latency the histogram tracks: one hour, in nanoseconds. Larger values are
/// clamped, which no bounded run reaches.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

impl Default for Tally {
    fn default() -> Self {
        Tally {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid bounds"),
            received: 0,
            duplicates: 0,
            stray: 0,
            flood_lines: 0,
            errors: 0,
            disconnects: 0,
            registrations: 0,
            failures: 0,
            last_delivery: 0,
            first_error: None,
        }
    }
}

impl Tally {
    #[inline]
    pub fn record(&mut self, nanos: u64) {
        self.latency.saturating_record(nanos.max(1));
    }

    /// Counts an error, keeping the first one's text.
    pub fn error(&mut self, text: &str) {
        self.errors += 1;
        self.note(text);
    }

    /// Keeps `text` if it is the first thing that went wrong.
    pub fn note(&mut self, text: &str) {
        if self.first_error.is_none() {
            self.first_error = Some(text.to_string());
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.latency
            .add(&other.latency)
            .expect("histograms share their bounds");
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.stray += other.stray;
        self.flood_lines += other.flood_lines;
        self.errors += other.errors;
        self.disconnects += other.disconnects;
        self.registrations += other.registrations;
        self.failures += other.failures;
        self.last_delivery = self.last_delivery.max(other.last_delivery);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn quantile_us(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.value_at_quantile(q) as f64 / 1e3
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub workload: &'static str,
    pub protocol: Protocol,
    pub clients: u64,
    /// Clients that send (fanout and dm), otherwise 0.
    pub senders: u64,
    /// Messages per sender (fanout and dm), otherwise 0.
    pub messages: u64,
    /// Deliveries (or registrations) that should have happened.
    pub expected: u64,
    /// Deliveries (or registrations) that did.
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub disconnects: u64,
    pub errors: u64,
    /// What `rate` counts per second: `deliveries_per_sec` or `registrations_per_sec`.
    pub rate_name: &'static str,
    pub rate: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// Workload-specific fields for the RESULT line, such as memory per connection.
    pub extra: Vec<(&'static str, String)>,
    /// Lines for people, printed before the summary.
    pub notes: Vec<String>,
    pub first_error: Option<String>,
}

impl Report {
    /// A report with the totals and latencies of `tally` filled in.
    pub fn new(
        workload: &'static str,
        protocol: Protocol,
        expected: u64,
        received: u64,
        tally: &Tally,
    ) -> Report {
        Report {
            workload,
            protocol,
            clients: 0,
            senders: 0,
            messages: 0,
            expected,
            received,
            lost: expected.saturating_sub(received),
            duplicates: tally.duplicates,
            disconnects: tally.disconnects,
            errors: tally.errors,
            rate_name: "deliveries_per_sec",
            rate: 0.0,
            p50_us: tally.quantile_us(0.5),
            p99_us: tally.quantile_us(0.99),
            max_us: if tally.latency.is_empty() {
                0.0
            } else {
                tally.latency.max() as f64 / 1e3
            },
            extra: Vec::new(),
            notes: Vec::new(),
            first_error: tally.first_error.clone(),
        }
    }

    /// Whether everything expected happened exactly once, with no errors.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.disconnects == 0 && self.errors == 0
    }

    /// The report for people, ending with the RESULT line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for note in &self.notes {
            let _ = writeln!(out, "{note}");
        }
        let _ = writeln!(
            out,
            "expected {}, received {}, lost {}, duplicates {}, disconnects {}, errors {}",
            self.expected, self.received, self.lost, self.duplicates, self.disconnects, self.errors
        );
        if let Some(error) = &self.first_error {
            let _ = writeln!(out, "first problem: {error}");
        }
        let unit = self.rate_name.trim_end_matches("_per_sec");
        let _ = writeln!(out, "{} {unit}/s", human(self.rate));
        let _ = writeln!(
            out,
            "latency p50 {:.0} us, p99 {:.0} us, max {:.0} us",
            self.p50_us, self.p99_us, self.max_us
        );
        let _ = writeln!(out, "{}", self.result_line());
        out
    }

    /// One line of `key=value` pairs that scripts can split on spaces and `=`.
    pub fn result_line(&self) -> String {
        let mut line = format!(
            "RESULT workload={} protocol={} clients={} senders={} messages={} expected={} received={} \
             lost={} duplicates={} disconnects={} errors={} {}={:.0} p50_us={:.0} p99_us={:.0} max_us={:.0}",
            self.workload,
            self.protocol.name(),
            self.clients,
            self.senders,
            self.messages,
            self.expected,
            self.received,
            self.lost,
            self.duplicates,
            self.disconnects,
            self.errors,
            self.rate_name,
            self.rate,
            self.p50_us,
            self.p99_us,
            self.max_us,
        );
        for (key, value) in &self.extra {
            let _ = write!(line, " {key}={value}");
        }
        line
    }
}

/// A rate with a thousands or millions suffix, for people.
pub fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_has_every_field() {
        let mut tally = Tally::default();
        for us in 1..=100 {
            tally.record(us * 1000);
        }
        let mut report = Report::new("fanout", Protocol::Line, 10, 9, &tally);
        report.rate = 1234.4;
        report.extra.push(("kib_per_conn", "3.5".into()));
        let line = report.result_line();
        assert!(
            line.starts_with("RESULT workload=fanout protocol=line "),
            "{line}"
        );
        for field in [
            "expected=10",
            "received=9",
            "lost=1",
            "deliveries_per_sec=1234",
            "p50_us=50",
            "p99_us=99",
            "max_us=100",
            "kib_per_conn=3.5",
        ] {
            assert!(line.contains(field), "{field} in {line}");
        }
        assert!(!report.clean());
    }
}
