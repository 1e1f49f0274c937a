//! What passes between a transport (UDP or TCP) and a front-end (pipe or terminal): the
//! user's lines one way, things to show the other, each over a bounded channel.

use tokio::sync::mpsc;

use crate::{Link, PeerArgs, Report};

/// What the user did.
#[derive(Debug)]
pub(crate) enum Input {
    /// A line to send; an exit word leaves.
    Line(String),
    /// End of input, Ctrl-D or Ctrl-C: say goodbye and leave.
    Leave,
}

/// What the front-end should show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Show {
    /// A message from the friend, already made safe to print.
    Incoming(String),
    /// The user's own message as it was sent; `id` names it for a later [`Show::Mark`]
    /// when the transport gives receipts.
    Outgoing {
        id: Option<u64>,
        text: String,
    },
    Mark(u64, Mark),
    /// Something that happened, in a sentence.
    Notice(String),
    Status(Status),
}

/// What became of a message the user sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// The friend acknowledged it.
    Delivered,
    /// It went out as plain text; no receipt will ever come.
    Sent,
}

/// The status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    /// "tcp" or "udp".
    pub transport: &'static str,
    /// How the chat is spoken: "handshake", "reliable", "reliable, encrypted", "plain text".
    pub mode: &'static str,
    pub friend: String,
    pub presence: Presence,
    /// Datagrams dropped: from strangers, forged, malformed.
    pub dropped: [u64; 3],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    Online,
    Offline,
    /// Plain text and TCP before the connection say nothing about presence.
    Unknown,
}

pub(crate) type UserRx = mpsc::Receiver<Input>;
pub(crate) type ShowTx = mpsc::Sender<Show>;

/// How many lines the front-end may queue for the transport; the transport stops taking
/// them while it cannot send, and so this bounds what is read ahead of the network.
pub(crate) const USER_QUEUE: usize = 16;
/// How many things to show may wait for a slow terminal or pipe before the transport
/// waits too.
pub(crate) const SHOW_QUEUE: usize = 256;

/// Runs the chat over `link` until it ends.
pub(crate) async fn drive(
    args: PeerArgs,
    link: Link,
    user: UserRx,
    show: ShowTx,
) -> anyhow::Result<Report> {
    match link {
        Link::Udp(socket) => crate::udp::run(args, socket, user, show).await,
        Link::Listener(listener) => crate::tcp::accept_and_run(args, listener, user, show).await,
        Link::Stream(stream) => crate::tcp::run(args, stream, user, show).await,
    }
}

/// Makes the friend's text safe for a terminal and one line long: control characters
/// (escape sequences, newlines) become U+FFFD, tabs stay.
pub(crate) fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn sanitize_keeps_text_and_defuses_controls() {
        assert_eq!(sanitize("héllo\tthere"), "héllo\tthere");
        assert_eq!(sanitize("a\nb\x1b[2Jc\r"), "a\u{FFFD}b\u{FFFD}[2Jc\u{FFFD}");
    }
}
