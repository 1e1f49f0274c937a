//! Pipe mode: standard input goes to the server line by line and every line the server
//! sends is printed as is, so that scripts can chat.
//!
//! The session is one loop over a `select!` of cancel-safe steps (read the socket, write
//! the socket, read stdin, keepalive, deadline), so reading never waits for writing.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use confab_wire::framing::{Frame, LineDecoder};
use confab_wire::line::{parse_input, Input, DEFAULT_MAX_LINE};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, Instant};

use crate::conn::{self, Incoming, LineReader, LineWriter, Pings};

/// The exit code when the server refuses the name.
pub const EXIT_NAME_REFUSED: u8 = 2;

/// The timings of a pipe session; tests shorten them.
#[derive(Debug, Clone)]
pub(crate) struct Timings {
    pub keepalive: Duration,
    /// How long to wait for the reply to `#NAME`.
    pub register: Duration,
    /// How long to keep printing after `/quit` before giving up on the server closing.
    pub quit_grace: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            keepalive: conn::KEEPALIVE,
            register: Duration::from_secs(15),
            quit_grace: Duration::from_secs(5),
        }
    }
}

/// Stop reading stdin while this much is queued for the server, so that a fast producer
/// cannot grow the queue without limit.
const MAX_QUEUED: usize = 64 * 1024;

/// Connects to `addr` (HOST:PORT), registers as `name`, then sends each line of `stdin`
/// and prints each server line to `stdout`.
///
/// Returns exit code 0 after stdin ends and the server closes (or after a short grace
/// period), 1 if the connection is lost first, and 2 if the server refuses the name.
/// Connection failures and local I/O errors are errors.
pub async fn run_pipe<R, W>(addr: &str, name: &str, stdin: R, stdout: W) -> anyhow::Result<ExitCode>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let stream = conn::connect(addr).await?;
    session(stream, addr, name, stdin, stdout, Timings::default()).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `#NAME` is sent; stdin waits until the server accepts it.
    Registering,
    Talking,
    /// `/quit` is sent; waiting for the server to close.
    Closing,
}

pub(crate) async fn session<S, R, W>(
    stream: S,
    addr: &str,
    name: &str,
    mut stdin: R,
    mut stdout: W,
    timings: Timings,
) -> anyhow::Result<ExitCode>
where
    S: AsyncRead + AsyncWrite,
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (read_half, write_half) = tokio::io::split(stream);
    let mut reader = LineReader::new(read_half, conn::MAX_SERVER_LINE);
    let mut writer = LineWriter::new(write_half);
    let mut input = LineDecoder::new(DEFAULT_MAX_LINE);
    let mut pings = Pings::default();
    let mut incoming = Vec::new();
    // Set when the socket refuses writes; the read side then reports the loss.
    let mut write_failed = false;

    writer.queue(&format!("#{name}"));
    let mut phase = Phase::Registering;
    let mut deadline = Instant::now() + timings.register;
    let mut next_ping = Instant::now() + timings.keepalive;

    loop {
        tokio::select! {
            read = reader.read_into(&mut incoming) => {
                let open = read.unwrap_or_else(|e| {
                    tracing::debug!("reading from {addr}: {e}");
                    false
                });
                let mut out = Vec::new();
                for item in incoming.drain(..) {
                    let line = match item {
                        Incoming::Line(line) => line,
                        Incoming::TooLong => {
                            eprintln!("confab: skipped an overlong line from the server");
                            continue;
                        }
                    };
                    if phase == Phase::Registering {
                        if line.starts_with("! ") {
                            stdout.write_all(&out).await.context("writing to stdout")?;
                            stdout.flush().await.context("writing to stdout")?;
                            eprintln!("{line}");
                            return Ok(ExitCode::from(EXIT_NAME_REFUSED));
                        }
                        if line.starts_with("* Your user detail saved as : ") {
                            phase = Phase::Talking;
                            next_ping = Instant::now() + timings.keepalive;
                        }
                    }
                    if pings.hides(&line) {
                        continue;
                    }
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
                stdout.write_all(&out).await.context("writing to stdout")?;
                stdout.flush().await.context("writing to stdout")?;
                if !open {
                    if phase == Phase::Closing {
                        return Ok(ExitCode::SUCCESS);
                    }
                    eprintln!("confab: connection to {addr} lost");
                    return Ok(ExitCode::FAILURE);
                }
            }
            written = writer.write_some(), if writer.pending() > 0 && !write_failed => {
                if let Err(e) = written {
                    // The read side reports the loss, after whatever the server still sent
                    // (its reason for closing, say).
                    tracing::debug!("writing to {addr}: {e}");
                    write_failed = true;
                }
            }
            chunk = stdin.fill_buf(), if phase == Phase::Talking && writer.pending() < MAX_QUEUED => {
                let chunk = chunk.context("reading stdin")?;
                let len = chunk.len();
                let mut lines = Vec::new();
                let mut collect = |frame: Frame<'_>| {
                    lines.push(match frame {
                        Frame::Line(line) => Some(String::from_utf8_lossy(line).into_owned()),
                        Frame::TooLong => None,
                    })
                };
                if len > 0 {
                    input.feed(chunk, &mut collect);
                } else if input.pending() > 0 {
                    // End of input: a last line without its newline still goes out.
                    input.feed(b"\n", &mut collect);
                }
                stdin.consume(len);
                let mut quit = false;
                for line in lines {
                    let Some(line) = line else {
                        eprintln!("confab: skipped an input line over {DEFAULT_MAX_LINE} bytes");
                        continue;
                    };
                    pings.sent_by_user(&line);
                    writer.queue(&line);
                    if matches!(parse_input(&line), Input::Quit(_)) {
                        // Nothing after a quit reaches the server.
                        quit = true;
                        break;
                    }
                }
                if len == 0 && !quit {
                    writer.queue("/quit");
                    quit = true;
                }
                next_ping = Instant::now() + timings.keepalive;
                if quit {
                    phase = Phase::Closing;
                    deadline = Instant::now() + timings.quit_grace;
                }
            }
            () = sleep_until(next_ping), if phase == Phase::Talking => {
                writer.queue("/ping");
                pings.sent_keepalive();
                next_ping = Instant::now() + timings.keepalive;
            }
            () = sleep_until(deadline), if phase != Phase::Talking => {
                if phase == Phase::Closing {
                    return Ok(ExitCode::SUCCESS);
                }
                eprintln!("confab: {addr} did not answer the registration");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncBufReadExt, BufReader};
    use tokio::sync::oneshot;

    fn timings(keepalive_ms: u64, register_ms: u64, quit_grace_ms: u64) -> Timings {
        Timings {
            keepalive: Duration::from_millis(keepalive_ms),
            register: Duration::from_millis(register_ms),
            quit_grace: Duration::from_millis(quit_grace_ms),
        }
    }

    fn printed(out: &[u8]) -> Vec<&str> {
        std::str::from_utf8(out).expect("utf-8").lines().collect()
    }

    #[tokio::test]
    async fn keepalive_pongs_are_hidden_and_the_users_are_not() {
        let (client_io, server_io) = duplex(4096);
        let (mut stdin_writer, stdin_reader) = duplex(64);
        let (pinged_tx, pinged) = oneshot::channel();
        let server = async move {
            let (read_half, mut write_half) = tokio::io::split(server_io);
            let mut lines = BufReader::new(read_half).lines();
            let mut pinged_tx = Some(pinged_tx);
            let mut pings = 0;
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = match line.as_str() {
                    "#alice" => "* Your user detail saved as : alice\n",
                    "/ping" => {
                        pings += 1;
                        if let Some(tx) = pinged_tx.take() {
                            let _ = tx.send(());
                        }
                        "* pong\n"
                    }
                    "/quit" => "* Goodbye\n",
                    _ => "",
                };
                write_half.write_all(reply.as_bytes()).await.expect("write");
                if line == "/quit" {
                    break;
                }
            }
            pings
        };
        let driver = async move {
            // A keepalive ping went out; now the user pings too, then stdin ends.
            pinged.await.expect("a keepalive ping");
            stdin_writer.write_all(b"/ping\n").await.expect("stdin");
        };
        let mut stdout = Vec::new();
        let client = session(
            client_io,
            "test",
            "alice",
            BufReader::new(stdin_reader),
            &mut stdout,
            timings(5, 10_000, 10_000),
        );
        let (code, pings, ()) = tokio::join!(client, server, driver);
        assert_eq!(code.expect("session"), ExitCode::SUCCESS);
        assert!(pings >= 2, "the keepalive and the user both pinged");
        assert_eq!(
            printed(&stdout),
            ["* Your user detail saved as : alice", "* pong", "* Goodbye"]
        );
    }

    #[tokio::test]
    async fn a_silent_server_fails_registration_and_a_stuck_quit_is_bounded() {
        let (client_io, _server_io) = duplex(4096);
        let stdin: &[u8] = b"";
        let code = session(
            client_io,
            "test",
            "alice",
            stdin,
            Vec::new(),
            timings(5, 1, 1),
        )
        .await
        .expect("session");
        assert_eq!(code, ExitCode::FAILURE);

        // This server registers the client and then ignores everything, /quit included.
        let (client_io, mut server_io) = duplex(4096);
        server_io
            .write_all(b"* Your user detail saved as : alice\n")
            .await
            .expect("write");
        let mut stdout = Vec::new();
        let code = session(
            client_io,
            "test",
            "alice",
            stdin,
            &mut stdout,
            timings(60_000, 10_000, 1),
        )
        .await
        .expect("session");
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(printed(&stdout), ["* Your user detail saved as : alice"]);
    }
}
