//! The WebSocket JSON protocol of docs/web-protocol.md: what a browser may send, and
//! the JSON text each core event becomes. Pure functions, no I/O; the web front-end
//! in `confab-server` holds the session.
//!
//! Every frame carries one JSON object with a `"type"` field. The encoding of a core
//! event depends on the event alone, so one encoding serves every web recipient.

use bytes::Bytes;
use confab_core::{
    slot, Ban, ChatError, Event, MemberInfo, Message, MessageKind, ModeChange, Name, RoomModes,
    RoomSummary, Source, Target, Topic, UserInfo, UserSummary,
};
use serde::{Deserialize, Serialize};

/// The envelope encoding slot reserved for this JSON encoding.
pub const SLOT: usize = slot::WEB;

/// One request from a browser.
///
/// Unknown fields are ignored, so that a newer page still works with an older server.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    Register {
        name: String,
    },
    Nick {
        name: String,
    },
    Join {
        room: String,
        #[serde(default)]
        key: Option<String>,
    },
    Part {
        room: String,
        #[serde(default)]
        reason: Option<String>,
    },
    /// A message to a room (`room`) or to a user (`to`); exactly one of the two.
    Message {
        #[serde(default)]
        room: Option<String>,
        #[serde(default)]
        to: Option<String>,
        text: String,
        #[serde(default)]
        kind: Kind,
    },
    Rooms,
    Who {
        room: String,
    },
    /// Ask for a room's topic, or set it with `text` (empty clears it).
    Topic {
        room: String,
        #[serde(default)]
        text: Option<String>,
    },
    /// Ask for a room's modes (no changes), or change them.
    Mode {
        room: String,
        #[serde(default)]
        changes: Vec<ModeChange>,
    },
    Kick {
        room: String,
        name: String,
        #[serde(default)]
        reason: Option<String>,
    },
    Invite {
        name: String,
        room: String,
    },
    /// Go away with `message`, or come back without one.
    Away {
        #[serde(default)]
        message: Option<String>,
    },
    Whois {
        name: String,
    },
    Ping,
    Quit {
        #[serde(default)]
        reason: Option<String>,
    },
    /// Log in to an account; before `register` it also registers the account's name.
    Login {
        name: String,
        password: Secret,
    },
    /// Make the name in use an account with this password.
    RegisterAccount {
        password: Secret,
    },
    /// A page of a room's history (`room`) or of the direct conversation with a user
    /// (`with`): the newest messages, or those before the message id `before`.
    History {
        #[serde(default)]
        room: Option<String>,
        #[serde(default)]
        with: Option<String>,
        #[serde(default)]
        before: Option<u64>,
        #[serde(default)]
        limit: Option<u32>,
    },
}

/// A password as it arrives. Its `Debug` form hides it, so that no log line or test
/// failure can print one.
#[derive(PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The flavour of a message as it appears on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    Normal,
    Action,
    Notice,
}

impl From<Kind> for MessageKind {
    fn from(kind: Kind) -> MessageKind {
        match kind {
            Kind::Normal => MessageKind::Normal,
            Kind::Action => MessageKind::Action,
            Kind::Notice => MessageKind::Notice,
        }
    }
}

impl From<MessageKind> for Kind {
    fn from(kind: MessageKind) -> Kind {
        match kind {
            MessageKind::Normal => Kind::Normal,
            MessageKind::Action => Kind::Action,
            MessageKind::Notice => Kind::Notice,
            // Never shown: the session drops tag-only messages before encoding them.
            MessageKind::Tags => Kind::Normal,
        }
    }
}

/// Why a frame could not be read as a request: the error event's code and text.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRequest {
    pub code: &'static str,
    pub text: String,
}

/// Reads one text frame as a request.
pub fn parse_request(text: &str) -> Result<Request, BadRequest> {
    serde_json::from_str(text).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => BadRequest {
                code: "invalid_json",
                text: format!("Not valid JSON: {e}"),
            },
            Category::Data => BadRequest {
                code: "invalid_request",
                text: format!("Not a valid request: {e}"),
            },
        }
    })
}

/// A room name as the user gave it, without the `#` IRC users put in front.
pub fn room_arg(room: &str) -> &str {
    room.strip_prefix('#').unwrap_or(room)
}

/// The limits a page needs to know, sent in the greeting.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    /// Longest message text (and reason) in bytes.
    pub max_message: usize,
    /// Longest frame the server accepts, in bytes.
    pub max_frame: usize,
    /// Requests allowed in a burst.
    pub burst: u32,
    /// Requests allowed per second, sustained.
    pub per_second: u32,
}

/// Everything the server sends, one variant per `"type"`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Out<'a> {
    Hello {
        server: &'a str,
        version: &'a str,
        default_room: &'a str,
        limits: Limits,
        /// Whether the server keeps history, and so accounts and offline messages.
        history: bool,
        accounts: bool,
    },
    Registered {
        name: &'a Name,
    },
    Error {
        code: &'a str,
        text: String,
        /// For a failed `history` request: the conversation it asked for, so that a
        /// page knows which request failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        with: Option<&'a str>,
    },
    History {
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        with: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        messages: &'a [HistoryMessage<'a>],
        more: bool,
    },
    Message {
        id: u64,
        time: u64,
        from: &'a Name,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<&'a str>,
        kind: Kind,
        text: &'a str,
    },
    Joined {
        room: &'a str,
        name: &'a Name,
    },
    Parted {
        room: &'a str,
        name: &'a Name,
        reason: Option<&'a str>,
    },
    Quit {
        name: &'a Name,
        reason: &'a str,
    },
    Nick {
        old: &'a Name,
        new: &'a Name,
    },
    Members {
        room: &'a str,
        members: Vec<MemberOut<'a>>,
    },
    Rooms {
        rooms: Vec<RoomOut<'a>>,
    },
    Topic {
        room: &'a str,
        by: &'a Name,
        text: &'a str,
    },
    TopicIs {
        room: &'a str,
        topic: Option<TopicOut<'a>>,
    },
    Mode {
        room: &'a str,
        by: &'a Name,
        changes: &'a [ModeChange],
    },
    RoomModes {
        room: &'a str,
        modes: &'a RoomModes,
        created: u64,
    },
    BanList {
        room: &'a str,
        bans: Vec<BanOut<'a>>,
    },
    Kicked {
        room: &'a str,
        by: &'a Name,
        name: &'a Name,
        reason: &'a str,
    },
    Invited {
        room: &'a str,
        by: &'a Name,
    },
    InviteSent {
        room: &'a str,
        name: &'a Name,
    },
    Away {
        name: &'a Name,
        message: Option<&'a str>,
    },
    AwayStatus {
        away: bool,
    },
    RecipientAway {
        name: &'a Name,
        message: &'a str,
    },
    UserInfo {
        name: &'a Name,
        user: &'a str,
        host: &'a str,
        realname: &'a str,
        rooms: Vec<UserRoomOut<'a>>,
        away: Option<&'a str>,
        oper: bool,
        signon: u64,
        idle_ms: u64,
    },
    WasUser {
        entries: Vec<WasOut<'a>>,
    },
    Presence {
        users: Vec<PresenceOut<'a>>,
    },
    Killed {
        by: &'a Name,
        reason: &'a str,
    },
    LoggedIn {
        account: &'a Name,
    },
    LoginRequired {
        name: &'a Name,
    },
    StoredForLater {
        name: &'a Name,
    },
    Pong,
    Closing {
        code: &'a str,
        text: &'a str,
    },
}

/// One stored message in a `history` page: the fields of a live `message` event. The
/// server fills it from its store's record.
#[derive(Serialize)]
pub struct HistoryMessage<'a> {
    pub id: u64,
    pub time: u64,
    pub from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'a str>,
    pub kind: Kind,
    pub text: &'a str,
}

/// Which conversation a `history` request or answer is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversation {
    Room(String),
    With(String),
}

impl Conversation {
    fn fields(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Conversation::Room(room) => (Some(room), None),
            Conversation::With(name) => (None, Some(name)),
        }
    }
}

impl<'a> Out<'a> {
    /// A live message: a room's (`room`) or a direct one (`to`).
    fn message(m: &'a Message) -> Out<'a> {
        let (room, to) = match &m.to {
            Target::Room(room) => (Some(room.as_str()), None),
            Target::User(user) => (None, Some(user.as_str())),
        };
        Out::Message {
            id: m.id,
            time: m.time_ms,
            from: &m.from.name,
            room,
            to,
            kind: m.kind.into(),
            text: &m.text,
        }
    }

    /// The answer to `whois`.
    fn user_info(info: &'a UserInfo) -> Out<'a> {
        Out::UserInfo {
            name: &info.who.name,
            user: &info.who.user,
            host: &info.who.host,
            realname: &info.who.realname,
            rooms: info
                .rooms
                .iter()
                .map(|(prefix, room)| UserRoomOut {
                    room: room.as_str(),
                    prefix,
                })
                .collect(),
            away: info.away.as_deref(),
            oper: info.oper,
            signon: info.signon_ms,
            idle_ms: info.idle_ms,
        }
    }
}

#[derive(Serialize)]
struct RoomOut<'a> {
    name: &'a str,
    members: usize,
    topic: Option<&'a str>,
}

impl<'a> From<&'a RoomSummary> for RoomOut<'a> {
    fn from(r: &'a RoomSummary) -> Self {
        RoomOut {
            name: r.name.as_str(),
            members: r.members,
            topic: r.topic.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct MemberOut<'a> {
    name: &'a Name,
    op: bool,
    voice: bool,
    away: bool,
}

impl<'a> From<&'a MemberInfo> for MemberOut<'a> {
    fn from(m: &'a MemberInfo) -> Self {
        MemberOut {
            name: &m.who.name,
            op: m.op,
            voice: m.voice,
            away: m.away,
        }
    }
}

#[derive(Serialize)]
struct TopicOut<'a> {
    text: &'a str,
    by: &'a str,
    time: u64,
}

impl<'a> From<&'a Topic> for TopicOut<'a> {
    fn from(t: &'a Topic) -> Self {
        TopicOut {
            text: &t.text,
            by: &t.by,
            time: t.time_ms,
        }
    }
}

#[derive(Serialize)]
struct BanOut<'a> {
    mask: &'a str,
    by: &'a str,
    time: u64,
}

impl<'a> From<&'a Ban> for BanOut<'a> {
    fn from(b: &'a Ban) -> Self {
        BanOut {
            mask: &b.mask,
            by: &b.by,
            time: b.time_ms,
        }
    }
}

#[derive(Serialize)]
struct UserRoomOut<'a> {
    room: &'a str,
    /// `@` for an operator there, `+` for voice, empty otherwise.
    prefix: &'a str,
}

#[derive(Serialize)]
struct WasOut<'a> {
    name: &'a Name,
    user: &'a str,
    host: &'a str,
}

impl<'a> From<&'a Source> for WasOut<'a> {
    fn from(s: &'a Source) -> Self {
        WasOut {
            name: &s.name,
            user: &s.user,
            host: &s.host,
        }
    }
}

#[derive(Serialize)]
struct PresenceOut<'a> {
    name: &'a Name,
    away: bool,
    oper: bool,
}

impl<'a> From<&'a UserSummary> for PresenceOut<'a> {
    fn from(u: &'a UserSummary) -> Self {
        PresenceOut {
            name: &u.who.name,
            away: u.away,
            oper: u.oper,
        }
    }
}

fn to_bytes(out: &Out) -> Bytes {
    // Serializing these plain structs to memory cannot fail; an empty object is a safe
    // answer should it ever happen, since clients ignore what they do not understand.
    Bytes::from(serde_json::to_vec(out).unwrap_or_else(|_| b"{}".to_vec()))
}

/// The JSON text of one core event.
pub fn encode_event(event: &Event) -> Bytes {
    let out = match event {
        Event::Registered { name } => Out::Registered { name },
        Event::Error(error) => {
            return error_event(&chat_error_code(error), &error.to_string());
        }
        Event::Message(m) => Out::message(m),
        Event::Joined { room, who, .. } => Out::Joined {
            room: room.as_str(),
            name: &who.name,
        },
        Event::Parted { room, who, reason } => Out::Parted {
            room: room.as_str(),
            name: &who.name,
            reason: reason.as_deref(),
        },
        Event::Quit { who, reason } => Out::Quit {
            name: &who.name,
            reason,
        },
        Event::NickChanged { old, new } => Out::Nick {
            old: &old.name,
            new,
        },
        Event::Members { room, members } => Out::Members {
            room: room.as_str(),
            members: members.iter().map(MemberOut::from).collect(),
        },
        Event::Rooms { rooms } => Out::Rooms {
            rooms: rooms.iter().map(RoomOut::from).collect(),
        },
        Event::TopicChanged { room, by, text } => Out::Topic {
            room: room.as_str(),
            by: &by.name,
            text,
        },
        Event::TopicIs { room, topic } => Out::TopicIs {
            room: room.as_str(),
            topic: topic.as_ref().map(TopicOut::from),
        },
        Event::ModeChanged { room, by, changes } => Out::Mode {
            room: room.as_str(),
            by: &by.name,
            changes,
        },
        Event::RoomModes {
            room,
            modes,
            created_ms,
        } => Out::RoomModes {
            room: room.as_str(),
            modes,
            created: *created_ms,
        },
        Event::BanList { room, bans } => Out::BanList {
            room: room.as_str(),
            bans: bans.iter().map(BanOut::from).collect(),
        },
        Event::Kicked {
            room,
            by,
            target,
            reason,
        } => Out::Kicked {
            room: room.as_str(),
            by: &by.name,
            name: target,
            reason,
        },
        Event::Invited { room, by } => Out::Invited {
            room: room.as_str(),
            by: &by.name,
        },
        Event::InviteSent { room, target } => Out::InviteSent {
            room: room.as_str(),
            name: target,
        },
        Event::AwayChanged { who, message } => Out::Away {
            name: &who.name,
            message: message.as_deref(),
        },
        Event::AwayStatus { away } => Out::AwayStatus { away: *away },
        Event::RecipientAway { name, message } => Out::RecipientAway { name, message },
        Event::UserInfo(info) => Out::user_info(info),
        Event::WasUser { entries } => Out::WasUser {
            entries: entries.iter().map(|s| WasOut::from(&**s)).collect(),
        },
        Event::Presence { users } => Out::Presence {
            users: users.iter().map(PresenceOut::from).collect(),
        },
        Event::Killed { by, reason } => Out::Killed {
            by: &by.name,
            reason,
        },
        Event::LoggedIn { account } => Out::LoggedIn { account },
        Event::LoginRequired { name } => Out::LoginRequired { name },
        Event::StoredForLater { name } => Out::StoredForLater { name },
    };
    to_bytes(&out)
}

/// The stable code of a core error: its variant name in snake case (`NameInUse` is
/// `name_in_use`), taken from the error's serde form so that every error the core
/// gains has a code without a table to keep in step.
pub fn chat_error_code(error: &ChatError) -> String {
    let variant = match serde_json::to_value(error) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(serde_json::Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    if variant.is_empty() {
        return "error".into();
    }
    let mut code = String::with_capacity(variant.len() + 4);
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                code.push('_');
            }
            code.push(c.to_ascii_lowercase());
        } else {
            code.push(c);
        }
    }
    code
}

/// The first event of every session. `history` says whether the server keeps history
/// (and so accounts).
pub fn hello(default_room: &str, limits: Limits, history: bool) -> Bytes {
    to_bytes(&Out::Hello {
        server: "confab",
        version: env!("CARGO_PKG_VERSION"),
        default_room,
        limits,
        history,
        accounts: history,
    })
}

/// An error the web front-end itself reports (the core's errors come through
/// [`encode_event`]).
pub fn error_event(code: &str, text: &str) -> Bytes {
    to_bytes(&Out::Error {
        code,
        text: text.to_string(),
        room: None,
        with: None,
    })
}

/// A failed `history` request, naming the conversation it asked for.
pub fn history_error(code: &str, text: &str, conversation: &Conversation) -> Bytes {
    let (room, with) = conversation.fields();
    to_bytes(&Out::Error {
        code,
        text: text.to_string(),
        room,
        with,
    })
}

/// One page of history, oldest first, in at most `max_bytes` (give or take the
/// envelope's few bytes) so that an answer cannot overflow the client's send queue.
/// When the messages do not all fit, the oldest are left out and `more` is set: the
/// page asks for them next. The newest message is always kept, so that paging always
/// moves on.
pub fn history_page(
    conversation: &Conversation,
    before: Option<u64>,
    messages: &[HistoryMessage],
    mut more: bool,
    max_bytes: usize,
) -> Bytes {
    let mut size = 0usize;
    let mut first = messages.len();
    while first > 0 {
        let one = serde_json::to_vec(&messages[first - 1]).map_or(0, |v| v.len() + 1);
        if first < messages.len() && size.saturating_add(one) > max_bytes {
            more = true;
            break;
        }
        size = size.saturating_add(one);
        first -= 1;
    }
    let (room, with) = conversation.fields();
    to_bytes(&Out::History {
        room,
        with,
        before,
        messages: &messages[first..],
        more,
    })
}

/// The answer to a ping.
pub fn pong() -> Bytes {
    to_bytes(&Out::Pong)
}

/// The last event before the server closes the socket, saying why.
pub fn closing(code: &str, text: &str) -> Bytes {
    to_bytes(&Out::Closing { code, text })
}

#[cfg(test)]
mod tests;
