//! [`Session`]: one chat with one friend over UDP, as a state machine with no I/O.
//!
//! The driver feeds it what arrives from the friend's address ([`Session::handle_datagram`]),
//! what the user types ([`Session::send`], [`Session::close`]) and the passing of time
//! ([`Session::handle_timeout`] at [`Session::poll_timeout`]), and after each call sends
//! what [`Session::poll_transmit`] hands out and shows what [`Session::poll_event`] reports.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::crypto::{self, Psk, SessionKeys, TAG_LEN};
use super::frame::{self, Body, BodyWriter, Datagram, Header, Hello, Nonce, Payload};
use super::recv::{Accepted, Delivery, Receiver};
use super::rtt::Rtt;
use super::send::Sender;
use super::{
    is_exit_word, plain_pieces, GOODBYE, MAX_FRAGMENT, MAX_FRAGMENTS, MAX_MESSAGE, MAX_QUEUED,
};

/// The gap between the first two hellos; it doubles up to [`HELLO_GAP_MAX`].
const HELLO_GAP: Duration = Duration::from_millis(500);
const HELLO_GAP_MAX: Duration = Duration::from_secs(1);
/// While established, a friend knocking with the wrong secret is answered at most this
/// often, so that it can tell its user, without letting it make us send at will.
const MISMATCH_REPLY_GAP: Duration = Duration::from_secs(1);
/// Once the friend's bye is in, the session stays this long (three timeouts, within these
/// bounds) to acknowledge it again should our acknowledgement be lost, and to repeat our
/// own bye.
const TIME_WAIT_MIN: Duration = Duration::from_millis(200);
const TIME_WAIT_MAX: Duration = Duration::from_secs(2);
/// How long after our bye is acknowledged the friend's bye is waited for. The friend
/// sends it as soon as its own messages are acknowledged, so this only matters when the
/// friend vanished or every copy of its bye was lost.
const BYE_GRACE: Duration = Duration::from_secs(2);

/// How the session picks between the tutorial's plain text and confab's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Offer the handshake; speak plain text if the friend does not answer or speaks it.
    Auto,
    /// Speak the tutorial's plain text only, and ignore the handshake.
    Plain,
    /// Speak confab's protocol only, waiting as long as it takes for the friend.
    Reliable,
}

/// The session's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// The key derived from the shared passphrase. With one, the session never falls
    /// back to plain text and everything it accepts is authenticated.
    pub psk: Option<Psk>,
    /// In [`Mode::Auto`], how long to wait for an answer to the handshake.
    pub probe_timeout: Duration,
    /// How long the session may stay silent before it sends a keepalive.
    pub keepalive: Duration,
    /// How long after the friend's last datagram it is reported offline.
    pub offline_after: Duration,
    /// The longest wait after [`Session::close`] for everything to be acknowledged.
    pub linger: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Auto,
            psk: None,
            probe_timeout: Duration::from_secs(3),
            keepalive: Duration::from_millis(500),
            offline_after: Duration::from_secs(3),
            linger: Duration::from_secs(10),
        }
    }
}

/// Names one message the user sent, for its delivery report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

/// Why the session speaks plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainReason {
    /// [`Mode::Plain`].
    Asked,
    /// The friend did not answer the handshake in time.
    NoAnswer,
    /// The friend sent plain text.
    FriendSpokePlain,
}

/// Why the friend's hello cannot be accepted. Each ends the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Both have a secret, and they differ.
    WrongSecret,
    /// The friend has a secret and this side has none.
    FriendHasSecret,
    /// This side has a secret and the friend has none.
    FriendHasNoSecret,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mismatch::WrongSecret => "the friend's secret does not match",
            Mismatch::FriendHasSecret => "the friend uses a secret and this side has none",
            Mismatch::FriendHasNoSecret => "this side has a secret and the friend has none",
        })
    }
}

/// What the session reports to its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed: reliable mode, encrypted when there is a secret.
    Connected { encrypted: bool },
    /// The session speaks the tutorial's plain text from now on.
    PlainMode(PlainReason),
    /// A message from the friend (invalid UTF-8 replaced, nothing else changed).
    Message(String),
    /// The friend acknowledged this message and everything before it.
    Delivered(MessageId),
    /// The message went out as plain text; no receipt will come.
    SentPlain(MessageId),
    /// The friend is heard from again.
    Online,
    /// Nothing came from the friend for [`Config::offline_after`].
    Offline,
    /// The friend started over (a new nonce): undelivered messages go out again.
    FriendRestarted,
    /// The friend said goodbye (a bye, or an exit word in plain text).
    FriendLeft,
    /// The friend's hello cannot be accepted; the session is over.
    Mismatch(Mismatch),
    /// The session is over after [`Session::close`]; [`Session::undelivered`] tells how
    /// many messages never got through.
    Closed,
}

/// Why [`Session::send`] refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Longer than [`MAX_MESSAGE`].
    TooLong,
    /// [`MAX_QUEUED`] messages are waiting; try again after some are sent.
    QueueFull,
    /// The session is closing or over.
    Closing,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::TooLong => "the message is too long",
            SendError::QueueFull => "too many messages are waiting to be sent",
            SendError::Closing => "the chat is ending",
        })
    }
}

impl std::error::Error for SendError {}

/// Counters for the status line and the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    /// From an address other than the friend's (counted by the driver).
    pub strangers: u64,
    /// Failed authentication: a bad hello MAC or a packet that does not open.
    pub forged: u64,
    /// Claimed to be confab's and did not parse, or broke the stream's rules.
    pub malformed: u64,
    /// Packets from an earlier session, replayed, or ahead of the window.
    pub stale: u64,
    /// Well formed but not for this mode: hellos in plain mode, plain text when only
    /// confab's protocol is allowed.
    pub ignored: u64,
    /// Chunks that arrived again.
    pub duplicates: u64,
    /// Chunks sent again.
    pub retransmissions: u64,
}

/// Where the session stands, for a status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Handshake,
    Plain,
    Reliable { encrypted: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Offering the handshake. Auto mode gives up at `give_up`; there is none once the
    /// friend is known to speak confab or when plain text is not allowed.
    Handshake {
        give_up: Option<Instant>,
    },
    /// Plain text. `upgradable` unless in [`Mode::Plain`]: a hello still upgrades.
    Plain {
        upgradable: bool,
    },
    Established,
}

/// The friend's current run.
#[derive(Debug)]
struct Friend {
    nonce: Nonce,
    tag: u64,
    keys: Option<SessionKeys>,
}

/// The last 128 packet numbers seen, so a replayed packet is dropped.
#[derive(Debug, Default)]
pub(super) struct ReplayWindow {
    top: Option<u64>,
    /// Bit `i` is packet `top - i`.
    seen: u128,
}

impl ReplayWindow {
    pub(super) fn accept(&mut self, pn: u64) -> bool {
        match self.top {
            Some(top) if pn <= top => {
                let back = top - pn;
                if back >= 128 || self.seen & (1 << back) != 0 {
                    return false;
                }
                self.seen |= 1 << back;
            }
            top => {
                let shift = top.map_or(128, |t| pn - t);
                self.seen = if shift >= 128 { 0 } else { self.seen << shift };
                self.seen |= 1;
                self.top = Some(pn);
            }
        }
        true
    }
}

/// One chat with one friend; see the module documentation.
#[derive(Debug)]
pub struct Session {
    config: Config,
    /// This run's nonce.
    nonce: Nonce,
    phase: Phase,
    friend: Option<Friend>,
    sender: Sender,
    receiver: Receiver,
    rtt: Rtt,
    next_pn: u64,
    /// The largest packet number received in this session, echoed back for timing.
    largest_pn_in: Option<u64>,
    replay: ReplayWindow,
    next_id: u64,
    hello_due: bool,
    /// When our latest hello went out; its echo gives the first round-trip sample.
    last_hello_sent: Option<Instant>,
    next_hello: Instant,
    hello_gap: Duration,
    last_mismatch_reply: Option<Instant>,
    ack_due: bool,
    ping_due: bool,
    last_sent: Instant,
    last_heard: Option<Instant>,
    online: bool,
    /// Set by [`Session::close`]: the deadline for everything to be acknowledged.
    closing: Option<Instant>,
    time_wait_until: Option<Instant>,
    /// When our bye was first seen acknowledged.
    bye_acked_at: Option<Instant>,
    closed: bool,
    /// A mismatched hello ended the session.
    failed: bool,
    /// Plain-text datagrams waiting to go out.
    plain_out: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Session {
    /// Starts a session; `nonce` must be fresh random bytes for every run.
    pub fn new(config: Config, nonce: Nonce, now: Instant) -> Session {
        let mut events = VecDeque::new();
        let phase = if config.mode == Mode::Plain {
            events.push_back(Event::PlainMode(PlainReason::Asked));
            Phase::Plain { upgradable: false }
        } else {
            let plain_allowed = config.mode == Mode::Auto && config.psk.is_none();
            Phase::Handshake {
                give_up: plain_allowed.then(|| now + config.probe_timeout),
            }
        };
        Session {
            hello_due: matches!(phase, Phase::Handshake { .. }),
            config,
            nonce,
            phase,
            friend: None,
            sender: Sender::default(),
            receiver: Receiver::default(),
            rtt: Rtt::default(),
            next_pn: 0,
            largest_pn_in: None,
            replay: ReplayWindow::default(),
            next_id: 0,
            last_hello_sent: None,
            next_hello: now + HELLO_GAP,
            hello_gap: HELLO_GAP * 2,
            last_mismatch_reply: None,
            ack_due: false,
            ping_due: false,
            last_sent: now,
            last_heard: None,
            online: false,
            closing: None,
            time_wait_until: None,
            bye_acked_at: None,
            closed: false,
            failed: false,
            plain_out: VecDeque::new(),
            events,
            stats: Stats::default(),
        }
    }

    fn plain_allowed(&self) -> bool {
        self.config.mode != Mode::Reliable && self.config.psk.is_none()
    }

    /// Whether [`Session::send`] would take another message now.
    pub fn can_send(&self) -> bool {
        self.closing.is_none()
            && !self.closed
            && !self.failed
            && self.sender.queued_messages() < MAX_QUEUED
    }

    /// Queues a message (one line of text) for the friend.
    pub fn send(&mut self, text: &str) -> Result<MessageId, SendError> {
        if self.closing.is_some() || self.closed || self.failed {
            return Err(SendError::Closing);
        }
        if text.len() > MAX_MESSAGE {
            return Err(SendError::TooLong);
        }
        if !self.can_send() {
            return Err(SendError::QueueFull);
        }
        let id = MessageId(self.next_id);
        self.next_id += 1;
        if let Phase::Plain { .. } = self.phase {
            self.send_plain(id, text);
        } else {
            self.sender
                .push_message(id, Bytes::copy_from_slice(text.as_bytes()));
        }
        Ok(id)
    }

    fn send_plain(&mut self, id: MessageId, text: &str) {
        for piece in plain_pieces(text) {
            self.plain_out.push_back(piece.into_bytes());
        }
        self.events.push_back(Event::SentPlain(id));
    }

    /// Says goodbye: after everything queued is acknowledged (or [`Config::linger`]
    /// passes), the session reports [`Event::Closed`].
    pub fn close(&mut self, now: Instant) {
        if self.closing.is_some() || self.closed || self.failed {
            return;
        }
        self.closing = Some(now + self.config.linger);
        match self.phase {
            Phase::Plain { .. } => {
                self.plain_out.push_back(GOODBYE.into());
                self.finish();
            }
            // Nobody has answered and nothing waits: there is no one to tell.
            Phase::Handshake { .. } if self.friend.is_none() && self.sender.undelivered() == 0 => {
                self.finish()
            }
            _ => self.sender.push_bye(),
        }
    }

    fn finish(&mut self) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(Event::Closed);
        }
    }

    /// Counts a datagram from someone other than the friend; it is otherwise ignored.
    pub fn note_stranger(&mut self) {
        self.stats.strangers += 1;
    }

    /// Takes one datagram that came from the friend's address. Never panics, whatever
    /// the bytes.
    pub fn handle_datagram(&mut self, datagram: &[u8], now: Instant) {
        if self.closed || self.failed {
            return;
        }
        self.stats.datagrams_in += 1;
        match frame::classify(datagram) {
            Datagram::Hello(hello) => self.on_hello(&hello, now),
            Datagram::Packet {
                header,
                header_bytes,
                body,
            } => self.on_packet(header, header_bytes, body, now),
            Datagram::Plain(text) => self.on_plain(text),
            Datagram::Malformed(_) => self.stats.malformed += 1,
        }
    }

    fn on_hello(&mut self, hello: &Hello, now: Instant) {
        if self.config.mode == Mode::Plain {
            self.stats.ignored += 1;
            return;
        }
        let authentic = match &self.config.psk {
            None => !hello.secret,
            Some(psk) => {
                hello.secret && crypto::hello_mac_ok(psk, &hello.signed_part(), &hello.mac)
            }
        };
        if !authentic {
            if self.config.psk.is_some() && self.phase == Phase::Established {
                // The session is authenticated; this is a forgery, or someone at the
                // friend's address with another secret, who gets one hello a second so
                // that its user learns why nothing works.
                self.stats.forged += 1;
                if !matches!(self.last_mismatch_reply, Some(t) if now < t + MISMATCH_REPLY_GAP) {
                    self.last_mismatch_reply = Some(now);
                    self.hello_due = true;
                }
                return;
            }
            let mismatch = match (&self.config.psk, hello.secret) {
                (None, _) => Mismatch::FriendHasSecret,
                (Some(_), false) => Mismatch::FriendHasNoSecret,
                (Some(_), true) => Mismatch::WrongSecret,
            };
            self.failed = true;
            // One hello back, so the friend learns it too.
            self.hello_due = true;
            self.events.push_back(Event::Mismatch(mismatch));
            return;
        }
        self.heard(now);
        match &self.friend {
            Some(friend) if friend.nonce == hello.nonce => {}
            Some(_) => {
                self.events.push_back(Event::FriendRestarted);
                self.set_friend(hello.nonce);
            }
            None => self.set_friend(hello.nonce),
        }
        if self.phase != Phase::Established {
            self.phase = Phase::Handshake { give_up: None };
        }
        if hello.echo == Some(self.nonce) {
            if self.phase != Phase::Established {
                // The echo may answer an earlier hello than the latest, which makes this
                // sample short; that costs at most a spurious retransmission, while the
                // initial timeout of a second would cost every early loss a second.
                if let Some(sent) = self.last_hello_sent {
                    self.rtt.sample(now.saturating_duration_since(sent));
                }
                self.establish(now);
            }
        } else {
            self.hello_due = true;
        }
    }

    /// Starts a session with the friend's run named by `nonce`.
    fn set_friend(&mut self, nonce: Nonce) {
        let keys = self
            .config
            .psk
            .as_ref()
            .map(|psk| SessionKeys::derive(psk, &self.nonce, &nonce));
        self.friend = Some(Friend {
            nonce,
            tag: crypto::session_tag(&self.nonce, &nonce),
            keys,
        });
        self.sender.restart();
        self.receiver = Receiver::default();
        self.replay = ReplayWindow::default();
        self.next_pn = 0;
        self.largest_pn_in = None;
        self.ack_due = false;
        self.ping_due = false;
        if self.phase == Phase::Established {
            self.phase = Phase::Handshake { give_up: None };
        }
    }

    fn establish(&mut self, now: Instant) {
        self.phase = Phase::Established;
        self.events.push_back(Event::Connected {
            encrypted: self.config.psk.is_some(),
        });
        // A packet at once confirms the session to a friend still waiting for our echo.
        self.ping_due = true;
        self.last_sent = now;
    }

    fn heard(&mut self, now: Instant) {
        self.last_heard = Some(now);
        if !self.online {
            self.online = true;
            self.events.push_back(Event::Online);
        }
    }

    fn on_packet(&mut self, header: Header, header_bytes: &[u8], sealed: &[u8], now: Instant) {
        let Some(friend) = &self.friend else {
            self.stats.stale += 1;
            return;
        };
        if header.session != friend.tag {
            self.stats.stale += 1;
            return;
        }
        let opened = friend
            .keys
            .as_ref()
            .map(|keys| keys.open(header.pn, header_bytes, sealed));
        let plain: &[u8] = match &opened {
            None => sealed,
            Some(Some(plain)) => plain,
            Some(None) => {
                self.stats.forged += 1;
                return;
            }
        };
        // Replays only matter when packets are authenticated; without a secret, anyone
        // who can send from the friend's address can say anything anyway.
        if opened.is_some() && !self.replay.accept(header.pn) {
            self.stats.stale += 1;
            return;
        }
        let Ok(body) = Body::decode(plain) else {
            self.stats.malformed += 1;
            return;
        };
        self.heard(now);
        if self.phase != Phase::Established {
            self.establish(now);
        }
        if !matches!(self.largest_pn_in, Some(largest) if largest >= header.pn) {
            self.largest_pn_in = Some(header.pn);
        }
        let echo = body.echo;
        for id in self
            .sender
            .on_ack(body.ack, body.sack, echo, now, &mut self.rtt)
        {
            self.events.push_back(Event::Delivered(id));
        }
        for chunk in &body.chunks {
            self.ack_due = true;
            if let Payload::Fragment { count, data, .. } = &chunk.payload {
                if data.len() > MAX_FRAGMENT || usize::from(*count) > MAX_FRAGMENTS {
                    self.stats.malformed += 1;
                    continue;
                }
            }
            match self.receiver.accept(chunk) {
                Accepted::New => {}
                Accepted::Duplicate => self.stats.duplicates += 1,
                Accepted::BeyondWindow => self.stats.stale += 1,
            }
        }
        if body.ping {
            self.ack_due = true;
        }
        let mut delivered = Vec::new();
        self.receiver.deliver(MAX_MESSAGE, &mut delivered);
        for delivery in delivered {
            match delivery {
                Delivery::Message(bytes) => self
                    .events
                    .push_back(Event::Message(String::from_utf8_lossy(&bytes).into_owned())),
                Delivery::Bye => self.events.push_back(Event::FriendLeft),
                Delivery::Violation => self.stats.malformed += 1,
            }
        }
        self.check_close(now);
    }

    fn on_plain(&mut self, text: &[u8]) {
        if !self.plain_allowed() {
            self.stats.ignored += 1;
            return;
        }
        let text = String::from_utf8_lossy(text).into_owned();
        self.events.push_back(if is_exit_word(&text) {
            Event::FriendLeft
        } else {
            Event::Message(text)
        });
        if !matches!(self.phase, Phase::Plain { .. }) {
            self.fall_back_to_plain(PlainReason::FriendSpokePlain);
        }
    }

    fn fall_back_to_plain(&mut self, reason: PlainReason) {
        self.phase = Phase::Plain { upgradable: true };
        self.friend = None;
        self.receiver = Receiver::default();
        // Plain text has no presence; the driver shows it as unknown.
        self.online = false;
        self.hello_due = false;
        self.ack_due = false;
        self.ping_due = false;
        self.events.push_back(Event::PlainMode(reason));
        let (messages, bye) = self.sender.drain();
        for (id, data) in messages {
            self.send_plain(id, &String::from_utf8_lossy(&data));
        }
        if bye {
            self.plain_out.push_back(GOODBYE.into());
            self.finish();
        }
    }

    fn check_close(&mut self, now: Instant) {
        let Some(deadline) = self.closing else {
            return;
        };
        if self.closed {
            return;
        }
        if now >= deadline {
            self.finish();
            return;
        }
        if let Some(until) = self.time_wait_until {
            if now >= until {
                self.finish();
            }
            return;
        }
        if self.sender.bye_acked() && self.bye_acked_at.is_none() {
            self.bye_acked_at = Some(now);
        }
        // The friend is done once its bye is in; we are, once it has everything of ours
        // that matters. Our own bye needs no acknowledgement: it only spares the friend
        // its grace period.
        if self.receiver.bye() && self.sender.undelivered() == 0 {
            let wait = (self.rtt.rto() * 3).clamp(TIME_WAIT_MIN, TIME_WAIT_MAX);
            self.time_wait_until = Some(now + wait);
        } else if matches!(self.bye_acked_at, Some(at) if now >= at + BYE_GRACE) {
            self.finish();
        }
    }

    /// Acts on every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed || self.failed {
            return;
        }
        self.check_close(now);
        if let Phase::Handshake {
            give_up: Some(give_up),
        } = self.phase
        {
            if now >= give_up {
                self.fall_back_to_plain(PlainReason::NoAnswer);
            }
        }
        if self.closed {
            return;
        }
        match self.phase {
            Phase::Handshake { .. } if now >= self.next_hello => {
                self.hello_due = true;
                self.next_hello = now + self.hello_gap;
                self.hello_gap = (self.hello_gap * 2).min(HELLO_GAP_MAX);
            }
            Phase::Established => {
                if self.sender.on_timeout(now, self.rtt.rto()) {
                    self.rtt.back_off();
                }
                if self.time_wait_until.is_none() && now >= self.last_sent + self.config.keepalive {
                    self.ping_due = true;
                }
            }
            _ => {}
        }
        if let (true, Some(heard)) = (self.online, self.last_heard) {
            if now >= heard + self.config.offline_after {
                self.online = false;
                self.events.push_back(Event::Offline);
            }
        }
    }

    /// When [`Session::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed || self.failed {
            return None;
        }
        let mut candidates: Vec<Instant> = Vec::with_capacity(6);
        candidates.extend(self.closing);
        candidates.extend(self.time_wait_until);
        if self.time_wait_until.is_none() {
            candidates.extend(self.bye_acked_at.map(|at| at + BYE_GRACE));
        }
        match self.phase {
            Phase::Handshake { give_up } => {
                candidates.extend(give_up);
                candidates.push(self.next_hello);
            }
            Phase::Established => {
                candidates.extend(self.sender.next_deadline(self.rtt.rto()));
                if self.time_wait_until.is_none() {
                    candidates.push(self.last_sent + self.config.keepalive);
                }
            }
            Phase::Plain { .. } => {}
        }
        if self.online {
            candidates.extend(self.last_heard.map(|t| t + self.config.offline_after));
        }
        candidates.into_iter().min()
    }

    /// The next datagram to send to the friend, if any. Call until it returns `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        let datagram = self.next_datagram(now)?;
        self.stats.datagrams_out += 1;
        Some(datagram)
    }

    fn next_datagram(&mut self, now: Instant) -> Option<Vec<u8>> {
        if let Some(datagram) = self.plain_out.pop_front() {
            return Some(datagram);
        }
        if self.hello_due {
            self.hello_due = false;
            self.last_hello_sent = Some(now);
            return Some(self.hello());
        }
        if self.failed || self.closed || self.phase != Phase::Established {
            return None;
        }
        let wanted =
            self.ack_due || self.ping_due || self.sender.has_lost() || self.sender.can_send_new();
        if !wanted {
            return None;
        }
        let friend = self.friend.as_ref()?;
        let tag_len = if friend.keys.is_some() { TAG_LEN } else { 0 };
        let pn = self.next_pn;
        let header = Header {
            session: friend.tag,
            pn,
        }
        .encode();
        let (ack, sack, sack_len) = self.receiver.ack();
        let echo = self.largest_pn_in.map_or(0, |pn| pn.saturating_add(1));
        let mut writer = BodyWriter::new(
            self.ping_due,
            ack,
            echo,
            &sack[..sack_len],
            frame::MAX_DATAGRAM - frame::HEADER_LEN - tag_len,
        );
        self.stats.retransmissions += self.sender.fill(&mut writer, now, pn);
        if self.ping_due || writer.chunks() > 0 {
            self.sender.on_packet_sent(pn, now);
        }
        self.next_pn += 1;
        self.ack_due = false;
        self.ping_due = false;
        self.last_sent = now;
        let mut body = writer.finish();
        if let Some(keys) = self.friend.as_ref().and_then(|f| f.keys.as_ref()) {
            keys.seal(pn, &header, &mut body);
        }
        let mut datagram = Vec::with_capacity(header.len() + body.len());
        datagram.extend_from_slice(&header);
        datagram.extend_from_slice(&body);
        Some(datagram)
    }

    fn hello(&self) -> Vec<u8> {
        let mut hello = Hello {
            nonce: self.nonce,
            secret: self.config.psk.is_some(),
            echo: self.friend.as_ref().map(|f| f.nonce),
            mac: [0; frame::MAC_LEN],
        };
        if let Some(psk) = &self.config.psk {
            hello.mac = crypto::hello_mac(psk, &hello.signed_part());
        }
        hello.encode()
    }

    /// The next thing to report, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Messages accepted by [`Session::send`] that the friend has not acknowledged.
    /// Messages sent as plain text are not counted: they have no receipts.
    pub fn undelivered(&self) -> usize {
        self.sender.undelivered()
    }

    pub fn status(&self) -> Status {
        match self.phase {
            Phase::Handshake { .. } => Status::Handshake,
            Phase::Plain { .. } => Status::Plain,
            Phase::Established => Status::Reliable {
                encrypted: self.config.psk.is_some(),
            },
        }
    }

    /// Whether the friend was heard from recently; always false in plain text.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// The smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }
}
