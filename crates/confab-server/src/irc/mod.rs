//! The IRC front-end: RFC 1459/2812 client protocol with IRCv3 capabilities, speaking to
//! the same chat core as every other front-end. Channel `#lobby` is room `lobby`.
//!
//! # Layout
//! - this file: the session state, core events turned into IRC lines, and errors
//!   turned into numerics;
//! - `commands.rs`: one table of commands (name, minimum parameters, allowed before
//!   registration) and a small handler for each;
//! - `numerics.rs`: the numeric replies by name.
//!
//! Replies to a command are read with the command's *context*: the connection loop
//! drains a client's outbox right after each input line, so every reply the core makes
//! to that line arrives before the next line is read, and `context` still names the
//! command that caused it (a `Members` reply is NAMES output after JOIN or NAMES, WHO
//! output after WHO).

mod auth;
mod commands;
mod history;
mod numerics;
mod split;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use confab_core::{
    slot, Batch, ChatError, Envelope, Event, Message, MessageKind, Name, RoomName, Source, Target,
};
use confab_wire::irc::{self as wire, write_message, MAX_LINE};
use confab_wire::time::iso_time;

use crate::ctx::Ctx;
use crate::protocol::{Close, Flow, Protocol};
use crate::shared::Shared;
use crate::write_queue::WriteQueue;
use numerics::*;

/// The version string in 002, 004 and 351.
const VERSION: &str = concat!("confab-", env!("CARGO_PKG_VERSION"));

/// The capabilities confab offers, in CAP LS order.
const CAPS: &[&str] = &[
    "account-tag",
    "away-notify",
    "batch",
    "cap-notify",
    "echo-message",
    "extended-join",
    "labeled-response",
    "message-tags",
    "multi-prefix",
    "server-time",
    "userhost-in-names",
];

/// Offered besides [`CAPS`] when the server keeps history (and so accounts).
const HISTORY_CAPS: &[&str] = &["draft/account-registration", "draft/chathistory", "sasl"];

/// Which capabilities a client enabled.
#[derive(Debug, Default, Clone, Copy)]
struct Caps {
    account_tag: bool,
    away_notify: bool,
    batch: bool,
    cap_notify: bool,
    echo_message: bool,
    extended_join: bool,
    labeled_response: bool,
    message_tags: bool,
    multi_prefix: bool,
    server_time: bool,
    userhost_in_names: bool,
    chathistory: bool,
    sasl: bool,
    account_registration: bool,
}

impl Caps {
    fn flag(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "account-tag" => &mut self.account_tag,
            "away-notify" => &mut self.away_notify,
            "batch" => &mut self.batch,
            "cap-notify" => &mut self.cap_notify,
            "echo-message" => &mut self.echo_message,
            "extended-join" => &mut self.extended_join,
            "labeled-response" => &mut self.labeled_response,
            "message-tags" => &mut self.message_tags,
            "multi-prefix" => &mut self.multi_prefix,
            "server-time" => &mut self.server_time,
            "userhost-in-names" => &mut self.userhost_in_names,
            "draft/chathistory" => &mut self.chathistory,
            "sasl" => &mut self.sasl,
            "draft/account-registration" => &mut self.account_registration,
            _ => return None,
        })
    }

    fn enabled(&self) -> Vec<&'static str> {
        let mut copy = *self;
        CAPS.iter()
            .chain(HISTORY_CAPS)
            .copied()
            .filter(|c| copy.flag(c).is_some_and(|f| *f))
            .collect()
    }
}

/// What a reply means depends on the command that caused it.
#[derive(Debug, Clone, Default)]
enum Context {
    #[default]
    None,
    /// A command whose failures must never be answered (NOTICE).
    Silent,
    Join,
    Names,
    /// WHO, with the mask asked for. Payloads are boxed: the context is in every
    /// session, its payloads rarely.
    Who(Box<WhoQuery>),
    Whois,
    /// WHOWAS, with the nick and the most entries wanted.
    WhoWas(Box<(String, usize)>),
    Ison,
    Userhost,
    /// LIST, with the channels asked for (all when `None`).
    #[allow(clippy::box_collection)]
    List(Option<Box<Vec<String>>>),
    Mode,
    Part,
    Kick,
    Invite,
    Topic,
    Send,
    Nick,
    Register,
}

/// A WHO command: its mask, and for WHOX the fields and token asked for.
#[derive(Debug, Clone)]
struct WhoQuery {
    mask: String,
    whox: Option<Whox>,
    /// `WHO mask o`: server operators only.
    opers_only: bool,
}

/// The WHOX part of `WHO mask %fields[,token]`.
#[derive(Debug, Clone)]
struct Whox {
    /// The field letters asked for; the reply has them in [`Whox::ORDER`].
    fields: String,
    /// The query type token (`t`): up to three digits.
    token: Option<String>,
}

impl Whox {
    /// The order of the fields in a 354 reply, whatever order they were asked in.
    const ORDER: &'static str = "tcuihsnfdlaor";

    fn parse(spec: &str) -> Whox {
        let (fields, token) = match spec.split_once(',') {
            Some((fields, token)) => (fields, Some(token)),
            None => (spec, None),
        };
        let token = token
            .filter(|t| !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string);
        Whox {
            fields: fields
                .chars()
                .filter(|c| Self::ORDER.contains(*c))
                .collect(),
            token,
        }
    }
}

/// One user as a WHO line describes it.
struct WhoEntry<'a> {
    chan: &'a str,
    who: &'a Source,
    away: bool,
    oper: bool,
    /// The channel membership prefix (`@`, `+`), if any.
    status: &'a str,
}

/// One IRC client's session.
pub(crate) struct IrcSession {
    peer: SocketAddr,
    /// The nick asked for with NICK, until registration (then `name` is the nick). A
    /// thin pointer, like the other strings here: the session is in every connection.
    #[allow(clippy::box_collection)]
    nick: Option<Box<String>>,
    /// The (user, realname) from USER, until registration; the core's `Source` has
    /// them from then on. Idle connections are most connections, and these two boxes
    /// were about 100 bytes of each.
    user: Option<Box<(String, String)>>,
    /// The registered name, kept current through nick changes.
    name: Option<Name>,
    /// Registration waits while capability negotiation is open.
    negotiating: bool,
    /// A registration request is with the core and its answer has not come back.
    registering: bool,
    caps: Caps,
    context: Context,
    /// Channels this user is in, for PART of "all" (JOIN 0) and MODE on self.
    channels: Vec<RoomName>,
    /// User mode `+i`, kept for MODE replies.
    invisible: bool,
    oper: bool,
    /// Set when a server operator removed this user: the session must end.
    #[allow(clippy::box_collection)] // A thin pointer: the session is in every connection.
    killed: Option<Box<String>>,
    /// The response being collected for a command that carried a `label` tag.
    labeled: Option<Box<Labeled>>,
    /// Batches opened so far, for unique batch ids.
    batches: u32,
    /// Where a SASL exchange stands.
    sasl: auth::Sasl,
    /// A `REGISTER` is on its way; its success also gets `REGISTER SUCCESS`.
    registering_account: bool,
    /// The account logged into before registration (SASL), whose stored messages are
    /// delivered once registration completes.
    #[allow(clippy::box_collection)] // A thin pointer: the session is in every connection.
    early_account: Option<Box<String>>,
}

/// A labeled command's response, collected until the command is done.
struct Labeled {
    label: String,
    bytes: BytesMut,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn channel(room: &RoomName) -> String {
    format!("#{room}")
}

fn prefix(source: &Source) -> String {
    format!("{}!{}@{}", source.name, source.user, source.host)
}

/// A message as IRC writes it, `:nick!user@host PRIVMSG target :text`, straight into
/// one buffer of the right size. Messages are most of what a server writes, and going
/// through `write_message` cost three allocations and two copies of the text each (the
/// `writes_messages_as_write_message_would` property test keeps the two identical).
fn encode_message(m: &Message) -> Bytes {
    let size = m.from.name.as_str().len() + m.from.user.len() + m.from.host.len();
    let mut out = BytesMut::with_capacity(size + m.text.len() + 64);
    put_message(&mut out, m);
    out.freeze()
}

/// Writes one message as [`encode_message`] renders it, at the end of `out`.
fn put_message(out: &mut BytesMut, m: &Message) {
    put_message_with(out, m, None);
}

/// The bytes of a message's line besides its text: `:nick!user@host PRIVMSG target :`,
/// the CTCP framing of an ACTION and CR LF.
fn overhead(m: &Message) -> usize {
    let from = &m.from;
    let target = match &m.to {
        Target::Room(room) => 1 + room.as_str().len(),
        Target::User(name) => name.as_str().len(),
    };
    let command = if m.kind == MessageKind::Notice { 6 } else { 7 };
    let action = if m.kind == MessageKind::Action { 9 } else { 0 };
    let source = 1 + from.name.as_str().len() + 1 + from.user.len() + 1 + from.host.len();
    source + 1 + command + 1 + target + 2 + action + 2
}

/// Whether a message is too long for one IRC line, and so is sent as several.
fn is_split(event: &Event) -> bool {
    matches!(event, Event::Message(m) if !split::fits(overhead(m), m.text.len()))
}

/// Writes message `m`, after its tag section when `tags` is `Some(all)` (all tags, or
/// the time alone): as one line when it fits in 512 bytes, else as several (`split`).
/// Every part has the time (and account) tags; only the first has the `msgid`, as with
/// Ergo, since clients take a msgid to name one line and may drop a second line with
/// the same one as a duplicate. Checking the length is all a message that fits pays.
fn put_message_with(out: &mut BytesMut, m: &Message, tags: Option<bool>) {
    let overhead = overhead(m);
    if split::fits(overhead, m.text.len()) {
        if let Some(all) = tags {
            put_message_tags(out, m, all);
        }
        return put_line(out, m, &m.text);
    }
    for (i, part) in split::parts(&m.text, split::budget(overhead)).enumerate() {
        if let Some(all) = tags {
            let id = (i == 0).then_some(m.id);
            put_tags(out, m.time_ms, id, Some(&m.from), m.tags.as_deref(), all);
        }
        put_line(out, m, part);
    }
}

/// Writes one line of message `m` with `text` (the whole text or one part of it).
fn put_line(out: &mut BytesMut, m: &Message, text: &str) {
    let from = &m.from;
    let (command, action): (&[u8], bool) = match m.kind {
        MessageKind::Normal => (b"PRIVMSG", false),
        MessageKind::Notice => (b"NOTICE", false),
        MessageKind::Action => (b"PRIVMSG", true),
        MessageKind::Tags => (b"TAGMSG", false),
    };
    let target = match &m.to {
        Target::Room(room) => room.as_str(),
        Target::User(name) => name.as_str(),
    };
    out.put_u8(b':');
    out.put_slice(from.name.as_str().as_bytes());
    out.put_u8(b'!');
    out.put_slice(from.user.as_bytes());
    out.put_u8(b'@');
    out.put_slice(from.host.as_bytes());
    out.put_u8(b' ');
    out.put_slice(command);
    out.put_u8(b' ');
    if matches!(m.to, Target::Room(_)) {
        out.put_u8(b'#');
    }
    out.put_slice(target.as_bytes());
    if m.kind == MessageKind::Tags {
        out.put_slice(b"\r\n");
        return;
    }
    out.put_slice(b" :");
    if action {
        out.put_slice(b"\x01ACTION ");
    }
    out.put_slice(text.as_bytes());
    if action {
        out.put_u8(1);
    }
    out.put_slice(b"\r\n");
}

/// The body of a broadcast event as IRC writes it, the same for every recipient. The
/// recipient-dependent part (tags) is a separate chunk.
fn encode_broadcast(event: &Event, extended_join: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    match event {
        Event::Message(m) => return encode_message(m),
        Event::Joined { room, who, .. } => {
            let chan = channel(room);
            if extended_join {
                let account = who.account.as_deref().unwrap_or("*");
                write_message(
                    &mut out,
                    &[],
                    Some(&prefix(who)),
                    "JOIN",
                    &[&chan, account, &who.realname],
                    true,
                );
            } else {
                write_message(&mut out, &[], Some(&prefix(who)), "JOIN", &[&chan], false);
            }
        }
        Event::Parted { room, who, reason } => {
            let chan = channel(room);
            match reason {
                Some(reason) => write_message(
                    &mut out,
                    &[],
                    Some(&prefix(who)),
                    "PART",
                    &[&chan, reason],
                    true,
                ),
                None => write_message(&mut out, &[], Some(&prefix(who)), "PART", &[&chan], false),
            }
        }
        Event::Quit { who, reason } => {
            write_message(&mut out, &[], Some(&prefix(who)), "QUIT", &[reason], true);
        }
        Event::NickChanged { old, new } => {
            write_message(
                &mut out,
                &[],
                Some(&prefix(old)),
                "NICK",
                &[new.as_str()],
                false,
            );
        }
        Event::TopicChanged { room, by, text } => {
            write_message(
                &mut out,
                &[],
                Some(&prefix(by)),
                "TOPIC",
                &[&channel(room), text],
                true,
            );
        }
        Event::ModeChanged { room, by, changes } => {
            let (modes, args) = wire::mode_string(changes);
            let chan = channel(room);
            let mut params = vec![chan.as_str(), modes.as_str()];
            params.extend(args);
            write_message(&mut out, &[], Some(&prefix(by)), "MODE", &params, false);
        }
        Event::Kicked {
            room,
            by,
            target,
            reason,
        } => {
            write_message(
                &mut out,
                &[],
                Some(&prefix(by)),
                "KICK",
                &[&channel(room), target.as_str(), reason],
                true,
            );
        }
        Event::AwayChanged { who, message } => match message {
            Some(message) => {
                write_message(&mut out, &[], Some(&prefix(who)), "AWAY", &[message], true)
            }
            None => write_message(&mut out, &[], Some(&prefix(who)), "AWAY", &[], false),
        },
        _ => {}
    }
    out.freeze()
}

/// The tag section for a broadcast event: server-time always, and with message-tags
/// also the message id, the sender's account, `bot` for a bot, and a message's client
/// tags (last, as the message-tags spec asks of server tags before client ones).
fn encode_tags(event: &Event, all: bool) -> Bytes {
    let mut out = BytesMut::new();
    match event {
        Event::Message(m) => {
            // A message split over several lines is written here whole, each line
            // with its tags, since one tag section before the body would tag only
            // the first line (see `push_broadcast`).
            if split::fits(overhead(m), m.text.len()) {
                put_message_tags(&mut out, m, all);
            } else {
                put_message_with(&mut out, m, Some(all));
            }
        }
        _ => put_tags(&mut out, now_ms(), None, event_source(event), None, all),
    }
    out.freeze()
}

/// Writes a message's tag section, as [`encode_tags`] renders it.
fn put_message_tags(out: &mut BytesMut, m: &Message, all: bool) {
    let client_tags = m.tags.as_deref();
    put_tags(out, m.time_ms, Some(m.id), Some(&m.from), client_tags, all);
}

/// Who caused a broadcast event, for the tags that describe them.
fn event_source(event: &Event) -> Option<&Source> {
    match event {
        Event::Message(Message { from: who, .. })
        | Event::Joined { who, .. }
        | Event::Parted { who, .. }
        | Event::Quit { who, .. }
        | Event::AwayChanged { who, .. }
        | Event::NickChanged { old: who, .. }
        | Event::TopicChanged { by: who, .. }
        | Event::ModeChanged { by: who, .. }
        | Event::Kicked { by: who, .. } => Some(who),
        _ => None,
    }
}

/// Writes the tag section `encode_tags` renders, at the end of `out`.
fn put_tags(
    out: &mut BytesMut,
    time: u64,
    id: Option<u64>,
    from: Option<&Source>,
    client_tags: Option<&str>,
    all: bool,
) {
    let time = iso_time(time);
    let id = id.map(|id| id.to_string());
    let mut tags: Vec<(&str, &str)> = vec![("time", &time)];
    if all {
        if let Some(id) = &id {
            tags.push(("msgid", id));
        }
        if let Some(account) = from.and_then(|f| f.account.as_deref()) {
            tags.push(("account", account));
        }
        // The bot-mode spec: a bare tag, never a value.
        if from.is_some_and(|f| f.bot) {
            tags.push(("bot", ""));
        }
    }
    // `write_message` would add a command; write the tag section alone.
    out.extend_from_slice(b"@");
    for (i, (key, value)) in tags.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b";");
        }
        out.extend_from_slice(key.as_bytes());
        if !value.is_empty() {
            out.extend_from_slice(b"=");
            wire::escape_tag(value, out);
        }
    }
    // Client tags are kept escaped as they arrived, so they go out as they are.
    if let (true, Some(client_tags)) = (all, client_tags) {
        out.extend_from_slice(b";");
        out.extend_from_slice(client_tags.as_bytes());
    }
    out.extend_from_slice(b" ");
}

/// A labeled command's response, `bytes` being every line of it: one line gets the
/// label tag, several go in a `labeled-response` batch (`batch` is its reference, when
/// the client has `batch`), none gets an `ACK`.
pub(super) fn labeled_response(
    server: &str,
    label: &str,
    bytes: &[u8],
    batch: Option<&str>,
) -> Bytes {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    let mut result = BytesMut::new();
    let tag = |line: &str, tag: &str, result: &mut BytesMut| {
        match line.strip_prefix('@') {
            Some(rest) => {
                result.extend_from_slice(b"@");
                result.extend_from_slice(tag.as_bytes());
                result.extend_from_slice(b";");
                result.extend_from_slice(rest.as_bytes());
            }
            None => {
                result.extend_from_slice(b"@");
                result.extend_from_slice(tag.as_bytes());
                result.extend_from_slice(b" ");
                result.extend_from_slice(line.as_bytes());
            }
        }
        result.extend_from_slice(b"\r\n");
    };
    let mut label_tag = BytesMut::new();
    label_tag.extend_from_slice(b"label=");
    wire::escape_tag(label, &mut label_tag);
    let label_tag = String::from_utf8_lossy(&label_tag).into_owned();
    match (lines.len(), batch) {
        (0, _) => tag(&format!(":{server} ACK"), &label_tag, &mut result),
        (1, _) => tag(lines[0], &label_tag, &mut result),
        (_, Some(id)) => {
            tag(
                &format!(":{server} BATCH +{id} labeled-response"),
                &label_tag,
                &mut result,
            );
            for line in lines {
                tag(line, &format!("batch={id}"), &mut result);
            }
            result.extend_from_slice(format!(":{server} BATCH -{id}\r\n").as_bytes());
        }
        (_, None) => {
            for line in lines {
                result.extend_from_slice(line.as_bytes());
                result.extend_from_slice(b"\r\n");
            }
        }
    }
    result.freeze()
}

impl IrcSession {
    pub(crate) fn new(peer: SocketAddr, _shared: &Shared) -> Self {
        IrcSession {
            peer,
            nick: None,
            user: None,
            name: None,
            negotiating: false,
            registering: false,
            caps: Caps::default(),
            context: Context::None,
            channels: Vec::new(),
            invisible: false,
            oper: false,
            killed: None,
            labeled: None,
            batches: 0,
            sasl: auth::Sasl::Idle,
            registering_account: false,
            early_account: None,
        }
    }

    /// The client's nick as numerics address it: `*` until it has one.
    fn target(&self) -> &str {
        match (&self.name, &self.nick) {
            (Some(name), _) => name.as_str(),
            (None, Some(nick)) => nick.as_str(),
            _ => "*",
        }
    }

    fn is_me(&self, name: &Name) -> bool {
        self.name
            .as_ref()
            .is_some_and(|me| me.as_str().eq_ignore_ascii_case(name.as_str()))
    }

    /// A numeric reply: `:server CODE target params...`, the last one trailing.
    fn numeric(&self, ctx: &Ctx, code: &str, params: &[&str]) -> Bytes {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(self.target());
        all.extend_from_slice(params);
        let mut out = BytesMut::with_capacity(64);
        write_message(
            &mut out,
            &[],
            Some(&ctx.shared.irc.server_name),
            code,
            &all,
            true,
        );
        out.freeze()
    }

    /// Sends a numeric now, in order with the core's replies.
    fn reply(&mut self, ctx: &Ctx, code: &str, params: &[&str]) {
        let line = self.numeric(ctx, code, params);
        self.send(ctx, line);
    }

    /// Sends a line of the session's own: into the labeled response being collected,
    /// or through the outbox so that it keeps its place among the core's replies.
    fn send(&mut self, ctx: &Ctx, line: Bytes) {
        match &mut self.labeled {
            Some(labeled) => labeled.bytes.extend_from_slice(&line),
            None => ctx.send(line),
        }
    }

    /// Whether an event is part of the response to this client's current command: a
    /// reply, or a broadcast of something this client did.
    fn is_response(&self, event: &Event) -> bool {
        match event {
            Event::Message(m) => self.is_me(&m.from.name),
            Event::Joined { who, .. } | Event::Parted { who, .. } => self.is_me(&who.name),
            Event::NickChanged { old, .. } => self.is_me(&old.name),
            Event::TopicChanged { by, .. }
            | Event::ModeChanged { by, .. }
            | Event::Kicked { by, .. } => self.is_me(&by.name),
            Event::Quit { .. }
            | Event::AwayChanged { .. }
            | Event::Invited { .. }
            | Event::Killed { .. } => false,
            _ => true,
        }
    }

    /// A fresh batch reference.
    fn next_batch(&mut self) -> String {
        self.batches = self.batches.wrapping_add(1);
        format!("b{}", self.batches)
    }

    /// Wraps what was collected for a labeled command (see [`labeled_response`]).
    fn finish_labeled(&mut self, ctx: &Ctx, out: &mut WriteQueue) {
        let Some(labeled) = self.labeled.take() else {
            return;
        };
        let Labeled { label, bytes } = *labeled;
        let batch = self.caps.batch.then(|| self.next_batch());
        let server = &ctx.shared.irc.server_name;
        out.push(labeled_response(server, &label, &bytes, batch.as_deref()));
    }

    /// Takes the label of the command being handled, for a command that answers later
    /// (CHATHISTORY): its answer is then labeled where it is made, and nothing now.
    pub(super) fn take_label(&mut self) -> Option<(String, Option<String>)> {
        let labeled = self.labeled.take()?;
        let batch = self.caps.batch.then(|| self.next_batch());
        Some((labeled.label, batch))
    }

    /// A NOTICE from the server to this client.
    fn notice(&self, ctx: &Ctx, text: &str) -> Bytes {
        let mut out = BytesMut::new();
        write_message(
            &mut out,
            &[],
            Some(&ctx.shared.irc.server_name),
            "NOTICE",
            &[self.target(), text],
            true,
        );
        out.freeze()
    }

    /// A line from the server itself, such as `CAP` or `PONG`.
    fn server_line(&self, ctx: &Ctx, command: &str, params: &[&str]) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        write_message(
            &mut out,
            &[],
            Some(&ctx.shared.irc.server_name),
            command,
            params,
            false,
        );
        out.freeze()
    }

    /// Registers with the core once NICK and USER are in and CAP negotiation is over.
    fn try_register(&mut self, ctx: &Ctx) {
        if self.name.is_some() || self.registering || self.negotiating {
            return;
        }
        let (Some(nick), Some(user)) = (&self.nick, &self.user) else {
            return;
        };
        let (user, realname) = &**user;
        ctx.shared.lock_core().set_identity(ctx.id, user, realname);
        self.registering = true;
        self.context = Context::Register;
        ctx.command(confab_core::Command::Register {
            name: nick.to_string(),
        });
    }

    fn welcome(&self, ctx: &Ctx, out: &mut WriteQueue) {
        let irc = &ctx.shared.irc;
        let me = self.name.as_ref().expect("registered");
        let mask = format!(
            "{me}!{}@{}",
            self.user.as_ref().map_or("", |u| &u.0),
            self.peer.ip()
        );
        let created = iso_time(
            ctx.shared
                .started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        );
        let lines = [
            self.numeric(
                ctx,
                RPL_WELCOME,
                &[&format!(
                    "Welcome to the {} IRC Network {mask}",
                    irc.network
                )],
            ),
            self.numeric(
                ctx,
                RPL_YOURHOST,
                &[&format!(
                    "Your host is {}, running version {VERSION}",
                    irc.server_name
                )],
            ),
            self.numeric(
                ctx,
                RPL_CREATED,
                &[&format!("This server was created {created}")],
            ),
        ];
        for line in lines {
            out.push(line);
        }
        let mut myinfo = BytesMut::new();
        write_message(
            &mut myinfo,
            &[],
            Some(&irc.server_name),
            RPL_MYINFO,
            &[
                me.as_str(),
                &irc.server_name,
                VERSION,
                "Bio",
                "biklmnostv",
                "bklov",
            ],
            false,
        );
        out.push(myinfo.freeze());
        for line in self.isupport(ctx) {
            out.push(line);
        }
        for line in self.lusers(ctx) {
            out.push(line);
        }
        for line in self.motd(ctx) {
            out.push(line);
        }
    }

    /// The 005 lines. Every token is true of this server.
    fn isupport(&self, ctx: &Ctx) -> Vec<Bytes> {
        let network = format!("NETWORK={}", ctx.shared.irc.network);
        // No number after the colon means no limit.
        let max_rooms = ctx.shared.limits.max_rooms_per_user;
        let chanlimit = match max_rooms {
            0 => "CHANLIMIT=#:".to_string(),
            n => format!("CHANLIMIT=#:{n}"),
        };
        let tokens = [
            "AWAYLEN=390",
            "BOT=B",
            "CASEMAPPING=ascii",
            &chanlimit,
            "CHANMODES=b,k,l,imnst",
            "CHANNELLEN=51",
            "CHANTYPES=#",
            "KICKLEN=390",
            "MAXLIST=b:100",
            "MAXTARGETS=4",
            "MODES=4",
            &network,
            "NICKLEN=32",
            "PREFIX=(ov)@+",
            "TARGMAX=JOIN:,KICK:1,NAMES:1,NOTICE:4,PART:,PRIVMSG:4,TAGMSG:4,WHOIS:1",
            "TOPICLEN=390",
            "UTF8ONLY",
            "WHOX",
        ];
        let mut tokens: Vec<&str> = tokens.to_vec();
        // MAXCHANNELS is CHANLIMIT's older spelling, still read by some clients.
        let maxchannels = format!("MAXCHANNELS={max_rooms}");
        if max_rooms > 0 {
            let at = tokens.iter().position(|t| t.starts_with("MAXLIST"));
            tokens.insert(at.unwrap_or(tokens.len()), &maxchannels);
        }
        let history_limit = format!("CHATHISTORY={}", history::MAX_LIMIT);
        if ctx.shared.history.is_some() {
            tokens.push(&history_limit);
            tokens.push("MSGREFTYPES=timestamp,msgid");
        }
        tokens
            .chunks(12)
            .map(|chunk| {
                let mut params: Vec<&str> = chunk.to_vec();
                params.push("are supported by this server");
                self.numeric(ctx, RPL_ISUPPORT, &params)
            })
            .collect()
    }

    /// The LUSERS lines, from one set of counts so that they agree: 251's users and
    /// invisible add up to 266's current global users, 255's clients are 265's local
    /// users, and 253 counts connections still registering.
    fn lusers(&self, ctx: &Ctx) -> Vec<Bytes> {
        let c = ctx.shared.lock_core().lusers();
        let (local, max_local) = (c.local.to_string(), c.max_local.to_string());
        let (global, max_global) = (c.global.to_string(), c.max_global.to_string());
        let lines = [
            (
                RPL_LUSERCLIENT,
                vec![format!(
                    "There are {} users and {} invisible on 1 servers",
                    c.visible, c.invisible
                )],
            ),
            (
                RPL_LUSEROP,
                vec![c.opers.to_string(), "operator(s) online".into()],
            ),
            (
                RPL_LUSERUNKNOWN,
                vec![c.unknown.to_string(), "unknown connection(s)".into()],
            ),
            (
                RPL_LUSERCHANNELS,
                vec![c.rooms.to_string(), "channels formed".into()],
            ),
            (
                RPL_LUSERME,
                vec![format!("I have {} clients and 0 servers", c.local)],
            ),
            (
                RPL_LOCALUSERS,
                vec![
                    local.clone(),
                    max_local.clone(),
                    format!("Current local users {local}, max {max_local}"),
                ],
            ),
            (
                RPL_GLOBALUSERS,
                vec![
                    global.clone(),
                    max_global.clone(),
                    format!("Current global users {global}, max {max_global}"),
                ],
            ),
        ];
        lines
            .iter()
            .map(|(code, params)| {
                let params: Vec<&str> = params.iter().map(String::as_str).collect();
                self.numeric(ctx, code, &params)
            })
            .collect()
    }

    fn motd(&self, ctx: &Ctx) -> Vec<Bytes> {
        let irc = &ctx.shared.irc;
        if irc.motd.is_empty() {
            return vec![self.numeric(ctx, ERR_NOMOTD, &["MOTD File is missing"])];
        }
        let mut lines = vec![self.numeric(
            ctx,
            RPL_MOTDSTART,
            &[&format!("- {} Message of the day - ", irc.server_name)],
        )];
        for line in &irc.motd {
            lines.push(self.numeric(ctx, RPL_MOTD, &[&format!("- {line}")]));
        }
        lines.push(self.numeric(ctx, RPL_ENDOFMOTD, &["End of /MOTD command."]));
        lines
    }

    /// Pushes a broadcast event, with the tag section this client's caps ask for.
    fn push_broadcast(&self, envelope: &Arc<Envelope>, out: &mut WriteQueue) {
        self.push_tags(envelope, out);
        // A message split over several lines came whole with its tags.
        if (self.caps.message_tags || self.caps.server_time) && is_split(&envelope.event) {
            return;
        }
        let extended = self.caps.extended_join && matches!(envelope.event, Event::Joined { .. });
        if extended {
            out.push(envelope.encoded(slot::IRC_EXTENDED, |e| encode_broadcast(e, true)));
        } else {
            out.push(envelope.encoded(slot::IRC, |e| encode_broadcast(e, false)));
        }
    }

    /// Pushes the tag section of a broadcast event that this client's caps ask for.
    fn push_tags(&self, envelope: &Arc<Envelope>, out: &mut WriteQueue) {
        if self.caps.message_tags {
            out.push(envelope.encoded(slot::IRC_ALL_TAGS, |e| encode_tags(e, true)));
        } else if self.caps.server_time {
            out.push(envelope.encoded(slot::IRC_TIME_TAG, |e| encode_tags(e, false)));
        }
    }

    fn member_prefix(&self, op: bool, voice: bool) -> &'static str {
        match (op, voice, self.caps.multi_prefix) {
            (true, true, true) => "@+",
            (true, _, _) => "@",
            (false, true, _) => "+",
            _ => "",
        }
    }

    fn names_reply(
        &self,
        ctx: &Ctx,
        room: &RoomName,
        members: &[confab_core::MemberInfo],
        out: &mut WriteQueue,
    ) {
        let chan = channel(room);
        // `@` marks a secret channel, `=` a public one.
        let kind = if ctx.shared.lock_core().is_secret(room.as_str()) {
            "@"
        } else {
            "="
        };
        let mut names = String::new();
        for member in members {
            let entry = if self.caps.userhost_in_names {
                format!(
                    "{}{}",
                    self.member_prefix(member.op, member.voice),
                    prefix(&member.who)
                )
            } else {
                format!(
                    "{}{}",
                    self.member_prefix(member.op, member.voice),
                    member.who.name
                )
            };
            // Keep each 353 line well under 512 bytes.
            if names.len() + entry.len() > 380 {
                out.push(self.numeric(ctx, RPL_NAMREPLY, &[kind, &chan, &names]));
                names.clear();
            }
            if !names.is_empty() {
                names.push(' ');
            }
            names.push_str(&entry);
        }
        if !names.is_empty() {
            out.push(self.numeric(ctx, RPL_NAMREPLY, &[kind, &chan, &names]));
        }
        out.push(self.numeric(ctx, RPL_ENDOFNAMES, &[&chan, "End of /NAMES list."]));
    }

    fn who_line(
        &self,
        ctx: &Ctx,
        chan: &str,
        who: &Source,
        away: bool,
        oper: bool,
        status: &str,
    ) -> Bytes {
        let flags = format!(
            "{}{}{status}{}",
            if away { "G" } else { "H" },
            if oper { "*" } else { "" },
            if who.bot { "B" } else { "" }
        );
        self.numeric(
            ctx,
            RPL_WHOREPLY,
            &[
                chan,
                &who.user,
                &who.host,
                &ctx.shared.irc.server_name,
                who.name.as_str(),
                &flags,
                &format!("0 {}", who.realname),
            ],
        )
    }

    /// A WHOX reply (354): the fields asked for, in the order the specification
    /// gives, the real name last as a trailing parameter.
    fn whox_line(&self, ctx: &Ctx, whox: &Whox, entry: &WhoEntry<'_>) -> Bytes {
        let who = entry.who;
        let flags = format!(
            "{}{}{}",
            if entry.away { "G" } else { "H" },
            if entry.oper { "*" } else { "" },
            entry.status
        );
        let mut params: Vec<&str> = vec![self.target()];
        for field in Whox::ORDER.chars().filter(|c| whox.fields.contains(*c)) {
            params.push(match field {
                't' => whox.token.as_deref().unwrap_or("0"),
                'c' => entry.chan,
                'u' => &who.user,
                'i' | 'h' => &who.host,
                's' => &ctx.shared.irc.server_name,
                'n' => who.name.as_str(),
                'f' => &flags,
                'd' | 'l' => "0",
                'a' => who.account.as_deref().unwrap_or("0"),
                'o' => "n/a",
                _ => &who.realname,
            });
        }
        let trailing = whox.fields.contains('r');
        let mut out = BytesMut::with_capacity(96);
        let server = &ctx.shared.irc.server_name;
        write_message(
            &mut out,
            &[],
            Some(server),
            RPL_WHOSPCRPL,
            &params,
            trailing,
        );
        out.freeze()
    }

    /// One WHO line: 352, or 354 for WHOX.
    fn who_reply(&self, ctx: &Ctx, query: &WhoQuery, entry: WhoEntry<'_>) -> Bytes {
        match &query.whox {
            Some(whox) => self.whox_line(ctx, whox, &entry),
            None => self.who_line(
                ctx,
                entry.chan,
                entry.who,
                entry.away,
                entry.oper,
                entry.status,
            ),
        }
    }

    /// An error from the core, as the numeric the command in `context` calls for.
    fn error(&mut self, ctx: &Ctx, error: &ChatError, out: &mut WriteQueue) {
        let text = error.to_string();
        if matches!(error, ChatError::LoginFailed | ChatError::LoginThrottled(_)) {
            self.sasl = auth::Sasl::Idle;
        }
        if matches!(
            error,
            ChatError::AccountExists(_) | ChatError::NoAccounts | ChatError::Busy
        ) {
            self.registering_account = false;
        }
        if matches!(
            error,
            ChatError::NameInUse(_) | ChatError::InvalidName { .. }
        ) && self.name.is_none()
        {
            // Registration failed: the client must send another NICK.
            self.registering = false;
            self.nick = None;
        }
        let n = |code: &str, params: &[&str]| self.numeric(ctx, code, params);
        let line = match (error, &self.context) {
            (_, Context::Silent) => return,
            (ChatError::NameInUse(name), _) => {
                n(ERR_NICKNAMEINUSE, &[name, "Nickname is already in use"])
            }
            (ChatError::InvalidName { name, .. }, _) => n(ERR_ERRONEUSNICKNAME, &[name, &text]),
            (ChatError::NoSuchUser(name), Context::Whois) => {
                out.push(n(ERR_NOSUCHNICK, &[name, "No such nick/channel"]));
                n(RPL_ENDOFWHOIS, &[name, "End of /WHOIS list."])
            }
            (ChatError::NoSuchUser(name), _) => n(ERR_NOSUCHNICK, &[name, "No such nick/channel"]),
            (ChatError::WasNoSuchUser(name), _) => {
                out.push(n(ERR_WASNOSUCHNICK, &[name, "There was no such nickname"]));
                n(RPL_ENDOFWHOWAS, &[name, "End of WHOWAS"])
            }
            (ChatError::NoSuchRoom(room), Context::Names) => n(
                RPL_ENDOFNAMES,
                &[&format!("#{room}"), "End of /NAMES list."],
            ),
            (ChatError::NoSuchRoom(_), Context::Who(query)) => {
                n(RPL_ENDOFWHO, &[&query.mask, "End of /WHO list."])
            }
            (ChatError::NoSuchRoom(room) | ChatError::InvalidRoom { name: room, .. }, _) => {
                n(ERR_NOSUCHCHANNEL, &[&format!("#{room}"), "No such channel"])
            }
            (ChatError::NotInRoom(room), _) => n(
                ERR_NOTONCHANNEL,
                &[&format!("#{room}"), "You're not on that channel"],
            ),
            (ChatError::UserNotInRoom { name, room }, _) => n(
                ERR_USERNOTINCHANNEL,
                &[name, &format!("#{room}"), "They aren't on that channel"],
            ),
            (ChatError::AlreadyInRoom { name, room }, _) => n(
                ERR_USERONCHANNEL,
                &[name, &format!("#{room}"), "is already on channel"],
            ),
            (ChatError::CannotSend(room), _) => n(
                ERR_CANNOTSENDTOCHAN,
                &[&format!("#{room}"), "Cannot send to channel"],
            ),
            (ChatError::OperatorNeeded(room), _) => n(
                ERR_CHANOPRIVSNEEDED,
                &[&format!("#{room}"), "You're not channel operator"],
            ),
            (ChatError::Banned(room), _) => n(
                ERR_BANNEDFROMCHAN,
                &[&format!("#{room}"), "Cannot join channel (+b)"],
            ),
            (ChatError::InviteOnly(room), _) => n(
                ERR_INVITEONLYCHAN,
                &[&format!("#{room}"), "Cannot join channel (+i)"],
            ),
            (ChatError::BadKey(room), _) => n(
                ERR_BADCHANNELKEY,
                &[&format!("#{room}"), "Cannot join channel (+k)"],
            ),
            (ChatError::RoomFull(room), _) => n(
                ERR_CHANNELISFULL,
                &[&format!("#{room}"), "Cannot join channel (+l)"],
            ),
            (ChatError::TooManyRooms { room, .. }, _) => n(
                ERR_TOOMANYCHANNELS,
                &[&format!("#{room}"), "You have joined too many channels"],
            ),
            (ChatError::TooManyMembers { room, .. }, _) => n(
                ERR_CHANNELISFULL,
                &[&format!("#{room}"), "Cannot join channel (channel is full)"],
            ),
            (ChatError::BanListFull(room), _) => n(
                ERR_BANLISTFULL,
                &[&format!("#{room}"), "b", "Channel ban list is full"],
            ),
            (ChatError::UnknownMode(c), _) => n(
                ERR_UNKNOWNMODE,
                &[&c.to_string(), "is unknown mode char to me"],
            ),
            (ChatError::ModeNeedsParameter(c), _) => n(
                ERR_NEEDMOREPARAMS,
                &["MODE", &format!("Mode {c} needs a parameter")],
            ),
            (ChatError::NoPrivileges, _) => n(
                ERR_NOPRIVILEGES,
                &["Permission Denied- You're not an IRC operator"],
            ),
            (ChatError::EmptyMessage, _) => n(ERR_NOTEXTTOSEND, &["No text to send"]),
            (ChatError::ControlCharacter, _) => {
                n(ERR_NOTEXTTOSEND, &["Messages cannot contain NUL"])
            }
            (ChatError::NotRegistered, _) => n(ERR_NOTREGISTERED, &["You have not registered"]),
            (ChatError::AlreadyRegistered(_), _) => {
                n(ERR_ALREADYREGISTERED, &["You may not reregister"])
            }
            (ChatError::Busy, _) => n(ERR_UNKNOWNERROR, &["PRIVMSG", &text]),
            (ChatError::NotDelivered(target), _) => n(ERR_CANNOTSENDTOCHAN, &[target, &text]),
            (ChatError::NameRegistered(name), _) => n(ERR_NICKNAMEINUSE, &[name, &text]),
            (ChatError::AlreadyLoggedIn(name), _) => n(ERR_NICKNAMEINUSE, &[name, &text]),
            (ChatError::LoginFailed | ChatError::LoginThrottled(_), _) => n(ERR_SASLFAIL, &[&text]),
            (ChatError::AccountExists(name), _) => {
                let mut line = BytesMut::new();
                let server = &ctx.shared.irc.server_name;
                let params = ["REGISTER", "ACCOUNT_EXISTS", name, &text];
                write_message(&mut line, &[], Some(server), "FAIL", &params, true);
                line.freeze()
            }
            (ChatError::NoAccounts, _) => n(ERR_UNKNOWNERROR, &["REGISTER", &text]),
        };
        out.push(line);
    }

    /// Replies (events only this client receives) as numerics.
    fn on_reply(&mut self, ctx: &Ctx, event: &Event, out: &mut WriteQueue) {
        match event {
            Event::Registered { name } => {
                self.registering = false;
                self.name = Some(name.clone());
                if self.caps.echo_message {
                    ctx.shared.lock_core().set_echo(ctx.id, true);
                }
                self.welcome(ctx, out);
                self.nick = None;
                self.user = None;
                if let (Some(key), Some(history)) = (self.early_account.take(), &ctx.shared.history)
                {
                    crate::accounts::deliver_offline(history, ctx.outbox(), *key);
                }
            }
            Event::Error(error) => self.error(ctx, error, out),
            Event::Members { room, members } => match &self.context {
                Context::Who(query) => {
                    let chan = channel(room);
                    for m in members.iter().filter(|m| m.oper || !query.opers_only) {
                        let entry = WhoEntry {
                            chan: &chan,
                            who: &m.who,
                            away: m.away,
                            oper: m.oper,
                            status: self.member_prefix(m.op, m.voice),
                        };
                        out.push(self.who_reply(ctx, query, entry));
                    }
                    let mask = &query.mask;
                    out.push(self.numeric(ctx, RPL_ENDOFWHO, &[mask, "End of /WHO list."]));
                }
                _ => self.names_reply(ctx, room, members, out),
            },
            Event::Rooms { rooms } => {
                out.push(self.numeric(ctx, RPL_LISTSTART, &["Channel", "Users  Name"]));
                let wanted = match &self.context {
                    Context::List(Some(wanted)) => Some(wanted),
                    _ => None,
                };
                for room in rooms {
                    let listed = wanted.is_none_or(|w| {
                        w.iter().any(|n| n.eq_ignore_ascii_case(room.name.as_str()))
                    });
                    if !listed {
                        continue;
                    }
                    out.push(self.numeric(
                        ctx,
                        RPL_LIST,
                        &[
                            &channel(&room.name),
                            &room.members.to_string(),
                            room.topic.as_deref().unwrap_or(""),
                        ],
                    ));
                }
                out.push(self.numeric(ctx, RPL_LISTEND, &["End of /LIST"]));
            }
            Event::TopicIs { room, topic } => {
                let chan = channel(room);
                match topic {
                    Some(topic) => {
                        out.push(self.numeric(ctx, RPL_TOPIC, &[&chan, &topic.text]));
                        out.push(self.numeric(
                            ctx,
                            RPL_TOPICWHOTIME,
                            &[&chan, &topic.by, &(topic.time_ms / 1000).to_string()],
                        ));
                    }
                    None if !matches!(self.context, Context::Join) => {
                        out.push(self.numeric(ctx, RPL_NOTOPIC, &[&chan, "No topic is set"]));
                    }
                    None => {}
                }
            }
            Event::RoomModes {
                room,
                modes,
                created_ms,
            } => {
                let chan = channel(room);
                let member = self.channels.contains(room);
                let (flags, args) = wire::room_modes_string(modes, member);
                let mut params = vec![chan.as_str(), flags.as_str()];
                params.extend(args.iter().map(String::as_str));
                out.push(self.numeric(ctx, RPL_CHANNELMODEIS, &params));
                out.push(self.numeric(
                    ctx,
                    RPL_CREATIONTIME,
                    &[&chan, &(created_ms / 1000).to_string()],
                ));
            }
            Event::BanList { room, bans } => {
                let chan = channel(room);
                for ban in bans {
                    out.push(self.numeric(
                        ctx,
                        RPL_BANLIST,
                        &[&chan, &ban.mask, &ban.by, &(ban.time_ms / 1000).to_string()],
                    ));
                }
                out.push(self.numeric(ctx, RPL_ENDOFBANLIST, &[&chan, "End of channel ban list"]));
            }
            Event::Invited { room, by } => {
                let mut line = BytesMut::new();
                write_message(
                    &mut line,
                    &[],
                    Some(&prefix(by)),
                    "INVITE",
                    &[self.target(), &channel(room)],
                    false,
                );
                out.push(line.freeze());
            }
            Event::InviteSent { room, target } => {
                out.push(self.numeric(ctx, RPL_INVITING, &[target.as_str(), &channel(room)]));
            }
            Event::AwayStatus { away: true } => {
                out.push(self.numeric(ctx, RPL_NOWAWAY, &["You have been marked as being away"]));
            }
            Event::AwayStatus { away: false } => {
                out.push(self.numeric(
                    ctx,
                    RPL_UNAWAY,
                    &["You are no longer marked as being away"],
                ));
            }
            Event::RecipientAway { name, message } => {
                out.push(self.numeric(ctx, RPL_AWAY, &[name.as_str(), message]));
            }
            Event::UserInfo(info) => {
                let nick = info.who.name.as_str();
                let server = &ctx.shared.irc.server_name;
                out.push(self.numeric(
                    ctx,
                    RPL_WHOISUSER,
                    &[
                        nick,
                        &info.who.user,
                        &info.who.host,
                        "*",
                        &info.who.realname,
                    ],
                ));
                if !info.rooms.is_empty() {
                    let rooms: Vec<String> =
                        info.rooms.iter().map(|(p, r)| format!("{p}#{r}")).collect();
                    out.push(self.numeric(ctx, RPL_WHOISCHANNELS, &[nick, &rooms.join(" ")]));
                }
                out.push(self.numeric(ctx, RPL_WHOISSERVER, &[nick, server, "confab"]));
                if info.who.bot {
                    out.push(self.numeric(ctx, RPL_WHOISBOT, &[nick, "is a bot"]));
                }
                if let Some(away) = &info.away {
                    out.push(self.numeric(ctx, RPL_AWAY, &[nick, away]));
                }
                if info.oper {
                    out.push(self.numeric(ctx, RPL_WHOISOPERATOR, &[nick, "is an IRC operator"]));
                }
                out.push(self.numeric(
                    ctx,
                    RPL_WHOISIDLE,
                    &[
                        nick,
                        &(info.idle_ms / 1000).to_string(),
                        &(info.signon_ms / 1000).to_string(),
                        "seconds idle, signon time",
                    ],
                ));
                out.push(self.numeric(ctx, RPL_ENDOFWHOIS, &[nick, "End of /WHOIS list."]));
            }
            Event::WasUser { entries } => {
                let (name, count) = match &self.context {
                    Context::WhoWas(asked) => asked.as_ref().clone(),
                    _ => (entries[0].name.to_string(), usize::MAX),
                };
                let server = &ctx.shared.irc.server_name;
                for who in entries.iter().take(count) {
                    let nick = who.name.as_str();
                    out.push(self.numeric(
                        ctx,
                        RPL_WHOWASUSER,
                        &[nick, &who.user, &who.host, "*", &who.realname],
                    ));
                    out.push(self.numeric(ctx, RPL_WHOISSERVER, &[nick, server, "confab"]));
                }
                out.push(self.numeric(ctx, RPL_ENDOFWHOWAS, &[&name, "End of WHOWAS"]));
            }
            Event::Presence { users } => match &self.context {
                Context::Ison => {
                    let names: Vec<&str> = users.iter().map(|u| u.who.name.as_str()).collect();
                    out.push(self.numeric(ctx, RPL_ISON, &[&names.join(" ")]));
                }
                Context::Userhost => {
                    let entries: Vec<String> = users
                        .iter()
                        .map(|u| {
                            format!(
                                "{}{}={}{}@{}",
                                u.who.name,
                                if u.oper { "*" } else { "" },
                                if u.away { "-" } else { "+" },
                                u.who.user,
                                u.who.host
                            )
                        })
                        .collect();
                    out.push(self.numeric(ctx, RPL_USERHOST, &[&entries.join(" ")]));
                }
                Context::Who(query) => {
                    for u in users.iter().filter(|u| u.oper || !query.opers_only) {
                        let entry = WhoEntry {
                            chan: "*",
                            who: &u.who,
                            away: u.away,
                            oper: u.oper,
                            status: "",
                        };
                        out.push(self.who_reply(ctx, query, entry));
                    }
                    let mask = &query.mask;
                    out.push(self.numeric(ctx, RPL_ENDOFWHO, &[mask, "End of /WHO list."]));
                }
                _ => {}
            },
            Event::Killed { by, reason } => {
                self.killed = Some(Box::new(format!("Killed ({} ({reason}))", by.name)));
            }
            Event::LoggedIn { account } => {
                if self.name.is_none() {
                    self.early_account = Some(Box::new(account.key().as_str().into()));
                }
                // Once registered, the core has the user name (the session let go of it).
                let registered = ctx.shared.lock_core().source_of(ctx.id);
                let mask = match registered {
                    Some(source) => prefix(&source),
                    None => format!(
                        "{}!{}@{}",
                        self.target(),
                        self.user.as_ref().map_or("", |u| &u.0),
                        self.peer.ip()
                    ),
                };
                out.push(self.numeric(
                    ctx,
                    RPL_LOGGEDIN,
                    &[
                        &mask,
                        account.as_str(),
                        &format!("You are now logged in as {account}"),
                    ],
                ));
                if matches!(self.sasl, auth::Sasl::Checking) {
                    self.sasl = auth::Sasl::Idle;
                    out.push(self.numeric(
                        ctx,
                        RPL_SASLSUCCESS,
                        &["SASL authentication successful"],
                    ));
                }
                if std::mem::take(&mut self.registering_account) {
                    let mut line = BytesMut::new();
                    let server = &ctx.shared.irc.server_name;
                    let params = ["SUCCESS", account.as_str(), "Account created"];
                    write_message(&mut line, &[], Some(server), "REGISTER", &params, true);
                    out.push(line.freeze());
                }
            }
            Event::LoginRequired { name } => {
                crate::accounts::start_grace(ctx.shared, ctx.id);
                out.push(self.notice(ctx, &format!(
                    "The nick {name} is registered: identify with SASL or /msg NickServ IDENTIFY PASSWORD soon, or you will be renamed"
                )));
            }
            Event::StoredForLater { name } => {
                out.push(self.notice(ctx, &format!("{name} is offline; your message was stored and will be delivered when they log in")));
            }
            _ => {}
        }
    }
}

impl Protocol for IrcSession {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    const PINGS: bool = true;

    fn max_line(&self) -> usize {
        MAX_LINE
    }

    fn is_keepalive(&self, line: &[u8]) -> bool {
        is_ping_or_pong(line)
    }

    fn keepalive(&mut self) -> Option<Bytes> {
        let mut out = BytesMut::new();
        write_message(&mut out, &[], None, "PING", &[self.target()], true);
        Some(out.freeze())
    }

    fn take_close(&mut self) -> Option<Close> {
        self.killed.take().map(|why| Close::Killed(*why))
    }

    fn greet(&mut self, _ctx: &Ctx) {}

    fn on_line(&mut self, raw: &[u8], ctx: &Ctx) -> Flow {
        let lossy;
        let line = match std::str::from_utf8(raw) {
            Ok(line) => line,
            Err(_) => {
                lossy = String::from_utf8_lossy(raw);
                if !self.accepts_lossy(&lossy) {
                    return self.invalid_utf8(&lossy, ctx);
                }
                &lossy
            }
        };
        let message = match wire::parse(line) {
            Ok(message) => message,
            Err(wire::ParseError::Empty) => return Flow::Continue,
            Err(wire::ParseError::TooLong | wire::ParseError::TagsTooLong) => {
                self.reply(ctx, ERR_INPUTTOOLONG, &["Input line was too long"]);
                return Flow::Continue;
            }
            Err(wire::ParseError::NoCommand) => return Flow::Continue,
        };
        // The message-tags spec gives a client's own tags 4094 bytes of the tag
        // section; the rest is room for the tags the server adds when relaying.
        if message
            .raw_tags
            .is_some_and(|t| t.len() > wire::MAX_CLIENT_TAG_DATA)
        {
            self.reply(ctx, ERR_INPUTTOOLONG, &["Input line was too long"]);
            return Flow::Continue;
        }
        self.context = Context::None;
        self.start_label(&message);
        commands::dispatch(self, &message, ctx)
    }

    fn on_too_long(&mut self, ctx: &Ctx) {
        // A line past even the tag allowance: the decoder has dropped it whole.
        self.reply(ctx, ERR_INPUTTOOLONG, &["Input line was too long"]);
    }

    fn on_event(&mut self, envelope: &Arc<Envelope>, ctx: &Ctx, out: &mut WriteQueue) {
        if self.labeled.is_some() && self.is_response(&envelope.event) {
            let mut collected = WriteQueue::default();
            self.handle_event(envelope, ctx, &mut collected);
            if let Some(labeled) = &mut self.labeled {
                for chunk in collected.into_chunks() {
                    labeled.bytes.extend_from_slice(&chunk);
                }
            }
        } else {
            self.handle_event(envelope, ctx, out);
        }
    }

    /// A plain PRIVMSG (no tags, no prefix) only sets the context its own replies are
    /// rendered in, which every PRIVMSG shares; anything else first has the collected
    /// messages sent and their replies rendered.
    fn continues_run(&self, line: &[u8]) -> bool {
        line.get(..8)
            .is_some_and(|start| start.eq_ignore_ascii_case(b"PRIVMSG "))
    }

    fn on_batch(&mut self, batch: &Arc<Batch>, ctx: &Ctx, out: &mut WriteQueue) {
        if self.labeled.is_some() {
            // Some messages may be responses to the labeled command; sort them one by one.
            for envelope in &batch.messages {
                self.on_event(envelope, ctx, out);
            }
            return;
        }
        let tagged =
            |all: bool| move |out: &mut BytesMut, m: &Message| put_message_with(out, m, Some(all));
        out.push(if self.caps.message_tags {
            batch.encoded(slot::IRC_ALL_TAGS, tagged(true))
        } else if self.caps.server_time {
            batch.encoded(slot::IRC_TIME_TAG, tagged(false))
        } else {
            batch.encoded(slot::IRC, put_message)
        });
    }

    fn after_line(&mut self, ctx: &Ctx, out: &mut WriteQueue) {
        self.finish_labeled(ctx, out);
    }

    fn farewell(&mut self, why: &Close) -> Option<Bytes> {
        let reason = match why {
            Close::Eof | Close::Io(_) => return None,
            Close::Shutdown => "Server shutting down".to_string(),
            other => other.reason(),
        };
        let mut out = BytesMut::new();
        let text = format!("Closing Link: {} ({reason})", self.peer.ip());
        write_message(&mut out, &[], None, "ERROR", &[&text], true);
        Some(out.freeze())
    }

    fn registered(&self) -> bool {
        self.name.is_some()
    }
}

impl IrcSession {
    /// Whether a line that is not UTF-8 is still taken, with its bad bytes replaced:
    /// only `USER` before registration, whose user name is filtered anyway and whose
    /// real name is shown as replaced, so that registration never waits on it.
    fn accepts_lossy(&self, line: &str) -> bool {
        let command = wire::parse(line).map(|m| m.command).unwrap_or_default();
        self.name.is_none() && command.eq_ignore_ascii_case("USER")
    }

    /// Starts collecting the response to a command that carries a `label` tag.
    fn start_label(&mut self, message: &wire::Message<'_>) {
        if self.caps.labeled_response {
            if let Some(label) = message
                .tag("label")
                .filter(|l| !l.is_empty() && l.len() <= 64)
            {
                self.labeled = Some(Box::new(Labeled {
                    label: label.into_owned(),
                    bytes: BytesMut::new(),
                }));
            }
        }
    }

    /// UTF8ONLY: a line that is not UTF-8 is refused with the standard reply
    /// `FAIL <command> INVALID_UTF8`, `*` when even the command is unreadable.
    fn invalid_utf8(&mut self, lossy: &str, ctx: &Ctx) -> Flow {
        let parsed = wire::parse(lossy).ok();
        if let Some(message) = &parsed {
            self.start_label(message);
        }
        let command = parsed
            .map(|m| m.command.to_ascii_uppercase())
            .filter(|c| c.bytes().all(|b| b.is_ascii_alphanumeric()))
            .unwrap_or_else(|| "*".into());
        let line = self.server_line(
            ctx,
            "FAIL",
            &[
                &command,
                "INVALID_UTF8",
                "Message rejected, your IRC software MUST use UTF-8 encoding on this network",
            ],
        );
        self.send(ctx, line);
        Flow::Continue
    }
}

/// Whether a raw IRC line is a PING or PONG, looking past tags and a prefix without
/// parsing the rest.
fn is_ping_or_pong(line: &[u8]) -> bool {
    let mut rest = line;
    for marker in [b'@', b':'] {
        if rest.first() == Some(&marker) {
            let Some(space) = rest.iter().position(|&b| b == b' ') else {
                return false;
            };
            rest = &rest[space..];
            while rest.first() == Some(&b' ') {
                rest = &rest[1..];
            }
        }
    }
    let command = rest.split(|&b| b == b' ').next().unwrap_or_default();
    command.eq_ignore_ascii_case(b"PING") || command.eq_ignore_ascii_case(b"PONG")
}

impl IrcSession {
    fn handle_event(&mut self, envelope: &Arc<Envelope>, ctx: &Ctx, out: &mut WriteQueue) {
        let event = &envelope.event;
        match event {
            // The message-tags spec: TAGMSG only to clients that read tags.
            Event::Message(m) if m.kind == MessageKind::Tags && !self.caps.message_tags => {}
            Event::Message(Message { .. })
            | Event::Parted { .. }
            | Event::Quit { .. }
            | Event::TopicChanged { .. }
            | Event::ModeChanged { .. } => self.push_broadcast(envelope, out),
            Event::AwayChanged { .. } => {
                if self.caps.away_notify {
                    self.push_broadcast(envelope, out);
                }
            }
            Event::Joined { who, away, .. } => {
                self.push_broadcast(envelope, out);
                // away-notify: those told of absences learn that the joiner is away.
                if let (true, Some(away)) = (self.caps.away_notify, away) {
                    if !self.is_me(&who.name) {
                        self.push_tags(envelope, out);
                        let mut line = BytesMut::new();
                        write_message(&mut line, &[], Some(&prefix(who)), "AWAY", &[away], true);
                        out.push(line.freeze());
                    }
                }
            }
            Event::Kicked { .. } | Event::NickChanged { .. } => self.push_broadcast(envelope, out),
            _ => self.on_reply(ctx, event, out),
        }
        // Keep the session's own view of itself current.
        match event {
            Event::Joined { room, who, .. }
                if self.is_me(&who.name) && !self.channels.contains(room) =>
            {
                self.channels.push(room.clone());
            }
            Event::Parted { room, who, .. } if self.is_me(&who.name) => {
                self.channels.retain(|r| r != room);
            }
            Event::Kicked { room, target, .. } if self.is_me(target) => {
                self.channels.retain(|r| r != room);
            }
            Event::NickChanged { old, new } if self.is_me(&old.name) => {
                self.name = Some(new.clone());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_and_pongs_are_keepalives() {
        for line in [
            "PING x",
            "pong :x",
            "@label=1 PING x",
            ":nick PONG srv",
            "PING",
        ] {
            assert!(is_ping_or_pong(line.as_bytes()), "{line}");
        }
        for line in ["PRIVMSG #a :PING", "PINGS", "@label=1", ":nick", ""] {
            assert!(!is_ping_or_pong(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn every_offered_cap_can_be_enabled() {
        let mut caps = Caps::default();
        for cap in CAPS {
            *caps.flag(cap).expect("known") = true;
        }
        assert_eq!(caps.enabled(), CAPS);
    }
}

#[cfg(test)]
mod encoding {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    /// The general writer's rendering of a message, as the server wrote it before
    /// `encode_message`.
    fn through_write_message(m: &Message) -> Bytes {
        let mut out = BytesMut::new();
        let target = match &m.to {
            Target::Room(room) => channel(room),
            Target::User(name) => name.to_string(),
        };
        let (command, text) = match m.kind {
            MessageKind::Normal => ("PRIVMSG", m.text.to_string()),
            MessageKind::Notice => ("NOTICE", m.text.to_string()),
            MessageKind::Action => ("PRIVMSG", format!("\x01ACTION {}\x01", m.text)),
            MessageKind::Tags => unreachable!("not generated"),
        };
        let params = [target.as_str(), text.as_str()];
        write_message(
            &mut out,
            &[],
            Some(&prefix(&m.from)),
            command,
            &params,
            true,
        );
        out.freeze()
    }

    proptest! {
        #[test]
        fn writes_messages_as_write_message_would(
            name in "[a-zA-Z_\\[\\]{}|^-][a-zA-Z0-9_\\[\\]{}|^-]{0,15}",
            user in "~?[a-z]{1,10}",
            host in "[0-9a-f.:]{1,39}",
            room in proptest::option::of("[a-z0-9_.-]{1,20}"),
            text in "[^\0\r\n]{1,200}",
            kind in prop::sample::select(vec![
                MessageKind::Normal,
                MessageKind::Notice,
                MessageKind::Action,
            ]),
        ) {
            let to = match room {
                Some(room) => Target::Room(RoomName::parse(&room).unwrap()),
                None => Target::User(Name::parse("bob").unwrap()),
            };
            let m = Message {
                id: 1,
                time_ms: 0,
                from: Arc::new(Source {
                    name: Name::parse(&name).unwrap(),
                    user: user.into(),
                    host: host.into(),
                    realname: "r".into(),
                    account: None,
                    session: 0,
                    bot: false,
                }),
                to,
                kind,
                text: text.into(),
                tags: None,
            };
            prop_assert_eq!(encode_message(&m), through_write_message(&m));
        }
    }
}
