//! The bytes the generator sends and the little it needs to understand of what comes
//! back, for each protocol; the payload that carries sender, sequence and timestamp; and
//! a line splitter tuned for volume.
//!
//! Receivers recognise payloads by a marker unique to the run rather than by parsing
//! each protocol's message syntax, so one fast path serves every protocol and lines
//! from other runs or other people are ignored.

use memchr::memmem;

use crate::options::Protocol;

/// What a line the server sent means to a client that is setting up.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// Registration was accepted (IRC 001).
    Welcome,
    /// A room's member list ended: the line protocol's `* Members of ROOM (N): ...`, or
    /// IRC's end of NAMES (366). This is how a join, or the line protocol's whole
    /// registration (which joins the default room), is known to be complete.
    Members(&'a str),
    /// The server checks we are alive; the token goes back in a PONG.
    Ping(&'a [u8]),
    /// The answer to our own ping.
    Pong,
    /// The server refused something (`! ...`, an IRC error numeric, or IRC `ERROR`).
    Error(&'a str),
    Other,
}

impl Protocol {
    /// Reads one line (without its line ending).
    pub fn classify(self, line: &[u8]) -> Reply<'_> {
        match self {
            Protocol::Line => classify_line(line),
            Protocol::Irc => classify_irc(line),
            Protocol::Raw if line == RELAY_HELLO.trim_ascii_end() => Reply::Welcome,
            Protocol::Raw => Reply::Other,
        }
    }

    /// The end of every line we send.
    pub fn eol(self) -> &'static [u8] {
        match self {
            Protocol::Irc => b"\r\n",
            Protocol::Line | Protocol::Raw => b"\n",
        }
    }

    /// Appends the lines that register `nick`.
    pub fn register(self, nick: &str, out: &mut Vec<u8>) {
        match self {
            Protocol::Line => out.extend_from_slice(format!("#{nick}\n").as_bytes()),
            Protocol::Irc => out.extend_from_slice(
                format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").as_bytes(),
            ),
            Protocol::Raw => {}
        }
    }

    /// Whether `reply` completes registration. The line protocol registers and joins
    /// the default room in one step; waiting for that room's member list means the whole
    /// step is done. The relay's greeting says it has counted the connection in.
    pub fn registered(self, reply: &Reply) -> bool {
        match self {
            Protocol::Line => matches!(reply, Reply::Members(_)),
            Protocol::Irc | Protocol::Raw => matches!(reply, Reply::Welcome),
        }
    }

    /// Whether joining a room takes a request and a reply; the relay has no rooms.
    pub fn has_rooms(self) -> bool {
        self != Protocol::Raw
    }

    /// Appends the line that joins `room` (and makes it the line protocol's current
    /// room, where plain lines go).
    pub fn join(self, room: &str, out: &mut Vec<u8>) {
        match self {
            Protocol::Line => out.extend_from_slice(format!("/join {room}\n").as_bytes()),
            Protocol::Irc => out.extend_from_slice(format!("JOIN #{room}\r\n").as_bytes()),
            Protocol::Raw => {}
        }
    }

    /// Whether `reply` ends the join of `room`.
    pub fn joined(self, room: &str, reply: &Reply) -> bool {
        match (self, reply) {
            (Protocol::Line, Reply::Members(r)) => r.eq_ignore_ascii_case(room),
            (Protocol::Irc, Reply::Members(r)) => r
                .strip_prefix('#')
                .is_some_and(|r| r.eq_ignore_ascii_case(room)),
            _ => false,
        }
    }

    /// Appends a ping whose answer shows the server has caught up with this client.
    pub fn ping(self, out: &mut Vec<u8>) {
        match self {
            Protocol::Line => out.extend_from_slice(b"/ping\n"),
            Protocol::Irc => out.extend_from_slice(b"PING :confab-bench\r\n"),
            Protocol::Raw => {}
        }
    }

    /// Appends the answer to a server's ping.
    pub fn pong(self, token: &[u8], out: &mut Vec<u8>) {
        if self == Protocol::Irc {
            out.extend_from_slice(b"PONG :");
            out.extend_from_slice(token);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Appends the polite way to leave.
    pub fn quit(self, out: &mut Vec<u8>) {
        match self {
            Protocol::Line => out.extend_from_slice(b"/quit\n"),
            Protocol::Irc => out.extend_from_slice(b"QUIT :bench done\r\n"),
            Protocol::Raw => {}
        }
    }

    /// What goes before a message's text: nothing for a room in the line protocol (plain
    /// lines go to the current room), `@nick:` for a direct message, `PRIVMSG` in IRC.
    pub fn message_head(self, to: Destination) -> Vec<u8> {
        match (self, to) {
            (Protocol::Line, Destination::Room(_)) | (Protocol::Raw, _) => Vec::new(),
            (Protocol::Line, Destination::User(nick)) => format!("@{nick}:").into_bytes(),
            (Protocol::Irc, Destination::Room(room)) => format!("PRIVMSG #{room} :").into_bytes(),
            (Protocol::Irc, Destination::User(nick)) => format!("PRIVMSG {nick} :").into_bytes(),
        }
    }
}

/// The line `confab bench relay` greets each connection with, once every line relayed
/// from then on will reach it.
pub const RELAY_HELLO: &[u8] = b"* relay: connected\n";

/// Where a sender's messages go.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    Room(&'a str),
    User(&'a str),
}

fn utf8(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("(not UTF-8)")
}

fn classify_line(line: &[u8]) -> Reply<'_> {
    if line.starts_with(b"! ") {
        return Reply::Error(utf8(line));
    }
    if line == b"* pong" {
        return Reply::Pong;
    }
    if let Some(rest) = line.strip_prefix(b"* Members of ") {
        let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        return Reply::Members(utf8(&rest[..end]));
    }
    Reply::Other
}

fn classify_irc(line: &[u8]) -> Reply<'_> {
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let mut command = words.next().unwrap_or_default();
    if command.starts_with(b":") {
        command = words.next().unwrap_or_default();
    }
    match command {
        b"PING" => {
            let token = words.next().unwrap_or_default();
            Reply::Ping(token.strip_prefix(b":").unwrap_or(token))
        }
        b"PONG" => Reply::Pong,
        b"ERROR" => Reply::Error(utf8(line)),
        b"001" => Reply::Welcome,
        b"366" => {
            // `:server 366 nick #room :End of /NAMES list.`
            let _nick = words.next();
            Reply::Members(utf8(words.next().unwrap_or_default()))
        }
        // 422 only says there is no message of the day; it is part of a normal welcome.
        b"422" => Reply::Other,
        [b'4' | b'5', b'0'..=b'9', b'0'..=b'9'] => Reply::Error(utf8(line)),
        _ => Reply::Other,
    }
}

/// What a message carries so that its receiver can measure and check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// The sending client's number.
    pub sender: u64,
    /// The message's number among its sender's messages, from 0.
    pub seq: u64,
    /// Nanoseconds from the run's shared clock base at which it counts as sent.
    pub stamp: u64,
}

/// The run's payload marker: `cfb`, the run id and a colon. It starts every message
/// text of the run and appears nowhere else. Flooders mark theirs `cfx` instead, so
/// that receivers can count flood lines without mistaking them for measured messages.
#[derive(Clone)]
pub struct Marker {
    text: Vec<u8>,
    finder: memmem::Finder<'static>,
}

impl Marker {
    pub fn new(run_id: &str) -> Marker {
        Marker::tagged("cfb", run_id)
    }

    /// The marker of the flood lines of the run `run_id`.
    pub fn flood(run_id: &str) -> Marker {
        Marker::tagged("cfx", run_id)
    }

    fn tagged(tag: &str, run_id: &str) -> Marker {
        let text = format!("{tag}{run_id}:").into_bytes();
        let finder = memmem::Finder::new(&text).into_owned();
        Marker { text, finder }
    }

    /// Appends a message text of at least `size` bytes: marker, `sender:seq:stamp`, and
    /// padding if asked for.
    pub fn put(&self, out: &mut Vec<u8>, payload: Payload, size: usize) {
        let start = out.len();
        out.extend_from_slice(&self.text);
        put_u64(out, payload.sender);
        out.push(b':');
        put_u64(out, payload.seq);
        out.push(b':');
        put_u64(out, payload.stamp);
        let written = out.len() - start;
        if size > written {
            out.push(b' ');
            out.resize(start + size, b'x');
        }
    }

    /// Finds this run's payload in a received line.
    #[inline]
    pub fn find(&self, line: &[u8]) -> Option<Option<Payload>> {
        self.find_near(line, &mut 0)
    }

    /// Like [`Marker::find`], looking first at `*hint`, where the marker was in the
    /// last line, and remembering where it is in this one. A server puts the same
    /// prefix before every message of a run (senders' names have one length), so one
    /// comparison usually replaces a search of the line; the generator does this for
    /// every delivery and must stay faster than the servers it measures.
    #[inline]
    pub fn find_near(&self, line: &[u8], hint: &mut usize) -> Option<Option<Payload>> {
        let at = match line.get(*hint..*hint + self.text.len()) {
            Some(here) if same_short(here, &self.text) => *hint,
            _ => {
                *hint = self.finder.find(line)?;
                *hint
            }
        };
        Some(parse_payload(&line[at + self.text.len()..]))
    }
}

#[inline]
fn parse_payload(text: &[u8]) -> Option<Payload> {
    let (sender, rest) = parse_u64(text)?;
    let rest = rest.strip_prefix(b":")?;
    let (seq, rest) = parse_u64(rest)?;
    let rest = rest.strip_prefix(b":")?;
    let (stamp, _) = parse_u64(rest)?;
    Some(Payload { sender, seq, stamp })
}

/// Appends `v` in decimal, without going through `fmt`.
pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Whether two slices are equal, comparing 8 to 16 bytes as two machine words: a
/// run's marker is 10 bytes, and `==` on slices calls `memcmp`, which was 8% of the
/// generator's time when it ran for every delivery.
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if !(8..=16).contains(&n) {
        return a == b;
    }
    let word =
        |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("eight bytes"));
    // The two words overlap when n < 16; together they cover every byte.
    word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8)
}

/// Reads a decimal number of 1 to 19 digits (so it cannot overflow) at the start of
/// `s`, returning it and what follows. One pass: this runs three times per delivery.
#[inline]
fn parse_u64(s: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    let mut end = 0;
    while let Some(&b) = s.get(end) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        if end == 19 {
            return None;
        }
        v = v * 10 + u64::from(digit);
        end += 1;
    }
    (end > 0).then(|| (v, &s[end..]))
}

/// Longest partial line kept between reads. Nothing we wait for is anywhere near this
/// long; a longer line is cut, which at worst loses that one line.
const MAX_PARTIAL: usize = 64 * 1024;

/// Above this the partial-line buffer is released once empty, so that idle
/// connections hold no buffer.
const KEEP_CAPACITY: usize = 1024;

/// Splits a byte stream into lines. Complete lines inside a chunk are handed out in
/// place; only the unfinished tail is copied.
#[derive(Debug, Default)]
pub struct LineScanner {
    partial: Vec<u8>,
}

impl LineScanner {
    /// Feeds one chunk and calls `on_line` for every line it completes, without its
    /// `\n` or `\r\n`.
    #[inline]
    pub fn feed(&mut self, mut data: &[u8], mut on_line: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            let Some(end) = memchr::memchr(b'\n', data) else {
                self.keep(data);
                return;
            };
            self.keep(&data[..end]);
            on_line(trim_cr(&self.partial));
            self.partial.clear();
            if self.partial.capacity() > KEEP_CAPACITY {
                self.partial = Vec::new();
            }
            data = &data[end + 1..];
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', data) {
            on_line(trim_cr(&data[start..end]));
            start = end + 1;
        }
        self.keep(&data[start..]);
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_PARTIAL.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

#[inline]
fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_through_every_protocol_framing() {
        let marker = Marker::new("k3x");
        let payload = Payload {
            sender: 7,
            seq: 12_345,
            stamp: 987_654_321_000,
        };
        let mut text = Vec::new();
        marker.put(&mut text, payload, 0);
        assert_eq!(text, b"cfbk3x:7:12345:987654321000");
        let mut padded = Vec::new();
        marker.put(&mut padded, payload, 64);
        assert_eq!(padded.len(), 64);
        for line in [
            [b"[bench] b007: ".as_slice(), &text].concat(),
            [b"[dm] b007: ".as_slice(), &padded].concat(),
            [b":b007!b007@127.0.0.1 PRIVMSG #bench :".as_slice(), &text].concat(),
        ] {
            assert_eq!(marker.find(&line), Some(Some(payload)));
        }
        assert_eq!(
            marker.find(b"[bench] b007: cfbzzz:7:1:2"),
            None,
            "another run"
        );
        assert_eq!(
            marker.find(b"[bench] b007: cfbk3x:7:"),
            Some(None),
            "damaged"
        );
        let mut flood = Vec::new();
        Marker::flood("k3x").put(&mut flood, payload, 0);
        assert_eq!(
            marker.find(&flood),
            None,
            "a flood line is not a measured one"
        );
        assert_eq!(Marker::flood("k3x").find(&flood), Some(Some(payload)));
    }

    #[test]
    fn the_marker_is_looked_for_where_it_was_last_and_found_anywhere() {
        let marker = Marker::new("k3x");
        let payload = |seq| Payload {
            sender: 3,
            seq,
            stamp: 42,
        };
        let line = |prefix: &str, seq| {
            let mut text = prefix.as_bytes().to_vec();
            marker.put(&mut text, payload(seq), 0);
            text
        };
        let mut hint = 0;
        let irc = ":b003!b003@127.0.0.1 PRIVMSG #bench :";
        assert_eq!(
            marker.find_near(&line(irc, 1), &mut hint),
            Some(Some(payload(1)))
        );
        assert_eq!(hint, irc.len());
        assert_eq!(
            marker.find_near(&line(irc, 2), &mut hint),
            Some(Some(payload(2)))
        );
        // A line with another prefix (a longer name, a direct message) moves the hint.
        let other = "[dm] b0003: ";
        assert_eq!(
            marker.find_near(&line(other, 3), &mut hint),
            Some(Some(payload(3)))
        );
        assert_eq!(hint, other.len());
        // Lines without the marker, even shorter than the hint, are not payloads.
        assert_eq!(marker.find_near(b"PING :x", &mut hint), None);
        assert_eq!(marker.find_near(b"", &mut hint), None);
        assert_eq!(
            marker.find_near(&line(other, 4), &mut hint),
            Some(Some(payload(4)))
        );
    }

    #[test]
    fn replies_are_recognised() {
        use Protocol::{Irc, Line};
        let cases: &[(Protocol, &str, Reply)] = &[
            (
                Line,
                "* Members of lobby (2): a, b",
                Reply::Members("lobby"),
            ),
            (
                Line,
                "! The name b1 is taken; try another",
                Reply::Error("! The name b1 is taken; try another"),
            ),
            (Line, "* pong", Reply::Pong),
            (Line, "[lobby] a: * Members of x", Reply::Other),
            (Irc, ":irc.local 001 b1 :Welcome", Reply::Welcome),
            (
                Irc,
                ":irc.local 366 b1 #bench :End of /NAMES list.",
                Reply::Members("#bench"),
            ),
            (Irc, "PING :irc.local", Reply::Ping(b"irc.local")),
            (Irc, ":irc.local PONG irc.local :confab-bench", Reply::Pong),
            (
                Irc,
                ":irc.local 433 * b1 :Nickname is already in use",
                Reply::Error(":irc.local 433 * b1 :Nickname is already in use"),
            ),
            (
                Irc,
                "ERROR :Closing link",
                Reply::Error("ERROR :Closing link"),
            ),
            (Irc, ":irc.local 372 b1 :- 600 messages", Reply::Other),
            (Irc, ":irc.local 422 b1 :MOTD File is missing", Reply::Other),
        ];
        for (protocol, line, reply) in cases {
            assert_eq!(&protocol.classify(line.as_bytes()), reply, "{line}");
        }
        assert_eq!(
            Protocol::Raw.classify(b"* relay: connected"),
            Reply::Welcome
        );
        assert_eq!(
            Protocol::Raw.classify(b"* Members of x (1): y"),
            Reply::Other
        );
        assert!(Irc.joined("Bench", &Reply::Members("#bench")));
        assert!(!Line.joined("bench", &Reply::Members("lobby")));
    }

    #[test]
    fn lines_split_across_chunks_are_reassembled() {
        let mut scanner = LineScanner::default();
        let mut lines = Vec::new();
        for chunk in [&b"one\r\ntw"[..], b"o", b"\nthree\nfo", b"ur\n"] {
            scanner.feed(chunk, |line| {
                lines.push(String::from_utf8_lossy(line).into_owned())
            });
        }
        assert_eq!(lines, ["one", "two", "three", "four"]);
    }

    #[test]
    fn numbers_are_written_and_read_back() {
        for v in [0, 9, 10, 1_000_000_007, u64::MAX / 10] {
            let mut out = Vec::new();
            put_u64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
            assert_eq!(parse_u64(&out), Some((v, &b""[..])));
        }
        assert_eq!(parse_u64(b"12:x"), Some((12, &b":x"[..])));
        assert_eq!(
            parse_u64(b"9999999999999999999"),
            Some((9_999_999_999_999_999_999, &b""[..]))
        );
        assert_eq!(
            parse_u64(b"18446744073709551616"),
            None,
            "20 digits could overflow"
        );
        assert_eq!(parse_u64(b":1"), None);
        assert_eq!(parse_u64(b""), None);
    }

    #[test]
    fn short_slices_compare_equal_only_when_every_byte_is() {
        let marker = b"cfbk3x9a:";
        for n in 0..=marker.len() {
            assert!(same_short(&marker[..n], &marker[..n]));
        }
        let long = b"0123456789abcdefXYZ";
        for n in 1..=long.len() {
            for at in 0..n {
                let mut other = long[..n].to_vec();
                other[at] ^= 1;
                assert!(
                    !same_short(&long[..n], &other),
                    "{n} bytes, differing at {at}"
                );
            }
        }
        assert!(!same_short(b"cfbk3x9a:", b"cfbk3x9a"), "lengths differ");
    }
}
