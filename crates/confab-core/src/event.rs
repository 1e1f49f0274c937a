//! Protocol-neutral events: everything the core tells a client, and the envelope that
//! carries one event to all of its recipients with each wire encoding made only once.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::ChatError;
use crate::name::{Name, RoomName};

/// Who did something: the user's name plus the connection details IRC shows in prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub name: Name,
    /// The user (ident) part of an IRC prefix; front-ends without one use the name.
    pub user: Arc<str>,
    /// The host the user connected from, as shown to others.
    pub host: Arc<str>,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Room(RoomName),
    User(Name),
}

/// The flavour of a message: front-ends render each differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageKind {
    /// An ordinary message.
    Normal,
    /// An action, `/me waves`.
    Action,
    /// A notice, which clients must never answer automatically (IRC NOTICE).
    Notice,
}

/// One chat message, as stored and delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Unique and increasing within one core.
    pub id: u64,
    /// Milliseconds since the Unix epoch, stamped by the core when it accepted the message.
    pub time_ms: u64,
    pub from: Arc<Source>,
    pub to: Target,
    pub kind: MessageKind,
    pub text: Arc<str>,
}

/// A room as listed by `/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub name: RoomName,
    pub members: usize,
}

/// Everything the core can tell a client. Events that go to many recipients are shared
/// through one [`Envelope`]; the rest are replies to the one client that asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Reply: the client is now registered under `name`.
    Registered { name: Name },
    /// Reply: a command failed; nothing changed.
    Error(ChatError),
    /// A message to a room the recipient is in, or to the recipient directly.
    Message(Message),
    /// `who` joined `room`; sent to every member, the joiner included.
    Joined { room: RoomName, who: Arc<Source> },
    /// `who` left `room`; sent to every member, the leaver included.
    Parted {
        room: RoomName,
        who: Arc<Source>,
        reason: Option<Arc<str>>,
    },
    /// `who` disconnected; sent once to everyone who shared a room with them.
    Quit {
        who: Arc<Source>,
        reason: Arc<str>,
    },
    /// `old` is now called `new`; sent to the user and everyone sharing a room.
    NickChanged { old: Arc<Source>, new: Name },
    /// Reply: the members of `room`, sorted by name.
    Members { room: RoomName, names: Vec<Name> },
    /// Reply: every room, sorted by name.
    Rooms { rooms: Vec<RoomSummary> },
}

/// How many distinct encodings an envelope can cache: one slot per wire format variant
/// (the line protocol, IRC with and without tags, JSON...). Front-ends pick a slot.
pub const ENCODING_SLOTS: usize = 4;

/// One event on its way to all of its recipients.
///
/// The core builds one envelope per event and hands every recipient's mailbox a clone of
/// the same `Arc`; the first session of each wire format that needs the bytes encodes
/// them into its slot, and every other session of that format reuses them. That keeps
/// fan-out to N recipients at one encoding and N reference-count increments.
#[derive(Debug)]
pub struct Envelope {
    pub event: Event,
    encoded: [OnceLock<Bytes>; ENCODING_SLOTS],
}

impl Envelope {
    pub fn new(event: Event) -> Arc<Envelope> {
        Arc::new(Envelope {
            event,
            encoded: Default::default(),
        })
    }

    /// The bytes of this event in the wire format of `slot`, encoded by `encode` the first
    /// time any recipient asks. `encode` must depend on the event and slot only, never on
    /// the recipient, or recipients would see each other's encodings.
    pub fn encoded(&self, slot: usize, encode: impl FnOnce(&Event) -> Bytes) -> Bytes {
        self.encoded[slot].get_or_init(|| encode(&self.event)).clone()
    }

    /// A rough size in bytes, for bounding send queues before the event is encoded.
    pub fn approximate_size(&self) -> usize {
        const OVERHEAD: usize = 64;
        OVERHEAD
            + match &self.event {
                Event::Message(m) => m.text.len(),
                Event::Members { names, .. } => names.iter().map(|n| n.as_str().len() + 2).sum(),
                Event::Rooms { rooms } => rooms.iter().map(|r| r.name.as_str().len() + 8).sum(),
                Event::Parted {
                    reason: Some(r), ..
                } => r.len(),
                Event::Quit { reason, .. } => reason.len(),
                _ => 0,
            }
    }
}
