//! What the core's unit tests share: a mailbox that records what it is given.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::{Batch, Envelope, Event, Mailbox};

/// A mailbox that keeps every envelope until the test takes them, and counts the
/// batches it was given (whose messages it keeps one by one).
#[derive(Clone, Default)]
pub(crate) struct Inbox(
    pub(crate) Rc<RefCell<Vec<Arc<Envelope>>>>,
    pub(crate) Rc<Cell<usize>>,
);

impl Mailbox for Inbox {
    fn deliver(&self, envelope: &Arc<Envelope>) {
        self.0.borrow_mut().push(envelope.clone());
    }

    fn deliver_batch(&self, batch: &Arc<Batch>) {
        self.1.set(self.1.get() + 1);
        self.0.borrow_mut().extend(batch.messages.iter().cloned());
    }
}

impl Inbox {
    /// Everything delivered since the last take, oldest first.
    pub(crate) fn take(&self) -> Vec<Event> {
        self.0
            .borrow_mut()
            .drain(..)
            .map(|e| e.event.clone())
            .collect()
    }
}

impl Inbox {
    /// How many batches this mailbox has been given.
    pub(crate) fn batches(&self) -> usize {
        self.1.get()
    }
}
