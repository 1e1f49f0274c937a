//! The way input goes from the socket to the protocol: one read into the thread's
//! scratch buffer, split into lines, each handed over while the flood budget allows,
//! the rest held back; and when an unfinished line began, for its timeout.

use std::io;

use confab_wire::framing::{Frame, LineDecoder};
use tokio::time::Instant;

use super::{pump, Busy, SCRATCH};
use crate::config::Limits;
use crate::ctx::Ctx;
use crate::flood::FloodControl;
use crate::outbox::Outbox;
use crate::protocol::{Close, Flow, Protocol};
use crate::transport::Transport;
use crate::write_queue::WriteQueue;

/// Where a session's output goes between the outbox and the socket.
pub(super) struct Sink<'a> {
    pub(super) outbox: &'a Outbox,
    pub(super) out: &'a mut WriteQueue,
}

/// Input read from the socket but not yet handed to the protocol, because the client's
/// flood budget ran out. Empty, and holding no memory (one pointer in every connection),
/// unless the client is being slowed; at most one read's worth.
#[derive(Default)]
pub(super) struct Held {
    /// The bytes, and how much of them has been handed over already.
    inner: Option<Box<(Vec<u8>, usize)>>,
}

impl Held {
    pub(super) fn is_empty(&self) -> bool {
        self.inner
            .as_ref()
            .is_none_or(|held| held.1 >= held.0.len())
    }

    pub(super) fn rest(&self) -> &[u8] {
        self.inner.as_ref().map_or(&[], |held| &held.0[held.1..])
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.inner
            .get_or_insert_default()
            .0
            .extend_from_slice(bytes);
    }

    pub(super) fn consume(&mut self, used: usize) {
        if let Some(held) = &mut self.inner {
            held.1 += used;
        }
        if self.is_empty() {
            self.inner = None;
        }
    }
}

/// Where input goes on its way to the protocol: the line splitter, the flood budget,
/// and the sink for the replies each line causes.
pub(super) struct Input<'a> {
    pub(super) decoder: &'a mut LineDecoder,
    pub(super) flood: &'a mut FloodControl,
    pub(super) sink: Sink<'a>,
}

/// What came of feeding input to the protocol.
pub(super) struct Fed {
    /// Bytes used; the rest waits for budget.
    pub(super) used: usize,
    /// Whether at least one line (or overlong line) was handed over.
    pub(super) frames: bool,
    pub(super) close: Option<Close>,
}

/// Reads what the socket has and feeds it to the protocol; what the flood budget does
/// not cover yet goes to `held`.
pub(super) fn read_input<T: Transport, P: Protocol>(
    stream: &mut T,
    input: &mut Input,
    protocol: &mut P,
    ctx: &Ctx,
    held: &mut Held,
) -> io::Result<Fed> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let n = stream.try_read(&mut scratch)?;
        if n == 0 {
            return Ok(Fed {
                used: 0,
                frames: false,
                close: Some(Close::Eof),
            });
        }
        let fed = feed(&scratch[..n], input, protocol, ctx, Instant::now());
        if fed.close.is_none() && fed.used < n {
            held.keep(&scratch[fed.used..n]);
        }
        Ok(fed)
    })
}

/// Hands each complete line of `data` to the protocol while the flood budget allows.
///
/// The outbox is pumped after every line, so that the session has seen the outcome of
/// one command (a join that changes the current room, say) before it reads the next.
pub(super) fn feed<P: Protocol>(
    data: &[u8],
    input: &mut Input,
    protocol: &mut P,
    ctx: &Ctx,
    now: Instant,
) -> Fed {
    let mut rest = data;
    let mut frames = false;
    let mut close = None;
    // A command waiting for the cluster holds back the lines after it.
    while close.is_none() && !ctx.has_pending() {
        // The budget is checked before a line is taken from `rest`, so that a line
        // without budget stays there, unread, for later.
        let keepalive =
            !input.flood.allows(now, false) && next_is_keepalive(input.decoder, rest, protocol);
        if !input.flood.allows(now, keepalive) {
            break;
        }
        let Some(frame) = input.decoder.next_frame(&mut rest) else {
            break;
        };
        input.flood.take(now);
        frames = true;
        let continues = matches!(frame, Frame::Line(line) if protocol.continues_run(line));
        if !continues && ctx.has_run() {
            ctx.flush();
            let sink = &mut input.sink;
            if pump(sink.outbox, protocol, ctx, sink.out).is_err() {
                close = Some(Close::SendQueueExceeded);
                break;
            }
        }
        match frame {
            Frame::Line(line) => {
                if let Flow::Close(why) = protocol.on_line(line, ctx) {
                    close = Some(why);
                }
            }
            Frame::TooLong => protocol.on_too_long(ctx),
        }
        let sink = &mut input.sink;
        if pump(sink.outbox, protocol, ctx, sink.out).is_err() {
            close = Some(Close::SendQueueExceeded);
        }
        protocol.after_line(ctx, sink.out);
    }
    // Messages collected from these lines go to the core now, before the session
    // waits for anything, and their replies (errors, echoes) join the output.
    ctx.flush();
    let sink = &mut input.sink;
    if pump(sink.outbox, protocol, ctx, sink.out).is_err() && close.is_none() {
        close = Some(Close::SendQueueExceeded);
    }
    Fed {
        used: data.len() - rest.len(),
        frames,
        close,
    }
}

/// Whether the next line in `rest` is complete and a keepalive.
fn next_is_keepalive<P: Protocol>(decoder: &LineDecoder, rest: &[u8], protocol: &P) -> bool {
    if decoder.is_mid_line() {
        return false;
    }
    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let line = &rest[..end];
    protocol.is_keepalive(line.strip_suffix(b"\r").unwrap_or(line))
}

/// When an unfinished line started at `since` times out, if partial lines time out.
pub(super) fn partial_deadline(since: Option<Instant>, limits: &Limits) -> Option<Instant> {
    since
        .filter(|_| !limits.partial_line_timeout.is_zero())
        .map(|since| since + limits.partial_line_timeout)
}

/// What every path that feeds input does afterwards: the close the input asked for; a
/// flooder's disconnection once it has stayed over its budget too long; and when the
/// unfinished line, if any, began.
pub(super) fn after_feed(
    fed: Fed,
    busy: &mut Busy,
    flood: &mut FloodControl,
    now: Instant,
) -> Option<Close> {
    if fed.close.is_some() {
        return fed.close;
    }
    if !busy.held.is_empty() && flood.stall(now).is_err() {
        return Some(Close::ExcessFlood);
    }
    busy.partial_since = partial_line(
        &busy.decoder,
        &busy.held,
        fed.frames,
        busy.partial_since,
        now,
    );
    None
}

/// When the line now unfinished in the decoder was started: kept while the same line
/// grows, restarted when a line was completed and another begun, cleared when none is
/// unfinished. Input held back by flood control is not a partial line: the client
/// sent it, the server has not read it yet.
fn partial_line(
    decoder: &LineDecoder,
    held: &Held,
    frames: bool,
    since: Option<Instant>,
    now: Instant,
) -> Option<Instant> {
    if !held.is_empty() || !decoder.is_mid_line() {
        None
    } else if frames {
        Some(now)
    } else {
        since.or(Some(now))
    }
}
