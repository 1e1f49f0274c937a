//! confab's chat core: users, rooms, routing and presence, with no sockets and no wire
//! formats.
//!
//! # Layout
//! - [`name`]: the naming rules, the case-folded keys that make names unique, and
//!   [`glob_match`], the one matcher of masks (bans, WHO, IRC's server masks).
//! - [`core`]: [`Core`], the state machine. A front-end calls [`Core::connect`], then
//!   [`Core::handle`] with each [`Command`] its client sends, then [`Core::disconnect`].
//!   One `Core` state in `core/mod.rs`, its methods in parts: `command` (the commands
//!   and their dispatch), `messaging` (sending and routing messages: where a new kind
//!   of message event goes), `rooms` (join, part, member lists, topics, kicks,
//!   invitations), `modes` (room modes, operators, voice, bans), `names` (names,
//!   accounts and logins, guests, WHOWAS, parties), `users` (connections, user modes,
//!   away, WHOIS, WHO masks, KILL, counts) and `replica` (the cluster's side).
//! - [`event`]: the [`Event`]s the core emits, shared among recipients in one
//!   [`Envelope`] that caches each wire encoding.
//! - [`mailbox`]: the [`Mailbox`] trait through which every event leaves the core.
//! - [`error`]: [`ChatError`], the reasons a command fails.
//! - [`cluster`]: what the nodes of a cluster tell each other ([`Replica`], [`Snapshot`])
//!   and the [`Link`] that carries it; the core applies them with [`Core::apply`].

pub mod cluster;
pub mod core;
pub mod error;
pub mod event;
pub mod mailbox;
pub mod name;

pub use crate::cluster::{Link, Replica, Route, Snapshot};
pub use crate::core::{ClientId, Command, Core, CoreLimits, Lusers, Recipient, Stats, MAX_NODES};
pub use crate::error::ChatError;
pub use crate::event::{
    account_party, slot, Ban, Batch, Envelope, Event, MemberInfo, Message, MessageKind, ModeChange,
    RoomModes, RoomRecord, RoomSummary, Source, Target, Topic, UserInfo, UserSummary,
    ENCODING_SLOTS,
};
pub use crate::mailbox::{Journal, Mailbox};
pub use crate::name::{glob_match, with_folded, Key, Name, NameError, RoomName};

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
