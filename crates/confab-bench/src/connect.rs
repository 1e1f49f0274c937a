//! The `connect` workload: registrations per second. A fixed number of workers each
//! connect, register, quit and wait for the server to close, over and over, until the
//! requested number of registrations is done; latency is from the start of the TCP
//! connect to the end of registration.

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::timeout;

use crate::client::Conn;
use crate::options::{Protocol, TargetArgs};
use crate::shard::{self, Plan, Shard};
use crate::stats::{human, Report};

/// How long a worker waits for the server to close a connection after quitting.
const CLOSE_PATIENCE: Duration = Duration::from_secs(2);

pub async fn run(plan: Plan, registrations: u64, target: &TargetArgs) -> anyhow::Result<Report> {
    let duration = target.duration()?;
    let deadline = Instant::now() + duration;
    let workers = (target.concurrency as u64).clamp(1, registrations.max(1));
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicU64::new(0));
    let (coordinator, signals) = shard::signals();
    let started = Instant::now();
    let shards = shard::spawn(plan.threads, plan.gate, {
        let plan = plan.clone();
        move |shard: Shard| async move {
            let shard = Rc::new(shard);
            shard
                .clone()
                .run_clients(workers, |_| {
                    let (plan, next, shard, stop) = (
                        plan.clone(),
                        next.clone(),
                        shard.clone(),
                        signals.stop.clone(),
                    );
                    async move {
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = worker(&plan, &next, registrations, &shard) => {}
                        }
                    }
                })
                .await;
        }
    })?;
    let joined = shards.join();
    let mut joined = std::pin::pin!(joined);
    let tally = tokio::select! {
        tally = &mut joined => tally,
        () = tokio::time::sleep_until(deadline.into()) => {
            coordinator.stop.cancel();
            joined.await
        }
    };
    let elapsed = started.elapsed();
    let mut report = Report::new(
        "connect",
        plan.protocol,
        registrations,
        tally.registrations,
        &tally,
    );
    report.clients = registrations;
    report.rate_name = "registrations_per_sec";
    report.rate = tally.registrations as f64 / elapsed.as_secs_f64().max(1e-9);
    report.notes.push(format!(
        "connect over {} to {}: {registrations} registrations by {workers} concurrent workers, \
         each connecting, registering, quitting and waiting for the close",
        plan.protocol.name(),
        plan.addr
    ));
    report.notes.push(format!(
        "{} registrations ({} failed) in {:.2} s: {}/s; latency is connect to registered",
        tally.registrations,
        tally.failures,
        elapsed.as_secs_f64(),
        human(report.rate)
    ));
    report.extra.push(("failures", tally.failures.to_string()));
    Ok(report)
}

/// Registers clients until `total` registrations have been claimed by all workers.
async fn worker(plan: &Plan, next: &AtomicU64, total: u64, shard: &Shard) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return;
        }
        let began = plan.now_ns();
        match register_once(plan, i).await {
            Ok(registered) => {
                let mut tally = shard.tally.borrow_mut();
                tally.registrations += 1;
                tally.record(registered - began);
            }
            Err(e) => {
                let mut tally = shard.tally.borrow_mut();
                tally.failures += 1;
                tally.note(&format!("{}: {e:#}", plan.nick(i)));
            }
        }
    }
}

/// One connection's life; returns the clock reading at which registration completed.
async fn register_once(plan: &Plan, i: u64) -> anyhow::Result<u64> {
    let protocol = plan.protocol;
    let mut conn =
        Conn::register(protocol, plan.addr_for(i), plan.source(i), &plan.nick(i)).await?;
    let registered = plan.now_ns();
    if protocol == Protocol::Raw {
        // A raw relay neither understands a quit nor closes: just hang up.
        return Ok(registered);
    }
    protocol.quit(&mut conn.out);
    conn.flush().await?;
    // Waiting for the server's close keeps the server's per-connection teardown inside
    // the measurement, and leaves the closing handshake's TIME_WAIT on the server side.
    let _ = timeout(CLOSE_PATIENCE, async {
        loop {
            match conn.read_available(4, |_, _, _| {}) {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
            if conn.stream.readable().await.is_err() {
                return;
            }
        }
    })
    .await;
    Ok(registered)
}
