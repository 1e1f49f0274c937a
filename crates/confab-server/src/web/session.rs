//! One WebSocket client: JSON requests in, core commands to the chat, core events out
//! as JSON, with the web front-end's limits (message size, request rate, send queue,
//! timeouts) and a clean close whatever the reason.
//!
//! A session is two loops over the two halves of the socket, raced in one task: the
//! reader turns frames into commands, the writer drains the outbox into frames. Neither
//! waits on the other, so a client that stops reading still has its requests answered
//! into its outbox until that overflows, and a shutdown reaches a session whatever it
//! is waiting on.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use confab_core::{ChatError, Command, Event, Key, Name, Recipient, RoomName};
use confab_store::Range;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::protocol::{self, Conversation, Request};
use super::Settings;
use crate::accounts;
use crate::admission::Slot;
use crate::ctx::{Ctx, CtxState, Reader};
use crate::flood::FloodControl;
use crate::history::{room_conversation, Durability, Thread};
use crate::metrics::Reason;
use crate::outbox::{Outbox, OutboxRef, Outgoing};
use crate::shared::Shared;

/// Messages a `history` request returns when it names no `limit`.
const HISTORY_DEFAULT: usize = 50;
/// The most messages one `history` request returns.
const HISTORY_MAX: usize = 200;
/// The most bytes one history answer takes; a quarter of the send queue when that is
/// less, so that a few answers in a row cannot overflow it.
const HISTORY_BYTES: usize = 256 * 1024;

/// What the session knows of its client from the events it has passed on. The writer
/// keeps it current, so it is exactly what the client itself has been told; the reader
/// consults it, because only members may read a room's history.
#[derive(Debug, Default)]
struct Known {
    /// The client's name as of the last event written.
    name: Option<Name>,
    /// Set once the client registered and was sent to the default room, by whichever
    /// loop saw the registration first (a `register` request, or a login's event).
    registered: bool,
    /// Rooms the client is in, in joining order; it mirrors the core's membership.
    rooms: Vec<RoomName>,
}

impl Known {
    fn is_me(&self, name: &Name) -> bool {
        self.name.as_ref().is_some_and(|me| me.key() == name.key())
    }

    /// Takes note of an event on its way to the client. Returns whether this is the
    /// client's first registration, which the caller answers by joining the default room.
    fn observe(&mut self, event: &Event) -> bool {
        match event {
            Event::Registered { name } => {
                self.name = Some(name.clone());
                return !std::mem::replace(&mut self.registered, true);
            }
            Event::NickChanged { old, new } if self.is_me(&old.name) => {
                self.name = Some(new.clone());
            }
            Event::Joined { room, who, .. }
                if self.is_me(&who.name) && self.room(room.as_str()).is_none() =>
            {
                self.rooms.push(room.clone());
            }
            Event::Parted { room, who, .. } if self.is_me(&who.name) => {
                self.rooms.retain(|r| r.key() != room.key());
            }
            Event::Kicked { room, target, .. } if self.is_me(target) => {
                self.rooms.retain(|r| r.key() != room.key());
            }
            _ => {}
        }
        false
    }

    /// The room the client is in whose name is `room`, ignoring case.
    fn room(&self, room: &str) -> Option<&RoomName> {
        let wanted = Key::of(room);
        self.rooms.iter().find(|r| r.key() == wanted)
    }
}

fn lock(known: &Mutex<Known>) -> MutexGuard<'_, Known> {
    known.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a session ended. Each reason decides what others are told, and what the client
/// gets as its last event and close code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// The client asked to leave, with this reason.
    Quit(String),
    /// The client closed the WebSocket or the connection.
    Eof,
    SendQueueExceeded,
    RegistrationTimeout,
    IdleTimeout,
    Shutdown,
    /// A frame or message went past the frame limit.
    FrameTooLarge,
    /// The client broke the WebSocket protocol.
    Protocol(String),
    /// A server operator removed the client; the text is the full quit reason.
    Killed(String),
    /// The client stayed over its request budget for the whole flood grace period.
    ExcessFlood,
    /// The socket failed.
    Io(String),
}

/// The last event and close frame a client gets: the event's code and text, and the
/// WebSocket close code (RFC 6455, section 7.4.1).
struct Farewell {
    code: &'static str,
    text: String,
    close_code: u16,
}

impl End {
    /// The reason others see in the quit event; the same words as the line front-end.
    fn reason(&self) -> String {
        match self {
            End::Quit(reason) => reason.clone(),
            End::Eof => "Connection closed".into(),
            End::SendQueueExceeded => "Send queue exceeded".into(),
            End::RegistrationTimeout => "Registration timeout".into(),
            End::IdleTimeout => "Idle timeout".into(),
            End::Shutdown => "Server shutting down".into(),
            End::FrameTooLarge => "Frame too large".into(),
            End::Protocol(_) => "WebSocket protocol error".into(),
            End::Killed(reason) => reason.clone(),
            End::ExcessFlood => "Excess Flood".into(),
            End::Io(e) => format!("Connection error: {e}"),
        }
    }

    /// The reason as a metric label and log field, shared with the other front-ends.
    fn metric(&self) -> Reason {
        match self {
            End::Quit(_) => Reason::Quit,
            End::Eof => Reason::Closed,
            End::SendQueueExceeded => Reason::SendQueue,
            End::RegistrationTimeout => Reason::RegistrationTimeout,
            End::IdleTimeout => Reason::Idle,
            End::Shutdown => Reason::Shutdown,
            End::FrameTooLarge => Reason::FrameTooLarge,
            End::Protocol(_) => Reason::ProtocolError,
            End::Killed(_) => Reason::Killed,
            End::ExcessFlood => Reason::Flood,
            End::Io(_) => Reason::IoError,
        }
    }

    fn farewell(&self, settings: &Settings) -> Option<Farewell> {
        let (code, text, close_code) = match self {
            End::Quit(_) => ("quit", "Goodbye".to_string(), 1000),
            End::Shutdown => ("shutdown", "Server is shutting down".to_string(), 1001),
            End::SendQueueExceeded => (
                "send_queue_exceeded",
                "Disconnected: you were not reading fast enough (send queue exceeded)".to_string(),
                1008,
            ),
            End::RegistrationTimeout => (
                "registration_timeout",
                "Disconnected: register sooner next time".to_string(),
                1008,
            ),
            End::IdleTimeout => (
                "idle_timeout",
                "Disconnected: idle for too long".to_string(),
                1008,
            ),
            End::FrameTooLarge => (
                "frame_too_large",
                format!(
                    "Disconnected: a frame was larger than {} bytes",
                    settings.max_frame
                ),
                1009,
            ),
            End::Protocol(_) => (
                "protocol_error",
                "Disconnected: WebSocket protocol error".to_string(),
                1002,
            ),
            End::Killed(reason) => ("killed", format!("Disconnected: {reason}"), 1008),
            End::ExcessFlood => (
                "excess_flood",
                "Disconnected: excess flood (too many requests for too long)".to_string(),
                1008,
            ),
            End::Eof | End::Io(_) => return None,
        };
        Some(Farewell {
            code,
            text,
            close_code,
        })
    }

    /// Whether events queued before the end are still worth sending.
    fn delivers_backlog(&self) -> bool {
        !matches!(self, End::SendQueueExceeded | End::Io(_))
    }

    /// Sorts a read error: a frame past the limit, a broken protocol or a failed socket.
    fn from_read_error(error: axum::Error) -> End {
        let inner = error.into_inner();
        match inner.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => End::FrameTooLarge,
            // A tab closed or a network gone without a close frame: an ordinary end.
            Some(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => End::Eof,
            Some(tungstenite::Error::Protocol(e)) => End::Protocol(e.to_string()),
            Some(tungstenite::Error::Utf8(e)) => End::Protocol(e.clone()),
            _ => End::Io(inner.to_string()),
        }
    }
}

/// Serves one upgraded WebSocket until it ends, then removes the client from the core.
/// `permit` is the connection slot this client holds until then.
pub(super) async fn run(
    socket: WebSocket,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    settings: Settings,
    permit: Slot,
) {
    let id = shared.next_client_id();
    let outbox = Arc::new(Outbox::new(shared.limits.send_queue));
    // The page shows a message of its own once the server has accepted it, with the
    // server's id and time, so it wants its own messages back.
    let echo = true;
    shared.connect(id, OutboxRef(outbox.clone()), &peer.ip().to_string(), echo);
    tracing::info!(%peer, id, frontend = "web", "WebSocket connected");
    let state = CtxState::default();
    let ctx = Ctx::new(&shared, id, &outbox, &state);
    ctx.send(protocol::hello(
        &shared.default_room,
        settings.wire_limits(),
        shared.keeps_history(),
    ));
    let known = Mutex::new(Known::default());

    let (mut sink, mut stream) = socket.split();
    // Frames taken from the outbox and not yet handed to the socket. They live here, not
    // in the writer, so that none is lost when the writer is stopped halfway through.
    let mut unsent = VecDeque::new();
    let end = tokio::select! {
        biased;
        () = shutdown.cancelled() => End::Shutdown,
        end = write_loop(&mut sink, &mut unsent, &ctx, &known) => end,
        end = read_loop(&mut stream, &ctx, &settings, &known, peer.ip()) => end,
    };

    // The client leaves the chat first (counted before anyone is told), so that
    // nothing more is queued for it, then gets what was already queued, its farewell
    // and a close frame.
    let reason = end.metric();
    shared.leave(id, reason, &end.reason());
    // One log line per disconnect at info level, ordinary ends included, with the same
    // reason labels as the other front-ends.
    let (label, detail) = (reason.label(), end.reason());
    tracing::info!(%peer, id, reason = label, %detail, "WebSocket client disconnected");
    finish(
        sink,
        stream,
        &outbox,
        unsent,
        &end,
        &settings,
        shared.limits.shutdown_grace,
    )
    .await;
    drop(permit);
}

/// Reads requests until the client leaves, breaks a limit or times out.
async fn read_loop<S>(
    stream: &mut S,
    ctx: &Ctx<'_>,
    settings: &Settings,
    known: &Mutex<Known>,
    ip: IpAddr,
) -> End
where
    S: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let limits = &ctx.shared.limits;
    let connected_at = Instant::now();
    let mut last_input = connected_at;
    let mut flood = FloodControl::new(
        limits.flood_burst,
        limits.flood_rate,
        limits.flood_grace,
        connected_at,
    );
    loop {
        // A login registers the client from another task, so this is read afresh.
        let registered = lock(known).registered;
        let deadline = if registered {
            last_input + limits.idle_timeout
        } else {
            connected_at + limits.registration_timeout
        };
        let item = tokio::select! {
            item = stream.next() => item,
            () = sleep_until(deadline) => {
                if registered {
                    return End::IdleTimeout;
                }
                if lock(known).registered {
                    continue;
                }
                return End::RegistrationTimeout;
            }
        };
        let message = match item {
            None => return End::Eof,
            Some(Err(e)) => return End::from_read_error(e),
            Some(Ok(message)) => message,
        };
        last_input = Instant::now();
        // Flood control, as on every front-end: past its budget the client is slowed
        // (this frame waits and nothing more is read meanwhile), and cut if it stays
        // over. Pings may borrow a little, so that keepalives are not held up.
        let keepalive = match &message {
            Message::Ping(_) | Message::Pong(_) => true,
            Message::Text(text) => is_ping(text),
            _ => false,
        };
        if let Err(end) = throttle(&mut flood, keepalive).await {
            return end;
        }
        flood.take(Instant::now());
        match message {
            Message::Text(text) => match protocol::parse_request(&text) {
                Ok(request) => {
                    if let Some(end) = on_request(request, ctx, settings, known, ip) {
                        return end;
                    }
                    // A command waiting for the cluster, or an answer that comes later
                    // (history, a login), holds back the next request.
                    if let Some(pending) = ctx.take_pending() {
                        pending.await;
                        // A login that registered the client joins the default room
                        // now, not when the writer sees it, so that the join, too,
                        // comes before the answer to the next request.
                        if is_registered(ctx)
                            && !std::mem::replace(&mut lock(known).registered, true)
                        {
                            join_default_room(ctx);
                        }
                    }
                }
                Err(bad) => ctx.send(protocol::error_event(bad.code, &bad.text)),
            },
            Message::Binary(_) => ctx.send(protocol::error_event(
                "binary_not_supported",
                "Send requests as JSON text frames; this binary frame was dropped",
            )),
            // The WebSocket library answers pings itself; a pong needs nothing.
            Message::Ping(_) | Message::Pong(_) => {}
            Message::Close(_) => return End::Eof,
        }
    }
}

/// Carries out one request. `Some` ends the session.
fn on_request(
    request: Request,
    ctx: &Ctx<'_>,
    settings: &Settings,
    known: &Mutex<Known>,
    ip: IpAddr,
) -> Option<End> {
    let too_long = |text: &str| {
        let long = text.len() > settings.max_message;
        if long {
            ctx.send(protocol::error_event(
                "too_long",
                &format!(
                    "Message too long (the limit is {} bytes); it was discarded",
                    settings.max_message
                ),
            ));
        }
        long
    };
    match request {
        Request::Register { name } => {
            ctx.command(Command::Register { name });
            // Joining here rather than when the writer sees the event keeps a request
            // sent right after `register` in order behind the join.
            if is_registered(ctx) && !std::mem::replace(&mut lock(known).registered, true) {
                join_default_room(ctx);
            }
        }
        Request::Login { name, password } => accounts::login(ctx, ip, &name, password.0, true),
        Request::RegisterAccount { password } => accounts::register(ctx, password.0),
        Request::History {
            room,
            with,
            before,
            limit,
        } => {
            let conversation = match (room, with) {
                (Some(room), None) => Conversation::Room(protocol::room_arg(&room).into()),
                (None, Some(with)) => Conversation::With(with),
                _ => {
                    ctx.send(protocol::error_event(
                        "invalid_request",
                        "A history request needs exactly one of \"room\" and \"with\"",
                    ));
                    return None;
                }
            };
            let limit = limit.map_or(HISTORY_DEFAULT, |n| {
                usize::try_from(n).map_or(HISTORY_MAX, |n| n.clamp(1, HISTORY_MAX))
            });
            history(ctx, known, conversation, before, limit);
        }
        Request::Nick { name } => ctx.command(Command::Nick { name }),
        Request::Join { room, key } => ctx.command(Command::Join {
            room: protocol::room_arg(&room).into(),
            key,
        }),
        Request::Part { room, reason } => {
            if !reason.as_deref().is_some_and(too_long) {
                ctx.command(Command::Part {
                    room: protocol::room_arg(&room).into(),
                    reason,
                });
            }
        }
        Request::Message {
            room,
            to,
            text,
            kind,
        } => {
            let to = match (room, to) {
                (Some(room), None) => Recipient::Room(protocol::room_arg(&room).into()),
                (None, Some(user)) => Recipient::User(user),
                _ => {
                    ctx.send(protocol::error_event(
                        "invalid_request",
                        "A message needs exactly one of \"room\" and \"to\"",
                    ));
                    return None;
                }
            };
            if !too_long(&text) {
                ctx.command(Command::Send {
                    to,
                    kind: kind.into(),
                    text,
                    tags: None,
                });
            }
        }
        Request::Rooms => ctx.command(Command::Rooms),
        Request::Who { room } => ctx.command(Command::Who {
            room: protocol::room_arg(&room).into(),
        }),
        Request::Topic { room, text } => {
            if !text.as_deref().is_some_and(too_long) {
                ctx.command(Command::Topic {
                    room: protocol::room_arg(&room).into(),
                    text,
                });
            }
        }
        Request::Mode { room, changes } => ctx.command(Command::Mode {
            room: protocol::room_arg(&room).into(),
            changes,
        }),
        Request::Kick { room, name, reason } => {
            if !reason.as_deref().is_some_and(too_long) {
                ctx.command(Command::Kick {
                    room: protocol::room_arg(&room).into(),
                    name,
                    reason,
                });
            }
        }
        Request::Invite { name, room } => ctx.command(Command::Invite {
            name,
            room: protocol::room_arg(&room).into(),
        }),
        Request::Away { message } => {
            if !message.as_deref().is_some_and(too_long) {
                ctx.command(Command::Away {
                    message: message.filter(|m| !m.trim().is_empty()),
                });
            }
        }
        Request::Whois { name } => ctx.command(Command::Whois { name }),
        Request::Ping => ctx.send(protocol::pong()),
        Request::Quit { reason } => {
            let reason = reason
                .filter(|r| !r.trim().is_empty() && !too_long(r))
                .unwrap_or_else(|| "Quit".into());
            return Some(End::Quit(reason));
        }
    }
    None
}

/// Web users start where line users start, so that they meet there.
fn join_default_room(ctx: &Ctx<'_>) {
    ctx.command(Command::Join {
        room: ctx.shared.default_room.clone(),
        key: None,
    });
}

/// Answers a `history` request from the store thread, straight into the client's
/// outbox. Only members read a room's history, and a direct conversation only its two
/// parties, the one asking being the holder of the name; a registered name's messages
/// are for whoever logged in to it.
fn history(
    ctx: &Ctx<'_>,
    known: &Mutex<Known>,
    conversation: Conversation,
    before: Option<u64>,
    limit: usize,
) {
    let fail = |code: &str, text: &str| {
        ctx.send(protocol::history_error(code, text, &conversation));
    };
    let Some(history) = ctx.history() else {
        return fail("no_history", "This server keeps no history");
    };
    let Some(Reader {
        name: me,
        owns_name: logged_in,
    }) = ctx.reader()
    else {
        return fail("not_registered", &ChatError::NotRegistered.to_string());
    };
    let (key, answer) = match &conversation {
        Conversation::Room(room) => match lock(known).room(room) {
            Some(room) => (
                Thread::Room(room_conversation(room.as_str())),
                Conversation::Room(room.to_string()),
            ),
            None => {
                return fail(
                    "not_in_room",
                    &ChatError::NotInRoom(room.clone()).to_string(),
                );
            }
        },
        Conversation::With(name) => {
            let Ok(other) = Name::parse(name) else {
                return fail("invalid_name", &format!("There is no user called {name}"));
            };
            if !logged_in {
                return fail(
                    "not_logged_in",
                    &format!("The name {me} is registered: log in to read its direct messages"),
                );
            }
            let Some(thread) = ctx.direct_thread(other.as_str()) else {
                return fail("not_registered", &ChatError::NotRegistered.to_string());
            };
            (thread, Conversation::With(other.to_string()))
        }
    };
    let budget = HISTORY_BYTES.min(ctx.shared.limits.send_queue / 4);
    let range = before.map_or(Range::Latest, Range::BeforeId);
    let outbox = ctx.outbox();
    let problem = history.write_problem();
    let queued = history.run(move |store| {
        // One more than asked says whether there is more before the page.
        let answer = match key.read(store, range, limit.saturating_add(1)) {
            Ok(mut messages) => {
                // The page that follows is good but lacks the messages waiting to be
                // written; an error event says so first.
                if let Some(problem) = &problem {
                    outbox.push(Outgoing::Raw(protocol::history_error(
                        "history_not_saved",
                        problem,
                        &answer,
                    )));
                }
                let more = messages.len() > limit;
                if more {
                    messages.drain(..messages.len() - limit);
                }
                protocol::history_page(&answer, before, &messages, more, budget)
            }
            Err(e) => {
                tracing::error!("history query failed: {e}");
                protocol::history_error("unavailable", "History is unavailable right now", &answer)
            }
        };
        outbox.push(Outgoing::Raw(answer));
    });
    if !queued {
        fail(
            "unavailable",
            "The server is busy; ask for history again in a moment",
        );
    }
}

fn is_registered(ctx: &Ctx<'_>) -> bool {
    ctx.is_registered()
}

/// Moves everything queued for the client onto the socket, in order, until the socket
/// fails or the outbox overflows. On the way it keeps `known` current and does what
/// events ask of the session: joining the default room after a login registered the
/// client, starting the login grace period.
async fn write_loop<S>(
    sink: &mut S,
    unsent: &mut VecDeque<Bytes>,
    ctx: &Ctx<'_>,
    known: &Mutex<Known>,
) -> End
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    let outbox = ctx.queue();
    let durability: &Durability = ctx.durability();
    let mut drained = VecDeque::new();
    // Set when the outbox signalled while a batch was being written, so that what it
    // announced is drained without waiting for a signal that will not come again.
    let mut woken = false;
    loop {
        if !woken {
            outbox.ready().await;
        }
        woken = false;
        if outbox.drain(&mut drained).is_err() {
            return End::SendQueueExceeded;
        }
        let mut killed = None;
        // The newest message in this batch: nothing of the batch is sent before it is
        // durable, which keeps the order and the history guarantee.
        let mut needed = 0;
        for item in drained.drain(..).flat_map(Outgoing::singles) {
            if let Outgoing::Event(envelope) = &item {
                // Tag-only messages (IRC TAGMSG) have nothing to show on the page yet.
                if matches!(&envelope.event, Event::Message(m) if m.kind == confab_core::MessageKind::Tags)
                {
                    continue;
                }
                if lock(known).observe(&envelope.event) {
                    join_default_room(ctx);
                }
                match &envelope.event {
                    Event::Killed { by, reason } => {
                        killed = Some(End::Killed(format!("Killed ({} ({reason}))", by.name)));
                    }
                    // Messages from other nodes were made durable by their origin.
                    Event::Message(m) if !envelope.from_bus => needed = needed.max(m.id),
                    Event::LoginRequired { .. } => accounts::start_grace(ctx),
                    _ => {}
                }
            }
            unsent.push_back(encode(item));
        }
        // A join of the default room that waits for the cluster: no request is being
        // handled now, so it runs on its own.
        if let Some(pending) = ctx.take_pending() {
            tokio::spawn(pending);
        }
        if unsent.is_empty() {
            continue;
        }
        // A client that stops reading stalls this write; meanwhile the outbox keeps
        // taking events, and its overflow must still end the session.
        let send = async {
            durability.wait_for(needed).await;
            send_all(sink, unsent).await
        };
        tokio::pin!(send);
        let sent = loop {
            tokio::select! {
                sent = &mut send => break sent,
                () = outbox.ready() => {
                    if outbox.overflowed() {
                        return End::SendQueueExceeded;
                    }
                    woken = true;
                }
            }
        };
        if let Err(e) = sent {
            return End::Io(e.to_string());
        }
        if let Some(end) = killed {
            return end;
        }
    }
}

/// The JSON text of one outbox item: a core event (encoded once for every web
/// recipient) or a reply of the session's own.
fn encode(item: Outgoing) -> Bytes {
    match item {
        Outgoing::Raw(bytes) => bytes,
        Outgoing::Event(envelope) => envelope.encoded(protocol::SLOT, protocol::encode_event),
        Outgoing::Batch(_) => unreachable!("batches are taken apart by `Outgoing::singles`"),
    }
}

/// Writes JSON texts as text frames and flushes them with one write. A text leaves
/// `unsent` only once the socket has taken it, so stopping this halfway loses nothing.
async fn send_all<S>(sink: &mut S, unsent: &mut VecDeque<Bytes>) -> Result<(), axum::Error>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    while let Some(json) = unsent.front() {
        // Every encoding is serde_json's, which is always UTF-8.
        if let Ok(text) = Utf8Bytes::try_from(json.clone()) {
            sink.feed(Message::Text(text)).await?;
        }
        unsent.pop_front();
    }
    sink.flush().await
}

/// Sends the backlog, the farewell event and a close frame, then waits for the client's
/// close frame so that the closing handshake completes, all within `grace`.
async fn finish<S, R>(
    mut sink: S,
    mut stream: R,
    outbox: &Outbox,
    mut unsent: VecDeque<Bytes>,
    end: &End,
    settings: &Settings,
    grace: Duration,
) where
    S: Sink<Message, Error = axum::Error> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    if matches!(end, End::Io(_)) {
        return;
    }
    let _ = timeout(grace, async {
        if end.delivers_backlog() {
            let mut drained = VecDeque::new();
            if outbox.drain(&mut drained).is_ok() {
                unsent.extend(drained.drain(..).map(encode));
            }
        } else {
            unsent.clear();
        }
        match end.farewell(settings) {
            Some(farewell) => {
                unsent.push_back(protocol::closing(farewell.code, &farewell.text));
                send_all(&mut sink, &mut unsent).await?;
                sink.send(Message::Close(Some(CloseFrame {
                    code: farewell.close_code,
                    reason: Utf8Bytes::from(farewell.text),
                })))
                .await?;
            }
            // The client closed first: the library has queued the reply to its close
            // frame, and closing the sink sends it.
            None => {
                send_all(&mut sink, &mut unsent).await?;
                sink.close().await?;
            }
        }
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
        Ok::<(), axum::Error>(())
    })
    .await;
}

/// Waits until the flood budget allows one more request, or ends the session when the
/// client has been over its budget for the whole grace period.
async fn throttle(flood: &mut FloodControl, keepalive: bool) -> Result<(), End> {
    loop {
        let now = Instant::now();
        if flood.allows(now, keepalive) {
            return Ok(());
        }
        if flood.stall(now).is_err() {
            return Err(End::ExcessFlood);
        }
        sleep_until(flood.ready_at(now)).await;
    }
}

/// Whether a request is a `ping`; only short frames are parsed to find out.
fn is_ping(text: &str) -> bool {
    text.len() < 64 && matches!(protocol::parse_request(text), Ok(Request::Ping))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str) -> Arc<confab_core::Source> {
        Arc::new(confab_core::Source {
            name: Name::parse(name).unwrap(),
            user: name.into(),
            host: "127.0.0.1".into(),
            realname: name.into(),
            account: None,
            session: 0,
            bot: false,
        })
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn known_follows_the_clients_name_and_rooms() {
        let mut known = Known::default();
        let joined = |room_name: &str, who: &str| Event::Joined {
            room: room(room_name),
            who: source(who),
            history_until: 0,
            away: None,
        };
        assert!(known.observe(&Event::Registered {
            name: Name::parse("alice").unwrap(),
        }));
        // Only the first registration sends the client to the default room.
        assert!(!known.observe(&Event::Registered {
            name: Name::parse("alice").unwrap(),
        }));
        known.observe(&joined("Rust", "ALICE"));
        known.observe(&joined("Rust", "alice"));
        known.observe(&joined("lobby", "bob"));
        assert_eq!(known.rooms, [room("Rust")]);
        assert_eq!(known.room("rust"), Some(&room("Rust")));
        assert_eq!(known.room("lobby"), None);
        known.observe(&Event::NickChanged {
            old: source("alice"),
            new: Name::parse("Guest1").unwrap(),
        });
        known.observe(&joined("lobby", "guest1"));
        known.observe(&Event::Kicked {
            room: room("rust"),
            by: source("op"),
            target: Name::parse("Guest1").unwrap(),
            reason: "bye".into(),
        });
        assert_eq!(known.rooms, [room("lobby")]);
        known.observe(&Event::Parted {
            room: room("lobby"),
            who: source("GUEST1"),
            reason: None,
        });
        assert!(known.rooms.is_empty());
    }

    #[test]
    fn every_end_but_a_vanished_client_says_goodbye() {
        let settings = Settings::for_limits(&crate::config::Limits::default());
        for (end, code, close_code) in [
            (End::Shutdown, "shutdown", 1001),
            (End::Quit("bye".into()), "quit", 1000),
            (End::FrameTooLarge, "frame_too_large", 1009),
            (End::SendQueueExceeded, "send_queue_exceeded", 1008),
        ] {
            let farewell = end.farewell(&settings).expect("a farewell");
            assert_eq!((farewell.code, farewell.close_code), (code, close_code));
            // Close frame reasons are limited to 123 bytes.
            assert!(farewell.text.len() <= 123);
        }
        assert!(End::Eof.farewell(&settings).is_none());
        assert_eq!(End::Shutdown.reason(), "Server shutting down");
    }
}
