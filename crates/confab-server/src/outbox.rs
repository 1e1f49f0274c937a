//! Each client's bounded send queue: the core's mailbox for that client.
//!
//! Contract, after Ergo's socket.go:
//! 1. `deliver` never blocks and never waits on the client: it is called with the core
//!    locked.
//! 2. Items leave in the order they came; nothing is reordered or dropped silently.
//! 3. Past the limit the queue empties, marks itself overflowed and wakes its session,
//!    which disconnects the client ("send queue exceeded"). Everyone else carries on.
//! 4. Only the transition from empty to non-empty wakes the session, which always drains
//!    everything at once, so a burst of N events costs one wake-up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use confab_core::{Batch, Envelope, Mailbox};
use futures::task::AtomicWaker;

/// One item waiting for a client.
pub(crate) enum Outgoing {
    /// A core event, encoded by the session's protocol when it is written.
    Event(Arc<Envelope>),
    /// A line the session produced itself (help, local errors). It travels through the
    /// same queue so that it keeps its place among the core's replies.
    Raw(Bytes),
    /// Several messages from one sender, handed over together.
    Batch(Arc<Batch>),
}

impl Outgoing {
    /// The item, or each message of a batch as an event of its own, for sessions that
    /// handle messages one by one.
    pub(crate) fn singles(self) -> impl Iterator<Item = Outgoing> {
        let (one, batch) = match self {
            Outgoing::Batch(batch) => (None, Some(batch)),
            item => (Some(item), None),
        };
        let each = batch.into_iter().flat_map(|batch| {
            (0..batch.messages.len()).map(move |i| Outgoing::Event(batch.messages[i].clone()))
        });
        one.into_iter().chain(each)
    }
}

struct State {
    queue: VecDeque<Outgoing>,
    /// Approximate bytes in `queue`; never more than the limit.
    bytes: u32,
    overflowed: bool,
}

pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Set when the session must look at the queue; with `waker`, what `Notify` would
    /// give, without the future a waiting session would have to keep. Every connection
    /// waits here all its life, so the future's bytes were paid per idle connection.
    signalled: AtomicBool,
    waker: AtomicWaker,
    /// In bytes. A `u32`, like `State::bytes`, because every connection has an outbox
    /// and the two `usize`s put it one allocator size class higher (112 bytes with the
    /// `Arc`'s counts, against 96); a client's queue of 4 GiB is far past any use.
    limit: u32,
}

/// The outbox went past its limit; the client must go.
#[derive(Debug)]
pub(crate) struct Overflowed;

impl Outbox {
    pub(crate) fn new(limit: usize) -> Outbox {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        Outbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                overflowed: false,
            }),
            signalled: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            limit,
        }
    }

    pub(crate) fn push(&self, item: Outgoing) {
        let size = match &item {
            Outgoing::Event(envelope) => envelope.approximate_size(),
            Outgoing::Raw(bytes) => bytes.len(),
            Outgoing::Batch(batch) => batch.approximate_size(),
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.overflowed {
            return;
        }
        let was_empty = state.queue.is_empty();
        if state.bytes as usize + size > self.limit as usize {
            state.overflowed = true;
            state.queue = VecDeque::new();
            state.bytes = 0;
        } else {
            state.queue.push_back(item);
            // Fits: the sum is at most the limit, a u32.
            state.bytes += size as u32;
            if !was_empty {
                return;
            }
        }
        drop(state);
        self.signalled.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Moves everything queued into `into` (which must be empty), keeping the order.
    pub(crate) fn drain(&self, into: &mut VecDeque<Outgoing>) -> Result<(), Overflowed> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.overflowed {
            return Err(Overflowed);
        }
        std::mem::swap(&mut state.queue, into);
        release_if_empty(&mut state.queue);
        state.bytes = 0;
        Ok(())
    }

    /// Whether the limit was crossed.
    pub(crate) fn overflowed(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .overflowed
    }

    /// Wakes the session with nothing queued, for it to look at what else changed
    /// (the server shutting down).
    pub(crate) fn wake(&self) {
        self.signalled.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Ready when something was queued since the last time this was ready, the way a
    /// `Notify` permit works; only the latest task to poll is woken.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.signalled.swap(false, Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A push between the check and the registration would have woken nobody.
        if self.signalled.swap(false, Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Resolves when something was queued since the last time this resolved.
    pub(crate) async fn ready(&self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }
}

/// The handle the core keeps for a client: a shared pointer to its outbox.
#[derive(Clone)]
pub(crate) struct OutboxRef(pub Arc<Outbox>);

impl Mailbox for OutboxRef {
    fn deliver(&self, envelope: &Arc<Envelope>) {
        self.0.push(Outgoing::Event(envelope.clone()));
    }

    fn deliver_batch(&self, batch: &Arc<Batch>) {
        self.0.push(Outgoing::Batch(batch.clone()));
    }
}

/// Frees an empty queue's memory, so that an idle connection holds none: the welcome
/// alone grows a queue to 32 entries, and even a small one kept for ever in each of a
/// connection's three queues was a sixth of its footprint. Busy connections pay one
/// allocation per wake-up, which is nothing beside the write it comes with.
pub(crate) fn release_if_empty<T>(queue: &mut VecDeque<T>) {
    if queue.is_empty() && queue.capacity() > 0 {
        *queue = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(n: usize) -> Outgoing {
        Outgoing::Raw(Bytes::from(vec![b'x'; n]))
    }

    #[test]
    fn keeps_order_and_overflows_past_the_limit() {
        let outbox = Outbox::new(100);
        outbox.push(raw(10));
        outbox.push(Outgoing::Raw(Bytes::from_static(b"second")));
        let mut drained = VecDeque::new();
        outbox.drain(&mut drained).unwrap();
        assert!(matches!(&drained[1], Outgoing::Raw(b) if &b[..] == b"second"));
        outbox.push(raw(60));
        outbox.push(raw(60));
        assert!(outbox.drain(&mut VecDeque::new()).is_err());
        outbox.push(raw(1));
        assert!(
            outbox.drain(&mut VecDeque::new()).is_err(),
            "overflow is final"
        );
    }
    #[test]
    fn a_limit_past_four_gib_is_four_gib() {
        let outbox = Outbox::new(usize::MAX);
        outbox.push(raw(1000));
        outbox.push(raw(1000));
        let mut drained = VecDeque::new();
        outbox.drain(&mut drained).unwrap();
        assert_eq!(drained.len(), 2);
    }

    /// Every connection has an outbox; with the `Arc`'s two counts, 80 bytes is the
    /// allocator's 96-byte size class (it was 112).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn an_outbox_fits_in_80_bytes() {
        let size = std::mem::size_of::<Outbox>();
        assert!(size <= 80, "Outbox is {size} bytes");
    }
}
