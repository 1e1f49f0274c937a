//! Protocol-neutral events: everything the core tells a client, and the envelope that
//! carries one event to all of its recipients with each wire encoding made only once.

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
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
    /// The "real name" IRC clients send with USER; the name itself elsewhere.
    pub realname: Arc<str>,
    /// The account the user is logged into, once accounts exist.
    pub account: Option<Arc<str>>,
    /// This connection's identity, never used for another: unlike the name, which the
    /// next holder takes over, it ends with the connection. State that must not follow
    /// a name to its next holder (an unregistered user's direct messages, invitations)
    /// is keyed by it. Nodes of a cluster pass it on; clients never see it.
    #[serde(default)]
    pub session: u64,
    /// The user marked themselves a bot (IRC user mode `+B`, the `bot` message tag).
    #[serde(default)]
    pub bot: bool,
}

impl Source {
    /// `nick!user@host`, as IRC prefixes and ban masks use it.
    pub fn mask(&self) -> String {
        format!("{}!{}@{}", self.name, self.user, self.host)
    }

    /// Who this user is for what they keep beyond the moment (direct-message history):
    /// their account when logged in (`a:alice`, folded), otherwise their connection
    /// (`s:` and the session in hex), so that nothing follows a name to its next holder.
    pub fn party(&self) -> String {
        match &self.account {
            Some(account) => account_party(account),
            None => self.session_party(),
        }
    }

    /// This connection's own party (`s:` and the session in hex), logged in or not:
    /// what it was sent before it logged in is filed under it.
    pub fn session_party(&self) -> String {
        format!("s:{:x}", self.session)
    }
}

/// The party ([`Source::party`]) of a registered account, logged in or not.
pub fn account_party(account: &str) -> String {
    format!("a:{}", crate::name::Key::of(account).as_str())
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
    /// Tags without text (IRC TAGMSG): only its client tags say anything, so it reaches
    /// only clients that read tags, and it is never stored.
    Tags,
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
    /// The sender's client-only tags (IRC `+name=value`), escaped and `;`-separated as
    /// they go on the wire, relayed as they came to recipients that read tags. One
    /// pointer when there are none, which is almost always; not stored in history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Arc<str>>,
}

/// A room as listed by `/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub name: RoomName,
    pub members: usize,
    pub topic: Option<Arc<str>>,
}

/// One member of a room, as member lists show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub who: Arc<Source>,
    /// A room operator (IRC `@`).
    pub op: bool,
    /// May speak in a moderated room (IRC `+`).
    pub voice: bool,
    pub away: bool,
    /// A server operator.
    pub oper: bool,
}

/// A room's topic and who set it when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub text: Arc<str>,
    /// The setter's `nick!user@host`.
    pub by: Arc<str>,
    pub time_ms: u64,
}

/// A room's settings. New rooms are `+nt`: only members talk, only operators set the
/// topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomModes {
    /// `+i`: joining needs an invitation.
    pub invite_only: bool,
    /// `+m`: only operators and voiced members may talk.
    pub moderated: bool,
    /// `+n`: only members may talk.
    pub no_external: bool,
    /// `+t`: only operators may set the topic.
    pub topic_ops: bool,
    /// `+s`: hidden from room lists and from non-members' queries.
    pub secret: bool,
    /// `+k`: the key needed to join.
    pub key: Option<Arc<str>>,
    /// `+l`: the most members allowed.
    pub limit: Option<usize>,
}

impl Default for RoomModes {
    fn default() -> Self {
        RoomModes {
            invite_only: false,
            moderated: false,
            no_external: true,
            topic_ops: true,
            secret: false,
            key: None,
            limit: None,
        }
    }
}

/// What is kept of a room that has a registered owner, so that it keeps its topic,
/// modes, bans and operators across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    pub name: RoomName,
    /// The account that created the room.
    pub owner: Arc<str>,
    pub topic: Option<Topic>,
    pub modes: RoomModes,
    pub bans: Vec<Ban>,
    /// Accounts (folded names) that are operators whenever they join.
    pub ops: Vec<String>,
    pub created_ms: u64,
}

/// One change of a room mode, requested or applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeChange {
    /// `+` when true, `-` when false.
    pub add: bool,
    pub mode: char,
    pub arg: Option<String>,
}

/// One entry of a room's ban list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// A `nick!user@host` glob.
    pub mask: Arc<str>,
    pub by: Arc<str>,
    pub time_ms: u64,
}

/// A user as WHOIS shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub who: Arc<Source>,
    /// Rooms the asker may see, with the user's prefix there (`@`, `+` or empty).
    pub rooms: Vec<(String, RoomName)>,
    pub away: Option<Arc<str>>,
    pub oper: bool,
    pub signon_ms: u64,
    pub idle_ms: u64,
}

/// A user as presence queries (IRC ISON, USERHOST, WHO nick) show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub who: Arc<Source>,
    pub away: bool,
    pub oper: bool,
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
    Joined {
        room: RoomName,
        who: Arc<Source>,
        /// The newest message id assigned before the join: what the joiner sees of the
        /// room's past (history shown on join) ends there, and live messages begin.
        #[serde(default)]
        history_until: u64,
        /// The joiner's away message, for those told of absences (IRC away-notify).
        #[serde(default)]
        away: Option<Arc<str>>,
    },
    /// `who` left `room`; sent to every member, the leaver included.
    Parted {
        room: RoomName,
        who: Arc<Source>,
        reason: Option<Arc<str>>,
    },
    /// `who` disconnected; sent once to everyone who shared a room with them.
    Quit { who: Arc<Source>, reason: Arc<str> },
    /// `old` is now called `new`; sent to the user and everyone sharing a room.
    NickChanged { old: Arc<Source>, new: Name },
    /// Reply: the members of `room`, sorted by name.
    Members {
        room: RoomName,
        members: Vec<MemberInfo>,
    },
    /// Reply: every room the asker may see, sorted by name.
    Rooms { rooms: Vec<RoomSummary> },
    /// Someone set (or, with empty text, cleared) a room's topic; sent to every member.
    TopicChanged {
        room: RoomName,
        by: Arc<Source>,
        text: Arc<str>,
    },
    /// Reply: a room's topic, if it has one.
    TopicIs {
        room: RoomName,
        topic: Option<Topic>,
    },
    /// Room modes changed; sent to every member.
    ModeChanged {
        room: RoomName,
        by: Arc<Source>,
        changes: Vec<ModeChange>,
    },
    /// Reply: a room's modes.
    RoomModes {
        room: RoomName,
        modes: RoomModes,
        created_ms: u64,
    },
    /// Reply: a room's ban list.
    BanList { room: RoomName, bans: Vec<Ban> },
    /// `target` was removed from `room` by `by`; sent to every member, the target too.
    Kicked {
        room: RoomName,
        by: Arc<Source>,
        target: Name,
        reason: Arc<str>,
    },
    /// To the invited user: `by` invites you to `room`.
    Invited { room: RoomName, by: Arc<Source> },
    /// Reply: the invitation to `target` was sent.
    InviteSent { room: RoomName, target: Name },
    /// Someone went away (with a message) or came back (`None`); sent to everyone
    /// sharing a room with them.
    AwayChanged {
        who: Arc<Source>,
        message: Option<Arc<str>>,
    },
    /// Reply: you are now away (true) or back (false).
    AwayStatus { away: bool },
    /// Reply after a direct message: its recipient is away.
    RecipientAway { name: Name, message: Arc<str> },
    /// Reply: who someone is.
    UserInfo(UserInfo),
    /// Reply: who used a name before, newest first.
    WasUser { entries: Vec<Arc<Source>> },
    /// Reply: which of the asked-for users are online.
    Presence { users: Vec<UserSummary> },
    /// To a user a server operator removed: the connection must close.
    Killed { by: Arc<Source>, reason: Arc<str> },
    /// Reply: you are logged into `account` (and now use its name).
    LoggedIn { account: Name },
    /// Reply: the name you took is a registered account; log in within the grace
    /// period or be renamed.
    LoginRequired { name: Name },
    /// Reply: `name` is offline; your direct message was stored for their next login.
    StoredForLater { name: Name },
}

/// How many distinct encodings an envelope can cache: one slot per wire format variant.
pub const ENCODING_SLOTS: usize = 6;

/// The encoding slots, one per wire format variant, kept here so that no two front-ends
/// ever share one by accident.
pub mod slot {
    /// The line protocol.
    pub const LINE: usize = 0;
    /// An IRC line without tags.
    pub const IRC: usize = 1;
    /// The tag prefix for IRC clients with server-time only.
    pub const IRC_TIME_TAG: usize = 2;
    /// The web front-end's JSON.
    pub const WEB: usize = 3;
    /// The tag prefix for IRC clients with message-tags.
    pub const IRC_ALL_TAGS: usize = 4;
    /// IRC lines for clients with extended-join.
    pub const IRC_EXTENDED: usize = 5;
}

/// One event on its way to all of its recipients.
///
/// The core builds one envelope per event and hands every recipient's mailbox a clone of
/// the same `Arc`; the first session of each wire format that needs the bytes encodes
/// them into its slot, and every other session of that format reuses them. That keeps
/// fan-out to N recipients at one encoding and N reference-count increments.
#[derive(Debug)]
pub struct Envelope {
    pub event: Event,
    /// The event came over the cluster bus. Its origin made it durable before
    /// publishing it, so the local durability watermark does not hold it back.
    pub from_bus: bool,
    encoded: [OnceLock<Bytes>; ENCODING_SLOTS],
}

impl Envelope {
    pub fn new(event: Event) -> Arc<Envelope> {
        Arc::new(Envelope {
            event,
            from_bus: false,
            encoded: Default::default(),
        })
    }

    /// An envelope for an event that arrived from another node (see `from_bus`).
    pub fn from_bus(event: Event) -> Arc<Envelope> {
        Arc::new(Envelope {
            event,
            from_bus: true,
            encoded: Default::default(),
        })
    }

    /// The bytes of this event in the wire format of `slot`, encoded by `encode` the first
    /// time any recipient asks. `encode` must depend on the event and slot only, never on
    /// the recipient, or recipients would see each other's encodings.
    ///
    /// An envelope with a single holder (a direct message, a reply) is encoded without
    /// caching: nobody else can ask for the bytes, and keeping them would only cost a
    /// second reference count and, for `Bytes`, an allocation to share them.
    pub fn encoded(self: &Arc<Self>, slot: usize, encode: impl FnOnce(&Event) -> Bytes) -> Bytes {
        if Arc::strong_count(self) == 1 {
            if let Some(bytes) = self.encoded[slot].get() {
                return bytes.clone();
            }
            return encode(&self.event);
        }
        self.encoded[slot]
            .get_or_init(|| encode(&self.event))
            .clone()
    }

    /// A rough size in bytes, for bounding send queues before the event is encoded.
    pub fn approximate_size(&self) -> usize {
        const OVERHEAD: usize = 64;
        OVERHEAD
            + match &self.event {
                Event::Message(m) => m.text.len() + m.tags.as_ref().map_or(0, |t| t.len()),
                Event::Members { members, .. } => members.len() * 48,
                Event::Rooms { rooms } => rooms.iter().map(|r| r.name.as_str().len() + 8).sum(),
                Event::Parted {
                    reason: Some(r), ..
                } => r.len(),
                Event::Quit { reason, .. } => reason.len(),
                _ => 0,
            }
    }
}

/// Several messages from one sender to one room or user, accepted together (one read of
/// the sender's input) and handed to each recipient as one item.
///
/// Fan-out was one mailbox push, one wake-up check, one encoding lookup and one write
/// slice per message per recipient; a client that sends in bursts (and every busy one
/// does) paid that for each line. A batch makes it once per burst per recipient, as a
/// relay that forwards whole reads does, and its encodings are one contiguous buffer per
/// wire format, so a recipient's write is a single slice.
#[derive(Debug)]
pub struct Batch {
    /// Each message's own envelope, in order, for front-ends that render messages one by
    /// one (and whose per-message encodings are shared as usual).
    pub messages: Vec<Arc<Envelope>>,
    encoded: [OnceLock<Bytes>; ENCODING_SLOTS],
    /// Worked out once: every recipient asks, and walking the messages each time was a
    /// tenth of a fan-out's time.
    last_id: u64,
    size: usize,
}

impl Batch {
    /// A batch of `messages`, which must all be [`Event::Message`]s.
    pub fn new(messages: Vec<Arc<Envelope>>) -> Arc<Batch> {
        debug_assert!(messages
            .iter()
            .all(|m| matches!(m.event, Event::Message(_))));
        let last_id = messages
            .iter()
            .filter_map(|e| match &e.event {
                Event::Message(m) => Some(m.id),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let size = messages.iter().map(|e| e.approximate_size()).sum();
        Arc::new(Batch {
            messages,
            encoded: Default::default(),
            last_id,
            size,
        })
    }

    /// The messages, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Message> {
        self.messages.iter().filter_map(|e| match &e.event {
            Event::Message(m) => Some(m),
            _ => None,
        })
    }

    /// The newest message id in the batch.
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// Every message's bytes in the wire format of `slot`, one after another, written by
    /// `put` the first time a recipient of that format asks. As with
    /// [`Envelope::encoded`], `put` must depend on the message and slot only.
    pub fn encoded(self: &Arc<Self>, slot: usize, put: impl Fn(&mut BytesMut, &Message)) -> Bytes {
        let encode = || {
            let size: usize = self.iter().map(|m| m.text.len() + 64).sum();
            let mut out = BytesMut::with_capacity(size);
            for message in self.iter() {
                put(&mut out, message);
            }
            out.freeze()
        };
        if Arc::strong_count(self) == 1 {
            return self.encoded[slot].get().cloned().unwrap_or_else(encode);
        }
        self.encoded[slot].get_or_init(encode).clone()
    }

    /// A rough size in bytes, for bounding send queues.
    pub fn approximate_size(&self) -> usize {
        self.size
    }
}
