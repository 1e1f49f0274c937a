//! Tests of the peer protocol: the codec, a table of hostile datagrams, property tests
//! that no input panics, and pairs of sessions talking through a simulated lossy network
//! in virtual time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::frame::{self, Body, BodyWriter, Chunk, Datagram, Header, Hello, Malformed, Payload};
use super::rtt::Rtt;
use super::*;

// ---- codec ----------------------------------------------------------------------------

#[test]
fn hello_round_trips_and_is_text() {
    let hello = Hello {
        nonce: [7; 16],
        secret: true,
        echo: Some([9; 16]),
        mac: [3; 16],
    };
    let bytes = hello.encode();
    assert!(
        std::str::from_utf8(&bytes).is_ok(),
        "a tutorial script must be able to decode it"
    );
    assert_eq!(frame::classify(&bytes), Datagram::Hello(hello.clone()));
    let no_echo = Hello {
        echo: None,
        secret: false,
        ..hello
    };
    assert_eq!(frame::classify(&no_echo.encode()), Datagram::Hello(no_echo));
}

#[test]
fn packet_round_trips() {
    let header = Header {
        session: 0xDEAD_BEEF,
        pn: 42,
    };
    let mut w = BodyWriter::new(true, 5, 9, &[0b101], 1000);
    assert!(w.push_fragment(5, 0, 2, b"hello"));
    assert!(w.push_bye(6));
    let mut datagram = header.encode().to_vec();
    datagram.extend(w.finish());
    assert!(
        std::str::from_utf8(&datagram).is_err(),
        "a packet must never pass for text"
    );
    let Datagram::Packet {
        header: h, body, ..
    } = frame::classify(&datagram)
    else {
        panic!("not a packet");
    };
    assert_eq!(h, header);
    let body = Body::decode(body).unwrap();
    assert_eq!(
        body,
        Body {
            ping: true,
            ack: 5,
            echo: 9,
            sack: &[0b101],
            chunks: vec![
                Chunk {
                    seq: 5,
                    payload: Payload::Fragment {
                        index: 0,
                        count: 2,
                        data: b"hello"
                    }
                },
                Chunk {
                    seq: 6,
                    payload: Payload::Bye
                },
            ],
        }
    );
}

#[test]
fn body_writer_respects_its_limit() {
    let mut w = BodyWriter::new(false, 0, 0, &[], 48);
    assert_eq!(
        w.fragment_room(),
        48 - frame::BODY_FIXED_LEN - frame::FRAGMENT_HEADER_LEN
    );
    assert!(!w.push_fragment(0, 0, 1, &[0; 100]));
    assert!(w.push_fragment(0, 0, 1, &[0; 10]));
    assert!(!w.push_bye(1) || w.finish().len() <= 48);
}

/// Each hostile datagram and how `classify` sorts it.
#[test]
fn hostile_datagrams_are_classified_not_trusted() {
    let mut magic_only = frame::MAGIC.to_vec();
    let mut wrong_version = Header { session: 1, pn: 1 }.encode().to_vec();
    wrong_version[4] = 99;
    let mut wrong_kind = Header { session: 1, pn: 1 }.encode().to_vec();
    wrong_kind[5] = 0;
    let mut bad_hex = frame::HELLO_PREFIX.to_vec();
    bad_hex.extend([b'z'; 98]);
    let mut short_hello = frame::HELLO_PREFIX.to_vec();
    short_hello.extend(b"00ff");
    let mut upper_hex = frame::HELLO_PREFIX.to_vec();
    upper_hex.extend([b'A'; 98]);
    let mut bad_flags = frame::HELLO_PREFIX.to_vec();
    bad_flags.extend([b'f'; 98]);
    let cases: Vec<(&str, Vec<u8>, Option<Malformed>)> = vec![
        ("empty datagram is an empty line", vec![], None),
        ("text", b"hello".to_vec(), None),
        ("invalid utf-8 text", vec![0xFF, 0xFE], None),
        (
            "magic alone",
            std::mem::take(&mut magic_only),
            Some(Malformed::Short),
        ),
        ("other version", wrong_version, Some(Malformed::Version(99))),
        ("other kind", wrong_kind, Some(Malformed::Kind(0))),
        ("hello prefix with bad hex", bad_hex, Some(Malformed::Hello)),
        ("hello too short", short_hello, Some(Malformed::Hello)),
        ("uppercase hex", upper_hex, Some(Malformed::Hello)),
        ("unknown hello flags", bad_flags, Some(Malformed::Hello)),
    ];
    for (name, bytes, expected) in cases {
        match (frame::classify(&bytes), expected) {
            (Datagram::Plain(_), None) => {}
            (Datagram::Malformed(m), Some(e)) => assert_eq!(m, e, "{name}"),
            (other, _) => panic!("{name}: {other:?}"),
        }
    }
}

/// A body's fixed part (no flags, zero ack and echo) followed by `sack_len` and `rest`.
fn body_bytes(sack_len: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = vec![0; frame::BODY_FIXED_LEN - 1];
    out.push(sack_len);
    out.extend_from_slice(rest);
    out
}

#[test]
fn hostile_bodies_are_rejected() {
    let seq = [0u8; 8];
    let chunk = |kind: u8, tail: &[u8]| [&seq[..], &[kind], tail].concat();
    assert!(
        Body::decode(&body_bytes(0, &[])).is_ok(),
        "the helper builds a valid body"
    );
    let mut unknown_flag = body_bytes(0, &[]);
    unknown_flag[0] = 0x80;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        (
            "cut inside the fixed part",
            body_bytes(0, &[])[..5].to_vec(),
        ),
        ("unknown flag", unknown_flag),
        ("sack longer than the window", body_bytes(33, &[0; 33])),
        ("sack cut short", body_bytes(4, &[1])),
        ("chunk cut short", body_bytes(0, &[1, 2])),
        ("unknown chunk kind", body_bytes(0, &chunk(7, &[]))),
        (
            "index not below count",
            body_bytes(0, &chunk(0, &[0, 2, 0, 2, 0, 0])),
        ),
        (
            "length past the end",
            body_bytes(0, &chunk(0, &[0, 0, 0, 1, 0xFF, 0xFF])),
        ),
    ];
    for (name, bytes) in cases {
        assert!(Body::decode(&bytes).is_err(), "{name}");
    }
}

#[test]
fn plain_pieces_fit_the_tutorial_buffer() {
    assert_eq!(plain_pieces(""), vec![String::new()]);
    assert_eq!(plain_pieces("hi"), vec!["hi".to_owned()]);
    let long = "é".repeat(1000); // 2000 bytes, two-byte characters
    let pieces = plain_pieces(&long);
    assert!(pieces.iter().all(|p| p.len() <= PLAIN_DATAGRAM_MAX));
    assert_eq!(pieces.concat(), long);
    assert_eq!(plain_pieces("\u{1}x"), vec!["\u{FFFD}x".to_owned()]);
}

#[test]
fn exit_words_match_the_tutorial() {
    for word in ["quit", "exit", "bye bye", "quit\n", " exit\r\n"] {
        assert!(is_exit_word(word), "{word:?}");
    }
    for word in ["Quit", "bye", "quitting", ""] {
        assert!(!is_exit_word(word), "{word:?}");
    }
}

#[test]
fn rto_follows_rfc_6298_within_bounds() {
    let mut rtt = Rtt::default();
    assert_eq!(rtt.rto(), Duration::from_secs(1));
    rtt.sample(Duration::from_millis(100));
    // srtt 100, rttvar 50: 100 + 4 * 50.
    assert_eq!(rtt.rto(), Duration::from_millis(300));
    rtt.back_off();
    assert_eq!(rtt.rto(), Duration::from_millis(600));
    for _ in 0..20 {
        rtt.back_off();
    }
    assert_eq!(rtt.rto(), Duration::from_secs(4));
    rtt.sample(Duration::from_micros(10));
    assert!(rtt.rto() >= Duration::from_millis(50));
}

// ---- simulated network ----------------------------------------------------------------

/// A seeded SplitMix64, so every run of a test sees the same losses.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[derive(Clone, Copy)]
struct Lossy {
    drop: f64,
    duplicate: f64,
    /// Chance that a datagram is held back behind later ones.
    reorder: f64,
}

const CLEAN: Lossy = Lossy {
    drop: 0.0,
    duplicate: 0.0,
    reorder: 0.0,
};
const AWFUL: Lossy = Lossy {
    drop: 0.3,
    duplicate: 0.1,
    reorder: 0.1,
};

/// Rewrites a datagram in flight.
type Tamper = Box<dyn FnMut(&mut Vec<u8>)>;

/// Two sessions joined by a simulated link, in virtual time.
struct Pair {
    sides: [Option<Session>; 2],
    events: [Vec<Event>; 2],
    now: Instant,
    link: Lossy,
    rng: Rng,
    /// (arrival time, receiving side, bytes)
    in_flight: Vec<(Instant, usize, Vec<u8>)>,
    /// Rewrites datagrams in flight (for tampering tests).
    tamper: Option<Tamper>,
}

fn config(mode: Mode, psk: Option<[u8; 32]>) -> Config {
    Config {
        mode,
        psk: psk.map(Psk::from_bytes),
        ..Config::default()
    }
}

impl Pair {
    fn new(a: Config, b: Config, link: Lossy, seed: u64) -> Pair {
        let now = Instant::now();
        Pair {
            sides: [
                Some(Session::new(a, [1; 16], now)),
                Some(Session::new(b, [2; 16], now)),
            ],
            events: [Vec::new(), Vec::new()],
            now,
            link,
            rng: Rng(seed),
            in_flight: Vec::new(),
            tamper: None,
        }
    }

    fn side(&mut self, i: usize) -> &mut Session {
        self.sides[i].as_mut().expect("side is running")
    }

    fn stats(&self, i: usize) -> Stats {
        self.sides[i].as_ref().expect("side is running").stats()
    }

    /// Sends what both sides have to send, into the link.
    fn pump(&mut self) {
        for from in 0..2 {
            let Some(session) = self.sides[from].as_mut() else {
                continue;
            };
            while let Some(mut datagram) = session.poll_transmit(self.now) {
                if self.rng.chance(self.link.drop) {
                    continue;
                }
                if let Some(tamper) = self.tamper.as_mut() {
                    tamper(&mut datagram);
                }
                let mut delay = Duration::from_millis(1 + self.rng.next() % 4);
                if self.rng.chance(self.link.reorder) {
                    delay += Duration::from_millis(5 + self.rng.next() % 20);
                }
                if self.rng.chance(self.link.duplicate) {
                    self.in_flight
                        .push((self.now + delay * 2, 1 - from, datagram.clone()));
                }
                self.in_flight.push((self.now + delay, 1 - from, datagram));
            }
            while let Some(event) = session.poll_event() {
                self.events[from].push(event);
            }
        }
    }

    /// Advances to the next arrival or timer and handles it.
    fn step(&mut self) {
        self.pump();
        let next_arrival = self.in_flight.iter().map(|(t, ..)| *t).min();
        let next_timer = self
            .sides
            .iter()
            .flatten()
            .filter_map(Session::poll_timeout)
            .min();
        let Some(next) = next_arrival.into_iter().chain(next_timer).min() else {
            self.now += Duration::from_millis(100);
            return;
        };
        self.now = self.now.max(next);
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|(t, ..)| *t <= now);
        self.in_flight = later;
        for (_, to, datagram) in due {
            if let Some(session) = self.sides[to].as_mut() {
                session.handle_datagram(&datagram, now);
            }
        }
        for session in self.sides.iter_mut().flatten() {
            session.handle_timeout(now);
        }
        self.pump();
    }

    /// Steps until `done` holds, failing after `limit` of virtual time.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Pair) -> bool) {
        let start = self.now;
        while !done(self) {
            assert!(
                self.now - start < limit,
                "not done after {limit:?} of virtual time"
            );
            self.step();
        }
    }

    fn messages(&self, side: usize) -> Vec<&str> {
        self.events[side]
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.as_str()),
                _ => None,
            })
            .collect()
    }

    fn has(&self, side: usize, event: &Event) -> bool {
        self.events[side].contains(event)
    }

    fn connected(&self) -> bool {
        (0..2).all(|i| {
            self.events[i]
                .iter()
                .any(|e| matches!(e, Event::Connected { .. }))
        })
    }
}

/// Feeds `lines` to a session as fast as its queue takes them.
struct Feeder {
    lines: VecDeque<String>,
}

impl Feeder {
    fn feed(&mut self, session: &mut Session) {
        while session.can_send() {
            let Some(line) = self.lines.pop_front() else {
                return;
            };
            session.send(&line).unwrap();
        }
    }
}

#[test]
fn a_thousand_messages_each_way_survive_an_awful_link() {
    for (seed, psk) in [(1, None), (2, Some([5; 32]))] {
        let mode = Mode::Reliable;
        let mut pair = Pair::new(config(mode, psk), config(mode, psk), AWFUL, seed);
        let lines = |who: &str| {
            (0..1000)
                .map(|i| format!("{who} {i}"))
                .collect::<VecDeque<_>>()
        };
        let mut feeders = [Feeder { lines: lines("a") }, Feeder { lines: lines("b") }];
        let limit = Duration::from_secs(120);
        let start = pair.now;
        while pair.messages(0).len() < 1000 || pair.messages(1).len() < 1000 {
            assert!(
                pair.now - start < limit,
                "stuck: {:?}",
                pair.side(0).stats()
            );
            for (i, feeder) in feeders.iter_mut().enumerate() {
                feeder.feed(pair.sides[i].as_mut().unwrap());
            }
            pair.step();
        }
        for (side, who) in [(0, "b"), (1, "a")] {
            let want: Vec<String> = (0..1000).map(|i| format!("{who} {i}")).collect();
            assert_eq!(pair.messages(side), want, "seed {seed}");
        }
        assert!(
            pair.side(0).stats().duplicates > 0,
            "the link should have duplicated some"
        );
        // Everything is delivered once both sides have seen every acknowledgement.
        pair.run_until(Duration::from_secs(30), |p| {
            p.sides.iter().flatten().all(|s| s.undelivered() == 0)
        });
        for side in 0..2 {
            let delivered = pair.events[side]
                .iter()
                .filter(|e| matches!(e, Event::Delivered(_)))
                .count();
            assert_eq!(delivered, 1000);
        }
    }
}

#[test]
fn a_64_kib_message_arrives_whole_over_an_awful_link() {
    let mut pair = Pair::new(
        config(Mode::Reliable, None),
        config(Mode::Reliable, None),
        AWFUL,
        7,
    );
    let big: String = (0..64 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let id = pair.side(0).send(&big).unwrap();
    pair.side(0).send("after").unwrap();
    pair.run_until(Duration::from_secs(60), |p| p.messages(1).len() == 2);
    assert_eq!(pair.messages(1), [big.as_str(), "after"]);
    pair.run_until(Duration::from_secs(30), |p| p.has(0, &Event::Delivered(id)));
}

#[test]
fn the_longest_message_fits_and_a_longer_one_is_refused() {
    let mut pair = Pair::new(config(Mode::Auto, None), config(Mode::Auto, None), CLEAN, 1);
    assert_eq!(
        pair.side(0).send(&"x".repeat(MAX_MESSAGE + 1)),
        Err(SendError::TooLong)
    );
    pair.side(0).send(&"x".repeat(MAX_MESSAGE)).unwrap();
    pair.run_until(Duration::from_secs(10), |p| p.messages(1).len() == 1);
}

#[test]
fn both_sides_close_and_everything_is_delivered() {
    let mut pair = Pair::new(config(Mode::Auto, None), config(Mode::Auto, None), AWFUL, 3);
    pair.run_until(Duration::from_secs(10), Pair::connected);
    pair.side(0).send("last words").unwrap();
    let now = pair.now;
    pair.side(0).close(now);
    pair.run_until(Duration::from_secs(20), |p| p.has(1, &Event::FriendLeft));
    let now = pair.now;
    pair.side(1).close(now);
    pair.run_until(Duration::from_secs(20), |p| {
        p.has(0, &Event::Closed) && p.has(1, &Event::Closed)
    });
    assert_eq!(pair.messages(1), ["last words"]);
    assert_eq!(pair.side(0).undelivered(), 0);
}

#[test]
fn closing_with_nobody_there_reports_what_was_not_delivered() {
    let mut pair = Pair::new(
        config(Mode::Reliable, None),
        config(Mode::Reliable, None),
        CLEAN,
        1,
    );
    pair.sides[1] = None;
    pair.side(0).send("anyone?").unwrap();
    let now = pair.now;
    pair.side(0).close(now);
    pair.run_until(Duration::from_secs(11), |p| p.has(0, &Event::Closed));
    assert_eq!(pair.side(0).undelivered(), 1);
}

#[test]
fn auto_mode_falls_back_to_plain_text_when_nobody_answers() {
    let mut pair = Pair::new(
        config(Mode::Auto, None),
        config(Mode::Plain, None),
        CLEAN,
        1,
    );
    pair.side(0).send("hi there").unwrap();
    pair.run_until(Duration::from_secs(5), |p| p.messages(1) == ["hi there"]);
    assert!(pair.has(0, &Event::PlainMode(PlainReason::NoAnswer)));
    assert!(pair.has(0, &Event::SentPlain(MessageId(0))));
    // The plain side saw the hellos and ignored them.
    assert!(pair.side(1).stats().ignored >= 1);
    // Exit words work both ways.
    pair.side(1).send("quit").unwrap();
    pair.run_until(Duration::from_secs(1), |p| p.has(0, &Event::FriendLeft));
    let now = pair.now;
    pair.side(0).close(now);
    pair.run_until(Duration::from_secs(1), |p| p.has(1, &Event::FriendLeft));
}

#[test]
fn plain_text_from_the_friend_switches_to_plain_at_once() {
    let mut pair = Pair::new(
        config(Mode::Auto, None),
        config(Mode::Plain, None),
        CLEAN,
        1,
    );
    pair.side(1).send("hello from a script").unwrap();
    pair.run_until(Duration::from_millis(100), |p| p.messages(0).len() == 1);
    assert!(pair.has(0, &Event::PlainMode(PlainReason::FriendSpokePlain)));
}

#[test]
fn a_late_confab_friend_upgrades_a_plain_session() {
    let mut pair = Pair::new(config(Mode::Auto, None), config(Mode::Auto, None), CLEAN, 1);
    let b = pair.sides[1].take();
    pair.run_until(Duration::from_secs(5), |p| {
        p.has(0, &Event::PlainMode(PlainReason::NoAnswer))
    });
    let now = pair.now;
    pair.sides[1] = b.map(|_| Session::new(config(Mode::Auto, None), [3; 16], now));
    pair.run_until(Duration::from_secs(5), Pair::connected);
    let id = pair.side(0).send("now reliable").unwrap();
    pair.run_until(Duration::from_secs(5), |p| p.has(0, &Event::Delivered(id)));
}

#[test]
fn secrets_must_match_and_no_text_is_shown() {
    let mut pair = Pair::new(
        config(Mode::Auto, Some([1; 32])),
        config(Mode::Auto, Some([2; 32])),
        CLEAN,
        1,
    );
    pair.side(0).send("secret text").unwrap();
    pair.run_until(Duration::from_secs(5), |p| {
        (0..2).all(|i| p.has(i, &Event::Mismatch(Mismatch::WrongSecret)))
    });
    assert!(pair.messages(0).is_empty() && pair.messages(1).is_empty());

    let mut pair = Pair::new(
        config(Mode::Auto, Some([1; 32])),
        config(Mode::Auto, None),
        CLEAN,
        1,
    );
    pair.run_until(Duration::from_secs(5), |p| {
        p.has(0, &Event::Mismatch(Mismatch::FriendHasNoSecret))
            && p.has(1, &Event::Mismatch(Mismatch::FriendHasSecret))
    });
}

#[test]
fn tampered_packets_are_counted_and_repaired() {
    let key = Some([9; 32]);
    let mut pair = Pair::new(config(Mode::Auto, key), config(Mode::Auto, key), CLEAN, 1);
    let mut n = 0;
    pair.tamper = Some(Box::new(move |d: &mut Vec<u8>| {
        n += 1;
        // Flip a bit in every third packet, past the header.
        if n >= 3 && d.starts_with(&frame::MAGIC) {
            n = 0;
            let last = d.len() - 1;
            d[last] ^= 1;
        }
    }));
    for i in 0..50 {
        pair.side(0).send(&format!("m{i}")).unwrap();
    }
    pair.run_until(Duration::from_secs(30), |p| p.messages(1).len() == 50);
    let expected: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(pair.messages(1), expected);
    assert!(pair.side(1).stats().forged > 0 || pair.side(0).stats().forged > 0);
}

#[test]
fn replayed_packets_are_dropped() {
    let key = Some([9; 32]);
    let mut pair = Pair::new(config(Mode::Auto, key), config(Mode::Auto, key), CLEAN, 1);
    pair.run_until(Duration::from_secs(5), Pair::connected);
    pair.side(0).send("once").unwrap();
    let now = pair.now;
    let packet = pair.side(0).poll_transmit(now).unwrap();
    pair.side(1).handle_datagram(&packet, now);
    pair.side(1).handle_datagram(&packet, now);
    pair.pump();
    assert_eq!(pair.messages(1), ["once"]);
    assert_eq!(pair.side(1).stats().stale, 1);
}

#[test]
fn the_friend_goes_offline_and_comes_back_with_undelivered_messages() {
    let mut pair = Pair::new(config(Mode::Auto, None), config(Mode::Auto, None), CLEAN, 1);
    pair.run_until(Duration::from_secs(5), Pair::connected);
    pair.sides[1] = None;
    let killed = pair.now;
    pair.side(0).send("while you were out").unwrap();
    pair.run_until(Duration::from_secs(10), |p| p.has(0, &Event::Offline));
    assert!(pair.now - killed <= Duration::from_secs(4));
    let now = pair.now;
    pair.sides[1] = Some(Session::new(config(Mode::Auto, None), [4; 16], now));
    pair.events[0].clear();
    pair.run_until(Duration::from_secs(5), |p| {
        p.messages(1) == ["while you were out"]
    });
    assert!(pair.has(0, &Event::Online));
    assert!(pair.has(0, &Event::FriendRestarted));
}

#[test]
fn reliable_mode_ignores_plain_text() {
    let mut pair = Pair::new(
        config(Mode::Reliable, None),
        config(Mode::Plain, None),
        CLEAN,
        1,
    );
    pair.side(1).send("let me in").unwrap();
    pair.run_until(Duration::from_secs(2), |p| p.stats(0).ignored >= 1);
    assert!(pair.messages(0).is_empty());
    assert_eq!(pair.side(0).status(), Status::Handshake);
}

#[test]
fn replay_window_accepts_each_number_once() {
    let mut w = super::session::ReplayWindow::default();
    for pn in [5, 3, 4, 200, 199, 73] {
        assert!(w.accept(pn), "{pn}");
    }
    for pn in [5, 200, 199, 72, 0] {
        assert!(!w.accept(pn), "{pn}");
    }
}

// ---- nothing panics ---------------------------------------------------------------------

/// Sessions in every phase, to throw datagrams at.
fn sessions_in_every_phase() -> Vec<Session> {
    let mut out = Vec::new();
    for (mode, psk) in [
        (Mode::Auto, None),
        (Mode::Plain, None),
        (Mode::Reliable, None),
        (Mode::Auto, Some([4; 32])),
    ] {
        let mut pair = Pair::new(config(mode, psk), config(mode, psk), CLEAN, 1);
        out.push(Session::new(config(mode, psk), [8; 16], pair.now));
        pair.run_until(Duration::from_secs(5), |p| {
            p.connected() || mode == Mode::Plain
        });
        out.extend(pair.sides.into_iter().flatten());
    }
    out
}

proptest! {
    #[test]
    fn no_datagram_panics_any_session(datagrams in prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2000),
            // Mostly well-formed headers, so the body parser and the session see them.
            (any::<u64>(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..1500)).prop_map(|(s, pn, body)| {
                let mut d = Header { session: s, pn }.encode().to_vec();
                d.extend(body);
                d
            }),
            // Packets of the unencrypted sessions' own session, with hostile bodies.
            (any::<u64>(), prop::collection::vec(any::<u8>(), 0..1500)).prop_map(|(pn, body)| {
                let mut d = Header { session: super::crypto::session_tag(&[1; 16], &[2; 16]), pn }.encode().to_vec();
                d.extend(body);
                d
            }),
            prop::collection::vec(any::<u8>(), 98).prop_map(|raw| {
                let mut d = frame::HELLO_PREFIX.to_vec();
                d.extend(raw.iter().map(|b| b"0123456789abcdef"[usize::from(b % 16)]));
                d
            }),
        ],
        1..20,
    )) {
        let now = Instant::now();
        for mut session in sessions_in_every_phase() {
            for datagram in &datagrams {
                session.handle_datagram(datagram, now);
                session.handle_timeout(now);
                while session.poll_transmit(now).is_some() {}
                while session.poll_event().is_some() {}
            }
        }
    }

    #[test]
    fn body_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let _ = Body::decode(&bytes);
        let _ = frame::classify(&bytes);
    }

    #[test]
    fn a_65535_byte_datagram_is_harmless(fill in any::<u8>()) {
        let mut session = sessions_in_every_phase().pop().unwrap();
        let mut d = vec![fill; 65535];
        d[..4].copy_from_slice(&frame::MAGIC);
        d[4] = frame::VERSION;
        d[5] = 1;
        session.handle_datagram(&d, Instant::now());
    }
}
