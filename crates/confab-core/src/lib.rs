//! confab's chat core: users, rooms, routing and presence, with no sockets and no wire
//! formats.
//!
//! # Layout
//! - [`name`]: the naming rules and the case-folded keys that make names unique.
//! - [`core`]: [`Core`], the state machine. A front-end calls [`Core::connect`], then
//!   [`Core::handle`] with each [`Command`] its client sends, then [`Core::disconnect`].
//! - [`event`]: the [`Event`]s the core emits, shared among recipients in one
//!   [`Envelope`] that caches each wire encoding.
//! - [`mailbox`]: the [`Mailbox`] trait through which every event leaves the core.
//! - [`error`]: [`ChatError`], the reasons a command fails.
//!
//! Commands and events are `serde`-serializable so that a later multi-node mode can carry
//! them over a message bus unchanged.

pub mod core;
pub mod error;
pub mod event;
pub mod mailbox;
pub mod name;

pub use crate::core::{ClientId, Command, Core, CoreLimits, Recipient, Stats};
pub use crate::error::ChatError;
pub use crate::event::{
    slot, Ban, Envelope, Event, MemberInfo, Message, MessageKind, ModeChange, RoomModes,
    RoomRecord, RoomSummary, Source, Target, Topic, UserInfo, UserSummary, ENCODING_SLOTS,
};
pub use crate::mailbox::{Journal, Mailbox};
pub use crate::name::{with_folded, Key, Name, NameError, RoomName};

#[cfg(test)]
mod tests;
