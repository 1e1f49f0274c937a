//! The history service: a thread that owns the store, writes messages in group commits
//! and answers history queries, plus the durability watermark that keeps any client
//! from seeing a message before it is on disk.
//!
//! Guarantee: a message is committed to the database before any recipient is sent a
//! byte of it. The core hands each message to [`History`] as it routes it (a
//! non-blocking channel send); recipients' write queues hold the message behind a gate
//! until the watermark [`Durability`] reaches its id. The store thread commits
//! everything queued in one transaction, then raises the watermark, so many messages
//! share one commit and throughput stays high.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use confab_core::{Journal, Key, Message, RoomRecord, Target};
use confab_store::{Conversation, Store, StoredMessage};
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// Messages that may wait for the store; past this the core refuses new messages
/// ("server busy") rather than holding unbounded memory.
const QUEUE: usize = 65_536;
/// The most messages written in one transaction.
const BATCH: usize = 4096;

/// The highest message id known to be durable, and a way to wait for it to rise.
pub(crate) struct Durability {
    id: AtomicU64,
    changed: Notify,
}

impl Durability {
    /// A watermark that never holds anything back, for a server without history.
    pub(crate) fn always() -> Arc<Durability> {
        Arc::new(Durability {
            id: AtomicU64::new(u64::MAX),
            changed: Notify::new(),
        })
    }

    fn starting_at(id: u64) -> Arc<Durability> {
        Arc::new(Durability {
            id: AtomicU64::new(id),
            changed: Notify::new(),
        })
    }

    pub(crate) fn durable(&self) -> u64 {
        self.id.load(Ordering::Acquire)
    }

    fn advance(&self, id: u64) {
        self.id.fetch_max(id, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Resolves once message `id` is durable.
    pub(crate) async fn wait_for(&self, id: u64) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.durable() >= id {
                return;
            }
            notified.await;
        }
    }
}

/// A job run on the store thread with the store in hand.
type StoreJob = Box<dyn FnOnce(&mut dyn Store) + Send>;

/// Work for the store thread.
enum Job {
    /// A message to keep, and the folded name of an offline recipient it waits for.
    Append(StoredMessage, Option<String>),
    /// A read (or account operation) run on the store thread between commits.
    Run(StoreJob),
    /// A kept room's new state: its folded name and its record as JSON.
    SaveRoom(String, String),
}

/// The handle sessions and the core use to reach the store thread.
#[derive(Clone)]
pub(crate) struct History {
    jobs: SyncSender<Job>,
    durability: Arc<Durability>,
    /// False after a write failed (disk full, read-only), until one succeeds again.
    healthy: Arc<AtomicBool>,
}

/// The conversation key a message is filed under.
pub(crate) fn conversation_of(message: &Message) -> String {
    match &message.to {
        Target::Room(room) => Conversation::Room(room.key()).key(),
        Target::User(name) => Conversation::Direct(message.from.name.key(), name.key()).key(),
    }
}

/// The conversation between two users, by name.
pub(crate) fn direct_conversation(a: &str, b: &str) -> String {
    Conversation::Direct(Key::of(a), Key::of(b)).key()
}

/// Whether client `id` may read the direct conversations of the name it uses: always,
/// unless that name is a registered account it has not logged into (an impostor
/// waiting out the login grace period must not read the owner's messages).
pub(crate) fn may_read_direct(
    shared: &crate::connection::Shared,
    id: confab_core::ClientId,
) -> bool {
    let core = shared.core.lock().unwrap_or_else(|e| e.into_inner());
    match core.name_of(id) {
        Some(name) => {
            !core.is_account(name.as_str())
                || core
                    .account_of(id)
                    .is_some_and(|a| a.eq_ignore_ascii_case(name.as_str()))
        }
        None => false,
    }
}

/// The conversation key of a room, by name.
pub(crate) fn room_conversation(room: &str) -> String {
    Conversation::Room(Key::of(room)).key()
}

impl History {
    /// Starts the store thread. Ids continue after the highest one stored.
    pub(crate) fn start(
        mut store: Box<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<(History, u64), confab_store::StoreError> {
        let last = store.last_id()?;
        let durability = Durability::starting_at(last);
        let (jobs, receiver) = mpsc::sync_channel(QUEUE);
        let healthy = Arc::new(AtomicBool::new(true));
        let history = History {
            jobs,
            durability: durability.clone(),
            healthy: healthy.clone(),
        };
        std::thread::Builder::new()
            .name("confab-history".into())
            .spawn(move || run(&mut *store, receiver, &durability, &healthy, &metrics))
            .expect("the history thread starts");
        Ok((history, last))
    }

    pub(crate) fn durability(&self) -> Arc<Durability> {
        self.durability.clone()
    }

    /// Whether the last write succeeded.
    pub(crate) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Runs `job` on the store thread. `false` when the queue is full.
    pub(crate) fn run(&self, job: impl FnOnce(&mut dyn Store) + Send + 'static) -> bool {
        self.jobs.try_send(Job::Run(Box::new(job))).is_ok()
    }
}

impl History {
    fn submit(&self, message: &Message, offline: Option<&str>) -> bool {
        let stored = StoredMessage {
            id: message.id,
            time_ms: message.time_ms,
            conversation: conversation_of(message),
            sender: message.from.name.to_string(),
            sender_mask: message.from.mask(),
            target: match &message.to {
                Target::Room(room) => room.to_string(),
                Target::User(name) => name.to_string(),
            },
            to_room: matches!(message.to, Target::Room(_)),
            kind: message.kind,
            text: message.text.to_string(),
        };
        match self
            .jobs
            .try_send(Job::Append(stored, offline.map(str::to_string)))
        {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            // The thread is gone (it only stops when the server does): deliver anyway.
            Err(TrySendError::Disconnected(Job::Append(stored, _))) => {
                self.durability.advance(stored.id);
                true
            }
            Err(TrySendError::Disconnected(_)) => true,
        }
    }
}

impl Journal for History {
    fn record(&self, message: &Message) -> bool {
        self.submit(message, None)
    }

    fn record_offline(&self, message: &Message, recipient: &str) -> bool {
        self.submit(message, Some(recipient))
    }

    fn save_room(&self, room: &RoomRecord) {
        // Room state changes rarely; if the queue is full the change is kept in memory
        // and written with the room's next change.
        if let Ok(json) = serde_json::to_string(room) {
            let key = room.name.key().as_str().to_string();
            let _ = self.jobs.try_send(Job::SaveRoom(key, json));
        }
    }
}

fn run(
    store: &mut dyn Store,
    jobs: Receiver<Job>,
    durability: &Durability,
    healthy: &AtomicBool,
    metrics: &Metrics,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut offline = Vec::new();
    while let Ok(first) = jobs.recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Append(message, recipient) => {
                    if let Some(recipient) = recipient {
                        offline.push((recipient, message.id));
                    }
                    batch.push(message);
                }
                // Other jobs run in their place in the queue, after the appends queued
                // before them are committed: a login's take of offline messages must
                // see the messages stored before it and none stored after it.
                Job::Run(job) => {
                    commit(
                        store,
                        &mut batch,
                        &mut offline,
                        durability,
                        healthy,
                        metrics,
                    );
                    job(store);
                }
                Job::SaveRoom(key, json) => {
                    commit(
                        store,
                        &mut batch,
                        &mut offline,
                        durability,
                        healthy,
                        metrics,
                    );
                    if let Err(e) = store.save_room(&key, &json) {
                        tracing::error!("cannot keep the state of room {key}: {e}");
                    }
                }
            }
            if batch.len() < BATCH {
                next = jobs.try_recv().ok();
            }
        }
        commit(
            store,
            &mut batch,
            &mut offline,
            durability,
            healthy,
            metrics,
        );
    }
}

/// Writes the pending appends in one transaction and raises the watermark.
fn commit(
    store: &mut dyn Store,
    batch: &mut Vec<StoredMessage>,
    offline: &mut Vec<(String, u64)>,
    durability: &Durability,
    healthy: &AtomicBool,
    metrics: &Metrics,
) {
    let Some(last) = batch.last().map(|m| m.id) else {
        return;
    };
    let started = std::time::Instant::now();
    let written = store.append(batch, offline);
    metrics.history_commit(batch.len(), started.elapsed(), written.is_ok());
    match written {
        Ok(()) => {
            if !healthy.swap(true, Ordering::Relaxed) {
                tracing::info!("history writes work again");
            }
        }
        Err(e) => {
            // Live chat must go on when the disk is full or read-only: the messages are
            // delivered without being kept, and the log says so.
            if healthy.swap(false, Ordering::Relaxed) {
                tracing::error!("cannot write history, messages are not being kept: {e}");
            }
        }
    }
    durability.advance(last);
    batch.clear();
    offline.clear();
}
