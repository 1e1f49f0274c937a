//! Generator threads and what a run's clients share.
//!
//! Each thread runs a single-threaded event loop with its share of the clients, and
//! keeps its own tally: nothing on a client's hot path is shared across threads, so no
//! atomics and no cross-thread wake-ups. The coordinator (the caller's task) talks to
//! the clients only through a few signals: notes from clients as they reach each phase,
//! a start flag, and a stop token.

use std::cell::RefCell;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::LocalSet;
use tokio_util::sync::CancellationToken;

use crate::options::{Protocol, TargetArgs};
use crate::stats::Tally;
use crate::wire::Marker;

/// What every client of a run needs to know, shared read-only across threads.
pub struct Plan {
    pub protocol: Protocol,
    /// The first server address, for reports.
    pub addr: SocketAddr,
    /// Every server address; client `i` uses `addrs[i % addrs.len()]`.
    pub addrs: Vec<SocketAddr>,
    /// Source addresses to spread connections over; empty lets the system choose.
    pub sources: Vec<IpAddr>,
    /// Client `i` is called `{prefix}{i}`.
    pub prefix: String,
    /// Six characters unique to the run, behind its payload marker.
    pub run_id: String,
    /// Recognises this run's messages.
    pub marker: Marker,
    /// The shared clock base: message timestamps are nanoseconds since this instant.
    pub base: Instant,
    /// Connections each thread sets up at once.
    pub gate: usize,
    pub threads: usize,
}

impl Plan {
    /// A plan for `connections` simultaneous connections described by `target`.
    pub async fn new(target: &TargetArgs, connections: u64) -> anyhow::Result<Plan> {
        let addrs = target.resolve_all().await?;
        let addr = addrs[0];
        let run_id = run_id();
        let threads = target.threads().min(connections.max(1) as usize);
        Ok(Plan {
            protocol: target.protocol,
            addr,
            addrs,
            sources: target.sources(addr, connections),
            prefix: target
                .nick_prefix
                .clone()
                .unwrap_or_else(|| format!("b{}", &run_id[..3])),
            marker: Marker::new(&run_id),
            run_id,
            base: Instant::now(),
            gate: target.concurrency.div_ceil(threads).max(1),
            threads,
        })
    }

    /// The server client `i` connects to.
    pub fn addr_for(&self, i: u64) -> SocketAddr {
        self.addrs[i as usize % self.addrs.len()]
    }

    pub fn nick(&self, i: u64) -> String {
        format!("{}{i}", self.prefix)
    }

    pub fn source(&self, i: u64) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[i as usize % self.sources.len()])
    }

    /// Nanoseconds since the clock base.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// The instant `ns` nanoseconds after the clock base.
    pub fn instant(&self, ns: u64) -> tokio::time::Instant {
        (self.base + Duration::from_nanos(ns)).into()
    }
}

/// Six base-36 characters that differ between runs, so that nicknames and payload
/// markers of one run never match another's.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut v = (nanos ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut id = String::new();
    for _ in 0..6 {
        id.push(char::from_digit((v % 36) as u32, 36).expect("digit below 36"));
        v /= 36;
    }
    id
}

/// What a client tells the coordinator.
#[derive(Debug)]
pub enum Note {
    /// Connected, registered and joined: ready for the start.
    Ready,
    /// Could not get ready; the run cannot go on as planned.
    Failed(String),
    /// Will send nothing more.
    SentAll,
    /// Will receive nothing more (everything arrived, or the connection is gone).
    ReceivedAll,
    /// Caught up with the server after the start (idle).
    Settled,
}

/// The coordinator's side of the signals.
pub struct Coordinator {
    pub notes: mpsc::Receiver<Note>,
    pub start: watch::Sender<bool>,
    pub stop: CancellationToken,
}

impl Coordinator {
    /// Waits until `clients` clients are ready, one of them fails, or `deadline`
    /// passes. Returns how many got ready and, if one failed, why; a caller with fewer
    /// ready than it asked for ends the run with that.
    pub async fn wait_ready(&mut self, clients: u64, deadline: Instant) -> (u64, Option<String>) {
        let mut ready = 0;
        while ready < clients {
            match tokio::time::timeout_at(deadline.into(), self.notes.recv()).await {
                Ok(Some(Note::Ready)) => ready += 1,
                Ok(Some(Note::Failed(why))) => return (ready, Some(why)),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        (ready, None)
    }
}

/// A client's side of the signals; cheap to clone.
#[derive(Clone)]
pub struct Signals {
    pub notes: mpsc::Sender<Note>,
    pub start: watch::Receiver<bool>,
    pub stop: CancellationToken,
}

impl Signals {
    /// Tells the coordinator; if it stopped listening, the run is over anyway.
    pub async fn note(&self, note: Note) {
        let _ = self.notes.send(note).await;
    }

    /// Awaits a client's set-up unless the run is stopped first. A failure goes to the
    /// coordinator as [`Note::Failed`], naming the client; `None` means there is no
    /// connection to go on with.
    pub async fn set_up<T>(
        &self,
        nick: impl FnOnce() -> String,
        set_up: impl Future<Output = anyhow::Result<T>>,
    ) -> Option<T> {
        let result = tokio::select! {
            () = self.stop.cancelled() => return None,
            result = set_up => result,
        };
        match result {
            Ok(conn) => Some(conn),
            Err(e) => {
                self.note(Note::Failed(format!("{}: {e:#}", nick()))).await;
                None
            }
        }
    }
}

pub fn signals() -> (Coordinator, Signals) {
    let (notes_tx, notes) = mpsc::channel(4096);
    let (start, start_rx) = watch::channel(false);
    let stop = CancellationToken::new();
    (
        Coordinator {
            notes,
            start,
            stop: stop.clone(),
        },
        Signals {
            notes: notes_tx,
            start: start_rx,
            stop,
        },
    )
}

/// One generator thread's view.
pub struct Shard {
    pub index: usize,
    pub count: usize,
    /// This thread's counters; borrowed only between awaits.
    pub tally: Rc<RefCell<Tally>>,
    /// Limits the connections this thread sets up at once.
    pub gate: Rc<Semaphore>,
}

impl Shard {
    /// The client numbers below `n` that belong to this thread.
    pub fn mine(&self, n: u64) -> impl Iterator<Item = u64> {
        (self.index as u64..n).step_by(self.count)
    }

    /// Runs `client(i)` for each of this thread's clients below `n` and waits for all.
    pub async fn run_clients<F, Fut>(&self, n: u64, client: F)
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = ()> + 'static,
    {
        let tasks: Vec<_> = self
            .mine(n)
            .map(|i| tokio::task::spawn_local(client(i)))
            .collect();
        for task in tasks {
            if let Err(e) = task.await {
                self.tally
                    .borrow_mut()
                    .note(&format!("a client task failed: {e}"));
            }
        }
    }
}

/// Running generator threads.
pub struct Shards {
    tallies: Vec<oneshot::Receiver<Tally>>,
}

/// Starts `threads` generator threads, each running `body` to completion.
pub fn spawn<F, Fut>(threads: usize, gate: usize, body: F) -> anyhow::Result<Shards>
where
    F: FnOnce(Shard) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let mut tallies = Vec::new();
    for index in 0..threads {
        let body = body.clone();
        let (done, tally) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("bench-{index}"))
            .spawn(move || {
                let tally = Rc::new(RefCell::new(Tally::default()));
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        let shard = Shard {
                            index,
                            count: threads,
                            tally: tally.clone(),
                            gate: Rc::new(Semaphore::new(gate)),
                        };
                        LocalSet::new().block_on(&runtime, body(shard));
                    }
                    Err(e) => tally
                        .borrow_mut()
                        .note(&format!("cannot start a generator thread: {e}")),
                }
                let _ = done.send(std::mem::take(&mut *tally.borrow_mut()));
            })
            .context("starting a generator thread")?;
        tallies.push(tally);
    }
    Ok(Shards { tallies })
}

impl Shards {
    /// Waits for every thread and merges their tallies.
    pub async fn join(self) -> Tally {
        let mut total = Tally::default();
        for tally in self.tallies {
            match tally.await {
                Ok(tally) => total.merge(tally),
                Err(_) => total.note("a generator thread panicked"),
            }
        }
        total
    }
}
