//! The UDP transport: one loop over the socket, the user's lines and the session's next
//! deadline, driving the pure [`Session`] from `confab_wire::peer`.
//!
//! Each turn of the loop waits for one thing (a datagram, a line, a deadline), hands it to
//! the session, then sends every datagram the session has and shows every event, so the
//! order of what happens is the session's alone.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context as _;
use confab_wire::peer::{
    is_exit_word, Config, Event, Mode, PlainReason, SendError, Session, Stats,
};
use tokio::net::UdpSocket;
use tokio::time::sleep_until;

use crate::chat::{sanitize, Input, Mark, Presence, Show, ShowTx, Status, UserRx};
use crate::{resolve, secret, PeerArgs, Report};

/// The largest UDP payload; a datagram is read whole whatever its size.
const RECV_BUFFER: usize = 65536;
/// Datagrams read in one turn before the session's answers are sent, so that a burst is
/// acknowledged with one packet instead of one per datagram.
const RECV_BATCH: usize = 64;
/// Lines taken from the user in one turn at most, for the same reason.
const INPUT_BATCH: usize = 64;

pub(crate) async fn run(
    args: PeerArgs,
    socket: UdpSocket,
    user: UserRx,
    show: ShowTx,
) -> anyhow::Result<Report> {
    let to = args.to.as_deref().context("--udp needs --to")?;
    let friend = resolve(to).await?;
    let psk = match &args.secret {
        Some(secret) => Some(secret::derive(secret).await?),
        None => None,
    };
    let mode = if args.plain {
        Mode::Plain
    } else if args.reliable {
        Mode::Reliable
    } else {
        Mode::Auto
    };
    let config = Config {
        mode,
        psk,
        probe_timeout: args.handshake_timeout,
        linger: args.linger,
        ..Config::default()
    };
    let mut nonce = [0u8; 16];
    getrandom::getrandom(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let local = socket.local_addr().context("reading the bound address")?;
    let driver = Driver {
        session: Session::new(config, nonce, Instant::now()),
        socket,
        friend,
        show,
        report: Report::default(),
        status: None,
        warned: Stats::default(),
        leaving: false,
    };
    driver
        .notice(format!("chatting over UDP from {local} with {friend}"))
        .await;
    driver.run(user).await
}

struct Driver {
    session: Session,
    socket: UdpSocket,
    friend: SocketAddr,
    show: ShowTx,
    report: Report,
    /// The status last shown, so that only changes are sent.
    status: Option<Status>,
    /// The counters at the last warning in the log, so each kind of drop is logged
    /// when it starts rather than for every datagram.
    warned: Stats,
    /// The user left first; the friend's bye is then only its answer, not news.
    leaving: bool,
}

/// How the loop ends.
enum Outcome {
    Closed,
    Failed(anyhow::Error),
}

impl Driver {
    async fn run(mut self, mut user: UserRx) -> anyhow::Result<Report> {
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut user_open = true;
        loop {
            if let Some(outcome) = self.settle().await {
                return self.end(outcome).await;
            }
            let deadline = self.session.poll_timeout();
            let wants_input = user_open && self.session.can_send();
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    self.on_received(received, &mut buf)?;
                }
                input = user.recv(), if wants_input => {
                    user_open = self.on_input(input).await;
                    // Lines already waiting go out together, so that a burst shares
                    // packets instead of taking one each.
                    for _ in 1..INPUT_BATCH {
                        if !user_open || !self.session.can_send() {
                            break;
                        }
                        let Ok(input) = user.try_recv() else { break };
                        user_open = self.on_input(Some(input)).await;
                    }
                }
                () = sleep_until(deadline.map_or_else(far_future, tokio::time::Instant::from_std)),
                    if deadline.is_some() => {}
            }
        }
    }

    /// Takes one thing the user did; returns whether more input may follow.
    async fn on_input(&mut self, input: Option<Input>) -> bool {
        match input {
            Some(Input::Line(line)) if !is_exit_word(&line) => {
                self.send(line).await;
                true
            }
            // An exit word, the end of input, or the front-end gone.
            _ => {
                self.leaving = true;
                self.session.close(Instant::now());
                false
            }
        }
    }

    /// Hands one datagram, and any others already waiting, to the session.
    fn on_received(
        &mut self,
        first: std::io::Result<(usize, SocketAddr)>,
        buf: &mut [u8],
    ) -> anyhow::Result<()> {
        let mut received = first;
        for _ in 0..RECV_BATCH {
            match received {
                Ok((len, from)) => {
                    let now = Instant::now();
                    if same_address(from, self.friend) {
                        self.session.handle_datagram(&buf[..len], now);
                    } else {
                        tracing::debug!(%from, len, "ignored a datagram from a stranger");
                        self.session.note_stranger();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                // An earlier datagram hit a closed port (reported this way on Windows), or
                // a signal interrupted the call: neither says anything about the next one.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::ConnectionRefused
                            | ErrorKind::Interrupted
                    ) =>
                {
                    tracing::debug!(error = %e, "transient receive error");
                }
                Err(e) => return Err(e).context("receiving from the UDP socket"),
            }
            received = self.socket.try_recv_from(buf);
        }
        Ok(())
    }

    async fn send(&mut self, line: String) {
        match self.session.send(&line) {
            Ok(id) => {
                self.report.sent += 1;
                self.show(Show::Outgoing {
                    id: Some(id.0),
                    text: line,
                })
                .await;
            }
            Err(SendError::TooLong) => {
                let notice = format!("a message of {} bytes is too long to send", line.len());
                self.notice(notice).await;
            }
            // The loop takes lines only while the session can send them.
            Err(SendError::QueueFull | SendError::Closing) => {
                tracing::debug!("a line arrived while the session could not take it");
            }
        }
    }

    /// Acts on timers, sends what the session has, and shows its events until it is
    /// quiet. Returns how the chat ended, if it did.
    async fn settle(&mut self) -> Option<Outcome> {
        self.session.handle_timeout(Instant::now());
        let mut outcome = None;
        loop {
            self.transmit().await;
            let Some(event) = self.session.poll_event() else {
                break;
            };
            if let Some(end) = self.on_event(event).await {
                outcome = Some(end);
            }
        }
        self.transmit().await;
        self.update_status().await;
        self.log_drops();
        outcome
    }

    async fn transmit(&mut self) {
        while let Some(datagram) = self.session.poll_transmit(Instant::now()) {
            // UDP promises nothing, and the session retransmits what matters, so a failed
            // send is only logged.
            if let Err(e) = self.socket.send_to(&datagram, self.friend).await {
                tracing::debug!(error = %e, friend = %self.friend, "send failed");
            }
        }
    }

    async fn on_event(&mut self, event: Event) -> Option<Outcome> {
        match event {
            Event::Connected { encrypted } => {
                let how = if encrypted {
                    "reliable and encrypted"
                } else {
                    "reliable"
                };
                self.notice(format!("connected to {}: {how}", self.friend))
                    .await;
            }
            Event::PlainMode(reason) => {
                let why = match reason {
                    PlainReason::Asked => "as asked",
                    PlainReason::NoAnswer => "the friend did not answer confab's handshake",
                    PlainReason::FriendSpokePlain => "the friend sent plain text",
                };
                self.notice(format!(
                    "plain text, one line per datagram ({why}); no receipts"
                ))
                .await;
            }
            Event::Message(text) => {
                self.report.received += 1;
                self.show(Show::Incoming(sanitize(&text))).await;
            }
            Event::Delivered(id) => self.show(Show::Mark(id.0, Mark::Delivered)).await,
            Event::SentPlain(id) => self.show(Show::Mark(id.0, Mark::Sent)).await,
            Event::Online => self.notice("the friend is online".into()).await,
            Event::Offline => self.notice("the friend is offline".into()).await,
            Event::FriendRestarted => {
                self.notice(
                    "the friend restarted; sending again what it had not acknowledged".into(),
                )
                .await;
            }
            Event::FriendLeft => {
                if !self.leaving {
                    self.notice("the friend left".into()).await;
                }
                self.session.close(Instant::now());
            }
            Event::Mismatch(mismatch) => {
                // One last hello is still to go, so the friend learns it too.
                self.transmit().await;
                return Some(Outcome::Failed(anyhow::anyhow!("{mismatch}")));
            }
            Event::Closed => return Some(Outcome::Closed),
        }
        None
    }

    async fn end(mut self, outcome: Outcome) -> anyhow::Result<Report> {
        let stats = self.session.stats();
        self.report.stats = stats;
        self.report.undelivered = self.session.undelivered();
        tracing::info!(
            ?stats,
            undelivered = self.report.undelivered,
            "peer chat ended"
        );
        let dropped = stats.strangers + stats.forged + stats.malformed;
        if dropped > 0 {
            self.notice(format!(
                "ignored {} datagrams from strangers, {} forged, {} malformed",
                stats.strangers, stats.forged, stats.malformed
            ))
            .await;
        }
        match outcome {
            Outcome::Failed(e) => Err(e),
            Outcome::Closed => {
                if self.report.undelivered > 0 {
                    let n = self.report.undelivered;
                    let s = if n == 1 { " was" } else { "s were" };
                    self.notice(format!("{n} message{s} not delivered")).await;
                }
                Ok(self.report)
            }
        }
    }

    async fn update_status(&mut self) {
        let stats = self.session.stats();
        let (mode, presence) = match self.session.status() {
            confab_wire::peer::Status::Handshake => ("handshake", Presence::Unknown),
            confab_wire::peer::Status::Plain => ("plain text", Presence::Unknown),
            confab_wire::peer::Status::Reliable { encrypted } => (
                if encrypted {
                    "reliable, encrypted"
                } else {
                    "reliable"
                },
                if self.session.is_online() {
                    Presence::Online
                } else {
                    Presence::Offline
                },
            ),
        };
        let status = Status {
            transport: "udp",
            mode,
            friend: self.friend.to_string(),
            presence,
            dropped: [stats.strangers, stats.forged, stats.malformed],
        };
        if self.status.as_ref() != Some(&status) {
            self.status = Some(status.clone());
            self.show(Show::Status(status)).await;
        }
    }

    /// Warns in the log when a kind of unwanted datagram starts arriving.
    fn log_drops(&mut self) {
        let now = self.session.stats();
        if now.strangers > self.warned.strangers {
            tracing::warn!(
                total = now.strangers,
                "ignoring datagrams from addresses other than the friend's"
            );
        }
        if now.forged > self.warned.forged {
            tracing::warn!(
                total = now.forged,
                "dropping datagrams that fail authentication"
            );
        }
        if now.malformed > self.warned.malformed {
            tracing::warn!(total = now.malformed, "dropping malformed datagrams");
        }
        // Warn again only after the count doubles, so a flood is a few lines, not one each.
        for (seen, warned) in [
            (now.strangers, &mut self.warned.strangers),
            (now.forged, &mut self.warned.forged),
            (now.malformed, &mut self.warned.malformed),
        ] {
            if seen > *warned {
                *warned = seen * 2;
            }
        }
    }

    async fn show(&self, show: Show) {
        // A front-end that is gone (the terminal closed) must not stop the goodbye.
        let _ = self.show.send(show).await;
    }

    async fn notice(&self, text: String) {
        self.show(Show::Notice(text)).await;
    }
}

/// Compares addresses so that an IPv4 friend matches itself seen through an IPv6 socket.
fn same_address(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86400)
}
