//! The chat state machine: who is online, which rooms exist, who is in them with which
//! rights, and where each event goes. It owns no sockets and knows no wire format.
//!
//! One [`Core`] state, its methods in parts by what they are about:
//! - this file: the state itself ([`Core`], `Client`, `Room`), its construction and
//!   settings, and the few helpers every part uses to hand events to mailboxes;
//! - `command`: the [`Command`]s a client sends and the one dispatch that sends each to
//!   its part;
//! - `messaging`: sending messages to rooms and users, in bursts too, and routing them
//!   to mailboxes: a new kind of message event lands here;
//! - `rooms`: joining, parting, member lists, topics, kicks and invitations;
//! - `modes`: room modes, operators and voice, and bans;
//! - `names`: registering and changing names, accounts and logins, guest names, WHOWAS,
//!   and the parties a name or client stands for;
//! - `users`: connections coming and going, user modes, away, WHOIS, WHO masks, KILL
//!   and the counts (LUSERS);
//! - `replica`: publishing local changes to the cluster and applying remote ones.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::{Ban, Envelope, Event, RoomModes, RoomRecord, Source, Topic};
use crate::mailbox::{Journal, Mailbox};
use crate::name::{Key, RoomName};

mod command;
mod messaging;
mod modes;
mod names;
mod replica;
mod rooms;
mod users;

pub use command::{Command, Recipient};
pub use replica::MAX_NODES;

use replica::Cluster;

/// The core's maps and sets: std's, with aHash instead of SipHash. Every command looks
/// up names and ids, and SipHash was a tenth of the time of a direct message; aHash is
/// several times faster on these short keys and still keyed at random per process, so
/// users choosing names cannot make them collide.
type Map<K, V> = HashMap<K, V, ahash::RandomState>;
type Set<K> = HashSet<K, ahash::RandomState>;

/// Identifies one connection for as long as it lasts; never reused within one core.
pub type ClientId = u64;

/// The longest topic, away message or kick reason kept, in bytes.
pub const MAX_TEXT_FIELD: usize = 390;
/// The most bans one room keeps.
pub const MAX_BANS: usize = 100;
/// How many past users WHOWAS remembers.
const WHOWAS_HISTORY: usize = 256;

/// Bounds the core enforces on what one user can make it hold. Zero means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreLimits {
    /// Rooms one user may be in at once.
    pub max_rooms_per_user: usize,
    /// Members one room may have, whatever its `+l` says.
    pub max_members_per_room: usize,
}

impl Default for CoreLimits {
    fn default() -> Self {
        CoreLimits {
            max_rooms_per_user: 50,
            max_members_per_room: 10_000,
        }
    }
}

/// Running totals of the core's traffic, for the server's metrics. Plain counters:
/// they change only under the same exclusive access as the rest of the core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages accepted from clients (to rooms, to users, stored for offline users).
    pub messages: u64,
    /// Copies of those messages put into recipients' mailboxes, echoes included.
    pub deliveries: u64,
}

/// One connected user. Every user the server holds pays for this struct, idle or not,
/// so what few users have (or have only until they register) lives in [`Rare`]: a
/// registered local user who is not away is 80 bytes with nothing beside it, where
/// all of it inline was 160.
struct Client<M> {
    /// `None` for a user of another node of the cluster: its home node delivers to it.
    mailbox: Option<M>,
    /// Present once registered; the name and prefix shown to others.
    source: Option<Arc<Source>>,
    /// Keys of the rooms this client is in, in the order joined.
    rooms: Vec<Key>,
    signon_ms: u64,
    last_spoke_ms: u64,
    /// Whether this client wants a copy of its own messages (IRC's echo-message).
    echo: bool,
    /// A server operator (IRC OPER).
    oper: bool,
    /// User mode `+i`: listed by a WHO mask only to those who share a room with it,
    /// and counted apart in LUSERS.
    invisible: bool,
    /// `None` when every field of it would be empty; see [`Client::tidy`].
    rare: Option<Box<Rare>>,
}

/// The parts of a [`Client`] that most registered users do not have.
#[derive(Default)]
struct Rare {
    /// The node a remote user is connected to; `None` for local clients.
    node: Option<Arc<str>>,
    away: Option<Arc<str>>,
    /// Until registration, the host, IRC user name and real name that then go into the
    /// client's `source` (which keeps them from then on).
    host: Option<Arc<str>>,
    user: Option<Arc<str>>,
    realname: Option<Arc<str>>,
    /// An account proven before the client registered a name (IRC SASL).
    pending_account: Option<Arc<str>>,
}

impl<M> Client<M> {
    fn new(mailbox: Option<M>, rare: Rare) -> Box<Client<M>> {
        let mut client = Box::new(Client {
            mailbox,
            source: None,
            rooms: Vec::new(),
            signon_ms: 0,
            last_spoke_ms: 0,
            echo: false,
            oper: false,
            invisible: false,
            rare: Some(Box::new(rare)),
        });
        client.tidy();
        client
    }

    /// The node a remote user is connected to; `None` for local clients.
    fn node(&self) -> Option<&Arc<str>> {
        self.rare.as_ref()?.node.as_ref()
    }

    fn away(&self) -> Option<&Arc<str>> {
        self.rare.as_ref()?.away.as_ref()
    }

    /// The rare part, made if the client had none; call [`Client::tidy`] after
    /// anything that may have emptied it.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_default()
    }

    /// Frees the rare part once nothing is left in it.
    fn tidy(&mut self) {
        if let Some(rare) = &self.rare {
            let Rare {
                node,
                away,
                host,
                user,
                realname,
                pending_account,
            } = &**rare;
            if node.is_none()
                && away.is_none()
                && host.is_none()
                && user.is_none()
                && realname.is_none()
                && pending_account.is_none()
            {
                self.rare = None;
            }
        }
    }
}

struct Member<M> {
    /// `None` for a member on another node, as in [`Client`].
    mailbox: Option<M>,
    op: bool,
    voice: bool,
}

struct Room<M> {
    name: RoomName,
    /// Members with their mailboxes, so that fan-out touches only this map and never
    /// looks each recipient up again.
    members: Map<ClientId, Member<M>>,
    topic: Option<Topic>,
    modes: RoomModes,
    bans: Vec<Ban>,
    /// Sessions ([`Source::session`]) invited past `+i` and bans; an invitation is used
    /// up by joining. Keyed by session, not name, so that it ends with the invited
    /// connection and never lets in the name's next holder.
    invited: Set<u64>,
    created_ms: u64,
    /// The account that created the room, if it was logged in: such rooms are kept.
    owner: Option<Arc<str>>,
    /// Accounts (folded) given operator status, restored when they join.
    op_accounts: BTreeSet<String>,
    /// Member ids sorted by name (folded), kept as members come, go and rename, so that
    /// the member list sent on every join needs no sort: sorting 19,000 names for each
    /// of 19,000 joins was most of the time it took to fill a room that big.
    order: Vec<ClientId>,
    /// In a cluster: this room has had members on other nodes, so its messages travel
    /// over the bus, which orders them for every node. It stays set while the room
    /// lives, so that a message sent over the bus is never overtaken by a later one
    /// delivered directly.
    bus: bool,
}

/// The whole chat: users, rooms, routing and presence.
///
/// Every method runs to completion without blocking; callers serialise access (the
/// server keeps it behind a mutex that is never held across an `.await`).
pub struct Core<M> {
    /// Boxed: a hash map keeps its values inline in a table kept up to half empty,
    /// and a client is a couple of hundred bytes, so the table cost more than the
    /// clients themselves.
    clients: Map<ClientId, Box<Client<M>>>,
    /// Registered names, folded, to their owners: the uniqueness rule lives here.
    names: Map<Key, ClientId>,
    rooms: Map<Key, Room<M>>,
    /// Users who left or renamed, newest last, for WHOWAS.
    whowas: VecDeque<Arc<Source>>,
    next_message_id: u64,
    /// Sessions are this plus the client's id: random per core, so that a session is
    /// never given again, after a restart or on another node (see [`Source::session`]).
    session_seed: u64,
    /// Records messages for history before they are delivered; none without history.
    journal: Option<Box<dyn Journal>>,
    /// Registered account names, folded: only their owners may use them.
    accounts: Set<Key>,
    /// The last guest number handed out.
    next_guest: u64,
    /// Kept state of rooms with a registered owner, by folded name.
    records: Map<Key, RoomRecord>,
    /// Rooms per user and members per room.
    limits: CoreLimits,
    stats: Stats,
    /// This node's place in a cluster, if it is in one.
    cluster: Option<Cluster>,
    /// The room everyone is put in (folded), shared by all: its first member is not
    /// its operator, and server operators run it instead.
    default_room: Option<Key>,
    /// The most users registered at once on this node and in all, for LUSERS.
    peak_local: usize,
    peak_global: usize,
}

/// The counts LUSERS reports, taken at one moment so that they agree with each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lusers {
    /// Registered users without `+i`, everywhere.
    pub visible: usize,
    /// Registered users with `+i`, everywhere.
    pub invisible: usize,
    pub opers: usize,
    /// Connections of this node that have not registered yet.
    pub unknown: usize,
    pub rooms: usize,
    /// Registered users of this node, and the most there have been.
    pub local: usize,
    pub max_local: usize,
    /// Registered users of the whole cluster (`visible + invisible`), and the most.
    pub global: usize,
    pub max_global: usize,
}

impl<M: Mailbox> Default for Core<M> {
    fn default() -> Self {
        Core {
            clients: Map::default(),
            names: Map::default(),
            rooms: Map::default(),
            whowas: VecDeque::new(),
            next_message_id: 1,
            session_seed: random_seed(),
            journal: None,
            accounts: Set::default(),
            next_guest: 0,
            records: Map::default(),
            limits: CoreLimits::default(),
            stats: Stats::default(),
            cluster: None,
            default_room: None,
            peak_local: 0,
            peak_global: 0,
        }
    }
}

/// A random number from the standard library's per-process hash keys, which come
/// from the operating system's random source: enough to keep sessions of different
/// processes apart without a dependency for it.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(u64::from(std::process::id()));
    hasher.finish()
}

fn reply<M: Mailbox>(client: &Client<M>, event: Event) {
    if let Some(mailbox) = &client.mailbox {
        mailbox.deliver(&Envelope::new(event));
    }
}

/// Hands `envelope` to a local mailbox; users of other nodes get it from their own.
fn post<M: Mailbox>(mailbox: &Option<M>, envelope: &Arc<Envelope>) {
    if let Some(mailbox) = mailbox {
        mailbox.deliver(envelope);
    }
}

fn clip(text: &str) -> Arc<str> {
    if text.len() <= MAX_TEXT_FIELD {
        return text.into();
    }
    let mut end = MAX_TEXT_FIELD;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].into()
}

/// Orders names as their folded keys would, without building the keys: member lists are
/// sorted on every join, and allocating a key per comparison made filling a big room
/// quadratic in allocations.
fn cmp_folded(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

impl<M: Mailbox> Core<M> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A core that records every message in `journal` and numbers messages after
    /// `last_id`, the highest id already recorded.
    pub fn with_journal(journal: Box<dyn Journal>, last_id: u64) -> Self {
        Core {
            journal: Some(journal),
            next_message_id: last_id + 1,
            ..Self::default()
        }
    }

    /// Sets the bounds on rooms per user and members per room. They apply to joins from
    /// now on; nobody already in a room is removed.
    pub fn set_limits(&mut self, limits: CoreLimits) {
        self.limits = limits;
    }

    /// Names the room every user is put in (`--default-room`). Everyone shares it, so
    /// whoever happens to create it gets no operator status and no ownership there (the
    /// first netcat user of the day could otherwise set its topic and kick the rest);
    /// server operators have operator rights in it instead, and are made its operators
    /// when they join it. Other rooms keep "the creator is operator".
    pub fn set_default_room(&mut self, name: &str) {
        let name = name.strip_prefix('#').unwrap_or(name);
        self.default_room = Some(Key::of(name));
    }

    /// The bounds in force.
    pub fn limits(&self) -> CoreLimits {
        self.limits
    }

    /// Traffic totals since the core was created.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn source(&self, id: ClientId) -> Arc<Source> {
        self.clients[&id].source.clone().expect("caller checked")
    }

    /// Delivers one envelope to the client and everyone sharing a room with it, once.
    fn tell_neighbours(&self, id: ClientId, envelope: &Arc<Envelope>, include_self: bool) {
        let client = &self.clients[&id];
        let mut told = Set::default();
        told.insert(id);
        if include_self {
            post(&client.mailbox, envelope);
        }
        for key in &client.rooms {
            for (member, m) in &self.rooms[key].members {
                if told.insert(*member) {
                    post(&m.mailbox, envelope);
                }
            }
        }
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod footprint {
    /// Every connected user has a `Client`: past 80 bytes it moves up one of the
    /// allocator's size classes, and idle memory per connection is a target of ours
    /// (docs/performance.md). It was 160 bytes before `Rare`.
    #[test]
    fn a_client_fits_in_80_bytes() {
        let size = std::mem::size_of::<super::Client<std::sync::Arc<()>>>();
        assert!(size <= 80, "Client is {size} bytes");
    }
}
