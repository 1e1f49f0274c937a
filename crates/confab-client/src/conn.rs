//! The socket side shared by both modes: connecting, reading bounded lines, queueing
//! lines to send, and the keepalive that pairs `* pong` replies with their `/ping`s.
//!
//! Every method that waits is cancel safe, so the mode loops can put them side by side
//! in one `tokio::select!` and stay full duplex without extra tasks.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use anyhow::Context as _;
use bytes::{BufMut, BytesMut};
use confab_wire::framing::{Frame, LineDecoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest line accepted from the server. Far above anything confab sends, low
/// enough that a broken server cannot make the client buffer without limit.
pub const MAX_SERVER_LINE: usize = 64 * 1024;

/// Send `/ping` after this long without sending anything, so that the server's idle
/// timeout never cuts a user who is only reading.
pub const KEEPALIVE: Duration = Duration::from_secs(60);

/// How long one address may take to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves `addr` (HOST:PORT) and connects to the first address that answers.
pub async fn connect(addr: &str) -> anyhow::Result<TcpStream> {
    let addrs: Vec<_> = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("cannot resolve {addr} (expected HOST:PORT)"))?
        .collect();
    let mut last_error = None;
    for target in &addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => {
                // Chat lines are small and interactive; waiting to coalesce them only
                // adds latency.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => last_error = Some(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
        }
    }
    match last_error {
        Some(e) => Err(e).with_context(|| format!("cannot connect to {addr}")),
        None => anyhow::bail!("cannot connect to {addr}: it resolved to no address"),
    }
}

/// One thing read from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A line without its newline, decoded lossily so that no byte the server sends can
    /// make the client fail.
    Line(String),
    /// A line longer than [`MAX_SERVER_LINE`] was dropped.
    TooLong,
}

/// Splits what the server sends into lines.
pub struct LineReader<R> {
    io: R,
    decoder: LineDecoder,
    buf: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(io: R, max_line: usize) -> Self {
        LineReader {
            io,
            decoder: LineDecoder::new(max_line),
            buf: vec![0; 8 * 1024].into_boxed_slice(),
        }
    }

    /// Reads once and appends every line that completes to `out`. Returns `false` once
    /// the server has closed its side. Cancel safe: a cancelled read has read nothing.
    pub async fn read_into(&mut self, out: &mut Vec<Incoming>) -> io::Result<bool> {
        let n = self.io.read(&mut self.buf).await?;
        let push = |frame: Frame<'_>| {
            out.push(match frame {
                Frame::Line(line) => Incoming::Line(String::from_utf8_lossy(line).into_owned()),
                Frame::TooLong => Incoming::TooLong,
            })
        };
        if n == 0 {
            // A last line without its newline still counts.
            if self.decoder.pending() > 0 {
                self.decoder.feed(b"\n", push);
            }
            return Ok(false);
        }
        self.decoder.feed(&self.buf[..n], push);
        Ok(true)
    }
}

/// Queues lines for the server and writes them as the socket accepts them.
pub struct LineWriter<W> {
    io: W,
    out: BytesMut,
}

impl<W: AsyncWrite + Unpin> LineWriter<W> {
    pub fn new(io: W) -> Self {
        LineWriter {
            io,
            out: BytesMut::new(),
        }
    }

    /// Appends `line` and a newline. A newline inside `line` would smuggle in a second
    /// command, so it becomes a space.
    pub fn queue(&mut self, line: &str) {
        self.out.reserve(line.len() + 1);
        for chunk in line.split(['\n', '\r']).enumerate() {
            if chunk.0 > 0 {
                self.out.put_u8(b' ');
            }
            self.out.put_slice(chunk.1.as_bytes());
        }
        self.out.put_u8(b'\n');
    }

    /// Bytes queued but not yet written.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Writes some of what is queued. Cancel safe: a cancelled write has written nothing.
    pub async fn write_some(&mut self) -> io::Result<()> {
        if self.io.write_buf(&mut self.out).await? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if self.out.is_empty() {
            self.io.flush().await?;
        }
        Ok(())
    }
}

/// Who sent a `/ping` that has not been answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PingFrom {
    Keepalive,
    User,
    /// The client, right after a direct message, to learn whether it was accepted.
    Dm {
        /// The message as it is shown once accepted.
        echo: String,
        /// An error came back for it.
        refused: bool,
    },
}

/// Pairs each `* pong` with the `/ping` that caused it. The server answers in order, so
/// a queue of origins is enough to hide exactly the keepalive's pongs while the user's
/// own `/ping` still gets its answer.
///
/// A direct message is followed by a `/ping` of its own: the server says nothing when it
/// delivers one, only when it refuses it, so an error before that ping's pong is the
/// message's refusal and the pong alone means it was accepted. Only then is the message
/// shown as sent.
#[derive(Debug, Default)]
pub struct Pings {
    waiting: VecDeque<PingFrom>,
}

/// More unanswered pings than this means the server is not answering them; the oldest
/// are forgotten so that the queue stays bounded.
const MAX_WAITING_PINGS: usize = 64;

impl Pings {
    pub fn sent_keepalive(&mut self) {
        self.push(PingFrom::Keepalive);
    }

    /// Notes a line the user sent, in case it was a `/ping`.
    pub fn sent_by_user(&mut self, line: &str) {
        if confab_wire::line::parse_input(line) == confab_wire::line::Input::Ping {
            self.push(PingFrom::User);
        }
    }

    fn push(&mut self, from: PingFrom) {
        if self.waiting.len() == MAX_WAITING_PINGS {
            self.waiting.pop_front();
        }
        self.waiting.push_back(from);
    }

    /// Notes the `/ping` sent right after a direct message, with what to show once the
    /// server has taken the message.
    pub fn sent_after_dm(&mut self, echo: String) {
        self.push(PingFrom::Dm {
            echo,
            refused: false,
        });
    }

    /// Notes an error line from the server. Everything sent before the oldest
    /// unanswered ping has been answered, so when that ping follows a direct message
    /// the error is the message's.
    pub fn error(&mut self) {
        if let Some(PingFrom::Dm { refused, .. }) = self.waiting.front_mut() {
            *refused = true;
        }
    }

    /// What a line from the server means for the pings in flight.
    pub fn answer(&mut self, line: &str) -> Pong {
        if line != "* pong" {
            return Pong::NotOne;
        }
        match self.waiting.pop_front() {
            None | Some(PingFrom::User) => Pong::Show,
            Some(PingFrom::Keepalive) | Some(PingFrom::Dm { refused: true, .. }) => Pong::Hide,
            Some(PingFrom::Dm { echo, .. }) => Pong::Sent(echo),
        }
    }

    /// Whether a line from the server is the answer to one of the client's own pings
    /// and should be hidden (pipe mode, which shows no echoes).
    pub fn hides(&mut self, line: &str) -> bool {
        !matches!(self.answer(line), Pong::NotOne | Pong::Show)
    }
}

/// What a server line is to [`Pings`].
#[derive(Debug, PartialEq, Eq)]
pub enum Pong {
    /// Not a `* pong`.
    NotOne,
    /// The answer to the user's own `/ping` (or to none): shown.
    Show,
    /// The answer to a keepalive, or to the ping after a refused direct message.
    Hide,
    /// The server took the direct message before it: the pong is hidden and this echo
    /// of the message shown.
    Sent(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_keepalives_pongs_are_hidden() {
        let mut pings = Pings::default();
        assert!(!pings.hides("* pong"), "an unexpected pong is shown");
        pings.sent_keepalive();
        pings.sent_by_user("/ping");
        pings.sent_by_user("/pingo");
        pings.sent_keepalive();
        assert!(!pings.hides("* pongs"));
        assert!(pings.hides("* pong"));
        assert!(!pings.hides("* pong"));
        assert!(pings.hides("* pong"));
        assert!(!pings.hides("* pong"));
    }

    #[test]
    fn unanswered_pings_stay_bounded() {
        let mut pings = Pings::default();
        for _ in 0..1000 {
            pings.sent_keepalive();
        }
        assert_eq!(pings.waiting.len(), MAX_WAITING_PINGS);
    }

    #[test]
    fn queued_lines_cannot_carry_a_second_command() {
        let mut writer = LineWriter::new(Vec::new());
        writer.queue("hi\n/quit");
        writer.queue("a\r\nb");
        assert_eq!(&writer.out[..], b"hi /quit\na  b\n");
    }

    #[tokio::test]
    async fn reader_bounds_lines_and_keeps_an_unterminated_last_line() {
        let data: &[u8] = b"* one\r\n0123456789abc\nbad \xff byte\nlast";
        let mut reader = LineReader::new(data, 10);
        let mut out = Vec::new();
        while reader.read_into(&mut out).await.expect("in-memory read") {}
        let line = |s: &str| Incoming::Line(s.into());
        assert_eq!(
            out,
            [
                line("* one"),
                Incoming::TooLong,
                line("bad \u{fffd} byte"),
                line("last")
            ]
        );
    }
}
