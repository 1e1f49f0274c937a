//! The UDP protocol of `confab peer`: a pure, sans-I/O session that speaks either the
//! tutorial's plain text (one line per datagram) or confab's reliable, ordered and
//! optionally encrypted protocol, and tells them apart by their first bytes.
//!
//! # Layout
//! - [`frame`]: the bytes of a datagram: the text hello, the binary packet header and
//!   body, and [`frame::classify`], which sorts any datagram into hello, packet or text.
//! - `crypto`: the key schedule (HKDF-SHA256 over a pre-shared key and both nonces), the
//!   hello MAC and the ChaCha20-Poly1305 seal.
//! - `rtt`: round-trip estimation and the retransmission timeout (RFC 6298).
//! - `send`, `recv`: the two halves of the reliable stream: window, loss detection and
//!   retransmission; duplicate suppression, reordering and reassembly.
//! - [`Session`]: ties them together. The driver hands it datagrams, lines and `now`; it
//!   hands back datagrams, events and its next deadline.
//!
//! # Invariants
//! - No I/O and no clock: every method that needs the time takes `now`.
//! - No datagram, of any length or content, can make it panic, and every buffer it keeps
//!   is bounded by the constants below.
//! - A datagram is plain text unless it starts with [`frame::MAGIC`] (whose first byte
//!   never occurs in UTF-8) or [`frame::HELLO_PREFIX`] (which starts with U+0001).
//! - With a secret, nothing unauthenticated is ever reported as the friend's.

pub mod frame;

mod crypto;
mod recv;
mod rtt;
mod send;
mod session;

#[cfg(test)]
mod tests;

pub use crypto::Psk;
pub use session::{
    Config, Event, MessageId, Mismatch, Mode, PlainReason, SendError, Session, Stats, Status,
};

/// What the tutorial's script treats as "my friend left", in either direction.
pub const EXIT_WORDS: [&str; 3] = ["quit", "exit", "bye bye"];
/// The exit word confab sends in plain text when the user leaves some other way.
pub const GOODBYE: &str = "bye bye";
/// The tutorial's `recvfrom(1024)` cuts longer datagrams, so plain text goes out in
/// pieces of at most this many bytes, cut between characters.
pub const PLAIN_DATAGRAM_MAX: usize = 1024;
/// The longest message, in bytes.
pub const MAX_MESSAGE: usize = 256 * 1024;
/// Bytes of message data in one fragment, so that a full packet stays within
/// [`frame::MAX_DATAGRAM`].
pub const MAX_FRAGMENT: usize = 1090;
/// Fragments of the longest message.
pub const MAX_FRAGMENTS: usize = MAX_MESSAGE.div_ceil(MAX_FRAGMENT);
/// Chunks in flight at most; also the receiver's reordering buffer.
pub const WINDOW: u64 = 256;
/// Messages waiting to be sent at most; beyond it, [`Session::send`] refuses.
pub const MAX_QUEUED: usize = 256;

/// Whether a line is one of the [`EXIT_WORDS`] (surrounding whitespace ignored, so that
/// `quit\n` from `nc` counts too).
pub fn is_exit_word(line: &str) -> bool {
    EXIT_WORDS.contains(&line.trim())
}

/// Cuts a line into plain-text datagrams of at most [`PLAIN_DATAGRAM_MAX`] bytes, each
/// valid UTF-8 on its own. An empty line is one empty datagram, as the tutorial sends.
/// U+0001 becomes U+FFFD, so that no text can look like a hello.
pub fn plain_pieces(line: &str) -> Vec<String> {
    let line = line.replace('\u{1}', "\u{FFFD}");
    let mut pieces = Vec::new();
    let mut rest = line.as_str();
    loop {
        if rest.len() <= PLAIN_DATAGRAM_MAX {
            pieces.push(rest.to_owned());
            return pieces;
        }
        let mut cut = PLAIN_DATAGRAM_MAX;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        pieces.push(head.to_owned());
        rest = tail;
    }
}
