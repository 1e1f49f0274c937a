//! The sending half of the reliable stream: messages waiting for sequence numbers, chunks
//! in flight, acknowledgement processing, loss detection and retransmission.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::frame::BodyWriter;
use super::rtt::Rtt;
use super::{MessageId, MAX_FRAGMENT, WINDOW};

/// A chunk counts as lost once a packet sent this many packets after its latest copy is
/// acknowledged; like TCP's three duplicate acks, it tolerates a little reordering.
const REORDER_THRESHOLD: u64 = 3;
/// Send times kept for round-trip samples: enough for a window of packets in flight.
const SENT_TIMES: usize = 512;

#[derive(Debug)]
enum Queued {
    /// A message, of which the first `next_index` fragments already have numbers.
    Message {
        id: MessageId,
        data: Bytes,
        next_index: u16,
        count: u16,
    },
    Bye,
}

#[derive(Debug)]
enum Owned {
    Fragment { index: u16, count: u16, data: Bytes },
    Bye,
}

/// A chunk that was sent and is not acknowledged yet.
#[derive(Debug)]
struct InFlight {
    payload: Owned,
    last_sent: Instant,
    /// The packet that carried the latest copy, for reordering-based loss detection.
    last_pn: u64,
    /// Waiting to be sent again.
    lost: bool,
}

/// A message whose every fragment has a number, waiting for the cumulative ack.
#[derive(Debug)]
struct Awaiting {
    id: MessageId,
    last_seq: u64,
    /// Kept so the message can be sent again if the friend restarts.
    data: Bytes,
}

/// How many fragments a message of `len` bytes takes; even an empty message takes one.
pub fn fragments(len: usize) -> u16 {
    // Messages are at most MAX_MESSAGE bytes, far below u16::MAX fragments.
    len.div_ceil(MAX_FRAGMENT).max(1) as u16
}

#[derive(Debug, Default)]
pub struct Sender {
    queue: VecDeque<Queued>,
    unacked: BTreeMap<u64, InFlight>,
    awaiting: VecDeque<Awaiting>,
    next_seq: u64,
    /// The friend's cumulative acknowledgement: every number below it arrived.
    acked_below: u64,
    /// The largest of our packet numbers the friend has echoed.
    largest_echo: Option<u64>,
    /// When recent packets that ask for an immediate acknowledgement (any with a chunk
    /// or a ping) went out, oldest first, for round-trip samples.
    sent_times: VecDeque<(u64, Instant)>,
    /// The number our bye went out under, once it has.
    bye_seq: Option<u64>,
}

impl Sender {
    pub fn push_message(&mut self, id: MessageId, data: Bytes) {
        let count = fragments(data.len());
        self.queue.push_back(Queued::Message {
            id,
            data,
            next_index: 0,
            count,
        });
    }

    pub fn push_bye(&mut self) {
        self.queue.push_back(Queued::Bye);
    }

    /// Messages not yet fully given to the network.
    pub fn queued_messages(&self) -> usize {
        self.queue
            .iter()
            .filter(|q| matches!(q, Queued::Message { .. }))
            .count()
    }

    /// Messages the friend has not acknowledged, sent or not.
    pub fn undelivered(&self) -> usize {
        self.awaiting.len() + self.queued_messages()
    }

    pub fn has_lost(&self) -> bool {
        self.unacked.values().any(|f| f.lost)
    }

    /// Whether something new could go out now: the window has room and the queue has a chunk.
    pub fn can_send_new(&self) -> bool {
        !self.queue.is_empty() && self.next_seq < self.acked_below + WINDOW
    }

    pub fn bye_acked(&self) -> bool {
        self.bye_seq.is_some_and(|seq| seq < self.acked_below)
    }

    /// Adds lost chunks, oldest first, then new ones while the window allows, until the
    /// packet is full. Returns how many chunks were retransmissions.
    pub fn fill(&mut self, w: &mut BodyWriter, now: Instant, pn: u64) -> u64 {
        let mut retransmitted = 0;
        for (&seq, f) in self.unacked.iter_mut().filter(|(_, f)| f.lost) {
            let fits = match &f.payload {
                Owned::Fragment { index, count, data } => {
                    w.push_fragment(seq, *index, *count, data)
                }
                Owned::Bye => w.push_bye(seq),
            };
            if !fits {
                return retransmitted;
            }
            f.lost = false;
            f.last_sent = now;
            f.last_pn = pn;
            retransmitted += 1;
        }
        while self.next_seq < self.acked_below + WINDOW {
            let seq = self.next_seq;
            let payload = match self.queue.front_mut() {
                None => break,
                Some(Queued::Bye) => {
                    if !w.push_bye(seq) {
                        break;
                    }
                    self.queue.pop_front();
                    self.bye_seq = Some(seq);
                    Owned::Bye
                }
                Some(Queued::Message {
                    id,
                    data,
                    next_index,
                    count,
                }) => {
                    let start = usize::from(*next_index) * MAX_FRAGMENT;
                    let end = (start + MAX_FRAGMENT).min(data.len());
                    let piece = data.slice(start.min(end)..end);
                    if !w.push_fragment(seq, *next_index, *count, &piece) {
                        break;
                    }
                    let payload = Owned::Fragment {
                        index: *next_index,
                        count: *count,
                        data: piece,
                    };
                    *next_index += 1;
                    if *next_index == *count {
                        self.awaiting.push_back(Awaiting {
                            id: *id,
                            last_seq: seq,
                            data: data.clone(),
                        });
                        self.queue.pop_front();
                    }
                    payload
                }
            };
            self.unacked.insert(
                seq,
                InFlight {
                    payload,
                    last_sent: now,
                    last_pn: pn,
                    lost: false,
                },
            );
            self.next_seq += 1;
        }
        retransmitted
    }

    /// Records that packet `pn`, which asks for an immediate acknowledgement, went out.
    pub fn on_packet_sent(&mut self, pn: u64, now: Instant) {
        if self.sent_times.len() == SENT_TIMES {
            self.sent_times.pop_front();
        }
        self.sent_times.push_back((pn, now));
    }

    /// Applies the friend's acknowledgement: `ack` and `sack` for chunks, `echo` (the
    /// largest packet number it has, plus one) for timing. Returns the messages now
    /// delivered, in order.
    pub fn on_ack(
        &mut self,
        ack: u64,
        sack: &[u8],
        echo: u64,
        now: Instant,
        rtt: &mut Rtt,
    ) -> Vec<MessageId> {
        // The friend cannot have received what was never sent; a larger ack is clamped
        // rather than trusted.
        let ack = ack.min(self.next_seq);
        if ack > self.acked_below {
            let rest = self.unacked.split_off(&ack);
            self.unacked = rest;
            self.acked_below = ack;
        }
        for (i, byte) in sack.iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    let offset = (i * 8 + bit) as u64 + 1;
                    if let Some(seq) = ack.checked_add(offset) {
                        self.unacked.remove(&seq);
                    }
                }
            }
        }
        if let Some(echoed) = echo.checked_sub(1) {
            if !matches!(self.largest_echo, Some(largest) if largest >= echoed) {
                self.largest_echo = Some(echoed);
                // Only a packet that was acknowledged at once gives a fair sample; an
                // echo of anything else (or of a packet we never sent) is not timed.
                while self.sent_times.front().is_some_and(|&(pn, _)| pn < echoed) {
                    self.sent_times.pop_front();
                }
                if let Some(&(pn, sent)) = self.sent_times.front() {
                    if pn == echoed {
                        rtt.sample(now.saturating_duration_since(sent));
                    }
                }
            }
        }
        if let Some(largest) = self.largest_echo {
            for f in self.unacked.values_mut() {
                if !f.lost && f.last_pn.saturating_add(REORDER_THRESHOLD) <= largest {
                    f.lost = true;
                }
            }
        }
        let mut delivered = Vec::new();
        while self
            .awaiting
            .front()
            .is_some_and(|a| a.last_seq < self.acked_below)
        {
            if let Some(a) = self.awaiting.pop_front() {
                delivered.push(a.id);
            }
        }
        delivered
    }

    /// Marks chunks whose timeout expired as lost; returns whether any did.
    pub fn on_timeout(&mut self, now: Instant, rto: Duration) -> bool {
        let mut fired = false;
        for f in self.unacked.values_mut() {
            if !f.lost && f.last_sent + rto <= now {
                f.lost = true;
                fired = true;
            }
        }
        fired
    }

    /// When the oldest chunk in flight times out.
    pub fn next_deadline(&self, rto: Duration) -> Option<Instant> {
        self.unacked
            .values()
            .filter(|f| !f.lost)
            .map(|f| f.last_sent + rto)
            .min()
    }

    /// Takes every undelivered message out, in order, and whether a bye was pending, and
    /// starts over from sequence number zero.
    pub fn drain(&mut self) -> (Vec<(MessageId, Bytes)>, bool) {
        let mut messages: Vec<(MessageId, Bytes)> =
            self.awaiting.drain(..).map(|a| (a.id, a.data)).collect();
        let mut bye = self.bye_seq.is_some();
        for queued in self.queue.drain(..) {
            match queued {
                Queued::Message { id, data, .. } => messages.push((id, data)),
                Queued::Bye => bye = true,
            }
        }
        *self = Sender::default();
        (messages, bye)
    }

    /// Starts a new session with the friend's new run: everything undelivered goes out
    /// again from the start, because the new run has seen none of it.
    pub fn restart(&mut self) {
        let (messages, bye) = self.drain();
        for (id, data) in messages {
            self.push_message(id, data);
        }
        if bye {
            self.push_bye();
        }
    }
}
