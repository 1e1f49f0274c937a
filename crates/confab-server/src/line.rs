//! The line protocol front-end: turns what a line user types into core commands and
//! core events into the lines of docs/line-protocol.md. Its commands are one table
//! (`COMMANDS`), shaped like IRC's in irc/commands.rs.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use confab_core::{slot, Batch, Command, Envelope, Event, MessageKind, Name, Recipient, RoomName};
use confab_wire::line::{self, Input};

use confab_store::Range;

use crate::accounts;
use crate::ctx::{Ctx, Later};
use crate::history::{room_conversation, History, Thread};
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
        let Some(history) = ctx.history() else {
            ctx.send(line::error("This server keeps no history"));
            return;
        };
        let me = self.name.as_ref().expect("registered").to_string();
        let (conversation, label, room) =
            match target.or(self.current.as_ref().map(RoomName::as_str)) {
                Some(user) if user.starts_with('@') => {
                    if !ctx.may_read_direct() {
                        ctx.send(line::error(&format!(
                            "Log in as {me} to read its direct messages"
                        )));
                        return;
                    }
                    let user = &user[1..];
                    let Some(thread) = ctx.direct_thread(user) else {
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

/// A command's handler. It runs only for the kind of input its table row names, once
/// `dispatch` has checked registration.
type Handler = fn(&mut LineSession, Input<'_>, &Ctx) -> Flow;

/// One line-protocol command, as irc/commands.rs has them for IRC: its name, whether
/// it works before registration, and its handler. Unlike IRC's generic parameters, each
/// line command has its own syntax, so its arity is checked where it is parsed
/// (`confab_wire::line::parse_input`), which turns a misuse into [`Input::Usage`].
struct Spec {
    name: &'static str,
    before_registration: bool,
    handler: Handler,
}

const fn spec(name: &'static str, before_registration: bool, handler: Handler) -> Spec {
    Spec {
        name,
        before_registration,
        handler,
    }
}

/// Every command of docs/line-protocol.md. Plain text comes first because nearly every
/// line is plain text, and lookups go in order.
const COMMANDS: &[Spec] = &[
    spec("say", false, say),
    spec("blank", true, blank),
    spec("#", true, register),
    spec("msg", false, direct),
    spec("me", false, action),
    spec("join", false, join),
    spec("part", false, part),
    spec("rooms", false, rooms),
    spec("who", false, who),
    spec("nick", false, nick),
    spec("help", true, help),
    spec("ping", false, ping),
    spec("register", false, register_account),
    spec("login", true, login),
    spec("history", false, history),
    spec("quit", true, quit),
];

/// The table's name for what the parser made of a line; `None` when it is no command:
/// a known command used wrongly, or an unknown one.
fn name_of(input: &Input<'_>) -> Option<&'static str> {
    Some(match input {
        Input::Say(_) => "say",
        Input::Empty => "blank",
        Input::Register(_) => "#",
        Input::Direct { .. } => "msg",
        Input::Action(_) => "me",
        Input::Join { .. } => "join",
        Input::Part { .. } => "part",
        Input::Rooms => "rooms",
        Input::Who(_) => "who",
        Input::Nick(_) => "nick",
        Input::Help => "help",
        Input::Ping => "ping",
        Input::RegisterAccount(_) => "register",
        Input::Login { .. } => "login",
        Input::History { .. } => "history",
        Input::Quit(_) => "quit",
        Input::Usage(_) | Input::Unknown(_) => return None,
    })
}

/// Checks registration, then runs the command's handler. What is no command gets its
/// error once registered, and before that the request to register, as an unknown IRC
/// command gets 451.
fn dispatch(session: &mut LineSession, input: Input<'_>, ctx: &Ctx) -> Flow {
    let spec = name_of(&input).and_then(|name| COMMANDS.iter().find(|s| s.name == name));
    if session.name.is_none() && !spec.is_some_and(|s| s.before_registration) {
        ctx.send(line::error("Register first by sending #yourname"));
        return Flow::Continue;
    }
    if let Some(spec) = spec {
        return (spec.handler)(session, input, ctx);
    }
    match input {
        Input::Usage(usage) => ctx.send(line::error(&format!("Usage: {usage}"))),
        Input::Unknown(command) => ctx.send(line::error(&format!(
            "Unknown command /{command}; /help lists commands"
        ))),
        // Every other input has its row (a test checks it).
        _ => {}
    }
    Flow::Continue
}

// The handlers, in the table's order. Each is only called with the input its row names
// (`name_of`), so the `let ... else` that unpacks it never takes its `else`.

fn say(session: &mut LineSession, input: Input<'_>, ctx: &Ctx) -> Flow {
    let Input::Say(text) = input else {
        unreachable!("say gets plain text")
    };
    session.say(text, MessageKind::Normal, ctx);
    Flow::Continue
}

fn blank(_session: &mut LineSession, _input: Input<'_>, _ctx: &Ctx) -> Flow {
    Flow::Continue
}

fn register(_session: &mut LineSession, input: Input<'_>, ctx: &Ctx) -> Flow {
    let Input::Register(name) = input else {
        unreachable!("# gets a registration")
    };
    ctx.command(Command::Register { name: name.into() });
    Flow::Continue
}

fn direct(_session: &mut LineSession, input: Input<'_>, ctx: &Ctx) -> Flow {
    let Input::Direct { to, text } = input else {
        unreachable!("msg gets a direct message")
    };
    ctx.say(Recipient::User(to.into()), MessageKind::Normal, text.into());
    Flow::Continue
}

fn action(session: &mut LineSession, input: Input<'_>, ctx: &Ctx) -> Flow {
    let Input::Action(text) = input else {
        unreachable!("me gets an action")
    };
    session.say(text, MessageKind::Action, ctx);
    Flow::Continue
}

/// Joining a room this user is already in only makes it the current room.
fn join(session: &mut LineSession, input: Input<'_>, ctx: &Ctx) -> Flow {
    let Input::Join { room, key } = input else {
        unreachable!("join gets a join")
    };
    if let Some(known) = session
        .rooms
        .iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(room))
    {
        session.current = Some(known.clone());
        ctx.send(session.current_room_note());
    } else {
        ctx.command(Command::Join {
            room: room.into(),
            key: key.map(Into::into),
        });
    }
    Flow::Continue
}

fn part(session: &mut LineSession, input: Input<'_>, ctx: &Ctx) -> Flow {
    let Input::Part { room, reason } = input else {
        unreachable!("part gets a part")
    };
    match session.room_or_current(room) {
        Some(room) => ctx.command(Command::Part {
            room: room.into(),
            reason: reason.map(Into::into),
        }),
        None => ctx.send(line::error("You are in no room")),
    }
    Flow::Continue
}

fn rooms(_session: &mut LineSession, _input: Input<'_>, ctx: &Ctx) -> Flow {
    ctx.command(Command::Rooms);
    Flow::Continue
}

fn who(session: &mut LineSession, input: Input<'_>, ctx: &Ctx) -> Flow {
    let Input::Who(room) = input else {
        unreachable!("who gets a who")
    };
    match session.room_or_current(room) {
        Some(room) => ctx.command(Command::Who { room: room.into() }),
        None => ctx.send(line::error("Usage: /who ROOM")),
    }
    Flow::Continue
}

fn nick(_session: &mut LineSession, input: Input<'_>, ctx: &Ctx) -> Flow {
    let Input::Nick(name) = input else {
        unreachable!("nick gets a nick")
    };
    ctx.command(Command::Nick { name: name.into() });
    Flow::Continue
}

fn help(_session: &mut LineSession, _input: Input<'_>, ctx: &Ctx) -> Flow {
    for help in line::HELP {
        ctx.send(line::info(help));
    }
    Flow::Continue
}

fn ping(_session: &mut LineSession, _input: Input<'_>, ctx: &Ctx) -> Flow {
    ctx.send(line::info("pong"));
    Flow::Continue
}

fn register_account(_session: &mut LineSession, input: Input<'_>, ctx: &Ctx) -> Flow {
    let Input::RegisterAccount(password) = input else {
        unreachable!("register gets a password")
    };
    accounts::register(ctx, password.to_string());
    Flow::Continue
}

fn login(session: &mut LineSession, input: Input<'_>, ctx: &Ctx) -> Flow {
    let Input::Login { name, password } = input else {
        unreachable!("login gets a login")
    };
    accounts::login(ctx, session.peer.ip(), name, password.to_string(), true);
    Flow::Continue
}

fn history(session: &mut LineSession, input: Input<'_>, ctx: &Ctx) -> Flow {
    let Input::History { target, count } = input else {
        unreachable!("history gets a history request")
    };
    session.history(target, count.unwrap_or(50), ctx);
    Flow::Continue
}

fn quit(_session: &mut LineSession, input: Input<'_>, _ctx: &Ctx) -> Flow {
    let Input::Quit(reason) = input else {
        unreachable!("quit gets a quit")
    };
    Flow::Close(Close::Quit(reason.unwrap_or("Quit").to_string()))
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
        dispatch(self, line::parse_input(text), ctx)
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
                if let Some(history) = ctx.history() {
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
            Event::LoginRequired { .. } => accounts::start_grace(ctx),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_each_command_once() {
        let mut names: Vec<&str> = COMMANDS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len());
    }

    /// Every kind of input the parser makes has its row, and each slash command's name
    /// is the parser's: its bare form is either that command or that command's usage.
    #[test]
    fn the_table_agrees_with_the_parser() {
        let samples = [
            "hello",
            "",
            "#alice",
            "@bob:hi",
            "/me waves",
            "/join r",
            "/part",
            "/rooms",
            "/who",
            "/nick n",
            "/help",
            "/ping",
            "/register pw",
            "/login a pw",
            "/history",
            "/quit",
        ];
        for sample in samples {
            let name = name_of(&line::parse_input(sample)).expect(sample);
            assert!(COMMANDS.iter().any(|s| s.name == name), "{sample}: no row");
        }
        assert_eq!(samples.len(), COMMANDS.len());
        let slash_commands = COMMANDS
            .iter()
            .filter(|s| !["say", "blank", "#"].contains(&s.name));
        for spec in slash_commands {
            let bare = format!("/{}", spec.name);
            match line::parse_input(&bare) {
                Input::Usage(usage) => assert!(usage.starts_with(&format!("{bare} ")), "{bare}"),
                input => assert_eq!(name_of(&input), Some(spec.name), "{bare}"),
            }
        }
    }
}
