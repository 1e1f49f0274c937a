//! The one way events leave the core: a recipient's mailbox.

use std::sync::Arc;

use crate::event::Envelope;

/// Where the core drops events for one client.
///
/// `deliver` is called with the core's state borrowed, so it must never block, never
/// await and never call back into the core. A mailbox that is full closes itself and
/// lets its own session disconnect the client; the core does not wait for anyone.
pub trait Mailbox: Clone {
    fn deliver(&self, envelope: &Arc<Envelope>);
}
