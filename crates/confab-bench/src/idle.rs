//! The `idle` workload: hold many registered connections and, given the server's pid,
//! measure what each costs it in resident memory.
//!
//! After everyone has registered (and joined, for IRC; the line protocol joins its
//! default room by itself), each client pings the server and waits for the answer:
//! since a server answers in order, every pong means that client has been sent all it
//! was due, so the server's queues are empty when memory is read.

use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::time::{sleep, timeout_at};

use crate::client::Conn;
use crate::options::{Protocol, TargetArgs};
use crate::shard::{self, Note, Plan, Shard, Signals};
use crate::stats::{human, Report};
use crate::sys;
use crate::wire::Reply;

/// The workload's own options, decided.
pub struct Idle {
    pub plan: Plan,
    pub clients: u64,
    pub room: String,
    pub pid: Option<u32>,
    pub hold: Duration,
}

/// Time for the server to return freed memory and finish its bookkeeping before the
/// second reading.
const SETTLE: Duration = Duration::from_secs(1);

pub async fn run(idle: Idle, target: &TargetArgs) -> anyhow::Result<Report> {
    let duration = target.duration()?;
    let deadline = Instant::now() + duration;
    let rss_before = match idle.pid {
        Some(pid) => {
            Some(sys::rss_kib(pid).with_context(|| format!("reading the memory of pid {pid}"))?)
        }
        None => None,
    };
    let idle = Arc::new(idle);
    let (mut coordinator, signals) = shard::signals();
    let shards = shard::spawn(idle.plan.threads, idle.plan.gate, {
        let idle = idle.clone();
        move |shard: Shard| async move {
            let shard = Rc::new(shard);
            shard
                .clone()
                .run_clients(idle.clients, |i| {
                    client(idle.clone(), i, signals.clone(), shard.clone())
                })
                .await;
        }
    })?;

    let started = Instant::now();
    let (mut ready, mut settled) = (0, 0);
    let mut failure = None;
    while settled < idle.clients {
        match timeout_at(deadline.into(), coordinator.notes.recv()).await {
            Ok(Some(Note::Ready)) => {
                ready += 1;
                if ready == idle.clients {
                    let _ = coordinator.start.send(true);
                }
            }
            Ok(Some(Note::Settled)) => settled += 1,
            Ok(Some(Note::Failed(why))) => {
                failure = Some(why);
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let setup = started.elapsed();
    if settled < idle.clients {
        coordinator.stop.cancel();
        drop(coordinator.notes);
        let tally = shards.join().await;
        let why = failure
            .or(tally.first_error)
            .unwrap_or_else(|| format!("the run's {duration:?} ran out"));
        bail!(
            "only {ready} of {} clients got connected and registered: {why}",
            idle.clients
        );
    }
    let rss_after = match idle.pid {
        Some(pid) => {
            sleep(SETTLE).await;
            Some(sys::rss_kib(pid).with_context(|| format!("reading the memory of pid {pid}"))?)
        }
        None => None,
    };
    let hold_until = (Instant::now() + idle.hold).min(deadline);
    tokio::time::sleep_until(hold_until.into()).await;
    coordinator.stop.cancel();
    drop(coordinator.notes);
    let tally = shards.join().await;

    let plan = &idle.plan;
    let mut report = Report::new(
        "idle",
        plan.protocol,
        idle.clients,
        tally.registrations,
        &tally,
    );
    report.clients = idle.clients;
    report.rate_name = "registrations_per_sec";
    report.rate = idle.clients as f64 / setup.as_secs_f64().max(1e-9);
    report.notes.push(format!(
        "idle over {} to {}: {} registered connections{}",
        plan.protocol.name(),
        plan.addr,
        idle.clients,
        if plan.sources.is_empty() {
            String::new()
        } else {
            format!(" from {} source addresses", plan.sources.len())
        }
    ));
    report.notes.push(format!(
        "all connected, registered and answering pings after {:.2} s ({} registrations/s)",
        setup.as_secs_f64(),
        human(report.rate)
    ));
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let per_conn = (after as f64 - before as f64) / idle.clients.max(1) as f64;
        report.notes.push(format!(
            "server resident memory {before} KiB before, {after} KiB after: {per_conn:.1} KiB per connection"
        ));
        report.extra.push(("rss_before_kib", before.to_string()));
        report.extra.push(("rss_after_kib", after.to_string()));
        report
            .extra
            .push(("kib_per_conn", format!("{per_conn:.1}")));
    } else if idle.pid.is_none() {
        report
            .notes
            .push("no --pid given, so the server's memory was not measured".into());
    }
    Ok(report)
}

async fn client(idle: Arc<Idle>, i: u64, signals: Signals, shard: Rc<Shard>) {
    let set_up = set_up(&idle, i, &shard);
    let Some(conn) = signals.set_up(|| idle.plan.nick(i), set_up).await else {
        return;
    };
    shard.tally.borrow_mut().registrations += 1;
    signals.note(Note::Ready).await;
    if let Err(why) = hold(&idle, conn, &signals, &shard).await {
        if !signals.stop.is_cancelled() {
            let mut tally = shard.tally.borrow_mut();
            tally.disconnects += 1;
            tally.note(&format!("{} was disconnected: {why}", idle.plan.nick(i)));
        }
    }
}

async fn set_up(idle: &Idle, i: u64, shard: &Shard) -> anyhow::Result<Conn> {
    let plan = &idle.plan;
    let protocol = plan.protocol;
    let _permit = shard.gate.acquire().await?;
    let began = plan.now_ns();
    let mut conn =
        Conn::register(protocol, plan.addr_for(i), plan.source(i), &plan.nick(i)).await?;
    shard.tally.borrow_mut().record(plan.now_ns() - began);
    // An empty room means IRC clients join none, to hold connections without the
    // join storm of one big room.
    if protocol == Protocol::Irc && !idle.room.is_empty() {
        conn.join(protocol, &idle.room).await?;
    }
    Ok(conn)
}

/// Reads and discards what the server sends (others' joins, pings), pings once after
/// the start, and keeps the connection until stopped.
async fn hold(idle: &Idle, mut conn: Conn, signals: &Signals, shard: &Shard) -> Result<(), String> {
    let protocol = idle.plan.protocol;
    let mut start = signals.start.clone();
    let mut stopped = pin!(signals.stop.cancelled());
    let (mut pinged, mut ponged, mut settled) = (false, false, false);
    loop {
        let open = conn.read_available(4, |scanner, data, out| {
            scanner.feed(data, |line| match protocol.classify(line) {
                Reply::Ping(token) => protocol.pong(token, out),
                Reply::Pong => ponged = true,
                Reply::Error(text) => shard.tally.borrow_mut().error(text),
                _ => {}
            })
        });
        match open {
            Ok(true) => {}
            Ok(false) => return Err("the server closed the connection".into()),
            Err(e) => return Err(e.to_string()),
        }
        if !pinged && *start.borrow() {
            pinged = true;
            protocol.ping(&mut conn.out);
            // A raw relay does not answer pings; being connected is all there is.
            ponged |= protocol == Protocol::Raw;
        }
        if ponged && !settled {
            settled = true;
            signals.note(Note::Settled).await;
        }
        if let Err(e) = conn.try_flush() {
            return Err(e.to_string());
        }
        tokio::select! {
            biased;
            () = &mut stopped => return Ok(()),
            ready = conn.stream.readable() => ready.map_err(|e| e.to_string())?,
            ready = conn.stream.writable(), if conn.pending() => ready.map_err(|e| e.to_string())?,
            _ = start.changed(), if !pinged => {}
        }
    }
}
