//! The message workloads, `fanout` and `dm`: every client connects and gets ready, then
//! the senders send while every client counts what it receives, until everything
//! expected has arrived or the drain timeout has passed.
//!
//! Each client is one task that reads, sends and waits in a single loop, so that a
//! sender keeps draining its socket while it floods (the server drops clients that do
//! not read) and a paced sender never misses its schedule because of a reader.

use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::time::{sleep_until, timeout_at};

use crate::client::Conn;
use crate::options::{seconds, Protocol, TargetArgs};
use crate::shard::{self, Note, Plan, Shard, Signals};
use crate::stats::{human, Report, Tally};
use crate::wire::{Destination, Marker, Payload, Reply};

/// How long clients split over several nodes wait, once all are ready, before sending.
const CLUSTER_SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// Options of the traffic itself, shared by `fanout` and `dm`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrafficArgs {
    /// Messages each sender sends.
    #[arg(long, short = 'm', value_name = "M", default_value_t = 100)]
    pub messages: u64,
    /// Messages per second per sender, on a fixed schedule, so that latency counts from
    /// when a message was due and a stalled server cannot hide its stall; without it
    /// senders send as fast as the server reads.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Most lines in one write.
    #[arg(long, value_name = "K", default_value_t = 64)]
    pub batch: usize,
    /// Pad message texts to this many bytes (they carry at least marker, sender,
    /// sequence and timestamp: about 30 bytes).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub size: usize,
    /// Seconds to wait, after the last message was sent, for the rest to arrive.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub drain_timeout: f64,
    /// The server's process id (Linux): the report then gives the CPU time the server
    /// spent while the messages went through, per delivery, which says whether the
    /// server or this generator was the limit.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
}

/// Who sends to whom.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Clients `0..senders` send to the room; everyone is in it.
    Fanout { senders: u64, room: String },
    /// Clients `2p` and `2p + 1` send to each other.
    Dm,
}

/// A message workload, fully decided.
pub struct Exchange {
    pub plan: Plan,
    pub pattern: Pattern,
    pub clients: u64,
    pub traffic: TrafficArgs,
    /// The marker of flooders' lines, which receivers count (flood) rather than ignore.
    pub flood: Option<Marker>,
}

/// Lateness of a paced send that is blamed on the generator's timer (whose resolution
/// is a millisecond) rather than on the server.
const TIMER_SLACK_NS: u64 = 1_000_000;

/// Reads per wake-up before other clients get a turn.
const READS_PER_TURN: usize = 8;

impl Exchange {
    fn is_sender(&self, i: u64) -> bool {
        match &self.pattern {
            Pattern::Fanout { senders, .. } => i < *senders,
            Pattern::Dm => true,
        }
    }

    fn senders(&self) -> u64 {
        match &self.pattern {
            Pattern::Fanout { senders, .. } => *senders,
            Pattern::Dm => self.clients,
        }
    }

    /// Messages client `i` should receive. The server does not echo a sender's own
    /// messages.
    fn expected_by(&self, i: u64) -> u64 {
        match &self.pattern {
            Pattern::Fanout { senders, .. } => {
                (senders - u64::from(i < *senders)) * self.traffic.messages
            }
            Pattern::Dm => self.traffic.messages,
        }
    }

    fn expected(&self) -> u64 {
        (0..self.clients).map(|i| self.expected_by(i)).sum()
    }

    /// The receiver's counter slot for messages from `sender`, if `me` should get them.
    #[inline]
    fn slot(&self, me: u64, sender: u64) -> Option<usize> {
        match &self.pattern {
            Pattern::Fanout { senders, .. } => {
                (sender < *senders && sender != me).then_some(sender as usize)
            }
            Pattern::Dm => (sender == me ^ 1).then_some(0),
        }
    }

    fn slots(&self) -> usize {
        match &self.pattern {
            Pattern::Fanout { senders, .. } => *senders as usize,
            Pattern::Dm => 1,
        }
    }
}

/// Runs a message workload and reports on it.
pub async fn run(exchange: Exchange, target: &TargetArgs) -> anyhow::Result<Report> {
    let deadline = Instant::now() + target.duration()?;
    run_with(exchange, deadline, async { Ok(()) }).await
}

/// Runs a message workload that must end by `deadline`, awaiting `before_start` once
/// every client is ready and before any sends, so that a caller can change the
/// conditions (start flooders) between set-up and measurement. If it fails, the run
/// stops with its error.
pub async fn run_with(
    exchange: Exchange,
    deadline: Instant,
    before_start: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Report> {
    let drain = seconds("--drain-timeout", exchange.traffic.drain_timeout)?;
    if let Some(rate) = exchange.traffic.rate {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--rate must be a positive number of messages per second");
        }
    }
    if exchange.plan.protocol == Protocol::Raw && matches!(exchange.pattern, Pattern::Dm) {
        bail!(
            "dm needs a server that routes messages; raw lines only suit fanout, connect and idle"
        );
    }
    let exchange = Arc::new(exchange);
    let plan = &exchange.plan;
    let (mut coordinator, signals) = shard::signals();
    let shards = shard::spawn(plan.threads, plan.gate, {
        let exchange = exchange.clone();
        move |shard: Shard| async move {
            let shard = Rc::new(shard);
            shard
                .clone()
                .run_clients(exchange.clients, |i| {
                    client(exchange.clone(), i, signals.clone(), shard.clone())
                })
                .await;
        }
    })?;

    let setup_started = Instant::now();
    let (ready, failure) = coordinator.wait_ready(exchange.clients, deadline).await;
    if ready < exchange.clients {
        coordinator.stop.cancel();
        drop(coordinator.notes);
        let tally = shards.join().await;
        let why = failure
            .or(tally.first_error)
            .unwrap_or_else(|| "the run's --duration ran out".to_string());
        bail!(
            "only {ready} of {} clients got connected and ready: {why}",
            exchange.clients
        );
    }
    let setup = setup_started.elapsed();
    if let Err(e) = before_start.await {
        coordinator.stop.cancel();
        drop(coordinator.notes);
        shards.join().await;
        return Err(e);
    }

    // Nodes of a cluster learn of each other's users over the bus, a moment after each
    // registration; a user who registered a millisecond ago on another node is not yet
    // known here. The run measures the cluster settled, not that moment.
    if plan.addrs.len() > 1 {
        tokio::time::sleep(CLUSTER_SETTLE).await;
    }
    let cpu_before = server_cpu(exchange.traffic.pid)?;
    let send_start = plan.now_ns();
    let _ = coordinator.start.send(true);
    let senders = (0..exchange.clients)
        .filter(|&i| exchange.is_sender(i))
        .count();
    let receivers = (0..exchange.clients)
        .filter(|&i| exchange.expected_by(i) > 0)
        .count();
    let (mut sent, mut complete) = (0, 0);
    let mut sent_at = None;
    let mut timed_out = false;
    while sent < senders || complete < receivers {
        let wake = sent_at.map_or(deadline, |at: Instant| (at + drain).min(deadline));
        match timeout_at(wake.into(), coordinator.notes.recv()).await {
            Ok(Some(Note::SentAll)) => {
                sent += 1;
                if sent == senders {
                    sent_at = Some(Instant::now());
                }
            }
            Ok(Some(Note::ReceivedAll)) => complete += 1,
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                timed_out = true;
                break;
            }
        }
    }
    let send_phase =
        sent_at.map(|at| at.duration_since(plan.base) - Duration::from_nanos(send_start));
    // Read before the clients leave: their quits are the server's work too, but not
    // the traffic's.
    let server_cpu = match (cpu_before, server_cpu(exchange.traffic.pid)?) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    coordinator.stop.cancel();
    drop(coordinator.notes);
    let tally = shards.join().await;
    let mut report = report(&exchange, &tally, setup, send_start, send_phase, timed_out);
    if let Some(cpu_ns) = server_cpu {
        add_server_cpu(&mut report, &tally, send_start, cpu_ns);
    }
    Ok(report)
}

/// The CPU time (ns) process `pid` has used so far, if a pid was given.
fn server_cpu(pid: Option<u32>) -> anyhow::Result<Option<u64>> {
    pid.map(|pid| {
        crate::sys::cpu_ns(pid).with_context(|| format!("reading the CPU time of pid {pid}"))
    })
    .transpose()
}

/// Puts the server's CPU time for the traffic in `report`: in all, per delivery, and
/// as a share of the delivery phase's wall time. A server busy well under 100% of
/// the phase was not what limited the rate; the generator (or the network) was.
fn add_server_cpu(report: &mut Report, tally: &Tally, send_start: u64, cpu_ns: u64) {
    let delivering = tally.last_delivery.saturating_sub(send_start);
    let per_delivery = cpu_ns as f64 / tally.received.max(1) as f64;
    let busy = 100.0 * cpu_ns as f64 / delivering.max(1) as f64;
    report.notes.push(format!(
        "the server used {:.1} ms of CPU for the traffic: {per_delivery:.1} ns per delivery, \
         busy {busy:.0}% of the delivery phase",
        cpu_ns as f64 / 1e6
    ));
    report
        .extra
        .push(("server_cpu_ms", format!("{:.1}", cpu_ns as f64 / 1e6)));
    report
        .extra
        .push(("server_ns_per_delivery", format!("{per_delivery:.1}")));
    report.extra.push(("server_busy_pct", format!("{busy:.0}")));
}

fn report(
    exchange: &Exchange,
    tally: &Tally,
    setup: Duration,
    send_start: u64,
    send_phase: Option<Duration>,
    timed_out: bool,
) -> Report {
    let plan = &exchange.plan;
    let traffic = &exchange.traffic;
    let (workload, shape) = match &exchange.pattern {
        Pattern::Fanout { senders, room } => (
            "fanout",
            format!(
                "{} clients in {room}, {senders} of them sending",
                exchange.clients
            ),
        ),
        Pattern::Dm => ("dm", format!("{} pairs of clients", exchange.clients / 2)),
    };
    let mut report = Report::new(
        workload,
        plan.protocol,
        exchange.expected(),
        tally.received,
        tally,
    );
    report.clients = exchange.clients;
    report.senders = exchange.senders();
    report.messages = traffic.messages;
    let pace = match traffic.rate {
        Some(rate) => format!("{rate} messages/s each"),
        None => "as fast as the server reads".into(),
    };
    report.notes.push(format!(
        "{workload} over {} to {}: {shape}, {} messages each, {pace}, up to {} per write",
        plan.protocol.name(),
        plan.addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        traffic.messages,
        traffic.batch
    ));
    report.notes.push(format!(
        "set-up: {} clients connected, registered and joined in {:.2} s ({}/s)",
        exchange.clients,
        setup.as_secs_f64(),
        human(exchange.clients as f64 / setup.as_secs_f64().max(1e-9))
    ));
    let delivering = Duration::from_nanos(tally.last_delivery.saturating_sub(send_start));
    if tally.received > 0 {
        report.rate = tally.received as f64 / delivering.as_secs_f64().max(1e-9);
    }
    match send_phase {
        Some(sent) => report.notes.push(format!(
            "sending took {:.3} s; the last delivery came {:.3} s after the start",
            sent.as_secs_f64(),
            delivering.as_secs_f64()
        )),
        None => report
            .notes
            .push("not every sender finished within the run's duration".into()),
    }
    if timed_out && report.received < report.expected {
        report.notes.push(
            "stopped waiting for deliveries: the drain timeout or the run's duration ran out"
                .into(),
        );
    }
    if let Some(rate) = traffic.rate {
        report.extra.push(("pace", rate.to_string()));
    }
    if tally.stray > 0 {
        report.extra.push(("stray", tally.stray.to_string()));
    }
    if exchange.flood.is_some() {
        report
            .extra
            .push(("flood_lines_delivered", tally.flood_lines.to_string()));
    }
    report
}

/// A sender's schedule and progress.
struct Sending {
    /// Protocol bytes before each message's text.
    head: Vec<u8>,
    next: u64,
    total: u64,
    /// Paced: nanoseconds between messages, and when (on the clock) message 0 is due.
    interval: Option<f64>,
    first_due: u64,
}

impl Sending {
    fn due(&self, seq: u64) -> u64 {
        match self.interval {
            Some(interval) => self.first_due + (seq as f64 * interval) as u64,
            None => 0,
        }
    }

    fn done(&self) -> bool {
        self.next >= self.total
    }

    /// Appends the messages that are due at `now`, at most `batch` of them.
    fn fill(&mut self, out: &mut Vec<u8>, now: u64, me: u64, exchange: &Exchange) {
        let eol = exchange.plan.protocol.eol();
        let end = self
            .total
            .min(self.next + exchange.traffic.batch.max(1) as u64);
        while self.next < end {
            let stamp = match self.interval {
                None => now,
                Some(_) => {
                    let due = self.due(self.next);
                    if due > now {
                        break;
                    }
                    // Lateness up to the timer's resolution is the generator's and is not
                    // counted; beyond it, the server held us up and it counts.
                    now.min(due + TIMER_SLACK_NS)
                }
            };
            out.extend_from_slice(&self.head);
            let payload = Payload {
                sender: me,
                seq: self.next,
                stamp,
            };
            exchange
                .plan
                .marker
                .put(out, payload, exchange.traffic.size);
            out.extend_from_slice(eol);
            self.next += 1;
        }
    }
}

/// A receiver's progress: the next sequence number expected from each sender.
struct Receiving {
    next: Vec<u64>,
    /// Where the marker was in the last line (`Marker::find_near`).
    marker_at: usize,
    received: u64,
    expected: u64,
}

impl Receiving {
    /// Counts one line.
    #[inline]
    fn on_line(
        &mut self,
        line: &[u8],
        now: u64,
        me: u64,
        exchange: &Exchange,
        tally: &mut Tally,
        out: &mut Vec<u8>,
    ) {
        let protocol = exchange.plan.protocol;
        match exchange.plan.marker.find_near(line, &mut self.marker_at) {
            Some(Some(payload)) => match exchange.slot(me, payload.sender) {
                Some(slot) => {
                    let next = &mut self.next[slot];
                    if payload.seq >= *next {
                        *next = payload.seq + 1;
                        self.received += 1;
                        tally.received += 1;
                        tally.record(now.saturating_sub(payload.stamp));
                        tally.last_delivery = tally.last_delivery.max(now);
                    } else {
                        tally.duplicates += 1;
                    }
                }
                None => tally.stray += 1,
            },
            Some(None) => tally.stray += 1,
            None if exchange
                .flood
                .as_ref()
                .is_some_and(|f| f.find(line).is_some()) =>
            {
                tally.flood_lines += 1;
            }
            None => match protocol.classify(line) {
                Reply::Ping(token) => protocol.pong(token, out),
                Reply::Error(text) => tally.error(text),
                _ => {}
            },
        }
    }
}

/// Connects, registers and joins as client `i`.
async fn set_up(exchange: &Exchange, i: u64, shard: &Shard) -> anyhow::Result<Conn> {
    let plan = &exchange.plan;
    let protocol = plan.protocol;
    let _permit = shard.gate.acquire().await?;
    let mut conn =
        Conn::register(protocol, plan.addr_for(i), plan.source(i), &plan.nick(i)).await?;
    if let (Pattern::Fanout { room, .. }, true) = (&exchange.pattern, protocol.has_rooms()) {
        conn.join(protocol, room).await?;
    }
    Ok(conn)
}

async fn client(exchange: Arc<Exchange>, i: u64, signals: Signals, shard: Rc<Shard>) {
    let set_up = set_up(&exchange, i, &shard);
    let Some(conn) = signals.set_up(|| exchange.plan.nick(i), set_up).await else {
        return;
    };
    signals.note(Note::Ready).await;
    exchange_messages(&exchange, i, conn, &signals, &shard).await;
}

/// The send phase of one client, until stopped or until the connection ends early,
/// which counts as a disconnect.
async fn exchange_messages(
    exchange: &Exchange,
    me: u64,
    mut conn: Conn,
    signals: &Signals,
    shard: &Shard,
) {
    let plan = &exchange.plan;
    let mut start = signals.start.clone();
    let mut started = false;
    let mut sending = exchange.is_sender(me).then(|| {
        let to = match &exchange.pattern {
            Pattern::Fanout { room, .. } => plan.protocol.message_head(Destination::Room(room)),
            Pattern::Dm => plan
                .protocol
                .message_head(Destination::User(&plan.nick(me ^ 1))),
        };
        Sending {
            head: to,
            next: 0,
            total: exchange.traffic.messages,
            interval: exchange.traffic.rate.map(|rate| 1e9 / rate),
            first_due: 0,
        }
    });
    let mut receiving = Receiving {
        next: vec![0; exchange.slots()],
        marker_at: 0,
        received: 0,
        expected: exchange.expected_by(me),
    };
    // Whether the coordinator has been told that we finished sending and receiving.
    let mut told_sent = sending.is_none();
    let mut told_received = receiving.expected == 0;
    let mut stopped = pin!(signals.stop.cancelled());

    let result = loop {
        let open = conn.read_available(READS_PER_TURN, |scanner, data, out| {
            let now = plan.now_ns();
            let mut tally = shard.tally.borrow_mut();
            scanner.feed(data, |line| {
                receiving.on_line(line, now, me, exchange, &mut tally, out)
            });
        });
        match open {
            Ok(true) => {}
            Ok(false) => break Err("the server closed the connection".to_string()),
            Err(e) => break Err(e.to_string()),
        }
        if !told_received && receiving.received >= receiving.expected {
            told_received = true;
            signals.note(Note::ReceivedAll).await;
        }
        if !started && *start.borrow() {
            started = true;
            if let Some(sending) = &mut sending {
                // Senders start spread over one interval rather than all at once.
                let spread = sending.interval.unwrap_or(0.0) * (me % 64) as f64 / 64.0;
                sending.first_due = plan.now_ns() + spread as u64;
            }
        }
        let mut due_now = false;
        if let (true, Some(sending)) = (started, &mut sending) {
            if !conn.pending() && !sending.done() {
                sending.fill(&mut conn.out, plan.now_ns(), me, exchange);
            }
            if let Err(e) = conn.try_flush() {
                break Err(e.to_string());
            }
            if !told_sent && sending.done() && !conn.pending() {
                told_sent = true;
                signals.note(Note::SentAll).await;
            }
            due_now =
                !conn.pending() && !sending.done() && sending.due(sending.next) <= plan.now_ns();
        } else if conn.pending() {
            if let Err(e) = conn.try_flush() {
                break Err(e.to_string());
            }
        }
        if signals.stop.is_cancelled() {
            break Ok(());
        }
        if due_now {
            // More is due right away: let the other clients of this thread have a turn.
            tokio::task::yield_now().await;
            continue;
        }
        let wake = match &sending {
            Some(s) if started && !s.done() && !conn.pending() => Some(plan.instant(s.due(s.next))),
            _ => None,
        };
        tokio::select! {
            biased;
            () = &mut stopped => break Ok(()),
            ready = conn.stream.readable() => {
                if let Err(e) = ready {
                    break Err(e.to_string());
                }
            }
            ready = conn.stream.writable(), if conn.pending() => {
                if let Err(e) = ready {
                    break Err(e.to_string());
                }
            }
            _ = start.changed(), if !started => {}
            () = sleep_until(wake.unwrap_or_else(|| plan.instant(0))), if wake.is_some() => {}
        }
    };
    // The disconnect is counted before the coordinator hears that this client is done:
    // once every client is done it stops the run, and a disconnect noticed after the
    // stop would not count.
    if let Err(why) = result {
        if !signals.stop.is_cancelled() {
            let mut tally = shard.tally.borrow_mut();
            tally.disconnects += 1;
            tally.note(&format!("{} was disconnected: {why}", plan.nick(me)));
        }
    }
    // Whatever happened, this client will neither send nor receive any more.
    if !told_sent {
        signals.note(Note::SentAll).await;
    }
    if !told_received {
        signals.note(Note::ReceivedAll).await;
    }
}
