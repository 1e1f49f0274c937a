//! The line protocol front-end: turns what a line user types into core commands and
//! core events into the lines of docs/line-protocol.md.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use confab_core::{slot, Batch, Command, Envelope, Event, MessageKind, Name, Recipient, RoomName};
use confab_wire::line::{self, Input};

use confab_store::Range;

use crate::accounts;
use crate::ctx::{Ctx, Later};
use crate::history::{may_read_direct, room_conversation, History, Thread};
use crate::outbox::Outgoing;
use crate::protocol::{Close, Flow, Protocol};
use crate::write_queue::WriteQueue;

/// One line-protocol user's session state.
pub(crate) struct LineSession {
    peer: SocketAddr,
    /// The registered name, kept current through nick changes.
    name: Option<Name>,
    /// Rooms this user is in, oldest first.
    rooms: Vec<RoomName>,
    /// Where plain text goes; one of `rooms`.
    current: Option<RoomName>,
    max_line: usize,
    /// Set when a server operator removed this user: the session must end.
    killed: Option<String>,
}

impl LineSession {
    pub(crate) fn new(peer: SocketAddr, max_line: usize) -> Self {
        LineSession {
            peer,
            name: None,
            rooms: Vec::new(),
            current: None,
            max_line,
            killed: None,
        }
    }

    fn is_me(&self, name: &Name) -> bool {
        self.name
            .as_ref()
            .is_some_and(|me| me.as_str().eq_ignore_ascii_case(name.as_str()))
    }

    fn current_room_note(&self) -> Bytes {
        match &self.current {
            Some(room) => line::info(&format!("Now talking in {room}")),
            None => line::info("You are in no room; /join ROOM to talk"),
        }
    }

    fn say(&self, text: &str, kind: MessageKind, ctx: &Ctx) {
        match &self.current {
            Some(room) => ctx.say(Recipient::Room(room.to_string()), kind, text.to_string()),
            None => ctx.send(line::error("You are in no room; /join ROOM to talk")),
        }
    }

    /// Forgets a room this user is no longer in, moving the current room if needed.
    fn left(&mut self, room: &RoomName, out: &mut WriteQueue) {
        self.rooms.retain(|r| r != room);
        if self.current.as_ref() == Some(room) {
            self.current = self.rooms.last().cloned();
            out.push(self.current_room_note());
        }
    }

    /// Answers `/history` from the store thread, straight into this client's outbox.
    /// Only members read a room's history; a conversation only its two parties.
    fn history(&self, target: Option<&str>, count: usize, ctx: &Ctx) {
        let Some(history) = &ctx.shared.history else {
            ctx.send(line::error("This server keeps no history"));
            return;
        };
        let me = self.name.as_ref().expect("registered").to_string();
        let (conversation, label, room) =
            match target.or(self.current.as_ref().map(RoomName::as_str)) {
                Some(user) if user.starts_with('@') => {
                    if !may_read_direct(ctx.shared, ctx.id) {
                        ctx.send(line::error(&format!(
                            "Log in as {me} to read its direct messages"
                        )));
                        return;
                    }
                    let user = &user[1..];
                    let Some(thread) = Thread::direct(ctx.shared, ctx.id, user) else {
                        return;
                    };
                    (thread, format!("@{user}"), None)
                }
                Some(room) => match self
                    .rooms
                    .iter()
                    .find(|r| r.as_str().eq_ignore_ascii_case(room))
                {
                    Some(room) => (
                        Thread::Room(room_conversation(room.as_str())),
                        room.to_string(),
                        Some(room.to_string()),
                    ),
                    None => {
                        ctx.send(line::error(&format!("You are not in room {room}")));
                        return;
                    }
                },
                None => {
                    ctx.send(line::error(
                        "You are in no room; use /history ROOM or /history @USER",
                    ));
                    return;
                }
            };
        send_history(
            history,
            ctx.outbox(),
            conversation,
            label,
            room,
            Range::Latest,
            count.clamp(1, 500),
            true,
        );
    }

    fn room_or_current<'a>(&'a self, room: Option<&'a str>) -> Option<&'a str> {
        room.or(self.current.as_ref().map(RoomName::as_str))
    }
}

/// Reads one conversation on the store thread and queues the lines for the client.
/// `always` also reports an empty history; joins stay quiet about it.
#[allow(clippy::too_many_arguments)]
fn send_history(
    history: &History,
    outbox: Later,
    conversation: Thread,
    label: String,
    room: Option<String>,
    range: Range,
    count: usize,
    always: bool,
) {
    let problem = history.write_problem();
    let failed = outbox.clone();
    let queued = history.run(move |store| {
        let messages = match conversation.read(store, range, count) {
            Ok(messages) => messages,
            Err(e) => {
                tracing::error!("history query failed: {e}");
                outbox.push(Outgoing::Raw(line::error(
                    "History is unavailable right now",
                )));
                return;
            }
        };
        if messages.is_empty() && !always {
            return;
        }
        let header = if always {
            format!("History of {label} ({} messages):", messages.len())
        } else {
            format!("Recent messages in {label}:")
        };
        outbox.push(Outgoing::Raw(line::info(&header)));
        if let Some(problem) = &problem {
            outbox.push(Outgoing::Raw(line::error(problem)));
        }
        for m in &messages {
            outbox.push(Outgoing::Raw(line::history_line(
                m.time_ms,
                room.as_deref(),
                &m.sender,
                m.kind,
                &m.text,
            )));
        }
        if always {
            outbox.push(Outgoing::Raw(line::info("End of history")));
        }
    });
    if !queued {
        failed.push(Outgoing::Raw(line::error(
            "The server is busy; try /history again in a moment",
        )));
    }
}

impl Protocol for LineSession {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn max_line(&self) -> usize {
        self.max_line
    }

    fn is_keepalive(&self, line: &[u8]) -> bool {
        // `confab join` pings with `/ping` to stay within the idle timeout.
        std::str::from_utf8(line).is_ok_and(|l| matches!(line::parse_input(l), Input::Ping))
    }

    fn take_close(&mut self) -> Option<Close> {
        self.killed.take().map(Close::Killed)
    }

    fn greet(&mut self, ctx: &Ctx) {
        ctx.send(line::greeting(&self.peer.to_string()));
    }

    fn on_line(&mut self, raw: &[u8], ctx: &Ctx) -> Flow {
        let Ok(text) = std::str::from_utf8(raw) else {
            ctx.send(line::error("Invalid UTF-8; line discarded"));
            return Flow::Continue;
        };
        let input = line::parse_input(text);
        let allowed_unregistered = matches!(
            input,
            Input::Empty | Input::Register(_) | Input::Help | Input::Quit(_) | Input::Login { .. }
        );
        if self.name.is_none() && !allowed_unregistered {
            ctx.send(line::error("Register first by sending #yourname"));
            return Flow::Continue;
        }
        match input {
            Input::Empty => {}
            Input::Register(name) => ctx.command(Command::Register { name: name.into() }),
            Input::Direct { to, text } => {
                ctx.say(Recipient::User(to.into()), MessageKind::Normal, text.into())
            }
            Input::Say(text) => self.say(text, MessageKind::Normal, ctx),
            Input::Action(text) => self.say(text, MessageKind::Action, ctx),
            Input::Join { room, key } => {
                if let Some(known) = self
                    .rooms
                    .iter()
                    .find(|r| r.as_str().eq_ignore_ascii_case(room))
                {
                    self.current = Some(known.clone());
                    ctx.send(self.current_room_note());
                } else {
                    ctx.command(Command::Join {
                        room: room.into(),
                        key: key.map(Into::into),
                    });
                }
            }
            Input::Part { room, reason } => match self.room_or_current(room) {
                Some(room) => ctx.command(Command::Part {
                    room: room.into(),
                    reason: reason.map(Into::into),
                }),
                None => ctx.send(line::error("You are in no room")),
            },
            Input::Rooms => ctx.command(Command::Rooms),
            Input::Who(room) => match self.room_or_current(room) {
                Some(room) => ctx.command(Command::Who { room: room.into() }),
                None => ctx.send(line::error("Usage: /who ROOM")),
            },
            Input::Nick(name) => ctx.command(Command::Nick { name: name.into() }),
            Input::Help => {
                for help in line::HELP {
                    ctx.send(line::info(help));
                }
            }
            Input::Ping => ctx.send(line::info("pong")),
            Input::RegisterAccount(password) => {
                accounts::register(ctx.shared, ctx.id, ctx.outbox(), password.to_string())
            }
            Input::Login { name, password } => accounts::login(
                ctx.shared,
                ctx.id,
                ctx.outbox(),
                self.peer.ip(),
                name,
                password.to_string(),
                true,
            ),
            Input::History { target, count } => self.history(target, count.unwrap_or(50), ctx),
            Input::Quit(reason) => {
                return Flow::Close(Close::Quit(reason.unwrap_or("Quit").to_string()));
            }
            Input::Usage(usage) => ctx.send(line::error(&format!("Usage: {usage}"))),
            Input::Unknown(command) => ctx.send(line::error(&format!(
                "Unknown command /{command}; /help lists commands"
            ))),
        }
        Flow::Continue
    }

    fn on_too_long(&mut self, ctx: &Ctx) {
        ctx.send(line::error(&format!(
            "Line too long (the limit is {} bytes); it was discarded",
            self.max_line
        )));
    }

    /// The line protocol's replies never depend on the command they answer, but
    /// commands may act outside the core (a history query must see the messages sent
    /// before it), so only messages follow messages still being collected.
    fn continues_run(&self, line: &[u8]) -> bool {
        line::is_message(line)
    }

    fn on_batch(&mut self, batch: &Arc<Batch>, _ctx: &Ctx, out: &mut WriteQueue) {
        out.push(batch.encoded(slot::LINE, line::put_message));
    }

    fn on_event(&mut self, envelope: &Arc<Envelope>, ctx: &Ctx, out: &mut WriteQueue) {
        out.push(envelope.encoded(slot::LINE, line::encode_event));
        match &envelope.event {
            Event::Registered { name } => {
                self.name = Some(name.clone());
                ctx.command(Command::Join {
                    room: ctx.shared.default_room.clone(),
                    key: None,
                });
            }
            Event::Joined {
                room,
                who,
                history_until,
                ..
            } if self.is_me(&who.name) => {
                self.rooms.push(room.clone());
                self.current = Some(room.clone());
                out.push(self.current_room_note());
                // Joining shows the last few lines, so that a newcomer has context;
                // only lines from before the join, which are not delivered live.
                if let Some(history) = &ctx.shared.history {
                    let key = Thread::Room(room_conversation(room.as_str()));
                    let range = Range::BeforeId(history_until + 1);
                    send_history(
                        history,
                        ctx.outbox(),
                        key,
                        room.to_string(),
                        Some(room.to_string()),
                        range,
                        10,
                        false,
                    );
                }
            }
            Event::Parted { room, who, .. } if self.is_me(&who.name) => self.left(room, out),
            Event::Kicked { room, target, .. } if self.is_me(target) => self.left(room, out),
            Event::Killed { by, reason } => {
                self.killed = Some(format!("Killed ({} ({reason}))", by.name));
            }
            Event::LoginRequired { .. } => accounts::start_grace(ctx.shared, ctx.id),
            Event::NickChanged { old, new } if self.is_me(&old.name) => {
                self.name = Some(new.clone());
            }
            _ => {}
        }
    }

    fn farewell(&mut self, why: &Close) -> Option<Bytes> {
        Some(match why {
            Close::Quit(_) => line::info("Goodbye"),
            Close::Shutdown => line::info("Server is shutting down"),
            Close::SendQueueExceeded => {
                line::error("Disconnected: you were not reading fast enough (send queue exceeded)")
            }
            Close::RegistrationTimeout => {
                line::error("Disconnected: register with #name sooner next time")
            }
            Close::IdleTimeout | Close::PingTimeout => {
                line::error("Disconnected: idle for too long")
            }
            Close::Killed(reason) => line::error(&format!("Disconnected: {reason}")),
            Close::ExcessFlood => line::error("Disconnected: excess flood"),
            Close::PartialLine => {
                line::error("Disconnected: a line was left unfinished for too long")
            }
            Close::Eof | Close::Io(_) => return None,
        })
    }

    fn registered(&self) -> bool {
        self.name.is_some()
    }
}
