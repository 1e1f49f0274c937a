//! What a line-based front-end implements to run on the shared socket loop
//! (connection.rs): the [`Protocol`] trait, and the [`Close`] and [`Flow`] it
//! answers with.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use confab_core::{Batch, Envelope};

use crate::ctx::Ctx;
use crate::metrics::Reason;
use crate::write_queue::WriteQueue;

/// Why a connection ended; logged, and turned into a last line where one makes sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Close {
    /// The client asked to leave, with this reason.
    Quit(String),
    /// The client closed its side.
    Eof,
    /// The client stopped reading and its send queue filled up.
    SendQueueExceeded,
    RegistrationTimeout,
    IdleTimeout,
    /// The client did not answer a keepalive ping in time.
    PingTimeout,
    /// A server operator removed the client; the text is the full quit reason.
    Killed(String),
    /// The client stayed over its input budget for the whole flood grace period.
    ExcessFlood,
    /// The client left a line unfinished for longer than `partial_line_timeout`.
    PartialLine,
    /// The server is shutting down.
    Shutdown,
    /// The socket failed.
    Io(String),
}

impl Close {
    /// The reason others see in the quit message.
    pub(crate) fn reason(&self) -> String {
        match self {
            Close::Quit(reason) => reason.clone(),
            Close::Eof => "Connection closed".into(),
            Close::SendQueueExceeded => "Send queue exceeded".into(),
            Close::RegistrationTimeout => "Registration timeout".into(),
            Close::IdleTimeout => "Idle timeout".into(),
            Close::PingTimeout => "Ping timeout".into(),
            Close::Killed(reason) => reason.clone(),
            Close::ExcessFlood => "Excess Flood".into(),
            Close::PartialLine => "Partial line timeout".into(),
            Close::Shutdown => "Server shutting down".into(),
            Close::Io(e) => format!("Connection error: {e}"),
        }
    }

    /// The reason as a metric label and log field.
    pub(crate) fn metric(&self) -> Reason {
        match self {
            Close::Quit(_) => Reason::Quit,
            Close::Eof => Reason::Closed,
            Close::SendQueueExceeded => Reason::SendQueue,
            Close::RegistrationTimeout => Reason::RegistrationTimeout,
            Close::IdleTimeout => Reason::Idle,
            Close::PingTimeout => Reason::PingTimeout,
            Close::Killed(_) => Reason::Killed,
            Close::ExcessFlood => Reason::Flood,
            Close::PartialLine => Reason::PartialLine,
            Close::Shutdown => Reason::Shutdown,
            Close::Io(_) => Reason::IoError,
        }
    }
}

/// What the protocol wants after handling input.
pub(crate) enum Flow {
    Continue,
    Close(Close),
}

/// One wire protocol spoken over a line-based connection.
pub(crate) trait Protocol: Send {
    /// Whether the protocol has keepalive pings ([`Protocol::keepalive`]). Without them
    /// a registered client is cut after `idle_timeout` of silence; with them it is
    /// pinged after `ping_interval` of silence and cut if it stays silent as long again.
    const PINGS: bool = false;

    /// The client's address. The session keeps it, so the connection does not keep
    /// a second copy.
    fn peer(&self) -> SocketAddr;
    /// The longest input line, newline excluded.
    fn max_line(&self) -> usize;
    /// Whether an input line is a keepalive (a PING or PONG), which flood control lets
    /// borrow a little budget so that it is not held up behind the client's own input.
    fn is_keepalive(&self, _line: &[u8]) -> bool {
        false
    }
    /// The keepalive line to send to a silent client.
    fn keepalive(&mut self) -> Option<Bytes> {
        None
    }
    /// A close the protocol decided on while handling an event (a kill, say).
    fn take_close(&mut self) -> Option<Close> {
        None
    }
    /// The lines a new connection receives first.
    fn greet(&mut self, ctx: &Ctx);
    /// One complete input line, not yet checked for UTF-8.
    fn on_line(&mut self, line: &[u8], ctx: &Ctx) -> Flow;
    /// An input line went past the length limit and is being discarded.
    fn on_too_long(&mut self, ctx: &Ctx);
    /// Whether handling `line` leaves the session as it is for replies to messages sent
    /// with [`Ctx::say`] (so they may wait until after it): true for a line that only
    /// sends a message, in a protocol whose replies to it do not depend on what the
    /// client did since. Before any other line the collected messages go to the core
    /// and their replies are handled. The default, false, means no batching.
    fn continues_run(&self, _line: &[u8]) -> bool {
        false
    }

    /// A core event for this client: encode it into `out` and update any session state.
    fn on_event(&mut self, envelope: &Arc<Envelope>, ctx: &Ctx, out: &mut WriteQueue);

    /// Handles several messages from one sender at once. Protocols whose rendering of a
    /// message depends on nothing but the message write the batch's shared encoding;
    /// the default handles each message as an event.
    fn on_batch(&mut self, batch: &Arc<Batch>, ctx: &Ctx, out: &mut WriteQueue) {
        for envelope in &batch.messages {
            self.on_event(envelope, ctx, out);
        }
    }
    /// Called after each input line and the replies it caused have been handled.
    fn after_line(&mut self, _ctx: &Ctx, _out: &mut WriteQueue) {}
    /// The last line the client sees before the connection closes for `why`.
    fn farewell(&mut self, why: &Close) -> Option<Bytes>;
    /// Whether the client has registered, which switches from the registration timeout
    /// to the idle timeout.
    fn registered(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_plain() {
        assert_eq!(Close::SendQueueExceeded.reason(), "Send queue exceeded");
        assert_eq!(Close::Quit("bye".into()).reason(), "bye");
    }
}
