//! The chat state machine: who is online, which rooms exist, who is in them with which
//! rights, and where each event goes. It owns no sockets and knows no wire format.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::ChatError;
use crate::event::{
    Ban, Batch, Envelope, Event, MemberInfo, Message, MessageKind, ModeChange, RoomModes,
    RoomRecord, RoomSummary, Source, Target, Topic, UserInfo, UserSummary,
};
use crate::mailbox::{Journal, Mailbox};
use crate::name::{with_folded, Key, Name, RoomName};

mod replica;

pub use replica::MAX_NODES;

use crate::cluster::{Replica, Route};
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

/// Where a [`Command::Send`] goes, as the user wrote it (validated by the core).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recipient {
    Room(String),
    User(String),
}

/// What a client asks the core to do. Every command's outcome arrives as events in the
/// client's own mailbox, in order with everything else it receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Register {
        name: String,
    },
    Nick {
        name: String,
    },
    Join {
        room: String,
        key: Option<String>,
    },
    Part {
        room: String,
        reason: Option<String>,
    },
    Send {
        to: Recipient,
        kind: MessageKind,
        text: String,
        /// Client-only tags to relay with the message (see [`Message::tags`]).
        #[serde(default)]
        tags: Option<Arc<str>>,
    },
    /// Several messages to one recipient, as one read of a client's input brought them:
    /// the same as a `Send` for each, in order, but delivered as one [`Batch`].
    SendMany {
        to: Recipient,
        kind: MessageKind,
        texts: Vec<String>,
    },
    Rooms,
    Who {
        room: String,
    },
    /// Query (`None`) or set a room's topic.
    Topic {
        room: String,
        text: Option<String>,
    },
    /// Query (no changes) or change a room's modes.
    Mode {
        room: String,
        changes: Vec<ModeChange>,
    },
    Kick {
        room: String,
        name: String,
        reason: Option<String>,
    },
    Invite {
        name: String,
        room: String,
    },
    /// Go away with a message, or come back with `None`.
    Away {
        message: Option<String>,
    },
    Whois {
        name: String,
    },
    WhoWas {
        name: String,
    },
    /// Which of these users are online.
    Lookup {
        names: Vec<String>,
    },
    /// Users whose nick, user name, host or real name match an IRC mask (`*`, `?`):
    /// the visible ones, and invisible ones who share a room with the asker.
    WhoMask {
        mask: String,
    },
    /// Remove a user from the server; server operators only.
    Kill {
        name: String,
        reason: String,
    },
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

impl<M> Room<M> {
    fn is_op(&self, id: ClientId) -> bool {
        self.members.get(&id).is_some_and(|m| m.op)
    }

    fn is_banned(&self, source: &Source) -> bool {
        if self.bans.is_empty() {
            return false;
        }
        let mask = source.mask();
        self.bans.iter().any(|ban| confab_glob(&ban.mask, &mask))
    }

    /// Whether client `id` (who is `from`) may send messages here: members unless the
    /// room is moderated or they are banned (operators and voiced members always),
    /// outsiders only into a `-n` room that does not ban them.
    fn may_speak(&self, id: ClientId, from: &Source) -> bool {
        match self.members.get(&id) {
            None => !self.modes.no_external && !self.is_banned(from),
            Some(m) => m.op || m.voice || !(self.modes.moderated || self.is_banned(from)),
        }
    }
}

/// Checks a message text: not empty, and no character that would end or corrupt a
/// line on some front-end.
fn check_text(text: &str) -> Result<(), ChatError> {
    if text.is_empty() {
        return Err(ChatError::EmptyMessage);
    }
    if text.bytes().any(|b| matches!(b, b'\0' | b'\r' | b'\n')) {
        return Err(ChatError::ControlCharacter);
    }
    Ok(())
}

/// Glob matching for ban masks, ASCII case-insensitive, `*` and `?`. Iterative with one
/// backtrack point, so no mask can make it slow.
fn confab_glob(mask: &str, subject: &str) -> bool {
    let (m, s) = (mask.as_bytes(), subject.as_bytes());
    let (mut mi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if mi < m.len() && (m[mi] == b'?' || m[mi].eq_ignore_ascii_case(&s[si])) {
            mi += 1;
            si += 1;
        } else if mi < m.len() && m[mi] == b'*' {
            star = Some((mi, si));
            mi += 1;
        } else if let Some((star_m, star_s)) = star {
            mi = star_m + 1;
            si = star_s + 1;
            star = Some((star_m, star_s + 1));
        } else {
            return false;
        }
    }
    m[mi..].iter().all(|&c| c == b'*')
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

fn parse_room(wanted: &str) -> Result<RoomName, ChatError> {
    RoomName::parse(wanted).map_err(|reason| ChatError::InvalidRoom {
        name: wanted.to_string(),
        reason,
    })
}

/// Orders names as their folded keys would, without building the keys: member lists are
/// sorted on every join, and allocating a key per comparison made filling a big room
/// quadratic in allocations.
fn cmp_folded(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// Takes `id` out of a room's name order.
fn unorder<M>(room: &mut Room<M>, id: ClientId) {
    if let Some(at) = room.order.iter().position(|&other| other == id) {
        room.order.remove(at);
    }
}

/// A ban mask in full `nick!user@host` form: `bob` means `bob!*@*`, `*@host` means
/// `*!*@host`.
fn normalize_mask(mask: &str) -> String {
    match (mask.contains('!'), mask.contains('@')) {
        (true, true) => mask.to_string(),
        (true, false) => format!("{mask}@*"),
        (false, true) => format!("*!{mask}"),
        (false, false) => format!("{mask}!*@*"),
    }
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

    /// Whether `id` is a server operator and `key` the default room, which server
    /// operators run whether or not they hold operator status in it.
    fn runs_default_room(&self, key: &Key, id: ClientId) -> bool {
        self.default_room.as_ref() == Some(key) && self.clients.get(&id).is_some_and(|c| c.oper)
    }

    /// The bounds in force.
    pub fn limits(&self) -> CoreLimits {
        self.limits
    }

    /// Traffic totals since the core was created.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Adds a connection that has not registered yet. `host` is what others will see as
    /// its address.
    pub fn connect(&mut self, id: ClientId, mailbox: M, host: &str) {
        let rare = Rare {
            host: Some(host.into()),
            ..Rare::default()
        };
        self.clients.insert(id, Client::new(Some(mailbox), rare));
    }

    /// Sets the IRC user name and real name shown once the client registers.
    pub fn set_identity(&mut self, id: ClientId, user: &str, realname: &str) {
        if let Some(client) = self.clients.get_mut(&id) {
            let rare = client.rare();
            rare.user = Some(user.into());
            rare.realname = Some(clip(realname));
        }
    }

    /// Makes a client a server operator; the front-end checked the credentials.
    pub fn set_oper(&mut self, id: ClientId, on: bool) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.oper = on;
        }
    }

    /// Sets user mode `+i` (invisible) for one client.
    pub fn set_invisible(&mut self, id: ClientId, on: bool) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.invisible = on;
        }
    }

    /// Removes a connection, telling everyone who shared a room with it.
    pub fn disconnect(&mut self, id: ClientId, reason: &str) {
        let local = self.clients.get(&id).is_some_and(|c| c.node().is_none());
        if self.remove_client(id, reason) && local {
            self.publish(
                Replica::UserOff {
                    id,
                    reason: clip(reason),
                },
                Route::Everyone,
            );
        }
    }

    /// Takes a client out of everything; `true` when it was registered.
    fn remove_client(&mut self, id: ClientId, reason: &str) -> bool {
        let Some(client) = self.clients.remove(&id) else {
            return false;
        };
        let Some(source) = client.source else {
            return false;
        };
        self.names.remove(&source.name.key());
        self.remember(source.clone());
        let envelope = Envelope::new(Event::Quit {
            who: source,
            reason: clip(reason),
        });
        let mut told = Set::default();
        for key in &client.rooms {
            let Some(room) = self.rooms.get_mut(key) else {
                continue;
            };
            room.members.remove(&id);
            unorder(room, id);
            for (member, m) in &room.members {
                if told.insert(*member) {
                    post(&m.mailbox, &envelope);
                }
            }
            if room.members.is_empty() {
                self.rooms.remove(key);
            }
        }
        true
    }

    fn remember(&mut self, source: Arc<Source>) {
        if self.whowas.len() == WHOWAS_HISTORY {
            self.whowas.pop_front();
        }
        self.whowas.push_back(source);
    }

    /// Marks a registered client as a bot or not (IRC user mode `+B`): its messages
    /// then carry the `bot` tag, and WHO and WHOIS say so.
    pub fn set_bot(&mut self, id: ClientId, on: bool) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let Some(source) = client.source.as_mut().filter(|s| s.bot != on) else {
            return;
        };
        Arc::make_mut(source).bot = on;
        // Other nodes take the new source as they take a rename to the same name.
        let source = source.clone();
        if client.node().is_none() {
            self.publish(Replica::Renamed { id, source }, Route::Everyone);
        }
    }

    /// Turns IRC's echo-message on or off for one client.
    pub fn set_echo(&mut self, id: ClientId, on: bool) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.echo = on;
        }
    }

    /// The name and prefix of client `id`, once it has registered.
    pub fn source_of(&self, id: ClientId) -> Option<Arc<Source>> {
        self.clients.get(&id)?.source.clone()
    }

    /// The registered name of a client, if any.
    pub fn name_of(&self, id: ClientId) -> Option<&Name> {
        self.clients.get(&id)?.source.as_ref().map(|s| &s.name)
    }

    /// Client `id`'s party ([`Source::party`]): whose direct conversations it reads.
    pub fn party_of(&self, id: ClientId) -> Option<String> {
        Some(self.clients.get(&id)?.source.as_ref()?.party())
    }

    /// Every party client `id` speaks for: its account when logged in, and its own
    /// session (what reached it before it logged in).
    pub fn parties_of(&self, id: ClientId) -> Vec<String> {
        let Some(source) = self.clients.get(&id).and_then(|c| c.source.as_ref()) else {
            return Vec::new();
        };
        let mut parties = vec![source.session_party()];
        if source.account.is_some() {
            parties.push(source.party());
        }
        parties
    }

    /// The parties `name` stands for now: the user holding it, and the account of that
    /// name if there is one. An earlier holder of the name who was not logged in is
    /// not among them: nobody reaches them by the name any more.
    pub fn parties_named(&self, name: &str) -> Vec<String> {
        let mut parties = Vec::new();
        if let Some(id) = with_folded(name, |k| self.names.get(k)) {
            parties.extend(self.party_of(*id));
        }
        let account = crate::event::account_party(name);
        if self.accounts.contains(&Key::of(name)) && !parties.contains(&account) {
            parties.push(account);
        }
        parties
    }

    /// The name a party goes by now: an account's name, or the name of the connected
    /// user whose session it is; `None` for a session that ended.
    pub fn name_of_party(&self, party: &str) -> Option<Name> {
        if let Some(account) = party.strip_prefix("a:") {
            return Name::parse(account).ok();
        }
        let session = u64::from_str_radix(party.strip_prefix("s:")?, 16).ok()?;
        // A scan, but only for CHATHISTORY TARGETS, a rare request; an index of
        // sessions would cost every connection memory for it.
        self.clients
            .values()
            .filter_map(|c| c.source.as_ref())
            .find(|s| s.session == session)
            .map(|s| s.name.clone())
    }

    /// Whether someone is registered under `name` (ignoring case).
    pub fn is_online(&self, name: &str) -> bool {
        self.names.contains_key(&Key::of(name))
    }

    /// How many clients are connected, registered or not.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Calls `f` with the mailbox of every client of this node (to wake them all at
    /// shutdown, say).
    pub fn each_local_mailbox(&self, mut f: impl FnMut(&M)) {
        for client in self.clients.values() {
            if let Some(mailbox) = &client.mailbox {
                f(mailbox);
            }
        }
    }

    /// How many clients are registered.
    pub fn user_count(&self) -> usize {
        self.names.len()
    }

    /// How many registered clients are server operators.
    pub fn oper_count(&self) -> usize {
        self.clients.values().filter(|c| c.oper).count()
    }

    /// How many rooms exist.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Whether a room is secret (`+s`), for the channel type in IRC's NAMES reply.
    pub fn is_secret(&self, room: &str) -> bool {
        self.rooms
            .get(&Key::of(room))
            .is_some_and(|room| room.modes.secret)
    }

    /// The LUSERS counts. Users of other nodes count as visible: `+i` is not shared.
    pub fn lusers(&self) -> Lusers {
        let mut counts = Lusers {
            rooms: self.rooms.len(),
            ..Lusers::default()
        };
        for client in self.clients.values() {
            let local = client.node().is_none();
            if client.source.is_none() {
                counts.unknown += usize::from(local);
                continue;
            }
            counts.global += 1;
            counts.local += usize::from(local);
            counts.opers += usize::from(client.oper);
            if client.invisible {
                counts.invisible += 1;
            } else {
                counts.visible += 1;
            }
        }
        counts.max_local = self.peak_local.max(counts.local);
        counts.max_global = self.peak_global.max(counts.global);
        counts
    }

    /// Carries out one command from client `id`; `now_ms` stamps what it changes.
    pub fn handle(&mut self, id: ClientId, command: Command, now_ms: u64) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let result = match (&client.source, command) {
            (None, Command::Register { name }) => self.register(id, &name, now_ms),
            (Some(source), Command::Register { .. }) => {
                Err(ChatError::AlreadyRegistered(source.name.clone()))
            }
            (None, _) => Err(ChatError::NotRegistered),
            (Some(_), command) => self.registered(id, command, now_ms),
        };
        if let Err(error) = result {
            if let Some(client) = self.clients.get(&id) {
                reply(client, Event::Error(error));
            }
        }
    }

    fn registered(&mut self, id: ClientId, command: Command, now: u64) -> Result<(), ChatError> {
        match command {
            Command::Register { .. } => unreachable!("handled by the caller"),
            Command::Nick { name } => self.nick(id, &name),
            Command::Join { room, key } => self.join(id, &room, key.as_deref(), now),
            Command::Part { room, reason } => self.part(id, &room, reason),
            Command::Send {
                to,
                kind,
                text,
                tags,
            } => self.send(id, to, kind, text, tags, now),
            Command::SendMany { to, kind, texts } => {
                self.send_many(id, to, kind, texts, now);
                Ok(())
            }
            Command::Rooms => {
                self.rooms_reply(id);
                Ok(())
            }
            Command::Who { room } => self.who(id, &room),
            Command::Topic { room, text } => self.topic(id, &room, text, now),
            Command::Mode { room, changes } => self.mode(id, &room, changes, now),
            Command::Kick { room, name, reason } => self.kick(id, &room, &name, reason),
            Command::Invite { name, room } => self.invite(id, &name, &room),
            Command::Away { message } => {
                self.away(id, message);
                Ok(())
            }
            Command::Whois { name } => self.whois(id, &name, now),
            Command::WhoWas { name } => self.whowas_reply(id, &name),
            Command::Lookup { names } => {
                self.lookup(id, &names);
                Ok(())
            }
            Command::WhoMask { mask } => {
                self.who_mask(id, &mask);
                Ok(())
            }
            Command::Kill { name, reason } => self.kill(id, &name, &reason),
        }
    }

    fn source(&self, id: ClientId) -> Arc<Source> {
        self.clients[&id].source.clone().expect("caller checked")
    }

    fn claim_name(&self, wanted: &str) -> Result<Name, ChatError> {
        let name = Name::parse(wanted).map_err(|reason| ChatError::InvalidName {
            name: wanted.to_string(),
            reason,
        })?;
        // NickServ is the name of the IRC front-end's account service.
        if self.names.contains_key(&name.key()) || name.key().as_str() == "nickserv" {
            return Err(ChatError::NameInUse(name.to_string()));
        }
        Ok(name)
    }

    fn register(&mut self, id: ClientId, wanted: &str, now: u64) -> Result<(), ChatError> {
        let name = self.claim_name(wanted)?;
        self.names.insert(name.key(), id);
        let protected = self.accounts.contains(&name.key());
        let client = self.clients.get_mut(&id).expect("caller checked");
        let rare = client.rare();
        let account = rare.pending_account.take();
        let host = rare.host.take().unwrap_or_else(|| "unknown".into());
        let user = rare.user.take();
        let realname = rare.realname.take();
        client.tidy();
        let owns = account.as_deref().map(Key::of) == Some(name.key());
        client.signon_ms = now;
        client.last_spoke_ms = now;
        client.source = Some(Arc::new(Source {
            name: name.clone(),
            user: user.unwrap_or_else(|| name.as_str().into()),
            host,
            realname: realname.unwrap_or_else(|| name.as_str().into()),
            account: account.clone(),
            session: self.session_seed.wrapping_add(id),
            bot: false,
        }));
        reply(client, Event::Registered { name: name.clone() });
        let counts = self.lusers();
        self.peak_local = counts.max_local;
        self.peak_global = counts.max_global;
        let client = &self.clients[&id];
        if protected && !owns {
            reply(client, Event::LoginRequired { name });
        }
        self.publish_user(id);
        Ok(())
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

    fn nick(&mut self, id: ClientId, wanted: &str) -> Result<(), ChatError> {
        let old = self.source(id);
        // A change of case only is allowed: the key stays the same and stays ours.
        let name = if Key::of(wanted) == old.name.key() {
            Name::parse(wanted).map_err(|reason| ChatError::InvalidName {
                name: wanted.to_string(),
                reason,
            })?
        } else {
            self.claim_name(wanted)?
        };
        if self.accounts.contains(&name.key())
            && old.account.as_deref().map(Key::of) != Some(name.key())
        {
            return Err(ChatError::NameRegistered(name.to_string()));
        }
        self.rename(id, name);
        Ok(())
    }

    /// Gives client `id` the (free) name `name` and tells everyone concerned.
    fn rename(&mut self, id: ClientId, name: Name) {
        let old = self.source(id);
        if name == old.name {
            return;
        }
        self.names.remove(&old.name.key());
        self.names.insert(name.key(), id);
        self.remember(old.clone());
        let client = self.clients.get_mut(&id).expect("caller checked");
        client.source = Some(Arc::new(Source {
            name: name.clone(),
            ..(*old).clone()
        }));
        self.reorder(id);
        let envelope = Envelope::new(Event::NickChanged { old, new: name });
        self.tell_neighbours(id, &envelope, true);
        if self.clients[&id].node().is_none() {
            let source = self.source(id);
            self.publish(Replica::Renamed { id, source }, Route::Everyone);
        }
    }

    /// A free `GuestN` name.
    fn guest_name(&mut self) -> Name {
        loop {
            self.next_guest += 1;
            let name = Name::parse(&format!("Guest{}", self.next_guest)).expect("valid name");
            if !self.names.contains_key(&name.key()) && !self.accounts.contains(&name.key()) {
                return name;
            }
        }
    }

    /// Restores a kept room at startup; it comes back when someone joins it.
    pub fn restore_room(&mut self, record: RoomRecord) {
        self.records.insert(record.name.key(), record);
    }

    /// Writes an owned room's state to the journal.
    fn persist(&mut self, key: &Key) {
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let Some(owner) = room.owner.clone() else {
            return;
        };
        let record = RoomRecord {
            name: room.name.clone(),
            owner,
            topic: room.topic.clone(),
            modes: room.modes.clone(),
            bans: room.bans.clone(),
            ops: room.op_accounts.iter().cloned().collect(),
            created_ms: room.created_ms,
        };
        if let Some(journal) = &self.journal {
            journal.save_room(&record);
        }
        self.records.insert(key.clone(), record);
    }

    /// Marks `name` as a registered account: from now on only its owner may use it.
    pub fn add_account(&mut self, name: &str) {
        if self.accounts.insert(Key::of(name)) {
            let name = name.to_string();
            self.publish(Replica::Account { name }, Route::Everyone);
        }
    }

    /// Whether `name` is a registered account.
    pub fn is_account(&self, name: &str) -> bool {
        self.accounts.contains(&Key::of(name))
    }

    /// The account client `id` is logged into.
    pub fn account_of(&self, id: ClientId) -> Option<Arc<str>> {
        self.clients.get(&id)?.source.as_ref()?.account.clone()
    }

    /// Client `id` proved it owns `account` (the front-end checked the password). A
    /// registered client is renamed to the account's name if needed; one that has not
    /// registered yet takes the name now when `register` says so, and otherwise keeps
    /// the account for when it registers (IRC SASL). An unauthenticated client holding
    /// the name is renamed to a guest name first.
    pub fn logged_in(
        &mut self,
        id: ClientId,
        account: &str,
        register: bool,
        now_ms: u64,
    ) -> Result<(), ChatError> {
        let name = Name::parse(account).map_err(|reason| ChatError::InvalidName {
            name: account.to_string(),
            reason,
        })?;
        if !self.clients.contains_key(&id) {
            return Ok(());
        }
        if let Some(&holder) = self.names.get(&name.key()) {
            // A holder on another node can only be renamed by its own node, which will
            // do so when its login grace runs out.
            if holder != id && self.clients[&holder].node().is_some() {
                return Err(ChatError::NameInUse(name.to_string()));
            }
            if holder != id {
                if self
                    .account_of(holder)
                    .is_some_and(|a| Key::of(&a) == name.key())
                {
                    return Err(ChatError::AlreadyLoggedIn(name.to_string()));
                }
                let guest = self.guest_name();
                self.rename(holder, guest);
                reply(
                    &self.clients[&holder],
                    Event::Error(ChatError::NameRegistered(name.to_string())),
                );
            }
        }
        let client = self.clients.get_mut(&id).expect("checked above");
        let Some(old) = client.source.clone() else {
            client.rare().pending_account = Some(name.as_str().into());
            reply(
                client,
                Event::LoggedIn {
                    account: name.clone(),
                },
            );
            if register {
                return self.register(id, name.as_str(), now_ms);
            }
            return Ok(());
        };
        client.source = Some(Arc::new(Source {
            account: Some(name.as_str().into()),
            ..(*old).clone()
        }));
        self.rename(id, name.clone());
        reply(&self.clients[&id], Event::LoggedIn { account: name });
        Ok(())
    }

    /// The login grace period of client `id` ran out: if it still uses a registered
    /// name it does not own, it becomes a guest.
    pub fn enforce_login(&mut self, id: ClientId) {
        let Some(source) = self.clients.get(&id).and_then(|c| c.source.clone()) else {
            return;
        };
        let owned = source.account.as_deref().map(Key::of) == Some(source.name.key());
        if self.accounts.contains(&source.name.key()) && !owned {
            let guest = self.guest_name();
            self.rename(id, guest);
            reply(
                &self.clients[&id],
                Event::Error(ChatError::NameRegistered(source.name.to_string())),
            );
        }
    }

    fn join(
        &mut self,
        id: ClientId,
        wanted: &str,
        key: Option<&str>,
        now: u64,
    ) -> Result<(), ChatError> {
        let name = parse_room(wanted)?;
        let room_key = name.key();
        let client = self.clients.get_mut(&id).expect("caller checked");
        let source = client.source.clone().expect("caller checked");
        let existing = self.rooms.get(&room_key);
        let member = existing.is_some_and(|room| room.members.contains_key(&id));
        // Checked before the room is created, so that a refusal leaves no empty room.
        let max_rooms = self.limits.max_rooms_per_user;
        if !member && max_rooms > 0 && client.rooms.len() >= max_rooms {
            return Err(ChatError::TooManyRooms {
                room: existing.map_or_else(|| name.to_string(), |room| room.name.to_string()),
                limit: max_rooms,
            });
        }
        let fresh = existing.is_none();
        let default = self.default_room.as_ref() == Some(&room_key);
        let oper = client.oper;
        let max_members = self.limits.max_members_per_room;
        let account = source
            .account
            .as_deref()
            .map(|a| Key::of(a).as_str().to_string());
        let record = self.records.get(&room_key).cloned();
        let room = self
            .rooms
            .entry(room_key.clone())
            .or_insert_with(|| match record {
                Some(record) => Room {
                    name: record.name,
                    members: Map::default(),
                    topic: record.topic,
                    modes: record.modes,
                    bans: record.bans,
                    invited: Set::default(),
                    created_ms: record.created_ms,
                    owner: Some(record.owner),
                    op_accounts: record.ops.into_iter().collect(),
                    order: Vec::new(),
                    bus: false,
                },
                None => Room {
                    name,
                    members: Map::default(),
                    topic: None,
                    modes: RoomModes::default(),
                    bans: Vec::new(),
                    invited: Set::default(),
                    created_ms: now,
                    // A logged-in creator owns the room, and the room is kept; nobody
                    // owns the default room.
                    owner: source.account.clone().filter(|_| !default),
                    op_accounts: account.iter().filter(|_| !default).cloned().collect(),
                    order: Vec::new(),
                    bus: false,
                },
            });
        // In a kept room, operator status belongs to accounts; elsewhere to whoever
        // created the room.
        let op = match &room.owner {
            // In the default room only server operators are operators, whatever an
            // older record of the room says.
            _ if default => oper,
            Some(_) => account
                .as_ref()
                .is_some_and(|a| room.op_accounts.contains(a)),
            None => fresh,
        };
        let save = fresh && room.owner.is_some();
        let room_name = room.name.clone();
        if room.members.contains_key(&id) {
            return self.who(id, room_name.as_str());
        }
        let invited = room.invited.contains(&source.session);
        let refusal = if room.is_banned(&source) && !invited {
            Some(ChatError::Banned(room_name.to_string()))
        } else if room.modes.invite_only && !invited {
            Some(ChatError::InviteOnly(room_name.to_string()))
        } else if room.modes.key.as_deref().is_some_and(|k| Some(k) != key) {
            Some(ChatError::BadKey(room_name.to_string()))
        } else if room.modes.limit.is_some_and(|l| room.members.len() >= l) {
            Some(ChatError::RoomFull(room_name.to_string()))
        } else if max_members > 0 && room.members.len() >= max_members {
            Some(ChatError::TooManyMembers {
                room: room_name.to_string(),
                limit: max_members,
            })
        } else {
            None
        };
        if let Some(error) = refusal {
            return Err(error);
        }
        room.invited.remove(&source.session);
        room.members.insert(
            id,
            Member {
                mailbox: client.mailbox.clone(),
                op,
                voice: false,
            },
        );
        client.rooms.push(room_key.clone());
        room.bus |= room.members.values().any(|m| m.mailbox.is_none());
        let envelope = Envelope::new(Event::Joined {
            room: room_name.clone(),
            who: source,
            history_until: self.next_message_id - 1,
            away: client.away().cloned(),
        });
        for m in room.members.values() {
            post(&m.mailbox, &envelope);
        }
        if room.topic.is_some() {
            let topic = room.topic.clone();
            reply(
                &self.clients[&id],
                Event::TopicIs {
                    room: room_name.clone(),
                    topic,
                },
            );
        }
        if save {
            self.persist(&room_key);
        }
        self.order(&room_key, id);
        if self.cluster.is_some() {
            let room = self.room_state(&room_key);
            self.publish(Replica::Joined { id, room, op }, Route::Everyone);
        }
        self.who(id, room_name.as_str())
    }

    /// Takes `id` out of the room at `key` and deletes the room if it emptied.
    fn leave(&mut self, id: ClientId, key: &Key) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.rooms.retain(|k| k != key);
        }
        if let Some(room) = self.rooms.get_mut(key) {
            room.members.remove(&id);
            unorder(room, id);
            if room.members.is_empty() {
                self.rooms.remove(key);
            }
        }
    }

    /// Puts member `id` of the room at `key` in its place in the room's name order.
    fn order(&mut self, key: &Key, id: ClientId) {
        let clients = &self.clients;
        let name_of = |id: &ClientId| {
            clients
                .get(id)
                .and_then(|c| c.source.as_ref())
                .map(|s| s.name.as_str())
        };
        let (Some(room), Some(name)) = (self.rooms.get_mut(key), name_of(&id)) else {
            return;
        };
        unorder(room, id);
        let at = room.order.partition_point(|other| {
            name_of(other).is_some_and(|o| cmp_folded(o, name) == std::cmp::Ordering::Less)
        });
        room.order.insert(at, id);
    }

    /// Moves client `id` to its new place in every room's order after a rename.
    fn reorder(&mut self, id: ClientId) {
        let keys = self
            .clients
            .get(&id)
            .map(|c| c.rooms.clone())
            .unwrap_or_default();
        for key in keys {
            self.order(&key, id);
        }
    }

    /// A room the asker is in. A room that does not exist, or that is secret to the
    /// asker, is `NoSuchRoom` (IRC's 403), not `NotInRoom` (442).
    fn member_room(&self, id: ClientId, wanted: &str) -> Result<&Room<M>, ChatError> {
        self.visible_room(id, wanted)?;
        self.rooms
            .get(&Key::of(wanted))
            .filter(|room| room.members.contains_key(&id))
            .ok_or_else(|| ChatError::NotInRoom(wanted.to_string()))
    }

    fn part(
        &mut self,
        id: ClientId,
        wanted: &str,
        reason: Option<String>,
    ) -> Result<(), ChatError> {
        let room = self.member_room(id, wanted)?;
        let room_name = room.name.clone();
        let reason = reason.as_deref().map(clip);
        let envelope = Envelope::new(Event::Parted {
            room: room.name.clone(),
            who: self.source(id),
            reason: reason.clone(),
        });
        for m in room.members.values() {
            post(&m.mailbox, &envelope);
        }
        self.leave(id, &Key::of(wanted));
        self.publish(
            Replica::Parted {
                id,
                room: room_name,
                reason,
            },
            Route::Everyone,
        );
        Ok(())
    }

    fn send(
        &mut self,
        id: ClientId,
        to: Recipient,
        kind: MessageKind,
        text: String,
        tags: Option<Arc<str>>,
        now_ms: u64,
    ) -> Result<(), ChatError> {
        // A tag-only message has no text to check; anything else needs some.
        if kind != MessageKind::Tags {
            check_text(&text)?;
        }
        self.align_message_id(now_ms);
        let link = self.cluster.as_ref().map(|c| &*c.link);
        let client = &self.clients[&id];
        let from = client.source.clone().expect("caller checked");
        let message = |to| Message {
            id: self.next_message_id,
            time_ms: now_ms,
            from: from.clone(),
            to,
            kind,
            text: text.as_str().into(),
            tags: tags.clone(),
        };
        let journal = self.journal.as_deref();
        // Tag-only messages are not history: nothing records them.
        let record = |message: &Message, recipient: Option<&Source>| {
            message.kind == MessageKind::Tags
                || journal.is_none_or(|j| j.record(message, recipient))
        };
        let mut delivered = 0;
        match to {
            Recipient::Room(wanted) => {
                let Some(room) = with_folded(&wanted, |k| self.rooms.get(k)) else {
                    return Err(ChatError::NoSuchRoom(wanted));
                };
                let member = room.members.get(&id);
                if !room.may_speak(id, &from) {
                    return Err(ChatError::CannotSend(room.name.to_string()));
                }
                let message = message(Target::Room(room.name.clone()));
                if !record(&message, None) {
                    return Err(ChatError::Busy);
                }
                // A room with members elsewhere is delivered, here too, when the bus
                // hands the message back, so every node sees one order.
                if let (Some(link), true) = (link, room.bus) {
                    let route = Route::Room(room.name.key());
                    if !link.publish(
                        Replica::Message {
                            from: id,
                            to: None,
                            message,
                        },
                        route,
                    ) {
                        return Err(ChatError::Busy);
                    }
                    self.advance_message_id();
                    self.stats.messages += 1;
                    return Ok(());
                }
                let envelope = Envelope::new(Event::Message(message));
                for (member, m) in &room.members {
                    if *member != id || client.echo {
                        post(&m.mailbox, &envelope);
                        delivered += 1;
                    }
                }
                if member.is_none() && client.echo {
                    post(&client.mailbox, &envelope);
                    delivered += 1;
                }
            }
            Recipient::User(wanted) => {
                let Some(recipient_id) = with_folded(&wanted, |k| self.names.get(k)) else {
                    let key = Key::of(&wanted);
                    // A registered user who is offline gets the message on next login.
                    let stored = kind != MessageKind::Tags && self.accounts.contains(&key);
                    let (Some(journal), true) = (journal, stored) else {
                        return Err(ChatError::NoSuchUser(wanted));
                    };
                    let name =
                        Name::parse(&wanted).map_err(|_| ChatError::NoSuchUser(wanted.clone()))?;
                    let message = message(Target::User(name.clone()));
                    if !journal.record_offline(&message, key.as_str()) {
                        return Err(ChatError::Busy);
                    }
                    reply(client, Event::StoredForLater { name });
                    self.advance_message_id();
                    self.stats.messages += 1;
                    return Ok(());
                };
                let recipient = &self.clients[recipient_id];
                let to = recipient.source.as_deref().expect("named");
                let name = to.name.clone();
                let message = message(Target::User(name.clone()));
                if !record(&message, Some(to)) {
                    return Err(ChatError::Busy);
                }
                let envelope = Envelope::new(Event::Message(message));
                if let (Some(link), Some(node)) = (link, recipient.node()) {
                    let replica = Replica::Message {
                        from: id,
                        to: Some(*recipient_id),
                        message: match &envelope.event {
                            Event::Message(m) => m.clone(),
                            _ => unreachable!("built above"),
                        },
                    };
                    if !link.publish(replica, Route::Node(node.clone())) {
                        return Err(ChatError::Busy);
                    }
                }
                post(&recipient.mailbox, &envelope);
                delivered += 1;
                if client.echo && *recipient_id != id {
                    post(&client.mailbox, &envelope);
                    delivered += 1;
                }
                if let (Some(away), MessageKind::Normal | MessageKind::Action) =
                    (recipient.away(), kind)
                {
                    reply(
                        client,
                        Event::RecipientAway {
                            name,
                            message: away.clone(),
                        },
                    );
                }
            }
        }
        self.advance_message_id();
        self.stats.messages += 1;
        self.stats.deliveries += delivered;
        if let Some(client) = self.clients.get_mut(&id) {
            client.last_spoke_ms = now_ms;
        }
        Ok(())
    }

    /// Sends several messages from one client to one recipient (see
    /// [`Command::SendMany`]). Each is checked, numbered and journaled as [`Core::send`]
    /// would; the recipients get them as one [`Batch`], so that fan-out costs one
    /// delivery per recipient instead of one per message. Anything out of the ordinary
    /// (a room shared with other nodes, a remote or offline user, a refused message)
    /// goes through `send` one message at a time, with its usual replies.
    fn send_many(
        &mut self,
        id: ClientId,
        to: Recipient,
        kind: MessageKind,
        texts: Vec<String>,
        now_ms: u64,
    ) {
        let batchable = texts.len() > 1 && texts.iter().all(|t| check_text(t).is_ok());
        let target = if batchable {
            self.local_target(id, &to)
        } else {
            None
        };
        let Some(target) = target else {
            for text in texts {
                if let Err(error) = self.send(id, to.clone(), kind, text, None, now_ms) {
                    if let Some(client) = self.clients.get(&id) {
                        reply(client, Event::Error(error));
                    }
                }
            }
            return;
        };
        let from = self.source(id);
        // A direct message's history belongs to the recipient's party, not their name.
        let recipient = match &target {
            Target::User(name) => self
                .names
                .get(&name.key())
                .and_then(|r| self.clients.get(r))
                .and_then(|c| c.source.clone()),
            Target::Room(_) => None,
        };
        let mut texts = texts.into_iter();
        let mut messages = Vec::with_capacity(texts.len());
        for text in texts.by_ref() {
            self.align_message_id(now_ms);
            let message = Message {
                id: self.next_message_id,
                time_ms: now_ms,
                from: from.clone(),
                to: target.clone(),
                kind,
                text: text.into(),
                tags: None,
            };
            if self
                .journal
                .as_deref()
                .is_some_and(|j| !j.record(&message, recipient.as_deref()))
            {
                // The journal is full; the rest go one by one and are refused (or
                // accepted, if it has caught up) with the usual replies.
                let text = message.text.to_string();
                self.deliver_batch(id, &target, messages, kind);
                for text in std::iter::once(text).chain(texts) {
                    if let Err(error) = self.send(id, to.clone(), kind, text, None, now_ms) {
                        reply(&self.clients[&id], Event::Error(error));
                    }
                }
                return;
            }
            self.advance_message_id();
            self.stats.messages += 1;
            messages.push(Envelope::new(Event::Message(message)));
        }
        self.deliver_batch(id, &target, messages, kind);
        if let Some(client) = self.clients.get_mut(&id) {
            client.last_spoke_ms = now_ms;
        }
    }

    /// Where client `id`'s messages to `to` would go if every recipient is on this node
    /// and the client may send there; `None` otherwise (the caller then takes the
    /// general path, which also gives the reason).
    fn local_target(&self, id: ClientId, to: &Recipient) -> Option<Target> {
        let from = self.clients.get(&id)?.source.as_ref()?;
        match to {
            Recipient::Room(wanted) => {
                let room = with_folded(wanted, |k| self.rooms.get(k))?;
                let shared = self.cluster.is_some() && room.bus;
                (!shared && room.may_speak(id, from)).then(|| Target::Room(room.name.clone()))
            }
            Recipient::User(wanted) => {
                let recipient = with_folded(wanted, |k| self.names.get(k))?;
                let recipient = &self.clients[recipient];
                let name = &recipient.source.as_ref()?.name;
                recipient
                    .node()
                    .is_none()
                    .then(|| Target::User(name.clone()))
            }
        }
    }

    /// Hands a batch of client `id`'s messages (already journaled) to their recipients,
    /// as `send` hands one.
    fn deliver_batch(
        &mut self,
        id: ClientId,
        target: &Target,
        messages: Vec<Arc<Envelope>>,
        kind: MessageKind,
    ) {
        let count = messages.len() as u64;
        let batch = match messages.len() {
            0 => return,
            _ => Batch::new(messages),
        };
        let client = &self.clients[&id];
        let give = |mailbox: &Option<M>| {
            if let Some(mailbox) = mailbox {
                mailbox.deliver_batch(&batch);
            }
        };
        let mut delivered = 0;
        match target {
            Target::Room(name) => {
                let room = &self.rooms[&name.key()];
                for (member, m) in &room.members {
                    if *member != id || client.echo {
                        give(&m.mailbox);
                        delivered += count;
                    }
                }
                if !room.members.contains_key(&id) && client.echo {
                    give(&client.mailbox);
                    delivered += count;
                }
            }
            Target::User(name) => {
                let recipient_id = self.names[&name.key()];
                let recipient = &self.clients[&recipient_id];
                give(&recipient.mailbox);
                delivered += count;
                if client.echo && recipient_id != id {
                    give(&client.mailbox);
                    delivered += count;
                }
                if let (Some(away), MessageKind::Normal | MessageKind::Action) =
                    (recipient.away(), kind)
                {
                    for _ in 0..count {
                        reply(
                            client,
                            Event::RecipientAway {
                                name: name.clone(),
                                message: away.clone(),
                            },
                        );
                    }
                }
            }
        }
        self.stats.deliveries += delivered;
    }

    fn rooms_reply(&self, id: ClientId) {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .values()
            .filter(|room| !room.modes.secret || room.members.contains_key(&id))
            .map(|room| RoomSummary {
                name: room.name.clone(),
                members: room.members.len(),
                topic: room.topic.as_ref().map(|t| t.text.clone()),
            })
            .collect();
        rooms.sort_unstable_by(|a, b| cmp_folded(a.name.as_str(), b.name.as_str()));
        reply(&self.clients[&id], Event::Rooms { rooms });
    }

    /// A room the asker may see: secret rooms are invisible to non-members.
    fn visible_room(&self, id: ClientId, wanted: &str) -> Result<&Room<M>, ChatError> {
        self.rooms
            .get(&Key::of(wanted))
            .filter(|room| !room.modes.secret || room.members.contains_key(&id))
            .ok_or_else(|| ChatError::NoSuchRoom(wanted.to_string()))
    }

    fn who(&self, id: ClientId, wanted: &str) -> Result<(), ChatError> {
        let room = self.visible_room(id, wanted)?;
        // Invisible members are listed only to those in the room with them.
        let inside = room.members.contains_key(&id);
        let info = |member: &ClientId, m: &Member<M>| {
            let client = self.clients.get(member)?;
            if client.invisible && !inside {
                return None;
            }
            Some(MemberInfo {
                who: client.source.clone()?,
                op: m.op,
                voice: m.voice,
                away: client.away().is_some(),
                oper: client.oper,
            })
        };
        // The kept order covers every member; should it ever not, sorting is the
        // fallback, so the list is always whole and sorted.
        let members: Vec<MemberInfo> = if room.order.len() == room.members.len() {
            room.order
                .iter()
                .filter_map(|member| info(member, room.members.get(member)?))
                .collect()
        } else {
            debug_assert!(false, "the member order of {} is out of step", room.name);
            let mut members: Vec<MemberInfo> = room
                .members
                .iter()
                .filter_map(|(member, m)| info(member, m))
                .collect();
            members.sort_unstable_by(|a, b| cmp_folded(a.who.name.as_str(), b.who.name.as_str()));
            members
        };
        reply(
            &self.clients[&id],
            Event::Members {
                room: room.name.clone(),
                members,
            },
        );
        Ok(())
    }

    fn topic(
        &mut self,
        id: ClientId,
        wanted: &str,
        text: Option<String>,
        now: u64,
    ) -> Result<(), ChatError> {
        let Some(text) = text else {
            let room = self.visible_room(id, wanted)?;
            reply(
                &self.clients[&id],
                Event::TopicIs {
                    room: room.name.clone(),
                    topic: room.topic.clone(),
                },
            );
            return Ok(());
        };
        let source = self.source(id);
        let runs = self.runs_default_room(&Key::of(wanted), id);
        self.member_room(id, wanted)?;
        let room = self
            .rooms
            .get_mut(&Key::of(wanted))
            .expect("member_room found it");
        if room.modes.topic_ops && !(room.is_op(id) || runs) {
            return Err(ChatError::OperatorNeeded(room.name.to_string()));
        }
        let text = clip(&text);
        room.topic = (!text.is_empty()).then(|| Topic {
            text: text.clone(),
            by: source.mask().into(),
            time_ms: now,
        });
        let envelope = Envelope::new(Event::TopicChanged {
            room: room.name.clone(),
            by: source,
            text: text.clone(),
        });
        for m in room.members.values() {
            post(&m.mailbox, &envelope);
        }
        self.persist(&Key::of(wanted));
        if self.cluster.is_some() {
            let room = self.room_state(&Key::of(wanted));
            self.publish(Replica::Topic { by: id, room, text }, Route::Everyone);
        }
        Ok(())
    }

    fn mode(
        &mut self,
        id: ClientId,
        wanted: &str,
        changes: Vec<ModeChange>,
        now: u64,
    ) -> Result<(), ChatError> {
        if changes.is_empty() {
            let room = self.visible_room(id, wanted)?;
            reply(
                &self.clients[&id],
                Event::RoomModes {
                    room: room.name.clone(),
                    modes: room.modes.clone(),
                    created_ms: room.created_ms,
                },
            );
            return Ok(());
        }
        let source = self.source(id);
        // Listing bans needs no rights; everything else needs a room operator.
        let only_lists = changes.iter().all(|c| c.mode == 'b' && c.arg.is_none());
        let room_key = Key::of(wanted);
        let room = self
            .rooms
            .get(&room_key)
            .filter(|room| !room.modes.secret || room.members.contains_key(&id))
            .ok_or_else(|| ChatError::NoSuchRoom(wanted.to_string()))?;
        if only_lists {
            reply(
                &self.clients[&id],
                Event::BanList {
                    room: room.name.clone(),
                    bans: room.bans.clone(),
                },
            );
            return Ok(());
        }
        if !(room.is_op(id) || self.runs_default_room(&room_key, id)) {
            return Err(ChatError::OperatorNeeded(room.name.to_string()));
        }
        let mut errors = Vec::new();
        let mut applied = Vec::new();
        let mut list_bans = false;
        for change in changes {
            match self.apply_mode(&room_key, &change, &source, now) {
                Ok(Some(done)) => applied.push(done),
                Ok(None) if change.mode == 'b' && change.arg.is_none() => list_bans = true,
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        let client = &self.clients[&id];
        for error in errors {
            reply(client, Event::Error(error));
        }
        let room = &self.rooms[&room_key];
        if list_bans {
            reply(
                client,
                Event::BanList {
                    room: room.name.clone(),
                    bans: room.bans.clone(),
                },
            );
        }
        if !applied.is_empty() {
            let envelope = Envelope::new(Event::ModeChanged {
                room: room.name.clone(),
                by: source,
                changes: applied.clone(),
            });
            for m in room.members.values() {
                post(&m.mailbox, &envelope);
            }
            self.persist(&room_key);
            if self.cluster.is_some() {
                let room = self.room_state(&room_key);
                let changes = applied;
                self.publish(
                    Replica::Modes {
                        by: id,
                        room,
                        changes,
                    },
                    Route::Everyone,
                );
            }
        }
        Ok(())
    }

    /// Applies one mode change; `Ok(None)` when it changed nothing.
    fn apply_mode(
        &mut self,
        room_key: &Key,
        change: &ModeChange,
        by: &Source,
        now: u64,
    ) -> Result<Option<ModeChange>, ChatError> {
        let target_id = match (change.mode, &change.arg) {
            ('o' | 'v', Some(name)) => Some(
                self.names
                    .get(&Key::of(name))
                    .copied()
                    .ok_or_else(|| ChatError::NoSuchUser(name.clone()))?,
            ),
            _ => None,
        };
        let target_name = target_id.and_then(|t| self.name_of(t).cloned());
        let target_account = target_id
            .and_then(|t| self.account_of(t))
            .map(|a| Key::of(&a).as_str().to_string());
        let room = self.rooms.get_mut(room_key).expect("caller checked");
        let room_name = room.name.to_string();
        let modes = &mut room.modes;
        let flag = |flag: &mut bool| {
            let changed = *flag != change.add;
            *flag = change.add;
            changed
        };
        let changed = match change.mode {
            'i' => flag(&mut modes.invite_only),
            'm' => flag(&mut modes.moderated),
            'n' => flag(&mut modes.no_external),
            't' => flag(&mut modes.topic_ops),
            's' => flag(&mut modes.secret),
            'k' => match (change.add, &change.arg) {
                (true, Some(key)) if !key.is_empty() && !key.contains(' ') => {
                    modes.key = Some(key.as_str().into());
                    true
                }
                (true, _) => return Err(ChatError::ModeNeedsParameter('k')),
                (false, _) => modes.key.take().is_some(),
            },
            'l' => match (change.add, change.arg.as_deref().map(str::parse::<usize>)) {
                (true, Some(Ok(limit))) if limit > 0 => {
                    modes.limit = Some(limit);
                    true
                }
                (true, _) => return Err(ChatError::ModeNeedsParameter('l')),
                (false, _) => modes.limit.take().is_some(),
            },
            'o' | 'v' => {
                let (Some(target), Some(name)) = (target_id, target_name) else {
                    return Err(ChatError::ModeNeedsParameter(change.mode));
                };
                let Some(member) = room.members.get_mut(&target) else {
                    return Err(ChatError::UserNotInRoom {
                        name: name.to_string(),
                        room: room_name,
                    });
                };
                let slot = if change.mode == 'o' {
                    &mut member.op
                } else {
                    &mut member.voice
                };
                let changed = *slot != change.add;
                *slot = change.add;
                // In a kept room operator status follows the account across restarts.
                if change.mode == 'o' {
                    if let Some(account) = &target_account {
                        if change.add {
                            room.op_accounts.insert(account.clone());
                        } else {
                            room.op_accounts.remove(account);
                        }
                    }
                }
                return Ok(changed.then(|| ModeChange {
                    arg: Some(name.to_string()),
                    ..change.clone()
                }));
            }
            'b' => {
                let Some(mask) = &change.arg else {
                    return Ok(None);
                };
                let mask = normalize_mask(mask);
                let existing = room
                    .bans
                    .iter()
                    .position(|b| b.mask.eq_ignore_ascii_case(&mask));
                match (change.add, existing) {
                    (true, None) => {
                        if room.bans.len() >= MAX_BANS {
                            return Err(ChatError::BanListFull(room_name));
                        }
                        room.bans.push(Ban {
                            mask: mask.as_str().into(),
                            by: by.mask().into(),
                            time_ms: now,
                        });
                    }
                    (false, Some(i)) => {
                        room.bans.remove(i);
                    }
                    _ => return Ok(None),
                }
                return Ok(Some(ModeChange {
                    arg: Some(mask),
                    ..change.clone()
                }));
            }
            other => return Err(ChatError::UnknownMode(other)),
        };
        Ok(changed.then(|| change.clone()))
    }

    fn kick(
        &mut self,
        id: ClientId,
        wanted: &str,
        name: &str,
        reason: Option<String>,
    ) -> Result<(), ChatError> {
        let room = self.member_room(id, wanted)?;
        if !(room.is_op(id) || self.runs_default_room(&Key::of(wanted), id)) {
            return Err(ChatError::OperatorNeeded(room.name.to_string()));
        }
        let target = self
            .names
            .get(&Key::of(name))
            .copied()
            .filter(|t| room.members.contains_key(t))
            .ok_or_else(|| ChatError::UserNotInRoom {
                name: name.to_string(),
                room: room.name.to_string(),
            })?;
        let by = self.source(id);
        let room_name = room.name.clone();
        let reason = clip(reason.as_deref().unwrap_or(by.name.as_str()));
        let envelope = Envelope::new(Event::Kicked {
            room: room.name.clone(),
            target: self.name_of(target).cloned().expect("registered"),
            reason: reason.clone(),
            by,
        });
        for m in room.members.values() {
            post(&m.mailbox, &envelope);
        }
        self.leave(target, &Key::of(wanted));
        let kicked = Replica::Kicked {
            by: id,
            room: room_name,
            target,
            reason,
        };
        self.publish(kicked, Route::Everyone);
        Ok(())
    }

    fn invite(&mut self, id: ClientId, name: &str, wanted: &str) -> Result<(), ChatError> {
        let target = self
            .names
            .get(&Key::of(name))
            .copied()
            .ok_or_else(|| ChatError::NoSuchUser(name.to_string()))?;
        let room = self.member_room(id, wanted)?;
        let runs = self.runs_default_room(&Key::of(wanted), id);
        if room.modes.invite_only && !(room.is_op(id) || runs) {
            return Err(ChatError::OperatorNeeded(room.name.to_string()));
        }
        let target_source = self.source(target);
        let target_name = target_source.name.clone();
        if room.members.contains_key(&target) {
            return Err(ChatError::AlreadyInRoom {
                name: target_name.to_string(),
                room: room.name.to_string(),
            });
        }
        let room_name = room.name.clone();
        let by = self.source(id);
        self.rooms
            .get_mut(&Key::of(wanted))
            .expect("found above")
            .invited
            .insert(target_source.session);
        reply(
            &self.clients[&target],
            Event::Invited {
                room: room_name.clone(),
                by,
            },
        );
        let invited = Replica::Invited {
            by: id,
            target,
            room: room_name.clone(),
        };
        self.publish(invited, Route::Everyone);
        reply(
            &self.clients[&id],
            Event::InviteSent {
                room: room_name,
                target: target_name,
            },
        );
        Ok(())
    }

    fn away(&mut self, id: ClientId, message: Option<String>) {
        let message = message.filter(|m| !m.is_empty()).map(|m| clip(&m));
        let client = self.clients.get_mut(&id).expect("caller checked");
        let changed = client.away() != message.as_ref();
        client.rare().away = message.clone();
        client.tidy();
        reply(
            client,
            Event::AwayStatus {
                away: message.is_some(),
            },
        );
        if changed {
            let envelope = Envelope::new(Event::AwayChanged {
                who: self.source(id),
                message: message.clone(),
            });
            self.tell_neighbours(id, &envelope, false);
            self.publish(Replica::Away { id, message }, Route::Everyone);
        }
    }

    fn whois(&self, id: ClientId, name: &str, now: u64) -> Result<(), ChatError> {
        let target = self
            .names
            .get(&Key::of(name))
            .and_then(|t| self.clients.get(t).map(|c| (*t, c)))
            .ok_or_else(|| ChatError::NoSuchUser(name.to_string()))?;
        let (target_id, client) = target;
        let rooms = client
            .rooms
            .iter()
            .filter_map(|key| self.rooms.get(key))
            .filter(|room| !room.modes.secret || room.members.contains_key(&id))
            .map(|room| {
                let m = &room.members[&target_id];
                let prefix = if m.op {
                    "@"
                } else if m.voice {
                    "+"
                } else {
                    ""
                };
                (prefix.to_string(), room.name.clone())
            })
            .collect();
        reply(
            &self.clients[&id],
            Event::UserInfo(UserInfo {
                who: client.source.clone().expect("registered"),
                rooms,
                away: client.away().cloned(),
                oper: client.oper,
                signon_ms: client.signon_ms,
                idle_ms: now.saturating_sub(client.last_spoke_ms),
            }),
        );
        Ok(())
    }

    fn whowas_reply(&self, id: ClientId, name: &str) -> Result<(), ChatError> {
        let key = Key::of(name);
        let entries: Vec<Arc<Source>> = self
            .whowas
            .iter()
            .rev()
            .filter(|s| s.name.key() == key)
            .take(10)
            .cloned()
            .collect();
        if entries.is_empty() {
            return Err(ChatError::WasNoSuchUser(name.to_string()));
        }
        reply(&self.clients[&id], Event::WasUser { entries });
        Ok(())
    }

    fn lookup(&self, id: ClientId, names: &[String]) {
        let users = names
            .iter()
            .filter_map(|name| self.names.get(&Key::of(name)))
            .filter_map(|t| self.clients.get(t))
            .filter_map(|c| {
                Some(UserSummary {
                    who: c.source.clone()?,
                    away: c.away().is_some(),
                    oper: c.oper,
                })
            })
            .collect();
        reply(&self.clients[&id], Event::Presence { users });
    }

    /// The most users one WHO mask lists: the scan is bounded by the users online, the
    /// reply by this.
    const WHO_MASK_LIMIT: usize = 500;

    fn who_mask(&self, id: ClientId, mask: &str) {
        let asker = &self.clients[&id];
        let shares_room = |client: &Client<M>| {
            client
                .rooms
                .iter()
                .any(|key| asker.rooms.iter().any(|mine| mine == key))
        };
        // `WHO 0` is the old spelling of `WHO *`.
        let mask = if mask == "0" || mask.is_empty() {
            "*"
        } else {
            mask
        };
        let mut users: Vec<UserSummary> = self
            .clients
            .iter()
            .filter_map(|(client_id, client)| {
                let who = client.source.as_ref()?;
                let listed = !client.invisible || *client_id == id || shares_room(client);
                let matches = [who.name.as_str(), &who.user, &who.host, &who.realname]
                    .iter()
                    .any(|field| confab_glob(mask, field));
                (listed && matches).then(|| UserSummary {
                    who: who.clone(),
                    away: client.away().is_some(),
                    oper: client.oper,
                })
            })
            .take(Self::WHO_MASK_LIMIT)
            .collect();
        users.sort_unstable_by(|a, b| cmp_folded(a.who.name.as_str(), b.who.name.as_str()));
        reply(asker, Event::Presence { users });
    }

    fn kill(&mut self, id: ClientId, name: &str, reason: &str) -> Result<(), ChatError> {
        if !self.clients[&id].oper {
            return Err(ChatError::NoPrivileges);
        }
        let target = self
            .names
            .get(&Key::of(name))
            .copied()
            .ok_or_else(|| ChatError::NoSuchUser(name.to_string()))?;
        reply(
            &self.clients[&target],
            Event::Killed {
                by: self.source(id),
                reason: clip(reason),
            },
        );
        if let Some(node) = self.clients[&target].node().cloned() {
            let reason = clip(reason);
            self.publish(
                Replica::Kill {
                    by: id,
                    target,
                    reason,
                },
                Route::Node(node),
            );
        }
        Ok(())
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
