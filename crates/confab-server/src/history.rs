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
//!
//! When writes fail for a reason that can pass (disk full, read-only file system, a
//! database out of reach), live chat goes on: the watermark still rises, so messages
//! are delivered, and they wait in memory (up to [`BACKLOG_BYTES`]) to be written when
//! the store works again, which is tried once a [`RETRY`]. Users asking for history
//! are told ([`History::write_problem`]); the log says it once when it starts and once
//! when it ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_core::{account_party, ClientId, Journal, Key, Message, RoomRecord, Source, Target};
use confab_store::{Conversation, Range, Store, StoreError, StoredMessage};
use tokio::sync::Notify;

use crate::chat::Chat;
use crate::metrics::Metrics;

/// Messages that may wait for the store; past this the core refuses new messages
/// ("server busy") rather than holding unbounded memory.
const QUEUE: usize = 65_536;
/// The most new messages written in one transaction (messages waiting from failed
/// writes come on top).
const BATCH: usize = 4096;
/// How much memory messages that could not be written may hold while they wait for
/// the store; past it, new messages are delivered but not kept.
pub(crate) const BACKLOG_BYTES: usize = 32 << 20;
/// How often a failing store is tried again. Trying on every batch would make each
/// message pay for a failing write (and a growing one, as the backlog grows).
pub(crate) const RETRY: Duration = Duration::from_secs(1);

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
    /// How writes are going, for answers to history requests.
    health: Arc<WriteHealth>,
}

/// What sessions can see of the store thread's writes.
#[derive(Default)]
struct WriteHealth {
    /// Set while writes fail for a reason that can pass, until one succeeds again.
    failing: AtomicBool,
    /// Messages delivered but not written yet, waiting in memory.
    waiting: AtomicU64,
    /// Messages delivered but never to be written, since writes started failing.
    lost: AtomicU64,
    /// Set while the waiting messages fill their memory: direct messages for offline
    /// users are refused then, since they would reach nobody if dropped.
    full: AtomicBool,
}

/// The conversation key a message is filed under. A direct message comes with its
/// recipient; without one it is for a registered user who is offline, named by the
/// message, and so filed under their account.
pub(crate) fn conversation_of(message: &Message, recipient: Option<&Source>) -> String {
    match &message.to {
        Target::Room(room) => Conversation::Room(room.key()).key(),
        Target::User(name) => {
            let to = recipient.map_or_else(|| account_party(name.as_str()), Source::party);
            Conversation::Direct(&message.from.party(), &to).key()
        }
    }
}

/// What a history read is of: a room, or the reader's direct conversations with
/// whoever a name stands for.
pub(crate) enum Thread {
    /// A room's conversation key ([`room_conversation`]).
    Room(String),
    Direct(Direct),
}

/// A reader's direct conversations with a name, found on the store thread. Only
/// conversations one of the reader's own parties is in are ever considered, so a name
/// never brings its earlier holders' conversations to its next holder. Among the
/// reader's own they are: the conversation with whoever holds the name now (or its
/// account), and those with connections that have ended which went by that name, so a
/// user can still read back what they said to a guest who has left.
pub(crate) struct Direct {
    /// The reader's parties ([`Core::parties_of`](confab_core::Core::parties_of)).
    mine: Vec<String>,
    /// The reader's name, to tell which side of a stored message is the other.
    my_name: String,
    /// The name asked for.
    peer: String,
    /// The parties that name stands for now.
    peers: Vec<String>,
}

impl Thread {
    /// Client `id`'s direct conversations with `peer`; `None` when `id` has no name.
    pub(crate) fn direct<C: Chat + ?Sized>(chat: &C, id: ClientId, peer: &str) -> Option<Thread> {
        let core = chat.lock_core();
        Some(Thread::Direct(Direct {
            mine: core.parties_of(id),
            my_name: core.name_of(id)?.to_string(),
            peer: peer.to_string(),
            peers: core.parties_named(peer),
        }))
    }

    /// Reads up to `limit` messages of the thread, oldest first.
    pub(crate) fn read(
        &self,
        store: &dyn Store,
        range: Range,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        match self {
            Thread::Room(key) => store.history(key, range, limit),
            Thread::Direct(direct) => store.history_of(&direct.conversations(store)?, range, limit),
        }
    }
}

impl Direct {
    fn conversations(&self, store: &dyn Store) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        for me in &self.mine {
            for peer in &self.peers {
                keys.push(Conversation::Direct(me, peer).key());
            }
        }
        for me in &self.mine {
            for key in store.direct_conversations(me)? {
                // Accounts are found by their name above; a connection only by the
                // name it used, read from the conversation itself.
                let by_name = Conversation::other_party(&key, me).is_some_and(|other| {
                    other.starts_with("s:") && !self.peers.iter().any(|p| p == other)
                });
                if by_name
                    && !keys.contains(&key)
                    && other_name(store, &key, &self.my_name)?
                        .is_some_and(|n| n.eq_ignore_ascii_case(&self.peer))
                {
                    keys.push(key);
                }
            }
        }
        Ok(keys)
    }
}

/// The name the other side of direct conversation `key` last went by, seen from the
/// user called `me`: the sender of its newest message, or its recipient when that was
/// `me`'s.
pub(crate) fn other_name(
    store: &dyn Store,
    key: &str,
    me: &str,
) -> Result<Option<String>, StoreError> {
    let newest = store.history(key, Range::Latest, 1)?;
    Ok(newest.first().map(|m| {
        if m.sender.eq_ignore_ascii_case(me) {
            m.target.clone()
        } else {
            m.sender.clone()
        }
    }))
}

/// Whether client `id` may read the direct conversations of the name it uses: always,
/// unless that name is a registered account it has not logged into (an impostor
/// waiting out the login grace period must not read the owner's messages).
pub(crate) fn may_read_direct<C: Chat + ?Sized>(chat: &C, id: ClientId) -> bool {
    let core = chat.lock_core();
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
        let health = Arc::new(WriteHealth::default());
        let history = History {
            jobs,
            durability: durability.clone(),
            health: health.clone(),
        };
        std::thread::Builder::new()
            .name("confab-history".into())
            .spawn(move || {
                let mut writer = Writer {
                    durability: &durability,
                    health: &health,
                    metrics: &metrics,
                    batch: Vec::with_capacity(BATCH),
                    offline: Vec::new(),
                    held: 0,
                    bytes: 0,
                    retry_at: None,
                };
                run(&mut *store, receiver, &mut writer);
            })
            .expect("the history thread starts");
        Ok((history, last))
    }

    pub(crate) fn durability(&self) -> Arc<Durability> {
        self.durability.clone()
    }

    /// What to tell a user who asks for history while writes fail; `None` when they
    /// work.
    pub(crate) fn write_problem(&self) -> Option<String> {
        if !self.health.failing.load(Ordering::Relaxed) {
            return None;
        }
        let waiting = self.health.waiting.load(Ordering::Relaxed);
        let lost = self.health.lost.load(Ordering::Relaxed);
        let mut text = format!(
            "History is not being saved: the server cannot write to its disk. \
             The last {waiting} messages are not in history yet and will be added when it can"
        );
        if lost > 0 {
            text.push_str(&format!("; {lost} more could not be kept"));
        }
        Some(text)
    }

    /// Runs `job` on the store thread. `false` when the queue is full.
    pub(crate) fn run(&self, job: impl FnOnce(&mut dyn Store) + Send + 'static) -> bool {
        self.jobs.try_send(Job::Run(Box::new(job))).is_ok()
    }
}

impl History {
    fn submit(&self, message: &Message, recipient: Option<&Source>, offline: Option<&str>) -> bool {
        let stored = StoredMessage {
            id: message.id,
            time_ms: message.time_ms,
            conversation: conversation_of(message, recipient),
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
    fn record(&self, message: &Message, recipient: Option<&Source>) -> bool {
        self.submit(message, recipient, None)
    }

    fn record_offline(&self, message: &Message, recipient: &str) -> bool {
        // Live messages whose write fails are still delivered; a message for someone
        // offline is only delivered from the store, so it is refused (the sender is told
        // the server is busy) rather than taken when it might have to be dropped.
        if self.health.full.load(Ordering::Relaxed) {
            return false;
        }
        self.submit(message, None, Some(recipient))
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

fn run(store: &mut dyn Store, jobs: Receiver<Job>, writer: &mut Writer<'_>) {
    loop {
        // While messages wait for a failing store, wake up to try it again even when
        // nothing new arrives.
        let first = match writer.retry_in() {
            None => match jobs.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            },
            Some(wait) => match jobs.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
        };
        let mut next = first;
        while let Some(job) = next.take() {
            match job {
                Job::Append(message, recipient) => writer.push(message, recipient),
                // Other jobs run in their place in the queue, after the appends queued
                // before them are committed: a login's take of offline messages must
                // see the messages stored before it and none stored after it.
                Job::Run(job) => {
                    writer.commit(store);
                    job(store);
                }
                Job::SaveRoom(key, json) => {
                    writer.commit(store);
                    if let Err(e) = store.save_room(&key, &json) {
                        // While writes fail the log has said so already.
                        if !writer.failing() {
                            tracing::error!("cannot keep the state of room {key}: {e}");
                        }
                    }
                }
            }
            if writer.fresh() < BATCH {
                next = jobs.try_recv().ok();
            }
        }
        writer.commit(store);
    }
    writer.finish(store);
}

/// The store thread's write side: messages not yet written, oldest first, and what
/// happens when writing them fails.
struct Writer<'a> {
    durability: &'a Durability,
    health: &'a WriteHealth,
    metrics: &'a Metrics,
    /// Messages to write in the next transaction: first the `held` ones whose earlier
    /// write failed, then those queued since.
    batch: Vec<StoredMessage>,
    /// Offline recipients of messages in `batch` (folded name, message id).
    offline: Vec<(String, u64)>,
    held: usize,
    /// About how much memory `batch` holds, to bound it while writes fail.
    bytes: usize,
    /// While writes fail: when to try again.
    retry_at: Option<Instant>,
}

impl Writer<'_> {
    fn push(&mut self, message: StoredMessage, recipient: Option<String>) {
        if let Some(recipient) = recipient {
            self.offline.push((recipient, message.id));
        }
        self.bytes += size_of(&message);
        self.batch.push(message);
    }

    /// Messages queued since the last commit.
    fn fresh(&self) -> usize {
        self.batch.len() - self.held
    }

    fn failing(&self) -> bool {
        self.retry_at.is_some()
    }

    /// How long until a failing store is tried again; `None` when nothing waits.
    fn retry_in(&self) -> Option<Duration> {
        self.retry_at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Writes the pending messages in one transaction, then raises the watermark:
    /// after a success, a failure or no attempt at all (while a failing store waits for
    /// its next try), because delivery must not wait for a disk that is full.
    fn commit(&mut self, store: &mut dyn Store) {
        let Some(last) = self.batch.last().map(|m| m.id) else {
            return;
        };
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            self.hold(store);
            self.durability.advance(last);
            return;
        }
        let started = Instant::now();
        let written = store.append(&self.batch, &self.offline);
        self.metrics
            .history_commit(self.batch.len(), started.elapsed(), written.is_ok());
        match written {
            Ok(()) => {
                if self.retry_at.take().is_some() {
                    tracing::info!(
                        "history writes work again; {} messages that waited are saved",
                        self.held
                    );
                }
                self.forget();
                self.health.failing.store(false, Ordering::Relaxed);
                self.health.lost.store(0, Ordering::Relaxed);
            }
            Err(e) if e.is_transient() => {
                if self.retry_at.is_none() {
                    tracing::error!(
                        "cannot write history to {}: {e}; messages are delivered and kept in \
                         memory until writing works again",
                        store.location()
                    );
                    self.health.failing.store(true, Ordering::Relaxed);
                }
                self.retry_at = Some(Instant::now() + RETRY);
                self.hold(store);
            }
            Err(e) => {
                // Writing these messages again would fail again: they are dropped so
                // that the ones after them can be written.
                tracing::error!(
                    "cannot write history to {}: {e}; {} messages are delivered but not kept",
                    store.location(),
                    self.batch.len()
                );
                self.lose(self.batch.len());
                self.forget();
            }
        }
        self.durability.advance(last);
    }

    /// The server is stopping: one last try for messages still waiting.
    fn finish(&mut self, store: &mut dyn Store) {
        if self.retry_at.take().is_none() || self.batch.is_empty() {
            return;
        }
        match store.append(&self.batch, &self.offline) {
            Ok(()) => tracing::info!(
                "history writes work again; {} messages that waited are saved",
                self.batch.len()
            ),
            Err(e) => tracing::error!(
                "stopping with {} messages never written to history in {}: {e}",
                self.batch.len(),
                store.location()
            ),
        }
    }

    /// Keeps every pending message for the next try, within [`BACKLOG_BYTES`]: the
    /// newest past it are dropped.
    fn hold(&mut self, store: &dyn Store) {
        let mut dropped = 0;
        while self.bytes > BACKLOG_BYTES && self.batch.len() > self.held {
            let message = self.batch.pop().expect("more than held");
            self.bytes -= size_of(&message);
            dropped += 1;
        }
        if dropped > 0 {
            let kept = self.batch.last().map_or(0, |m| m.id);
            self.offline.retain(|(_, id)| *id <= kept);
            if !self.health.full.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    "history writes to {} have failed for too long: messages waiting fill \
                     their {} MiB, new ones are delivered but not kept",
                    store.location(),
                    BACKLOG_BYTES >> 20
                );
            }
            self.lose(dropped);
        }
        self.held = self.batch.len();
        self.health
            .waiting
            .store(self.held as u64, Ordering::Relaxed);
        self.metrics.history_waiting(self.held);
    }

    fn lose(&self, messages: usize) {
        self.health
            .lost
            .fetch_add(messages as u64, Ordering::Relaxed);
        self.metrics.history_lost(messages);
    }

    /// Empties the batch after it was written (or dropped).
    fn forget(&mut self) {
        self.batch.clear();
        self.offline.clear();
        self.held = 0;
        self.bytes = 0;
        self.health.waiting.store(0, Ordering::Relaxed);
        self.health.full.store(false, Ordering::Relaxed);
        self.metrics.history_waiting(0);
    }
}

/// About how much memory a message waiting to be written takes.
fn size_of(message: &StoredMessage) -> usize {
    std::mem::size_of::<StoredMessage>()
        + message.conversation.len()
        + message.sender.len()
        + message.sender_mask.len()
        + message.target.len()
        + message.text.len()
}
