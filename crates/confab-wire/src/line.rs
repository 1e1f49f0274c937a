//! The line protocol: a compatible superset of the tutorials' `#name` / `@user:message`
//! chat, readable by people on `nc` and parseable by scripts. docs/line-protocol.md is
//! the grammar; this module is its only implementation.
//!
//! Every line the server sends starts with one of:
//! - `! ` an error (and nothing else starts so),
//! - `* ` information: greetings, replies, joins, parts, quits, renames,
//! - `[room] ` a message in a room, `[dm] ` a direct message.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use confab_core::{ChatError, Event, Message, MessageKind, Target};

/// The default limit on one input line, in bytes, without the newline.
pub const DEFAULT_MAX_LINE: usize = 4096;

/// The exact lines that end a session, from the tutorials.
pub const EXIT_WORDS: [&str; 4] = ["q", "quit", "exit", "bye bye"];

/// What one input line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// A blank line: ignored.
    Empty,
    /// `#name`: register.
    Register(&'a str),
    /// `@user:text` or `/msg user text`.
    Direct {
        to: &'a str,
        text: &'a str,
    },
    /// Plain text for the current room (`//text` sends `/text`).
    Say(&'a str),
    /// `/me action` for the current room.
    Action(&'a str),
    /// `/join ROOM [KEY]` (a leading `#` is dropped); the key opens a `+k` room.
    Join {
        room: &'a str,
        key: Option<&'a str>,
    },
    /// `/part [ROOM [REASON]]`.
    Part {
        room: Option<&'a str>,
        reason: Option<&'a str>,
    },
    Rooms,
    /// `/who [ROOM]`.
    Who(Option<&'a str>),
    /// `/nick NEW`.
    Nick(&'a str),
    Help,
    /// `/ping`: answered with `* pong`; clients use it as a keepalive.
    Ping,
    /// `/register PASSWORD`: make your current name an account.
    RegisterAccount(&'a str),
    /// `/login NAME PASSWORD`.
    Login {
        name: &'a str,
        password: &'a str,
    },
    /// `/history [ROOM|@USER] [N]`.
    History {
        target: Option<&'a str>,
        count: Option<usize>,
    },
    /// `/quit [REASON]` or an exit word.
    Quit(Option<&'a str>),
    /// A known command used wrongly; the text is its usage.
    Usage(&'static str),
    /// `/something` that is not a command.
    Unknown(&'a str),
}

fn word_and_rest(s: &str) -> (&str, Option<&str>) {
    let s = s.trim();
    match s.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, Some(rest.trim()).filter(|r| !r.is_empty())),
        None => (s, None),
    }
}

fn nonempty(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

fn room_arg(s: &str) -> &str {
    s.strip_prefix('#').unwrap_or(s)
}

/// Whether a raw input line is a message (to the current room, or `@user:` direct)
/// rather than a command or a registration, without decoding it: what
/// [`parse_input`] would call [`Input::Say`] or [`Input::Direct`], give or take an exit
/// word or an empty line, which are not commands either.
pub fn is_message(line: &[u8]) -> bool {
    match line.first() {
        Some(b'#') => false,
        Some(b'/') => line.get(1) == Some(&b'/'),
        _ => true,
    }
}

/// Reads one line a user typed.
pub fn parse_input(line: &str) -> Input<'_> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Input::Empty;
    }
    if EXIT_WORDS.contains(&trimmed) {
        return Input::Quit(None);
    }
    if let Some(name) = line.strip_prefix('#') {
        return Input::Register(name.trim());
    }
    if let Some(rest) = line.strip_prefix('@') {
        return match rest.split_once(':') {
            Some((to, text)) => Input::Direct {
                to: to.trim(),
                text: text.trim_start(),
            },
            None => Input::Usage("@user:message"),
        };
    }
    let Some(command) = line.strip_prefix('/') else {
        return Input::Say(line);
    };
    if command.starts_with('/') {
        return Input::Say(command);
    }
    let (name, args) = word_and_rest(command);
    match name.to_ascii_lowercase().as_str() {
        "join" | "j" => match args {
            Some(args) => match args.split_whitespace().collect::<Vec<_>>()[..] {
                [room] => Input::Join {
                    room: room_arg(room),
                    key: None,
                },
                [room, key] => Input::Join {
                    room: room_arg(room),
                    key: Some(key),
                },
                _ => Input::Usage("/join ROOM [KEY]"),
            },
            None => Input::Usage("/join ROOM [KEY]"),
        },
        "part" | "leave" => match args {
            Some(args) => {
                let (room, reason) = word_and_rest(args);
                Input::Part {
                    room: Some(room_arg(room)),
                    reason,
                }
            }
            None => Input::Part {
                room: None,
                reason: None,
            },
        },
        "rooms" | "list" => Input::Rooms,
        "who" | "names" => Input::Who(args.map(room_arg)),
        "nick" => match args {
            Some(new) => Input::Nick(new),
            None => Input::Usage("/nick NEW"),
        },
        "me" => match command
            .split_once(char::is_whitespace)
            .and_then(|(_, a)| nonempty(a))
        {
            Some(action) => Input::Action(action),
            None => Input::Usage("/me ACTION"),
        },
        "msg" => match args.map(word_and_rest) {
            Some((to, Some(text))) => Input::Direct { to, text },
            _ => Input::Usage("/msg USER MESSAGE"),
        },
        "register" => match args {
            Some(password) => Input::RegisterAccount(password),
            None => Input::Usage("/register PASSWORD"),
        },
        "login" | "identify" => match args.map(word_and_rest) {
            Some((name, Some(password))) => Input::Login { name, password },
            _ => Input::Usage("/login NAME PASSWORD"),
        },
        "history" => {
            let mut target = None;
            let mut count = None;
            for arg in args.unwrap_or("").split_whitespace() {
                match arg.parse::<usize>() {
                    Ok(n) if count.is_none() => count = Some(n),
                    _ if target.is_none() && count.is_none() => target = Some(room_arg(arg)),
                    _ => return Input::Usage("/history [ROOM|@USER] [N]"),
                }
            }
            Input::History { target, count }
        }
        "help" => Input::Help,
        "ping" => Input::Ping,
        "quit" => Input::Quit(args),
        _ => Input::Unknown(name),
    }
}

/// The lines `/help` prints, without their `* ` prefix.
pub const HELP: &[&str] = &[
    "Commands:",
    "  #name              register as name (1-32 letters, digits or _-[]{}|^)",
    "  @user:message      send a direct message (also /msg USER MESSAGE)",
    "  anything else      goes to everyone in your current room",
    "  /join ROOM [KEY]   join ROOM (created if new) and talk there; KEY opens a locked room",
    "  /part [ROOM]       leave ROOM, or your current room",
    "  /rooms             list rooms",
    "  /who [ROOM]        list the members of ROOM, or of your current room",
    "  /nick NEW          change your name",
    "  /me ACTION         act, as in /me waves",
    "  /history [ROOM|@USER] [N]  the last N messages (50) of a room or a conversation",
    "  /register PASSWORD make your name an account that only you can use",
    "  /login NAME PASSWORD  log in (also before #name); messages sent while away arrive",
    "  //text             send text that starts with /",
    "  /help              show this",
    "  /quit [REASON]     leave (so do q, quit, exit and bye bye)",
];

/// One stored message as `/history` shows it:
/// `* [2026-11-21 06:00:01] [lobby] alice: hello`.
pub fn history_line(
    time_ms: u64,
    room: Option<&str>,
    sender: &str,
    kind: MessageKind,
    text: &str,
) -> Bytes {
    // Tag-only messages say nothing in this protocol (and are never stored).
    if kind == MessageKind::Tags {
        return Bytes::new();
    }
    let mut out = BytesMut::with_capacity(text.len() + 64);
    out.put_slice(b"* [");
    out.put_slice(crate::time::human_time(time_ms).as_bytes());
    out.put_slice(b"] ");
    match room {
        Some(room) => {
            out.put_u8(b'[');
            out.put_slice(room.as_bytes());
            out.put_slice(b"] ");
        }
        None => out.put_slice(b"[dm] "),
    }
    match kind {
        MessageKind::Normal => {
            out.put_slice(sender.as_bytes());
            out.put_slice(b": ");
        }
        MessageKind::Action => {
            out.put_slice(b"* ");
            out.put_slice(sender.as_bytes());
            out.put_u8(b' ');
        }
        MessageKind::Notice => {
            out.put_u8(b'-');
            out.put_slice(sender.as_bytes());
            out.put_slice(b"- ");
        }
        MessageKind::Tags => {}
    }
    put_text(&mut out, text);
    out.put_u8(b'\n');
    out.freeze()
}

/// An information line: `* text\n`.
pub fn info(text: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 3);
    out.put_slice(b"* ");
    put_text(&mut out, text);
    out.put_u8(b'\n');
    out.freeze()
}

/// An error line: `! text\n`.
pub fn error(text: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 3);
    out.put_slice(b"! ");
    put_text(&mut out, text);
    out.put_u8(b'\n');
    out.freeze()
}

/// The first two lines a new connection sees.
pub fn greeting(peer: &str) -> Bytes {
    let mut out = BytesMut::new();
    out.put(info(&format!(
        "Welcome to confab! You are connected from: {peer}"
    )));
    out.put(info(
        "Register with #name (1-32 letters, digits or _-[]{}|^), then type to chat. /help lists commands.",
    ));
    out.freeze()
}

/// The error text for a core error, worded for line-protocol users.
pub fn error_text(error: &ChatError) -> String {
    match error {
        ChatError::NotRegistered => "Register first by sending #yourname".into(),
        ChatError::AlreadyRegistered(name) => {
            format!("You are already registered as {name}; use /nick NEW to change")
        }
        other => other.to_string(),
    }
}

/// Copies user text, replacing control characters other than tab with U+FFFD so that
/// nobody can move another user's cursor or recolour their terminal.
fn put_text(out: &mut BytesMut, text: &str) {
    // C1 controls (U+0080 to U+009F, which some terminals obey) start with 0xC2 in
    // UTF-8, so text with that byte takes the careful path too.
    if !text
        .bytes()
        .any(|b| b < 0x20 && b != b'\t' || b == 0x7f || b == 0xc2)
    {
        out.put_slice(text.as_bytes());
        return;
    }
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.put_slice("\u{fffd}".as_bytes());
        } else {
            let mut buf = [0; 4];
            out.put_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
}

/// Writes one message as the line protocol shows it, newline included.
pub fn put_message(out: &mut BytesMut, m: &Message) {
    // A tag-only message (IRC TAGMSG) has nothing to show without tags.
    if m.kind == MessageKind::Tags {
        return;
    }
    match &m.to {
        Target::Room(room) => {
            out.put_u8(b'[');
            out.put_slice(room.as_str().as_bytes());
            out.put_slice(b"] ");
        }
        Target::User(_) => out.put_slice(b"[dm] "),
    }
    let from = m.from.name.as_str().as_bytes();
    match m.kind {
        MessageKind::Normal => {
            out.put_slice(from);
            out.put_slice(b": ");
        }
        MessageKind::Action => {
            out.put_slice(b"* ");
            out.put_slice(from);
            out.put_u8(b' ');
        }
        MessageKind::Notice => {
            out.put_u8(b'-');
            out.put_slice(from);
            out.put_slice(b"- ");
        }
        MessageKind::Tags => {}
    }
    put_text(out, &m.text);
    out.put_u8(b'\n');
}

/// The line (or lines) the server sends for one core event. The result depends on the
/// event only, never on who receives it, so one encoding serves every recipient.
pub fn encode_event(event: &Event) -> Bytes {
    let text = match event {
        Event::Message(m) => {
            let mut out = BytesMut::with_capacity(m.text.len() + 48);
            put_message(&mut out, m);
            return out.freeze();
        }
        Event::Error(e) => return error(&error_text(e)),
        Event::Registered { name } => format!("Your user detail saved as : {name}"),
        Event::Joined { room, who, .. } => format!("{} joined {room}", who.name),
        Event::Parted { room, who, reason } => match reason {
            Some(reason) => format!("{} left {room} ({reason})", who.name),
            None => format!("{} left {room}", who.name),
        },
        Event::Quit { who, reason } => format!("{} quit ({reason})", who.name),
        Event::NickChanged { old, new } => format!("{} is now known as {new}", old.name),
        Event::Members { room, members } => {
            let mut text = format!("Members of {room} ({}): ", members.len());
            for (i, member) in members.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push_str(member.who.name.as_str());
            }
            text
        }
        Event::Rooms { rooms } => {
            let mut text = format!("Rooms ({}):", rooms.len());
            for (i, room) in rooms.iter().enumerate() {
                let sep = if i > 0 { "," } else { "" };
                let plural = if room.members == 1 { "" } else { "s" };
                let _ = write!(
                    text,
                    "{sep} {} ({} member{plural})",
                    room.name, room.members
                );
            }
            text
        }
        Event::TopicChanged { room, by, text } if text.is_empty() => {
            format!("{} cleared the topic of {room}", by.name)
        }
        Event::TopicChanged { room, by, text } => {
            format!("{} set the topic of {room}: {text}", by.name)
        }
        Event::TopicIs {
            room,
            topic: Some(topic),
        } => {
            format!("Topic of {room}: {} (set by {})", topic.text, topic.by)
        }
        Event::TopicIs { room, topic: None } => format!("{room} has no topic"),
        Event::ModeChanged { room, by, changes } => {
            let (modes, args) = crate::irc::mode_string(changes);
            let args = if args.is_empty() {
                String::new()
            } else {
                format!(" {}", args.join(" "))
            };
            format!("{} sets mode {modes}{args} on {room}", by.name)
        }
        Event::RoomModes { room, modes, .. } => {
            let (flags, args) = crate::irc::room_modes_string(modes, true);
            format!("Modes of {room}: {flags} {}", args.join(" "))
                .trim_end()
                .to_string()
        }
        Event::BanList { room, bans } if bans.is_empty() => format!("No bans on {room}"),
        Event::BanList { room, bans } => {
            let masks: Vec<&str> = bans.iter().map(|b| &*b.mask).collect();
            format!("Bans on {room}: {}", masks.join(", "))
        }
        Event::Kicked {
            room,
            by,
            target,
            reason,
        } => {
            format!("{target} was kicked from {room} by {} ({reason})", by.name)
        }
        Event::Invited { room, by } => {
            format!("{} invites you to {room}; /join {room} to accept", by.name)
        }
        Event::InviteSent { room, target } => format!("Invited {target} to {room}"),
        // Away changes are IRC's away-notify; line users are told when they message
        // someone who is away instead.
        Event::AwayChanged { .. } => return Bytes::new(),
        Event::AwayStatus { away: true } => "You are now marked as away".into(),
        Event::AwayStatus { away: false } => "You are no longer marked as away".into(),
        Event::RecipientAway { name, message } => format!("{name} is away: {message}"),
        Event::UserInfo(info) => {
            let rooms: Vec<String> = info.rooms.iter().map(|(p, r)| format!("{p}{r}")).collect();
            let mut text = format!(
                "{} is {}@{} ({}); rooms: {}",
                info.who.name,
                info.who.user,
                info.who.host,
                info.who.realname,
                if rooms.is_empty() {
                    "none".into()
                } else {
                    rooms.join(", ")
                }
            );
            if let Some(away) = &info.away {
                let _ = write!(text, "; away: {away}");
            }
            text
        }
        Event::WasUser { entries } => {
            let who: Vec<String> = entries
                .iter()
                .map(|s| format!("{}@{}", s.user, s.host))
                .collect();
            format!("{} was {}", entries[0].name, who.join(", "))
        }
        Event::Presence { users } => {
            let names: Vec<&str> = users.iter().map(|u| u.who.name.as_str()).collect();
            format!("Online: {}", names.join(", "))
        }
        Event::Killed { by, reason } => format!("You were removed by {}: {reason}", by.name),
        Event::LoggedIn { account } => format!("You are logged in as {account}"),
        Event::LoginRequired { name } => format!(
            "The name {name} is registered: log in with /login {name} PASSWORD soon, or you will be renamed"
        ),
        Event::StoredForLater { name } => {
            format!("{name} is offline; your message was stored and will be delivered when they log in")
        }
    };
    info(&text)
}

/// A line from the server, as a client sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerLine<'a> {
    Error(&'a str),
    Info(&'a str),
    Room {
        room: &'a str,
        from: &'a str,
        kind: MessageKind,
        text: &'a str,
    },
    Direct {
        from: &'a str,
        kind: MessageKind,
        text: &'a str,
    },
    /// Anything else (a server that is not confab, say).
    Other(&'a str),
}

fn split_sender(body: &str) -> Option<(&str, MessageKind, &str)> {
    if let Some(rest) = body.strip_prefix("* ") {
        let (from, text) = rest.split_once(' ').unwrap_or((rest, ""));
        return Some((from, MessageKind::Action, text));
    }
    if let Some(rest) = body.strip_prefix('-') {
        let (from, text) = rest.split_once("- ")?;
        return Some((from, MessageKind::Notice, text));
    }
    let (from, text) = body.split_once(": ")?;
    Some((from, MessageKind::Normal, text))
}

/// Reads one line the server sent (without its newline).
pub fn parse_server_line(line: &str) -> ServerLine<'_> {
    if let Some(text) = line.strip_prefix("! ") {
        return ServerLine::Error(text);
    }
    if let Some(text) = line.strip_prefix("* ") {
        return ServerLine::Info(text);
    }
    if let Some(body) = line.strip_prefix("[dm] ") {
        if let Some((from, kind, text)) = split_sender(body) {
            return ServerLine::Direct { from, kind, text };
        }
    } else if let Some((room, body)) = line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
        if let Some((from, kind, text)) = split_sender(body) {
            return ServerLine::Room {
                room,
                from,
                kind,
                text,
            };
        }
    }
    ServerLine::Other(line)
}

#[cfg(test)]
mod tests;
