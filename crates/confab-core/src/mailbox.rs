//! The one way events leave the core: a recipient's mailbox.

use std::sync::Arc;

use crate::event::{Batch, Envelope};

/// Where the core drops events for one client.
///
/// `deliver` is called with the core's state borrowed, so it must never block, never
/// await and never call back into the core. A mailbox that is full closes itself and
/// lets its own session disconnect the client; the core does not wait for anyone.
pub trait Mailbox: Clone {
    fn deliver(&self, envelope: &Arc<Envelope>);

    /// Delivers several messages at once. A mailbox that can keep the batch whole
    /// should, so that its session handles it in one go; the default takes the
    /// messages one by one.
    fn deliver_batch(&self, batch: &Arc<Batch>) {
        for envelope in &batch.messages {
            self.deliver(envelope);
        }
    }
}

/// Where the core records every message before it is delivered, so that history can
/// keep it (the server's store thread). Like a mailbox, it must never block.
pub trait Journal: Send {
    /// Takes one message for recording; `false` when it cannot keep up, in which case
    /// the message is refused rather than delivered unrecorded. A direct message comes
    /// with its recipient, whose [`Source::party`](crate::Source::party) (not their
    /// name) says whose conversation it is.
    fn record(&self, message: &crate::event::Message, recipient: Option<&crate::Source>) -> bool;
    /// Takes a direct message for a registered user who is offline, to be delivered
    /// when they next log in. `recipient` is their folded name.
    fn record_offline(&self, message: &crate::event::Message, recipient: &str) -> bool;
    /// Keeps the state of a room with a registered owner.
    fn save_room(&self, _room: &crate::event::RoomRecord) {}
}
