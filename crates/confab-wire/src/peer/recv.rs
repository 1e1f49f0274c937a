//! The receiving half of the reliable stream: duplicate suppression, the reordering
//! buffer, reassembly of fragments and the acknowledgement to send back.

use std::collections::BTreeMap;

use super::frame::{Chunk, Payload, SACK_BYTES};
use super::WINDOW;

#[derive(Debug)]
enum Stored {
    Fragment {
        index: u16,
        count: u16,
        data: Vec<u8>,
    },
    Bye,
}

/// What became of one received chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New,
    Duplicate,
    /// Too far ahead of what was delivered; the sender's window forbids it.
    BeyondWindow,
}

/// What the stream hands up, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Message(Vec<u8>),
    Bye,
    /// The fragments did not line up (or a message grew past the limit); the partial
    /// message was dropped.
    Violation,
}

#[derive(Debug, Default)]
pub struct Receiver {
    /// Every number below this was delivered.
    next: u64,
    /// Chunks that arrived ahead of `next`, within the window, so at most [`WINDOW`].
    early: BTreeMap<u64, Stored>,
    /// The message being reassembled.
    partial: Vec<u8>,
    /// Fragments the partial message has, and will have; zero when none is in progress.
    partial_count: u16,
    partial_next: u16,
    bye: bool,
}

impl Receiver {
    /// Stores a chunk that the caller has checked for size.
    pub fn accept(&mut self, chunk: &Chunk<'_>) -> Accepted {
        if chunk.seq < self.next || self.early.contains_key(&chunk.seq) {
            return Accepted::Duplicate;
        }
        if chunk.seq - self.next >= WINDOW {
            return Accepted::BeyondWindow;
        }
        let stored = match &chunk.payload {
            Payload::Fragment { index, count, data } => Stored::Fragment {
                index: *index,
                count: *count,
                data: data.to_vec(),
            },
            Payload::Bye => Stored::Bye,
        };
        self.early.insert(chunk.seq, stored);
        Accepted::New
    }

    /// Hands up everything that is now in order.
    pub fn deliver(&mut self, max_message: usize, out: &mut Vec<Delivery>) {
        while let Some(stored) = self.early.remove(&self.next) {
            self.next += 1;
            match stored {
                Stored::Bye => {
                    if !self.bye {
                        self.bye = true;
                        out.push(Delivery::Bye);
                    }
                }
                // Nothing may follow a bye.
                Stored::Fragment { .. } if self.bye => out.push(Delivery::Violation),
                Stored::Fragment { index, count, data } => {
                    if index == 0 {
                        if self.partial_count != 0 {
                            out.push(Delivery::Violation);
                        }
                        self.partial.clear();
                        self.partial_count = count;
                        self.partial_next = 0;
                    }
                    let in_line = self.partial_count == count && self.partial_next == index;
                    if !in_line || self.partial.len() + data.len() > max_message {
                        self.drop_partial();
                        out.push(Delivery::Violation);
                        continue;
                    }
                    self.partial.extend_from_slice(&data);
                    self.partial_next += 1;
                    if self.partial_next == self.partial_count {
                        self.partial_count = 0;
                        out.push(Delivery::Message(std::mem::take(&mut self.partial)));
                    }
                }
            }
        }
    }

    /// Whether the friend's bye was delivered.
    pub fn bye(&self) -> bool {
        self.bye
    }

    fn drop_partial(&mut self) {
        self.partial = Vec::new();
        self.partial_count = 0;
        self.partial_next = 0;
    }

    /// The cumulative ack and the SACK bitmap (trimmed to its last non-zero byte).
    pub fn ack(&self) -> (u64, [u8; SACK_BYTES], usize) {
        let mut bits = [0u8; SACK_BYTES];
        let mut len = 0;
        for &seq in self.early.keys() {
            // `early` holds only numbers above `next`.
            let offset = (seq - self.next - 1) as usize;
            if offset >= SACK_BYTES * 8 {
                break;
            }
            bits[offset / 8] |= 1 << (offset % 8);
            len = offset / 8 + 1;
        }
        (self.next, bits, len)
    }
}
