//! What the core's unit tests share: a mailbox that records what it is given.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::{Envelope, Event, Mailbox};

/// A mailbox that keeps every envelope until the test takes them.
#[derive(Clone, Default)]
pub(crate) struct Inbox(pub(crate) Rc<RefCell<Vec<Arc<Envelope>>>>);

impl Mailbox for Inbox {
    fn deliver(&self, envelope: &Arc<Envelope>) {
        self.0.borrow_mut().push(envelope.clone());
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
