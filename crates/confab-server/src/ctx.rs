//! What a protocol handler may do to the world ([`Ctx`]): run commands in the core
//! (collecting runs of messages into one), queue lines of its own, and hand its outbox
//! to work that answers later ([`Later`]) while the session waits ([`Pending`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use confab_core::{ClientId, Command, MessageKind, Recipient};

use crate::chat::run_now;
use crate::history::{Durability, History, Thread};
use crate::outbox::{Outbox, Outgoing};
use crate::shared::Shared;

mod state;

pub(crate) use state::Reader;

/// What a protocol handler may do to the world: talk to the core and queue lines for its
/// own client. Lines queued here keep their order with the core's replies.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    pub id: ClientId,
    outbox: &'a Arc<Outbox>,
    state: &'a CtxState,
}

/// What a [`Ctx`] keeps from one call to the next; the session owns it. One lock
/// and two thin pointers, because it lives in every connection and is rarely used.
#[derive(Default)]
pub(crate) struct CtxState(Mutex<Kept>);

#[derive(Default)]
struct Kept {
    /// Work the session awaits before it handles more input, chained in the order it
    /// was given: commands that must wait for the cluster (a name claim, a room
    /// subscription) and answers that come later ([`Later`]). While this is set the
    /// session reads no more input, so a client's later commands, and their replies,
    /// stay behind them.
    pending: Option<Box<Pending>>,
    /// Messages to one recipient collected by [`Ctx::say`], not yet in the core.
    run: Option<Box<Run>>,
}

impl CtxState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Consecutive messages from one read of a client's input to the same recipient, sent
/// to the core as one [`Command::SendMany`].
struct Run {
    to: Recipient,
    kind: MessageKind,
    texts: Vec<String>,
    bytes: usize,
}

/// The most messages (and text bytes) one run collects before it is sent: enough to
/// make a burst one delivery per recipient, little enough that a batch stays a few
/// dozen KiB in every recipient's queue.
const RUN_MESSAGES: usize = 256;
const RUN_BYTES: usize = 32 * 1024;

/// Work a session awaits before it handles more input.
pub(crate) type Pending = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The client's outbox, handed to work that answers later: a history query on the
/// store thread, a login or registration hashing on the blocking pool. The session
/// handles none of the client's later input until every clone of it has been dropped,
/// so an answer that comes later still comes before the replies to the commands sent
/// after it. Work that is refused (a full queue) drops it at once, work that fails
/// drops it when it ends: the session never waits for work that cannot answer.
///
/// Only [`Ctx::outbox`] makes one; keep it no longer than the answer needs.
#[derive(Clone)]
pub(crate) struct Later(Arc<LaterInner>);

struct LaterInner {
    outbox: Arc<Outbox>,
    /// Dropped with the last clone, which wakes the session's wait.
    _done: tokio::sync::oneshot::Sender<()>,
}

impl std::ops::Deref for Later {
    type Target = Arc<Outbox>;

    fn deref(&self) -> &Arc<Outbox> {
        &self.0.outbox
    }
}

impl<'a> Ctx<'a> {
    pub fn new(
        shared: &'a Arc<Shared>,
        id: ClientId,
        outbox: &'a Arc<Outbox>,
        state: &'a CtxState,
    ) -> Ctx<'a> {
        Ctx {
            shared,
            id,
            outbox,
            state,
        }
    }

    /// Sends a message. Consecutive messages to the same recipient are collected and
    /// go to the core together when anything else happens (another command, a line of
    /// the session's own) or the read that brought them has been handled
    /// ([`Ctx::flush`]), so the order of everything the client sees is unchanged; only
    /// fan-out gets cheaper. In a cluster each goes as it comes.
    pub fn say(&self, to: Recipient, kind: MessageKind, text: String) {
        if self.shared.cluster.is_some() {
            return self.command(Command::Send {
                to,
                kind,
                text,
                tags: None,
            });
        }
        let mut kept = self.state.lock();
        let run = &mut kept.run;
        let fits = run.as_ref().is_some_and(|r| {
            r.to == to
                && r.kind == kind
                && r.texts.len() < RUN_MESSAGES
                && r.bytes + text.len() <= RUN_BYTES
        });
        if !fits {
            if let Some(full) = run.take() {
                self.send_run(*full);
            }
        }
        let run = run.get_or_insert_with(|| {
            Box::new(Run {
                to,
                kind,
                texts: Vec::new(),
                bytes: 0,
            })
        });
        run.bytes += text.len();
        run.texts.push(text);
    }

    /// Whether [`Ctx::say`] has messages waiting to go to the core.
    pub(crate) fn has_run(&self) -> bool {
        self.state.lock().run.is_some()
    }

    /// Sends the messages collected by [`Ctx::say`].
    pub fn flush(&self) {
        let run = self.state.lock().run.take();
        if let Some(run) = run {
            self.send_run(*run);
        }
    }

    fn send_run(&self, mut run: Run) {
        let command = if run.texts.len() == 1 {
            Command::Send {
                to: run.to,
                kind: run.kind,
                text: run.texts.pop().expect("one text"),
                tags: None,
            }
        } else {
            Command::SendMany {
                to: run.to,
                kind: run.kind,
                texts: run.texts,
            }
        };
        run_now(self.shared, self.id, command);
    }

    /// Work queued by [`Ctx::command`] that the session must await before reading on.
    pub fn take_pending(&self) -> Option<Pending> {
        self.state.lock().pending.take().map(|pending| *pending)
    }

    pub fn has_pending(&self) -> bool {
        self.state.lock().pending.is_some()
    }

    /// This client's outbox, for an answer that arrives later (history queries,
    /// logins): the session reads no further input until the answer is in the outbox
    /// (see [`Later`]), so replies keep the order of the commands that caused them.
    pub fn outbox(&self) -> Later {
        let (done, answered) = tokio::sync::oneshot::channel::<()>();
        self.wait_for(Box::pin(async move {
            // An error is the answer: every clone of the `Later` is gone.
            let _ = answered.await;
        }));
        Later(Arc::new(LaterInner {
            outbox: self.outbox.clone(),
            _done: done,
        }))
    }

    /// The outbox itself, for the session's own writer. Unlike [`Ctx::outbox`] it
    /// makes nothing wait.
    pub fn queue(&self) -> &Arc<Outbox> {
        self.outbox
    }

    /// Makes the session await `work`, after whatever it awaits already, before it
    /// handles more input.
    fn wait_for(&self, work: Pending) {
        let mut kept = self.state.lock();
        let work = match kept.pending.take() {
            None => work,
            Some(before) => Box::pin(async move {
                before.await;
                work.await;
            }),
        };
        kept.pending = Some(Box::new(work));
    }

    /// Runs one command in the core. In a cluster, a command that must first claim a
    /// name or subscribe to a room (and any command after one) runs once that is done,
    /// before the session reads more input.
    pub fn command(&self, command: Command) {
        self.flush();
        if let Some(cluster) = &self.shared.cluster {
            if self.has_pending()
                || crate::cluster::must_wait(cluster, &**self.shared, self.id, &command)
            {
                let work = crate::cluster::run_command(
                    cluster.clone(),
                    self.shared.clone(),
                    self.id,
                    self.outbox.clone(),
                    command,
                );
                self.wait_for(Box::pin(work));
                return;
            }
        }
        run_now(self.shared, self.id, command);
    }

    /// Queues a line of the session's own for this client.
    pub fn send(&self, line: Bytes) {
        self.flush();
        self.outbox.push(Outgoing::Raw(line));
    }

    /// The store thread, for queries whose answer comes later (through
    /// [`Ctx::outbox`]); `None` when the server keeps no history.
    #[inline]
    pub fn history(&self) -> Option<&History> {
        self.shared.history.as_ref()
    }

    /// Whether the server keeps history (and so accounts).
    #[inline]
    pub fn keeps_history(&self) -> bool {
        self.shared.history.is_some()
    }

    /// Whether this client may read the direct conversations of its name: it has
    /// registered, and the name has no account or it is logged in to it.
    pub fn may_read_direct(&self) -> bool {
        crate::history::may_read_direct(&**self.shared, self.id)
    }

    /// The history of this client's direct conversations with `peer` (see
    /// [`Thread::direct`]); `None` before the client registers.
    pub fn direct_thread(&self, peer: &str) -> Option<Thread> {
        Thread::direct(&**self.shared, self.id, peer)
    }

    /// How far messages are durable: a client is sent nothing beyond it.
    #[inline]
    pub fn durability(&self) -> &Durability {
        &self.shared.durability
    }
}
