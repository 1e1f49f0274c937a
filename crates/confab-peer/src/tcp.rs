//! The TCP transport: newline-framed UTF-8 lines, so that `nc` and the tutorial's scripts
//! can be the friend. Like the tutorial's UDP script it has two halves: this task reads
//! the socket and shows lines, a second one sends what the user types, and neither waits
//! for the other, so both friends can type at once.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use confab_wire::framing::{Frame, LineDecoder};
use confab_wire::peer::{is_exit_word, GOODBYE, MAX_MESSAGE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::{sleep_until, Instant};

use crate::chat::{sanitize, Input, Presence, Show, ShowTx, Status, UserRx};
use crate::{PeerArgs, Report};

/// The longest line taken from the friend; longer ones are dropped with a notice.
const MAX_LINE: usize = MAX_MESSAGE;
/// After leaving, how long to keep reading for the friend's last lines and its close;
/// `nc` never closes by itself, so this is short.
const GRACE: Duration = Duration::from_secs(3);

pub(crate) async fn accept_and_run(
    args: PeerArgs,
    listener: TcpListener,
    user: UserRx,
    show: ShowTx,
) -> anyhow::Result<Report> {
    let local = listener
        .local_addr()
        .context("reading the listening address")?;
    let _ = show
        .send(Show::Notice(format!(
            "waiting on {local} for the friend to connect"
        )))
        .await;
    let (stream, _) = listener.accept().await.context("accepting the friend")?;
    // Only one friend: later connections are refused.
    drop(listener);
    run(args, stream, user, show).await
}

pub(crate) async fn run(
    args: PeerArgs,
    stream: TcpStream,
    user: UserRx,
    show: ShowTx,
) -> anyhow::Result<Report> {
    let friend = stream.peer_addr().context("reading the friend's address")?;
    // Chat lines are small and typed by people: send each at once.
    let _ = stream.set_nodelay(true);
    let _ = show
        .send(Show::Notice(format!("connected to {friend} over TCP")))
        .await;
    let _ = show
        .send(Show::Status(status(friend, Presence::Online)))
        .await;
    let (mut reader, writer) = stream.into_split();
    let (left_tx, mut left_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let writing = tokio::spawn(write_side(writer, user, show.clone(), stop_rx, left_tx));

    let mut report = Report::default();
    let mut decoder = LineDecoder::new(MAX_LINE);
    let mut buf = vec![0u8; 16 * 1024];
    let mut grace_until: Option<Instant> = None;
    let mut friend_left = false;
    while !friend_left {
        let deadline = grace_until.unwrap_or_else(|| Instant::now() + Duration::from_secs(86400));
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) => 0,
                    Ok(n) => n,
                    Err(e) => {
                        tracing::debug!(error = %e, "reading from the friend failed");
                        0
                    }
                };
                if n == 0 {
                    friend_left = true;
                    break;
                }
                let mut shown = Vec::new();
                decoder.feed(&buf[..n], |frame| {
                    if friend_left {
                        return;
                    }
                    match frame {
                        Frame::Line(line) => {
                            let text = String::from_utf8_lossy(line);
                            if is_exit_word(&text) {
                                friend_left = true;
                            } else {
                                shown.push(Show::Incoming(sanitize(&text)));
                            }
                        }
                        Frame::TooLong => shown.push(Show::Notice(format!(
                            "the friend sent a line longer than {MAX_LINE} bytes; it was dropped"
                        ))),
                    }
                });
                for item in shown {
                    if matches!(item, Show::Incoming(_)) {
                        report.received += 1;
                    }
                    let _ = show.send(item).await;
                }
            }
            _ = &mut left_rx, if grace_until.is_none() => {
                grace_until = Some(Instant::now() + GRACE.min(args.linger));
            }
            () = sleep_until(deadline), if grace_until.is_some() => break,
        }
    }
    if friend_left && grace_until.is_none() {
        let _ = show.send(Show::Notice("the friend left".into())).await;
        let _ = show
            .send(Show::Status(status(friend, Presence::Offline)))
            .await;
    }
    // The writer stops at once if it is still going: the friend is gone.
    let _ = stop_tx.send(());
    let written = writing.await.context("the sending half failed")?;
    report.sent = written.sent;
    report.undelivered = written.undelivered;
    if report.undelivered > 0 {
        let _ = show
            .send(Show::Notice(format!(
                "{} line could not be sent: the connection was closed",
                report.undelivered
            )))
            .await;
    }
    Ok(report)
}

/// What the sending half did.
struct Written {
    sent: usize,
    undelivered: usize,
}

async fn write_side(
    mut writer: OwnedWriteHalf,
    mut user: UserRx,
    show: ShowTx,
    mut stop: oneshot::Receiver<()>,
    left: oneshot::Sender<()>,
) -> Written {
    let mut written = Written {
        sent: 0,
        undelivered: 0,
    };
    loop {
        let input = tokio::select! {
            input = user.recv() => input,
            _ = &mut stop => return written,
        };
        let (line, leaving) = match input {
            Some(Input::Line(line)) => {
                let leaving = is_exit_word(&line);
                (line, leaving)
            }
            // The tutorial's friend learns we left from an exit word, nc from the close.
            Some(Input::Leave) | None => (GOODBYE.to_owned(), true),
        };
        let mut bytes = line.clone().into_bytes();
        bytes.push(b'\n');
        if let Err(e) = writer.write_all(&bytes).await {
            tracing::debug!(error = %e, "writing to the friend failed");
            if !leaving {
                written.undelivered += 1;
            }
            let _ = left.send(());
            return written;
        }
        if leaving {
            let _ = writer.shutdown().await;
            let _ = left.send(());
            return written;
        }
        written.sent += 1;
        let _ = show
            .send(Show::Outgoing {
                id: None,
                text: line,
            })
            .await;
    }
}

fn status(friend: SocketAddr, presence: Presence) -> Status {
    Status {
        transport: "tcp",
        mode: "plain lines",
        friend: friend.to_string(),
        presence,
        dropped: [0; 3],
    }
}
