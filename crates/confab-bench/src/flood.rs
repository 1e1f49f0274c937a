//! The `flood` workload: the paced fanout measured twice in one run, first quiet, then
//! while extra clients flood the same room as fast as the server reads them, to show
//! what one client's flood costs everyone else.
//!
//! Each phase has its own connections and names, set up before anything is sent. In the
//! second phase the flooders connect once the paced clients are ready, flood for a
//! warm-up (so that they have spent any burst the server allows) and go on until the
//! phase ends. They run on a generator thread of their own and keep reading, since a
//! server may cut a client that does not; when the server disconnects one, the last
//! error line it sent is kept as the reason, and by default the flooder connects again
//! under a new name, as a determined flooder would. Receivers count flood lines apart
//! from measured messages, so the report says how much of the flood got through.

use std::collections::BTreeMap;
use std::io;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::time::{sleep, sleep_until};

use crate::client::Conn;
use crate::messaging::{self, Exchange, Pattern, TrafficArgs};
use crate::options::{seconds, Protocol, TargetArgs};
use crate::shard::{self, Coordinator, Note, Plan, Shard, Shards, Signals};
use crate::stats::{human, Report};
use crate::sys;
use crate::wire::{Destination, Marker, Payload, Reply};
use crate::FloodArgs;

/// Flood lines put in one write. Large, so that a flooder costs the generator little
/// per line and fills its socket as soon as the server stops reading.
const FLOOD_BATCH: u64 = 1024;

/// Reads per wake-up before the flooder writes again.
const READS_PER_TURN: usize = 8;

/// Pause before a flooder whose reconnection failed tries again.
const RETRY: Duration = Duration::from_millis(200);

/// Runs the quiet phase, then the flood phase, and reports on both.
pub async fn run(args: FloodArgs) -> anyhow::Result<Report> {
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if args.senders == 0 || args.senders > args.clients {
        bail!(
            "--senders ({}) must be between 1 and --clients ({})",
            args.senders,
            args.clients
        );
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number of messages per second");
    }
    if args.target.protocol == Protocol::Raw {
        bail!("flood needs a server with flood control; raw lines only suit the relay");
    }
    let deadline = Instant::now() + args.target.duration()?;
    let warmup = if args.warmup > 0.0 {
        seconds("--warmup", args.warmup)?
    } else {
        Duration::ZERO
    };
    // Both phases' clients may be open at once while the first ones close.
    sys::ensure_fds(2 * args.clients + args.flooders)?;

    // Each phase and the flooders get names of their own, so that a name of the quiet
    // phase that the server has not yet let go of cannot refuse a client of the next.
    let base = args
        .target
        .nick_prefix
        .clone()
        .unwrap_or_else(|| format!("b{}", &shard::run_id()[..3]));
    let target = |suffix: &str, threads: Option<usize>| TargetArgs {
        nick_prefix: Some(format!("{base}{suffix}")),
        threads: threads.or(args.target.threads),
        ..args.target.clone()
    };
    let traffic = TrafficArgs {
        messages: args.messages,
        rate: Some(args.rate),
        batch: args.batch,
        size: args.size,
        drain_timeout: args.drain_timeout,
        pid: None,
    };
    let exchange = |plan: Plan, flood: Option<Marker>| Exchange {
        plan,
        pattern: Pattern::Fanout {
            senders: args.senders,
            room: args.room.clone(),
        },
        clients: args.clients,
        traffic: traffic.clone(),
        flood,
    };

    let plan = Plan::new(&target("q", None), args.clients).await?;
    let quiet = messaging::run_with(exchange(plan, None), deadline, async { Ok(()) })
        .await
        .context("the quiet phase")?;

    let mut flooders = Flooders {
        context: Arc::new(FloodContext {
            plan: Plan::new(&target("x", Some(1)), args.flooders.max(1)).await?,
            room: args.room.clone(),
            size: args.size,
            reconnect: !args.no_reconnect,
            counts: Mutex::default(),
        }),
        count: args.flooders,
        running: None,
        began: None,
        ended: None,
    };
    let plan = Plan::new(&target("f", None), args.clients).await?;
    let marker = flooders.context.marker();
    let loud = messaging::run_with(
        exchange(plan, Some(marker)),
        deadline,
        flooders.start(deadline, warmup),
    )
    .await;
    flooders.stop().await;
    let loud = loud.context("the flood phase")?;
    Ok(combine(&args, &quiet, &loud, &flooders))
}

/// What the flooders did, counted on their thread and read once they have stopped.
#[derive(Debug, Default)]
struct FloodCount {
    /// Connections that registered and joined: first ones and reconnections.
    connections: u64,
    /// Flood lines the kernel took; many may never have been read by the server.
    written: u64,
    /// Connections the server ended, by the last error line it sent before.
    cuts: BTreeMap<String, u64>,
    /// Connections that failed before joining, and the first reason.
    failures: u64,
    first_failure: Option<String>,
}

/// What every flooder shares.
struct FloodContext {
    plan: Plan,
    room: String,
    size: usize,
    reconnect: bool,
    counts: Mutex<FloodCount>,
}

impl FloodContext {
    fn marker(&self) -> Marker {
        Marker::flood(&self.plan.run_id)
    }

    fn count(&self, f: impl FnOnce(&mut FloodCount)) {
        f(&mut self.counts.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// The flooders of a run, started before the flood phase's sends and stopped after.
struct Flooders {
    context: Arc<FloodContext>,
    count: u64,
    running: Option<(Coordinator, Shards)>,
    /// When flooding began and ended, for rates.
    began: Option<Instant>,
    ended: Option<Instant>,
}

impl Flooders {
    /// Connects every flooder, has each join the room and start flooding, then waits
    /// out the warm-up. Fails if a flooder cannot get in, since the phase would then
    /// measure less than it claims.
    async fn start(&mut self, deadline: Instant, warmup: Duration) -> anyhow::Result<()> {
        self.began = Some(Instant::now());
        if self.count > 0 {
            let (mut coordinator, signals) = shard::signals();
            let context = self.context.clone();
            let count = self.count;
            let shards = shard::spawn(1, 1, move |shard: Shard| async move {
                shard
                    .run_clients(count, |k| flooder(context.clone(), k, signals.clone()))
                    .await;
            })?;
            let (ready, failure) = coordinator.wait_ready(self.count, deadline).await;
            self.running = Some((coordinator, shards));
            if ready < self.count {
                let why = failure.unwrap_or_else(|| "the run's --duration ran out".into());
                bail!(
                    "only {ready} of {} flooders got connected and joined: {why}",
                    self.count
                );
            }
        }
        sleep_until((Instant::now() + warmup).min(deadline).into()).await;
        Ok(())
    }

    /// Stops every flooder and waits for their thread.
    async fn stop(&mut self) {
        if let Some((coordinator, shards)) = self.running.take() {
            coordinator.stop.cancel();
            drop(coordinator.notes);
            shards.join().await;
        }
        if self.began.is_some() && self.ended.is_none() {
            self.ended = Some(Instant::now());
        }
    }

    fn flooding_time(&self) -> Duration {
        match (self.began, self.ended) {
            (Some(began), Some(ended)) => ended - began,
            _ => Duration::ZERO,
        }
    }
}

/// One flooder: connects, joins and floods, again under a new name each time the
/// server cuts it (unless told not to), until stopped.
async fn flooder(context: Arc<FloodContext>, k: u64, signals: Signals) {
    let mut told = false;
    for attempt in 0u64.. {
        let nick = format!("{}{k}r{attempt}", context.plan.prefix);
        let joined = tokio::select! {
            () = signals.stop.cancelled() => return,
            conn = join(&context, k, &nick) => conn,
        };
        let conn = match joined {
            Ok(conn) => conn,
            Err(e) => {
                let why = format!("{nick}: {e:#}");
                context.count(|c| {
                    c.failures += 1;
                    c.first_failure.get_or_insert_with(|| why.clone());
                });
                if !told {
                    signals.note(Note::Failed(why)).await;
                    return;
                }
                tokio::select! {
                    () = signals.stop.cancelled() => return,
                    () = sleep(RETRY) => continue,
                }
            }
        };
        context.count(|c| c.connections += 1);
        if !told {
            told = true;
            signals.note(Note::Ready).await;
        }
        match flood(&context, k, conn, &signals).await {
            None => return,
            Some(reason) => {
                context.count(|c| *c.cuts.entry(reason).or_default() += 1);
                if !context.reconnect {
                    return;
                }
            }
        }
    }
}

/// Connects, registers as `nick` and joins the room.
async fn join(context: &FloodContext, k: u64, nick: &str) -> anyhow::Result<Conn> {
    let plan = &context.plan;
    let protocol = plan.protocol;
    let mut conn = Conn::register(protocol, plan.addr, plan.source(k), nick).await?;
    conn.join(protocol, &context.room).await?;
    Ok(conn)
}

/// Floods the room until stopped (`None`) or until the server ends the connection
/// (`Some`, with the last error line the server sent, which says why, or else how the
/// connection ended).
async fn flood(
    context: &FloodContext,
    k: u64,
    mut conn: Conn,
    signals: &Signals,
) -> Option<String> {
    let protocol = context.plan.protocol;
    let head = protocol.message_head(Destination::Room(&context.room));
    let marker = context.marker();
    let mut said = None;
    let mut seq = 0;
    // Lines in the output buffer that have not been counted as written yet.
    let mut unsent = 0;
    let mut stopped = pin!(signals.stop.cancelled());
    loop {
        match read(&mut conn, protocol, &mut said) {
            Ok(true) => {}
            Ok(false) => return Some(said.unwrap_or_else(|| "the server closed".into())),
            Err(e) => return Some(said.unwrap_or_else(|| e.to_string())),
        }
        if !conn.pending() {
            for _ in 0..FLOOD_BATCH {
                conn.out.extend_from_slice(&head);
                let payload = Payload {
                    sender: k,
                    seq,
                    stamp: 0,
                };
                marker.put(&mut conn.out, payload, context.size);
                conn.out.extend_from_slice(protocol.eol());
                seq += 1;
            }
            unsent = FLOOD_BATCH;
        }
        match conn.try_flush() {
            Ok(true) => {
                context.count(|c| c.written += unsent);
                unsent = 0;
                if signals.stop.is_cancelled() {
                    return None;
                }
                // The socket took everything: write more at once, after letting this
                // thread's other flooders have a turn.
                tokio::task::yield_now().await;
                continue;
            }
            Ok(false) => {}
            Err(e) => {
                // The server closed on us: what it said before closing may still be
                // waiting to be read.
                let _ = read(&mut conn, protocol, &mut said);
                return Some(said.unwrap_or_else(|| e.to_string()));
            }
        }
        tokio::select! {
            biased;
            () = &mut stopped => return None,
            ready = conn.stream.readable() => {
                if let Err(e) = ready {
                    return Some(said.unwrap_or_else(|| e.to_string()));
                }
            }
            ready = conn.stream.writable() => {
                if let Err(e) = ready {
                    return Some(said.unwrap_or_else(|| e.to_string()));
                }
            }
        }
    }
}

/// Reads what has arrived, answering pings and keeping the last error line in `said`.
/// `Ok(false)` means the server closed the connection.
fn read(conn: &mut Conn, protocol: Protocol, said: &mut Option<String>) -> io::Result<bool> {
    conn.read_available(READS_PER_TURN, |scanner, data, out| {
        scanner.feed(data, |line| match protocol.classify(line) {
            Reply::Ping(token) => protocol.pong(token, out),
            Reply::Error(text) => *said = Some(text.to_string()),
            _ => {}
        })
    })
}

/// The flood report: totals over both phases (so that anything lost in either shows),
/// the flood phase's rate and latencies, both phases' figures in the RESULT line, and
/// what the flooders did and were told.
fn combine(args: &FloodArgs, quiet: &Report, loud: &Report, flooders: &Flooders) -> Report {
    let counts = flooders
        .context
        .counts
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let delivered: u64 = loud
        .extra
        .iter()
        .find(|(key, _)| *key == "flood_lines_delivered")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let stray: u64 = [quiet, loud]
        .iter()
        .flat_map(|r| &r.extra)
        .filter(|(key, _)| *key == "stray")
        .filter_map(|(_, value)| value.parse::<u64>().ok())
        .sum();
    // A phase in which nothing arrived has no p99 to compare: its latency is unbounded
    // (flood) or unknown (quiet).
    let ratio = if quiet.received == 0 {
        "nan".to_string()
    } else if loud.received == 0 {
        "inf".to_string()
    } else {
        format!("{:.2}", loud.p99_us / quiet.p99_us)
    };
    let cuts: u64 = counts.cuts.values().sum();
    let mut report = Report {
        workload: "flood",
        expected: quiet.expected + loud.expected,
        received: quiet.received + loud.received,
        lost: quiet.lost + loud.lost,
        duplicates: quiet.duplicates + loud.duplicates,
        disconnects: quiet.disconnects + loud.disconnects,
        errors: quiet.errors + loud.errors,
        extra: Vec::new(),
        notes: Vec::new(),
        first_error: quiet.first_error.clone().or(loud.first_error.clone()),
        ..loud.clone()
    };
    report.notes.push(format!(
        "flood over {} to {}: {} clients in {}, {} of them sending {} messages each at {} \
         messages/s, measured quiet and then with {} flooder(s) sending to the room as fast \
         as the server reads them{}, from {:.1} s before the paced senders started",
        args.target.protocol.name(),
        flooders.context.plan.addr,
        args.clients,
        args.room,
        args.senders,
        args.messages,
        args.rate,
        args.flooders,
        if args.no_reconnect {
            ""
        } else {
            " (connecting again when cut)"
        },
        args.warmup
    ));
    report.notes.push(format!("quiet: {}", summary(quiet)));
    report.notes.push(format!("flood: {}", summary(loud)));
    let secs = flooders.flooding_time().as_secs_f64().max(1e-9);
    // Every flood line the server accepts goes to every paced client.
    let accepted = delivered / args.clients;
    report.notes.push(format!(
        "flooders: wrote {} lines in {secs:.1} s ({}/s); the server passed on about {accepted} \
         ({:.1} per flooder per second), delivered {delivered} times to the paced clients",
        counts.written,
        human(counts.written as f64 / secs),
        accepted as f64 / args.flooders.max(1) as f64 / secs,
    ));
    let reasons: Vec<String> = counts
        .cuts
        .iter()
        .map(|(reason, n)| format!("{n} x {reason:?}"))
        .collect();
    report.notes.push(format!(
        "flooders connected {} time(s) and were disconnected {cuts} time(s){}{}",
        counts.connections,
        if reasons.is_empty() { "" } else { ": " },
        reasons.join(", ")
    ));
    if counts.failures > 0 {
        report.notes.push(format!(
            "flooder connections that failed to join: {} (first: {})",
            counts.failures,
            counts.first_failure.as_deref().unwrap_or("?")
        ));
    }
    report.notes.push(format!(
        "p99 with the flood / p99 quiet = {:.0} / {:.0} us = {ratio}",
        loud.p99_us, quiet.p99_us
    ));
    if loud.received == 0 {
        report
            .notes
            .push("nothing arrived during the flood phase: its latency is unbounded".into());
    } else if loud.lost > 0 {
        report.notes.push(format!(
            "{} messages of the flood phase never arrived; its p99 counts only those that \
             did, so the ratio understates what the flood cost",
            loud.lost
        ));
    }
    report.extra = vec![
        ("pace", args.rate.to_string()),
        ("flooders", args.flooders.to_string()),
        ("quiet_p50_us", format!("{:.0}", quiet.p50_us)),
        ("quiet_p99_us", format!("{:.0}", quiet.p99_us)),
        ("quiet_max_us", format!("{:.0}", quiet.max_us)),
        ("flood_p50_us", format!("{:.0}", loud.p50_us)),
        ("flood_p99_us", format!("{:.0}", loud.p99_us)),
        ("flood_max_us", format!("{:.0}", loud.max_us)),
        ("ratio", ratio),
        ("flood_lines_written", counts.written.to_string()),
        ("flood_lines_delivered", delivered.to_string()),
        ("flooder_connections", counts.connections.to_string()),
        ("flooder_disconnects", cuts.to_string()),
    ];
    if stray > 0 {
        report.extra.push(("stray", stray.to_string()));
    }
    report
}

/// One phase's figures on one line.
fn summary(report: &Report) -> String {
    format!(
        "expected {}, received {}, lost {}, duplicates {}, disconnects {}, errors {}; {} \
         deliveries/s; latency p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        report.expected,
        report.received,
        report.lost,
        report.duplicates,
        report.disconnects,
        report.errors,
        human(report.rate),
        report.p50_us,
        report.p99_us,
        report.max_us
    )
}
