//! The IRC front-end: RFC 1459/2812 client protocol with IRCv3 capabilities, speaking to
//! the same chat core as every other front-end. Channel `#lobby` is room `lobby`.
//!
//! # Layout
//! - this file: the session state, which of the encodings in
//!   `confab_wire::irc::encode` each event gets (by the client's caps), and which of
//!   the replies in `confab_wire::irc::reply` each reply gets (by the command that
//!   caused it);
//! - `who.rs`: WHO and NAMES, whose lines depend on caps; `welcome.rs`: the welcome
//!   burst (001 to 005, LUSERS, MOTD);
//! - `commands.rs`: one table of commands (name, minimum parameters, allowed before
//!   registration) and a small handler for each;
//! - `auth.rs`: SASL, REGISTER and NickServ; `history.rs`: CHATHISTORY.
//!
//! The numerics by name are `confab_wire::irc::numerics`.
//!
//! Replies to a command are read with the command's *context*: the connection loop
//! drains a client's outbox right after each input line, so every reply the core makes
//! to that line arrives before the next line is read, and `context` still names the
//! command that caused it (a `Members` reply is NAMES output after JOIN or NAMES, WHO
//! output after WHO).

mod auth;
mod commands;
mod history;
mod welcome;
mod who;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use confab_core::{slot, Batch, ChatError, Envelope, Event, Message, MessageKind, Name, RoomName};
use confab_wire::irc::encode::{
    self, channel, encode_broadcast, encode_tags, is_split, labeled_response, prefix, put_message,
    put_message_with,
};
use confab_wire::irc::reply::{self, To};
use confab_wire::irc::{self as wire, numerics, split, write_message, MAX_LINE};
use confab_wire::time::iso_time;

use crate::ctx::Ctx;
use crate::protocol::{Close, Flow, Protocol};
use crate::shared::Shared;
use crate::write_queue::WriteQueue;
use numerics::*;
use who::{WhoQuery, Whox};

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

/// The clock's time for the tags of an event that carries none of its own.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
        self.to(ctx).numeric(code, params)
    }

    /// Where this client's numerics come from and go to.
    fn to<'a>(&'a self, ctx: &'a Ctx) -> To<'a> {
        To {
            server: &ctx.shared.irc.server_name,
            nick: self.target(),
        }
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
        self.to(ctx).notice(text)
    }

    /// A line from the server itself, such as `CAP` or `PONG`.
    fn server_line(&self, ctx: &Ctx, command: &str, params: &[&str]) -> Bytes {
        encode::server_line(&ctx.shared.irc.server_name, command, params, false)
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
        ctx.set_identity(user, realname);
        self.registering = true;
        self.context = Context::Register;
        ctx.command(confab_core::Command::Register {
            name: nick.to_string(),
        });
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
            out.push(envelope.encoded(slot::IRC_ALL_TAGS, |e| encode_tags(e, true, now_ms)));
        } else if self.caps.server_time {
            out.push(envelope.encoded(slot::IRC_TIME_TAG, |e| encode_tags(e, false, now_ms)));
        }
    }

    /// An error from the core, as the numeric the command in `context` calls for.
    fn error(&mut self, ctx: &Ctx, error: &ChatError, out: &mut WriteQueue) {
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
        let to = self.to(ctx);
        let line = match (error, &self.context) {
            (_, Context::Silent) => return,
            (ChatError::NoSuchUser(name), Context::Whois) => {
                out.push(to.numeric(ERR_NOSUCHNICK, &[name, "No such nick/channel"]));
                to.numeric(RPL_ENDOFWHOIS, &[name, "End of /WHOIS list."])
            }
            (ChatError::NoSuchRoom(room), Context::Names) => to.numeric(
                RPL_ENDOFNAMES,
                &[&format!("#{room}"), "End of /NAMES list."],
            ),
            (ChatError::NoSuchRoom(_), Context::Who(query)) => {
                to.numeric(RPL_ENDOFWHO, &[&query.mask, "End of /WHO list."])
            }
            _ => return reply::error(to, error, |line| out.push(line)),
        };
        out.push(line);
    }

    /// Replies (events only this client receives) as numerics.
    fn on_reply(&mut self, ctx: &Ctx, event: &Event, out: &mut WriteQueue) {
        match event {
            Event::Registered { name } => self.registered_as(ctx, name, out),
            Event::Error(error) => self.error(ctx, error, out),
            Event::Members { room, members } => match &self.context {
                Context::Who(query) => self.who_members(ctx, query, room, members, out),
                _ => self.names_reply(ctx, room, members, out),
            },
            Event::Rooms { rooms } => {
                let wanted = match &self.context {
                    Context::List(Some(wanted)) => Some(wanted.as_slice()),
                    _ => None,
                };
                reply::list(self.to(ctx), rooms, wanted, |line| out.push(line));
            }
            Event::TopicIs { room, topic } => {
                let joining = matches!(self.context, Context::Join);
                let push = |line| out.push(line);
                reply::topic(self.to(ctx), room, topic.as_ref(), joining, push);
            }
            Event::RoomModes {
                room,
                modes,
                created_ms,
            } => {
                let member = self.channels.contains(room);
                let push = |line| out.push(line);
                reply::room_modes(self.to(ctx), room, modes, *created_ms, member, push);
            }
            Event::BanList { room, bans } => {
                reply::ban_list(self.to(ctx), room, bans, |line| out.push(line));
            }
            Event::Invited { room, by } => out.push(reply::invite(self.to(ctx), by, room)),
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
            Event::UserInfo(info) => reply::whois(self.to(ctx), info, |line| out.push(line)),
            Event::WasUser { entries } => {
                let (name, count) = match &self.context {
                    Context::WhoWas(asked) => asked.as_ref().clone(),
                    _ => (entries[0].name.to_string(), usize::MAX),
                };
                let push = |line| out.push(line);
                reply::whowas(self.to(ctx), &name, count, entries, push);
            }
            Event::Presence { users } => match &self.context {
                Context::Ison => out.push(reply::ison(self.to(ctx), users)),
                Context::Userhost => out.push(reply::userhost(self.to(ctx), users)),
                Context::Who(query) => self.who_users(ctx, query, users, out),
                _ => {}
            },
            Event::Killed { by, reason } => {
                self.killed = Some(Box::new(format!("Killed ({} ({reason}))", by.name)));
            }
            Event::LoggedIn { account } => self.logged_in(ctx, account, out),
            Event::LoginRequired { name } => {
                crate::accounts::start_grace(ctx);
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

    /// Registration is done: the client is `name`, and is welcomed.
    fn registered_as(&mut self, ctx: &Ctx, name: &Name, out: &mut WriteQueue) {
        self.registering = false;
        self.name = Some(name.clone());
        if self.caps.echo_message {
            ctx.set_echo(true);
        }
        self.welcome(ctx, out);
        self.nick = None;
        self.user = None;
        if let (Some(key), Some(history)) = (self.early_account.take(), ctx.history()) {
            crate::accounts::deliver_offline(history, ctx.outbox(), *key);
        }
    }

    /// A login succeeded (SASL, NickServ, or REGISTER's own).
    fn logged_in(&mut self, ctx: &Ctx, account: &Name, out: &mut WriteQueue) {
        if self.name.is_none() {
            self.early_account = Some(Box::new(account.key().as_str().into()));
        }
        // Once registered, the core has the user name (the session let go of it).
        let registered = ctx.source();
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
            out.push(self.numeric(ctx, RPL_SASLSUCCESS, &["SASL authentication successful"]));
        }
        if std::mem::take(&mut self.registering_account) {
            let server = &ctx.shared.irc.server_name;
            let params = ["SUCCESS", account.as_str(), "Account created"];
            out.push(encode::server_line(server, "REGISTER", &params, true));
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
                        encode::put_away(&mut line, who, Some(away));
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
