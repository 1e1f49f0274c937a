//! The socket loop that every line-based front-end (line protocol, IRC) shares: one task
//! per connection that reads bounded lines, hands them to its [`Protocol`], drains the
//! client's outbox through it, writes in batches and enforces the timeouts and the
//! input limits. The loop runs over a [`Transport`]: a plain `TcpStream`, or TLS over
//! one (`TlsTransport`). There is one loop for both.
//!
//! Contract, after Ergo's socket.go:
//! 1. A write never waits: output goes into a [`WriteQueue`] of shared `Bytes` and is
//!    written with vectored writes when the socket has room, the transport's own bytes
//!    (TLS records) first. Nothing else in the server ever writes to the socket.
//! 2. Replies keep the order of the input that caused them. Each input line is handed
//!    to the protocol and the outbox drained after it, before the next line is read,
//!    so the session has seen the outcome of one command before the next. While work
//!    the session awaits is pending (a cluster claim, a later answer: `ctx::Later`) no
//!    further input is handled, so what answers later still comes before the replies
//!    to later commands. Messages collected into one run (`Ctx::say`) go to the core
//!    before any other line is handled.
//! 3. The durability gate: with history on, nothing queued after a message that is
//!    not yet on disk is written until the durability watermark reaches it; what came
//!    before flows as usual. Messages from other nodes (made durable by their origin)
//!    and tag-only messages (never stored) pass ungated.
//! 4. Over the send queue: an outbox that overflows (`Limits::send_queue`) ends the
//!    connection with `Close::SendQueueExceeded`, and the client gets only its farewell
//!    line. A write queue holding `send_queue` bytes or more stops the reading, so a
//!    client that floods without reading slows itself down.
//! 5. Input passes the client's flood budget (`crate::flood`) line by line: when it is
//!    spent, what was read waits in a held buffer and the socket is not read until
//!    budget comes back, so TCP slows the flooder; one that stays over for
//!    `flood_grace` is cut ("Excess Flood"). Keepalives may borrow a little budget.
//! 6. Deadlines: `registration_timeout` from the connection until it registers; then
//!    `idle_timeout` of silence, or, for a protocol with pings, a ping after
//!    `ping_interval` and a cut when it stays unanswered as long again; a line left
//!    unfinished for `partial_line_timeout`; a TLS handshake past its deadline. Near
//!    deadlines use a precise timer, far ones the server's coarse wheel
//!    (`crate::deadlines`), so an idle connection holds no timer.
//! 7. Fairness: after every read that brought lines the task yields, so one fast
//!    sender cannot hold a worker thread while its recipients' queues fill.
//! 8. The end: the client leaves the core first (nobody sends it more), then gets what
//!    was queued and its farewell line, written within `shutdown_grace` with a
//!    lingering close, unless the socket failed or the TLS handshake never finished.
//!
//! Memory per idle connection is kept small on purpose: reads go through one scratch
//! buffer per worker thread and only an unfinished line is copied out, the write
//! queue holds shared `Bytes` rather than copies, and what only a busy connection
//! needs lives in a [`Busy`] dropped when idle.
//!
//! The input path (reading, splitting, the flood budget, held input, partial lines) is
//! in `input.rs` beside this file; everything else of the loop is here.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use confab_core::ClientId;
use confab_wire::framing::LineDecoder;
use tokio::time::{sleep_until, timeout, Instant, Sleep};
use tokio_util::sync::CancellationToken;

mod input;

use input::{after_feed, feed, partial_deadline, read_input, Held, Input, Sink};

use crate::ctx::{Ctx, CtxState, Pending};
use crate::deadlines::NEAR;
use crate::flood::FloodControl;
use crate::history::Durability;
use crate::outbox::{Outbox, OutboxRef, Outgoing, Overflowed};
use crate::protocol::{Close, Protocol};
use crate::shared::Shared;
use crate::transport::Transport;
use crate::write_queue::WriteQueue;

/// What woke a connection's loop, in the order it looks.
enum Woke {
    Shutdown,
    /// Something was queued in the outbox.
    Outbox,
    /// The message the output was held for is durable.
    Durable,
    /// The work the session waited for (the cluster's, a later answer) is done.
    ClusterDone,
    Writable(io::Result<()>),
    Readable(io::Result<()>),
    /// The flood budget allows more of the held input.
    Flood,
    /// A deadline passed: registration, keepalive, idle, partial line or handshake.
    Timer,
}

/// What one turn of the loop waits for, worked out from what is in hand.
struct Wait {
    /// The time the turn started, which every deadline below is compared with.
    now: Instant,
    /// Whether there is output that may be written (or the transport's own).
    can_write: bool,
    /// Whether input may be read: room to write its replies, budget, nothing awaited.
    may_read: bool,
    /// When the flood budget allows more input, while the client is being slowed.
    flood_at: Option<Instant>,
    /// The next deadline: the nearest of the timeouts and the flood budget.
    due: Instant,
}

/// What the loop does after handling a wake-up.
enum After {
    /// Looks again for whatever is ready.
    Again,
    /// Lets other tasks run first: a read brought lines.
    Yield,
    /// Ends the connection.
    Close(Close),
}

/// Bytes read per system call. One buffer per worker thread, not per connection.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// Serves one accepted connection until it ends, then removes the client from the core.
/// `permit` (the connection's admission slot) is held until then.
///
/// Not an `async fn`: its arguments would be kept twice in the future, once as
/// arguments and once as the locals they are moved into, and this future is most of
/// an idle connection's memory. The connection's state is built here, without side
/// effects, and the `async move` block uses it in place.
#[allow(clippy::manual_async_fn)] // Deliberate: see above.
pub(crate) fn run<T: Transport, P: Protocol, G: Send>(
    stream: T,
    id: ClientId,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    protocol: P,
    permit: G,
) -> impl Future<Output = ()> + Send {
    let outbox = Arc::new(Outbox::new(shared.limits.send_queue));
    let connected_at = Instant::now();
    let flood = FloodControl::new(
        shared.limits.flood_burst,
        shared.limits.flood_rate,
        shared.limits.flood_grace,
        connected_at,
    );
    let mut conn = Conn {
        stream,
        protocol,
        shared,
        outbox,
        id,
        state: CtxState::default(),
        shutdown,
        last_input: connected_at,
        pinged: false,
        flood,
        timer: None,
        wheel: 0,
        busy: None,
    };
    async move {
        conn.start();
        let close = loop {
            // `None`: the session handled a read and lets others run before going on.
            if let Some(close) = std::future::poll_fn(|cx| conn.poll_step(cx)).await {
                break close;
            }
            // One read can carry hundreds of lines, each fanned out to a whole room.
            // Yielding after every read lets the recipients' tasks write in between,
            // so one fast sender cannot hold a worker thread while every other
            // client's queue fills up (tokio's own budget only counts socket polls).
            tokio::task::yield_now().await;
        };
        // Boxed, and made before it is awaited: kept inline, its state would make
        // every connection's future bigger, all its life, for the moment after its end.
        let farewell = conn.finish(close).map(|(stream, out, shared)| {
            let grace = shared.limits.shutdown_grace;
            Box::pin(async move { linger(stream, out, &shared.durability, grace).await })
        });
        if let Some(farewell) = farewell {
            farewell.await;
        }
        drop(permit);
    }
}

/// One connection between wake-ups. An idle connection is mostly this and the timer
/// beside it, so it keeps only what waiting needs: what handling input and output
/// needs lives in [`Busy`] while there is some.
///
/// The loop is a `poll` method over this state rather than an `async` loop, because
/// an `async` loop keeps its wait's future, and copies of what the wait looks at, in
/// every connection beside the state itself.
struct Conn<T, P> {
    stream: T,
    protocol: P,
    shared: Arc<Shared>,
    outbox: Arc<Outbox>,
    id: ClientId,
    /// What the protocol's [`Ctx`] keeps between calls.
    state: CtxState,
    shutdown: CancellationToken,
    /// When the client last sent a line; until it has registered, when it connected
    /// (the registration timeout counts from there).
    last_input: Instant,
    /// Whether a keepalive ping went out and is still unanswered. It went out
    /// `ping_interval` after `last_input`, so its answer is due as long again later.
    pinged: bool,
    flood: FloodControl,
    /// A precise timer, only while the next deadline is less than `deadlines::NEAR`
    /// away; farther ones wait in the server's wheel (`crate::deadlines`).
    timer: Option<Pin<Box<Sleep>>>,
    /// The wheel bucket this connection's outbox waits in, or 0 for none.
    wheel: u32,
    busy: Option<Box<Busy>>,
}

/// What a connection holds only while it has work in hand: an unfinished line, output
/// not yet written, input held back by flood control, or something it waits for.
/// Dropped whenever none is left, so that an idle connection holds none of it; a busy
/// one allocates it once per wake-up, which is nothing beside the writes that come
/// with it.
struct Busy {
    decoder: LineDecoder,
    out: WriteQueue,
    held: Held,
    /// When the unfinished line now in the decoder was started.
    partial_since: Option<Instant>,
    /// While the output waits for a message to become durable: its id, and the wait.
    durable_wait: Option<(u64, Pending)>,
    /// Work the session waits for before it reads more input: the cluster's, or a
    /// later answer's ([`crate::ctx::Later`]).
    pending: Option<Pending>,
}

impl Busy {
    fn new(max_line: usize) -> Box<Busy> {
        Box::new(Busy {
            decoder: LineDecoder::new(max_line),
            out: WriteQueue::default(),
            held: Held::default(),
            partial_since: None,
            durable_wait: None,
            pending: None,
        })
    }

    /// The way into the protocol for input, and the held input beside it.
    fn input<'a>(
        &'a mut self,
        flood: &'a mut FloodControl,
        outbox: &'a Outbox,
    ) -> (Input<'a>, &'a mut Held) {
        let input = Input {
            decoder: &mut self.decoder,
            flood,
            sink: Sink {
                outbox,
                out: &mut self.out,
            },
        };
        (input, &mut self.held)
    }

    /// Whether nothing is in hand, so that dropping this loses nothing.
    fn is_idle(&self) -> bool {
        !self.decoder.is_mid_line()
            && self.out.is_empty()
            && self.held.is_empty()
            && self.durable_wait.is_none()
            && self.pending.is_none()
    }
}

impl<T: Transport, P: Protocol> Conn<T, P> {
    /// Joins the chat and queues the greeting.
    fn start(&mut self) {
        self.shared.lock_core().connect(
            self.id,
            OutboxRef(self.outbox.clone()),
            &self.protocol.peer().ip().to_string(),
        );
        let ctx = Ctx::new(&self.shared, self.id, &self.outbox, &self.state);
        self.protocol.greet(&ctx);
    }

    /// Handles whatever is ready (shutdown, output, input, time) until nothing is, the
    /// connection should yield after a read (`None`) or it should end.
    ///
    /// One turn: a close the protocol decided on ends the connection; work the session
    /// must await is taken from its context; what is in hand decides what to wait for
    /// ([`Conn::plan`]) and when to wake ([`Conn::arm_timer`]); the first thing ready,
    /// in a fixed order ([`Conn::poll_woke`]), is handled ([`Conn::handle`]).
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Option<Close>> {
        loop {
            if let Some(close) = self.protocol.take_close() {
                return Poll::Ready(Some(close));
            }
            self.take_pending();
            let wait = self.plan();
            self.arm_timer(&wait);
            let Some(woke) = self.poll_woke(cx, &wait) else {
                return Poll::Pending;
            };
            match self.handle(woke) {
                After::Again => {}
                After::Yield => return Poll::Ready(None),
                After::Close(close) => return Poll::Ready(Some(close)),
            }
        }
    }

    /// Takes the work the protocol queued for the session to await (the cluster's, a
    /// later answer's) into [`Busy`], unless the session awaits some already.
    fn take_pending(&mut self) {
        let Conn {
            protocol,
            shared,
            outbox,
            id,
            state,
            busy,
            ..
        } = self;
        if busy.as_ref().is_none_or(|b| b.pending.is_none()) {
            let ctx = Ctx::new(shared, *id, outbox, state);
            if let Some(work) = ctx.take_pending() {
                busy.get_or_insert_with(|| Busy::new(protocol.max_line()))
                    .pending = Some(work);
            }
        }
    }

    /// Works out what this turn waits for from what is in hand: [`Busy`] is dropped
    /// when nothing is, and the durability wait follows the output's first gate.
    fn plan(&mut self) -> Wait {
        let Conn {
            stream,
            protocol,
            shared,
            last_input,
            pinged,
            flood,
            busy,
            ..
        } = self;
        let limits = &shared.limits;
        let now = Instant::now();
        let deadline = if !protocol.registered() {
            *last_input + limits.registration_timeout
        } else if P::PINGS {
            *last_input + limits.ping_interval * (1 + u32::from(*pinged))
        } else {
            *last_input + limits.idle_timeout
        };
        let deadline = stream
            .handshake_deadline()
            .map_or(deadline, |d| d.min(deadline));
        let durable = shared.durability.durable();
        // What is in hand decides what to wait for; an idle connection has none.
        if busy.as_ref().is_some_and(|b| b.is_idle()) {
            *busy = None;
        }
        let (mut room_to_write, mut held_empty, mut waiting) = (true, true, false);
        let (mut can_write, mut wake) = (stream.wants_write(), deadline);
        if let Some(b) = busy.as_deref_mut() {
            if let Some(partial) = partial_deadline(b.partial_since, limits) {
                wake = wake.min(partial);
            }
            // Stop reading while a backlog of our own output waits: a client that
            // floods without reading slows itself down instead of growing our
            // buffers.
            room_to_write = b.out.len() < limits.send_queue;
            held_empty = b.held.is_empty();
            waiting = b.pending.is_some();
            can_write |= b.out.has_open(durable);
            match b.out.blocked_on(durable) {
                Some(id) if b.durable_wait.as_ref().is_some_and(|(w, _)| *w == id) => {}
                Some(id) => {
                    let durability = shared.durability.clone();
                    b.durable_wait =
                        Some((id, Box::pin(async move { durability.wait_for(id).await })));
                }
                None => b.durable_wait = None,
            }
        }
        // Stop reading, too, while the client is over its input budget: input
        // already read waits in `held`, the rest in the kernel, and TCP slows the
        // sender.
        let within_budget = held_empty && flood.allows(now, false);
        let may_read = room_to_write && within_budget && !waiting;
        let slowed = room_to_write && !within_budget && !waiting;
        let flood_at = slowed.then(|| flood.ready_at(now));
        let due = flood_at.map_or(wake, |at| at.min(wake));
        Wait {
            now,
            can_write,
            may_read,
            flood_at,
            due,
        }
    }

    /// Sets the precise timer for a near deadline, or puts the connection in the
    /// server's wheel for a far one.
    fn arm_timer(&mut self, wait: &Wait) {
        let Conn {
            shared,
            outbox,
            timer,
            wheel,
            ..
        } = self;
        let (due, now) = (wait.due, wait.now);
        if due <= now {
            // Acted on in `poll_woke`, without a timer.
        } else if due - now <= NEAR {
            match timer {
                Some(timer) if timer.deadline() == due => {}
                Some(timer) => timer.as_mut().reset(due),
                None => *timer = Some(Box::pin(sleep_until(due))),
            }
        } else {
            *timer = None;
            // Into the wheel, unless already in a bucket that comes no later:
            // then, woken early, the connection only comes back here.
            let deadlines = &shared.deadlines;
            let bucket = deadlines.bucket_for(due);
            if *wheel == 0 || *wheel > bucket || deadlines.passed(*wheel, now) {
                deadlines.insert(bucket, outbox);
                *wheel = bucket;
            }
        }
    }

    /// The first thing ready, in this order: shutdown first, then output, then input,
    /// then time. `None` when nothing is.
    fn poll_woke(&mut self, cx: &mut Context<'_>, wait: &Wait) -> Option<Woke> {
        let Conn {
            stream,
            outbox,
            shutdown,
            timer,
            busy,
            ..
        } = self;
        let woke = if shutdown.is_cancelled() {
            Woke::Shutdown
        } else if outbox.poll_ready(cx).is_ready() {
            Woke::Outbox
        } else if busy.as_deref_mut().is_some_and(|b| {
            b.durable_wait
                .as_mut()
                .is_some_and(|(_, wait)| wait.as_mut().poll(cx).is_ready())
        }) {
            Woke::Durable
        } else if busy.as_deref_mut().is_some_and(|b| {
            b.pending
                .as_mut()
                .is_some_and(|work| work.as_mut().poll(cx).is_ready())
        }) {
            Woke::ClusterDone
        } else if let Some(ready) = wait
            .can_write
            .then(|| stream.poll_write_ready(cx))
            .and_then(ready_value)
        {
            Woke::Writable(ready)
        } else if let Some(ready) = wait
            .may_read
            .then(|| stream.poll_read_ready(cx))
            .and_then(ready_value)
        {
            Woke::Readable(ready)
        } else if wait.due <= wait.now
            || timer
                .as_mut()
                .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
        {
            // A deadline already past is not left to a timer: one computed from
            // the time (the flood budget's) would be reset before it fired, at
            // every wake-up.
            if wait.flood_at.is_some_and(|at| at <= Instant::now()) {
                Woke::Flood
            } else {
                Woke::Timer
            }
        } else {
            return None;
        };
        Some(woke)
    }

    /// Acts on what woke the connection.
    fn handle(&mut self, woke: Woke) -> After {
        match woke {
            Woke::Shutdown => After::Close(Close::Shutdown),
            Woke::Outbox => self.on_outbox(),
            Woke::Durable => {
                if let Some(b) = self.busy.as_deref_mut() {
                    b.durable_wait = None;
                }
                After::Again
            }
            Woke::ClusterDone => self.on_work_done(),
            Woke::Writable(ready) => self.on_writable(ready),
            Woke::Readable(ready) => self.on_readable(ready),
            Woke::Flood => self.on_flood(),
            Woke::Timer => self.on_timer(),
        }
    }

    /// Something was queued in the outbox.
    fn on_outbox(&mut self) -> After {
        let Conn {
            stream,
            protocol,
            shared,
            outbox,
            id,
            state,
            busy,
            ..
        } = self;
        // With output still pending, only an overflow matters now; the rest is picked
        // up when the pending output has gone.
        if outbox.overflowed() {
            return After::Close(Close::SendQueueExceeded);
        }
        let b = busy
            .get_or_insert_with(|| Busy::new(protocol.max_line()))
            .as_mut();
        if b.out.is_empty() {
            let ctx = Ctx::new(shared, *id, outbox, state);
            if let Err(Overflowed) = pump(outbox, protocol, &ctx, &mut b.out) {
                return After::Close(Close::SendQueueExceeded);
            }
            if let Err(e) = b.out.write_some(stream, shared.durability.durable()) {
                return After::Close(Close::Io(e.to_string()));
            }
        }
        After::Again
    }

    /// The work the session awaited is done.
    fn on_work_done(&mut self) -> After {
        let Conn {
            protocol,
            shared,
            outbox,
            id,
            state,
            busy,
            ..
        } = self;
        if let Some(b) = busy.as_deref_mut() {
            b.pending = None;
            // What the work answered is handled before the next line is (a login's
            // registration joins the default room), however much output waits, so its
            // consequences keep their place too.
            let ctx = Ctx::new(shared, *id, outbox, state);
            if let Err(Overflowed) = pump(outbox, protocol, &ctx, &mut b.out) {
                return After::Close(Close::SendQueueExceeded);
            }
        }
        After::Again
    }

    /// The socket has room: write what may go, then refill from the outbox once the
    /// queue is empty.
    fn on_writable(&mut self, ready: io::Result<()>) -> After {
        let Conn {
            stream,
            protocol,
            shared,
            outbox,
            id,
            state,
            busy,
            ..
        } = self;
        let b = busy
            .get_or_insert_with(|| Busy::new(protocol.max_line()))
            .as_mut();
        if let Err(e) = ready.and_then(|()| b.out.write_some(stream, shared.durability.durable())) {
            return After::Close(Close::Io(e.to_string()));
        }
        if b.out.is_empty() {
            let ctx = Ctx::new(shared, *id, outbox, state);
            if let Err(Overflowed) = pump(outbox, protocol, &ctx, &mut b.out) {
                return After::Close(Close::SendQueueExceeded);
            }
        }
        After::Again
    }

    /// The socket has input: read it and hand what the budget allows to the protocol.
    /// A read that brought lines yields, so that their recipients can write.
    fn on_readable(&mut self, ready: io::Result<()>) -> After {
        let Conn {
            stream,
            protocol,
            shared,
            outbox,
            id,
            state,
            last_input,
            pinged,
            flood,
            busy,
            ..
        } = self;
        if let Err(e) = ready {
            return After::Close(Close::Io(e.to_string()));
        }
        let ctx = Ctx::new(shared, *id, outbox, state);
        let b = busy
            .get_or_insert_with(|| Busy::new(protocol.max_line()))
            .as_mut();
        let (mut input, held) = b.input(flood, outbox);
        let fed = match read_input(stream, &mut input, protocol, &ctx, held) {
            Ok(fed) => fed,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return After::Again,
            Err(e) => return After::Close(Close::Io(e.to_string())),
        };
        let now = Instant::now();
        if protocol.registered() {
            *last_input = now;
        }
        *pinged = false;
        let frames = fed.frames;
        if let Some(close) = after_feed(fed, b, flood, now) {
            return After::Close(close);
        }
        if frames {
            return After::Yield;
        }
        After::Again
    }

    /// The flood budget allows more of the held input.
    fn on_flood(&mut self) -> After {
        let Conn {
            protocol,
            shared,
            outbox,
            id,
            state,
            last_input,
            pinged,
            flood,
            busy,
            ..
        } = self;
        let Some(b) = busy.as_deref_mut().filter(|b| !b.held.is_empty()) else {
            return After::Again;
        };
        let ctx = Ctx::new(shared, *id, outbox, state);
        let now = Instant::now();
        let (mut input, held) = b.input(flood, outbox);
        let fed = feed(held.rest(), &mut input, protocol, &ctx, now);
        held.consume(fed.used);
        if fed.frames {
            if protocol.registered() {
                *last_input = now;
            }
            *pinged = false;
        }
        match after_feed(fed, b, flood, now) {
            Some(close) => After::Close(close),
            None => After::Again,
        }
    }

    /// A deadline passed: the partial line's, the handshake's, registration's, or
    /// the idle or keepalive one (which sends a ping first, when the protocol has
    /// them).
    fn on_timer(&mut self) -> After {
        let Conn {
            stream,
            protocol,
            shared,
            outbox,
            pinged,
            busy,
            ..
        } = self;
        let partial = busy
            .as_ref()
            .and_then(|b| partial_deadline(b.partial_since, &shared.limits));
        let close = if partial.is_some_and(|p| p <= Instant::now()) {
            Close::PartialLine
        } else if stream.handshake_deadline().is_some() {
            Close::Io("TLS handshake timed out".into())
        } else if !protocol.registered() {
            Close::RegistrationTimeout
        } else if !P::PINGS {
            Close::IdleTimeout
        } else if *pinged {
            Close::PingTimeout
        } else {
            *pinged = true;
            if let Some(ping) = protocol.keepalive() {
                outbox.push(Outgoing::Raw(ping));
            }
            return After::Again;
        };
        After::Close(close)
    }

    /// Leaves the chat and queues the last lines. Returns what the farewell needs to
    /// be written, unless the client could not read it anyway.
    fn finish(mut self, close: Close) -> Option<(T, WriteQueue, Arc<Shared>)> {
        let shared = &self.shared;
        let reason = close.metric();
        // The client leaves the chat first (counted before anyone is told), so nobody
        // sends it anything more, then gets whatever was already queued for it and its
        // farewell line.
        shared.leave(self.id, reason, &close.reason());
        let mut out = self.busy.take().map_or_else(WriteQueue::default, |b| b.out);
        match &close {
            Close::Io(_) => {}
            Close::SendQueueExceeded => {
                if let Some(line) = self.protocol.farewell(&close) {
                    out.push(line);
                }
            }
            _ => {
                let ctx = Ctx::new(shared, self.id, &self.outbox, &self.state);
                let _ = pump(&self.outbox, &mut self.protocol, &ctx, &mut out);
                if let Some(line) = self.protocol.farewell(&close) {
                    out.push(line);
                }
            }
        }
        // One log line per disconnect at info level, ordinary ends included (the
        // README promises every connection's end and its reason), with the reason as a
        // stable field.
        let detail = close.reason();
        let (peer, id) = (self.protocol.peer(), self.id);
        tracing::info!(%peer, id, reason = reason.label(), %detail, "client disconnected");
        // A client still in its TLS handshake could read nothing we sent, so it is
        // dropped.
        if matches!(close, Close::Io(_)) || self.stream.handshake_deadline().is_some() {
            return None;
        }
        Some((self.stream, out, self.shared))
    }
}

/// The value of a ready poll.
fn ready_value<V>(poll: Poll<V>) -> Option<V> {
    match poll {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}

/// Moves everything from the outbox through the protocol into the write queue.
///
/// Handling an event can issue commands whose replies land in the same outbox (a
/// registration triggers the join of the default room), so the outbox is drained again
/// until it is empty, a few rounds at most so that a busy room cannot keep one session
/// here forever.
fn pump<P: Protocol>(
    outbox: &Outbox,
    protocol: &mut P,
    ctx: &Ctx,
    out: &mut WriteQueue,
) -> Result<(), Overflowed> {
    // Swapped with the outbox's queue, whose memory goes with it when dropped.
    let mut drained = VecDeque::new();
    for _ in 0..4 {
        outbox.drain(&mut drained)?;
        if drained.is_empty() {
            break;
        }
        for item in drained.drain(..) {
            match item {
                Outgoing::Raw(line) => out.push(line),
                Outgoing::Batch(batch) => {
                    // One gate for the batch: its messages were committed together.
                    out.gate(batch.last_id(), ctx.shared.durability.durable());
                    protocol.on_batch(&batch, ctx, out)
                }
                Outgoing::Event(envelope) => {
                    // Messages from other nodes were made durable by their origin, and
                    // tag-only messages are never stored.
                    if let (confab_core::Event::Message(m), false) =
                        (&envelope.event, envelope.from_bus)
                    {
                        if m.kind != confab_core::MessageKind::Tags {
                            out.gate(m.id, ctx.shared.durability.durable());
                        }
                    }
                    protocol.on_event(&envelope, ctx, out)
                }
            }
        }
    }
    Ok(())
}

/// Flushes the last lines and closes gracefully: shutting down our side first and
/// reading until the client closes its side, so that unread input on our socket does
/// not turn the close into a reset that destroys the lines still in flight.
async fn linger<T: Transport>(
    mut stream: T,
    mut out: WriteQueue,
    durability: &Durability,
    grace: Duration,
) {
    let _ = timeout(grace, async {
        out.flush(&mut stream, durability).await?;
        loop {
            match stream.shutdown_write() {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable().await?,
                Err(e) => return Err(e),
            }
        }
        loop {
            stream.readable().await?;
            // Read into the thread's scratch buffer: a buffer of our own would live in
            // every connection's future, closing or not.
            let read = SCRATCH.with(|scratch| stream.try_read(&mut scratch.borrow_mut()));
            match read {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
}
