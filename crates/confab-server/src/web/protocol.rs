//! The WebSocket JSON protocol of docs/web-protocol.md: what a browser may send, and
//! the JSON text each core event becomes. Pure functions, no I/O.
//!
//! Every frame carries one JSON object with a `"type"` field. The encoding of a core
//! event depends on the event alone, so one encoding serves every web recipient.

use bytes::Bytes;
use confab_core::{
    slot, Ban, ChatError, Event, MemberInfo, MessageKind, ModeChange, Name, RoomModes, Target,
    Topic,
};
use confab_store::StoredMessage;
use serde::{Deserialize, Serialize};

/// The envelope encoding slot reserved for this JSON encoding.
pub(crate) const SLOT: usize = slot::WEB;

/// One request from a browser.
///
/// Unknown fields are ignored, so that a newer page still works with an older server.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Request {
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
pub(crate) struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The flavour of a message as it appears on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
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
pub(crate) struct BadRequest {
    pub code: &'static str,
    pub text: String,
}

/// Reads one text frame as a request.
pub(crate) fn parse_request(text: &str) -> Result<Request, BadRequest> {
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
pub(crate) fn room_arg(room: &str) -> &str {
    room.strip_prefix('#').unwrap_or(room)
}

/// The limits a page needs to know, sent in the greeting.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Limits {
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

/// One stored message in a `history` page: the fields of a live `message` event.
#[derive(Serialize)]
pub(crate) struct HistoryMessage<'a> {
    id: u64,
    time: u64,
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    kind: Kind,
    text: &'a str,
}

impl<'a> From<&'a StoredMessage> for HistoryMessage<'a> {
    fn from(m: &'a StoredMessage) -> Self {
        let (room, to) = if m.to_room {
            (Some(m.target.as_str()), None)
        } else {
            (None, Some(m.target.as_str()))
        };
        HistoryMessage {
            id: m.id,
            time: m.time_ms,
            from: &m.sender,
            room,
            to,
            kind: m.kind.into(),
            text: &m.text,
        }
    }
}

/// Which conversation a `history` request or answer is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Conversation {
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

#[derive(Serialize)]
struct RoomOut<'a> {
    name: &'a str,
    members: usize,
    topic: Option<&'a str>,
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

#[derive(Serialize)]
struct PresenceOut<'a> {
    name: &'a Name,
    away: bool,
    oper: bool,
}

fn to_bytes(out: &Out) -> Bytes {
    // Serializing these plain structs to memory cannot fail; an empty object is a safe
    // answer should it ever happen, since clients ignore what they do not understand.
    Bytes::from(serde_json::to_vec(out).unwrap_or_else(|_| b"{}".to_vec()))
}

/// The JSON text of one core event.
pub(crate) fn encode_event(event: &Event) -> Bytes {
    let out = match event {
        Event::Registered { name } => Out::Registered { name },
        Event::Error(error) => {
            return error_event(&chat_error_code(error), &error.to_string());
        }
        Event::Message(m) => {
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
            rooms: rooms
                .iter()
                .map(|r| RoomOut {
                    name: r.name.as_str(),
                    members: r.members,
                    topic: r.topic.as_deref(),
                })
                .collect(),
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
        Event::UserInfo(info) => Out::UserInfo {
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
        },
        Event::WasUser { entries } => Out::WasUser {
            entries: entries
                .iter()
                .map(|s| WasOut {
                    name: &s.name,
                    user: &s.user,
                    host: &s.host,
                })
                .collect(),
        },
        Event::Presence { users } => Out::Presence {
            users: users
                .iter()
                .map(|u| PresenceOut {
                    name: &u.who.name,
                    away: u.away,
                    oper: u.oper,
                })
                .collect(),
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
pub(crate) fn chat_error_code(error: &ChatError) -> String {
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
pub(crate) fn hello(default_room: &str, limits: Limits, history: bool) -> Bytes {
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
pub(crate) fn error_event(code: &str, text: &str) -> Bytes {
    to_bytes(&Out::Error {
        code,
        text: text.to_string(),
        room: None,
        with: None,
    })
}

/// A failed `history` request, naming the conversation it asked for.
pub(crate) fn history_error(code: &str, text: &str, conversation: &Conversation) -> Bytes {
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
pub(crate) fn history_page(
    conversation: &Conversation,
    before: Option<u64>,
    stored: &[StoredMessage],
    mut more: bool,
    max_bytes: usize,
) -> Bytes {
    let messages: Vec<HistoryMessage> = stored.iter().map(HistoryMessage::from).collect();
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
pub(crate) fn pong() -> Bytes {
    to_bytes(&Out::Pong)
}

/// The last event before the server closes the socket, saying why.
pub(crate) fn closing(code: &str, text: &str) -> Bytes {
    to_bytes(&Out::Closing { code, text })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use confab_core::{Message, RoomName, RoomSummary, Source};

    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn source(s: &str) -> Arc<Source> {
        Arc::new(Source {
            name: name(s),
            user: s.into(),
            host: "127.0.0.1".into(),
            realname: s.into(),
            account: None,
            session: 0,
            bot: false,
        })
    }

    fn room(s: &str) -> RoomName {
        RoomName::parse(s).unwrap()
    }

    fn check_event(event: Event, expected: &str) {
        let bytes = encode_event(&event);
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), expected, "{event:?}");
    }

    #[test]
    fn events_encode_as_documented() {
        check_event(
            Event::Registered {
                name: name("alice"),
            },
            r#"{"type":"registered","name":"alice"}"#,
        );
        check_event(
            Event::Error(ChatError::NameInUse("Bob".into())),
            r#"{"type":"error","code":"name_in_use","text":"The name Bob is taken; try another"}"#,
        );
        check_event(
            Event::Message(Message {
                id: 7,
                time_ms: 1_700_000_000_000,
                from: source("alice"),
                to: Target::Room(room("lobby")),
                kind: MessageKind::Normal,
                text: "<img src=x onerror=alert(1)> \"quoted\"".into(),
                tags: None,
            }),
            r#"{"type":"message","id":7,"time":1700000000000,"from":"alice","room":"lobby","kind":"normal","text":"<img src=x onerror=alert(1)> \"quoted\""}"#,
        );
        check_event(
            Event::Message(Message {
                id: 8,
                time_ms: 5,
                from: source("alice"),
                to: Target::User(name("bob")),
                kind: MessageKind::Action,
                text: "waves".into(),
                tags: None,
            }),
            r#"{"type":"message","id":8,"time":5,"from":"alice","to":"bob","kind":"action","text":"waves"}"#,
        );
        check_event(
            Event::Joined {
                room: room("rust"),
                who: source("bob"),
                history_until: 0,
                away: None,
            },
            r#"{"type":"joined","room":"rust","name":"bob"}"#,
        );
        check_event(
            Event::Parted {
                room: room("rust"),
                who: source("bob"),
                reason: None,
            },
            r#"{"type":"parted","room":"rust","name":"bob","reason":null}"#,
        );
        check_event(
            Event::Quit {
                who: source("bob"),
                reason: "Quit".into(),
            },
            r#"{"type":"quit","name":"bob","reason":"Quit"}"#,
        );
        check_event(
            Event::NickChanged {
                old: source("bob"),
                new: name("rob"),
            },
            r#"{"type":"nick","old":"bob","new":"rob"}"#,
        );
        check_event(
            Event::Members {
                room: room("lobby"),
                members: vec![
                    MemberInfo {
                        who: source("alice"),
                        op: true,
                        voice: false,
                        away: false,
                        oper: false,
                    },
                    MemberInfo {
                        who: source("bob"),
                        op: false,
                        voice: false,
                        away: true,
                        oper: false,
                    },
                ],
            },
            r#"{"type":"members","room":"lobby","members":[{"name":"alice","op":true,"voice":false,"away":false},{"name":"bob","op":false,"voice":false,"away":true}]}"#,
        );
        check_event(
            Event::Rooms {
                rooms: vec![RoomSummary {
                    name: room("lobby"),
                    members: 2,
                    topic: None,
                }],
            },
            r#"{"type":"rooms","rooms":[{"name":"lobby","members":2,"topic":null}]}"#,
        );
        check_event(
            Event::Killed {
                by: source("op"),
                reason: "flooding".into(),
            },
            r#"{"type":"killed","by":"op","reason":"flooding"}"#,
        );
    }

    #[test]
    fn error_codes_are_snake_case_variant_names() {
        for (error, code) in [
            (ChatError::NotRegistered, "not_registered"),
            (ChatError::NameInUse("x".into()), "name_in_use"),
            (
                ChatError::InvalidName {
                    name: "a b".into(),
                    reason: confab_core::NameError::Empty,
                },
                "invalid_name",
            ),
            (ChatError::NoSuchUser("x".into()), "no_such_user"),
        ] {
            assert_eq!(chat_error_code(&error), code);
        }
    }

    #[test]
    fn requests_parse_and_bad_ones_say_why() {
        let ok = [
            (
                r#"{"type":"register","name":"alice"}"#,
                Request::Register {
                    name: "alice".into(),
                },
            ),
            (
                r#"{"type":"message","room":"lobby","text":"hi","future":1}"#,
                Request::Message {
                    room: Some("lobby".into()),
                    to: None,
                    text: "hi".into(),
                    kind: Kind::Normal,
                },
            ),
            (
                r#"{"type":"message","to":"bob","text":"waves","kind":"action"}"#,
                Request::Message {
                    room: None,
                    to: Some("bob".into()),
                    text: "waves".into(),
                    kind: Kind::Action,
                },
            ),
            (
                r#"{"type":"part","room":"rust"}"#,
                Request::Part {
                    room: "rust".into(),
                    reason: None,
                },
            ),
            (r#"{"type":"ping"}"#, Request::Ping),
            (
                r#"{"type":"login","name":"alice","password":"pw"}"#,
                Request::Login {
                    name: "alice".into(),
                    password: Secret("pw".into()),
                },
            ),
            (
                r#"{"type":"register_account","password":"pw"}"#,
                Request::RegisterAccount {
                    password: Secret("pw".into()),
                },
            ),
            (
                r#"{"type":"history","room":"lobby"}"#,
                Request::History {
                    room: Some("lobby".into()),
                    with: None,
                    before: None,
                    limit: None,
                },
            ),
            (
                r#"{"type":"history","with":"bob","before":42,"limit":10}"#,
                Request::History {
                    room: None,
                    with: Some("bob".into()),
                    before: Some(42),
                    limit: Some(10),
                },
            ),
            (r#"{"type":"quit"}"#, Request::Quit { reason: None }),
        ];
        for (text, expected) in ok {
            assert_eq!(parse_request(text), Ok(expected), "{text}");
        }
        for (text, code) in [
            ("{", "invalid_json"),
            ("not json", "invalid_json"),
            ("", "invalid_json"),
            ("[1]", "invalid_request"),
            (r#"{"type":"dance"}"#, "invalid_request"),
            (r#"{"type":"join"}"#, "invalid_request"),
            (r#"{"name":"alice"}"#, "invalid_request"),
            (r#"{"type":"join","room":7}"#, "invalid_request"),
            (r#"{"type":"login","name":"alice"}"#, "invalid_request"),
            (
                r#"{"type":"history","room":"x","limit":-1}"#,
                "invalid_request",
            ),
        ] {
            assert_eq!(parse_request(text).unwrap_err().code, code, "{text}");
        }
    }

    #[test]
    fn passwords_never_show_in_debug_output() {
        let request = parse_request(r#"{"type":"login","name":"a","password":"hunter2"}"#);
        assert!(!format!("{request:?}").contains("hunter2"));
    }

    fn stored(id: u64, text: &str) -> StoredMessage {
        StoredMessage {
            id,
            time_ms: 1000 + id,
            conversation: "#lobby".into(),
            sender: "alice".into(),
            sender_mask: "alice!alice@127.0.0.1".into(),
            target: "lobby".into(),
            to_room: true,
            kind: MessageKind::Normal,
            text: text.into(),
        }
    }

    #[test]
    fn history_pages_are_messages_oldest_first_within_a_byte_budget() {
        let lobby = Conversation::Room("lobby".into());
        let page = history_page(
            &lobby,
            None,
            &[stored(1, "a"), stored(2, "b")],
            false,
            10_000,
        );
        assert_eq!(
            std::str::from_utf8(&page).unwrap(),
            r#"{"type":"history","room":"lobby","messages":[{"id":1,"time":1001,"from":"alice","room":"lobby","kind":"normal","text":"a"},{"id":2,"time":1002,"from":"alice","room":"lobby","kind":"normal","text":"b"}],"more":false}"#
        );
        // Past the budget the oldest go, and the page says there is more.
        let long = "x".repeat(1000);
        let messages: Vec<_> = (1..=10).map(|i| stored(i, &long)).collect();
        let page: serde_json::Value =
            serde_json::from_slice(&history_page(&lobby, Some(11), &messages, false, 3500))
                .unwrap();
        let ids: Vec<u64> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [8, 9, 10]);
        assert_eq!((&page["more"], &page["before"]), (&true.into(), &11.into()));
        // The newest message always goes, however small the budget.
        let page: serde_json::Value =
            serde_json::from_slice(&history_page(&lobby, None, &messages, false, 1)).unwrap();
        assert_eq!(page["messages"].as_array().unwrap().len(), 1);
        let dm = history_error("not_in_room", "no", &Conversation::With("bob".into()));
        assert_eq!(
            &dm[..],
            br#"{"type":"error","code":"not_in_room","text":"no","with":"bob"}"#
        );
    }

    #[test]
    fn greeting_and_closing_are_json() {
        let limits = Limits {
            max_message: 4096,
            max_frame: 16384,
            burst: 20,
            per_second: 5,
        };
        let hello: serde_json::Value =
            serde_json::from_slice(&hello("lobby", limits, true)).unwrap();
        assert_eq!(hello["type"], "hello");
        assert_eq!(
            (&hello["history"], &hello["accounts"]),
            (&true.into(), &true.into())
        );
        assert_eq!(hello["default_room"], "lobby");
        assert_eq!(hello["limits"]["max_frame"], 16384);
        assert_eq!(
            &closing("shutdown", "Server is shutting down")[..],
            br#"{"type":"closing","code":"shutdown","text":"Server is shutting down"}"#
        );
        assert_eq!(room_arg("#rust"), "rust");
    }
}

/// Random input for the request parser, in the normal test suite (the fuzz target
/// `web_request` goes further): arbitrary text, and JSON-shaped text built from the
/// request's own field names and values, nested, so that the parser's typed paths are
/// reached, not only its first syntax error.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::parse_request;

    fn json() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[a-z#@ ]{0,12}".prop_map(|s| format!("{s:?}")),
            prop::sample::select(vec![
                "\"register\"",
                "\"send\"",
                "\"join\"",
                "\"history\"",
                "\"mode\"",
                "\"login\"",
                "\"dm\"",
                "\"type\"",
                "\"to\"",
                "\"text\"",
            ])
            .prop_map(str::to_string),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec(
                    (
                        prop::sample::select(vec![
                            "type", "name", "room", "to", "text", "with", "limit", "before",
                            "changes", "password", "key", "kind",
                        ]),
                        inner
                    ),
                    0..6
                )
                .prop_map(|fields| {
                    let fields: Vec<String> =
                        fields.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_text_is_a_request_or_a_clear_error(text in any::<String>()) {
            if let Err(bad) = parse_request(&text) {
                prop_assert!(!bad.code.is_empty() && !bad.text.is_empty());
            }
        }

        #[test]
        fn json_shaped_text_is_a_request_or_a_clear_error(text in json()) {
            if let Err(bad) = parse_request(&text) {
                prop_assert!(!bad.code.is_empty() && !bad.text.is_empty());
            }
        }
    }
}
