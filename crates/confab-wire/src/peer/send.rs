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
    sends: u32,
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
    largest_acked_pn: Option<u64>,
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
    pub fn fill(&mut self, w: &mut BodyWriter, now: Instant, pn: u64, allow_new: bool) -> u64 {
        let mut retransmitted = 0;
        for (&seq, f) in self.unacked.iter_mut().filter(|(_, f)| f.lost) {
            let fits = match &f.payload {
                Owned::Fragment { index, count, data } => w.push_fragment(seq, *index, *count, data),
                Owned::Bye => w.push_bye(seq),
            };
            if !fits {
                return retransmitted;
            }
            f.lost = false;
            f.last_sent = now;
            f.sends += 1;
            f.last_pn = pn;
            retransmitted += 1;
        }
        while allow_new && self.next_seq < self.acked_below + WINDOW {
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
                    sends: 1,
                    last_pn: pn,
                    lost: false,
                },
            );
            self.next_seq += 1;
        }
        retransmitted
    }

    /// Applies the friend's acknowledgement. Returns the messages now delivered, in order.
    pub fn on_ack(&mut self, ack: u64, sack: &[u8], now: Instant, rtt: &mut Rtt) -> Vec<MessageId> {
        // The friend cannot have received what was never sent; a larger ack is clamped
        // rather than trusted.
        let ack = ack.min(self.next_seq);
        let mut freshest_single: Option<Instant> = None;
        let mut largest_pn = self.largest_acked_pn;
        let mut record = |f: InFlight| {
            if f.sends == 1 && !matches!(freshest_single, Some(t) if t >= f.last_sent) {
                freshest_single = Some(f.last_sent);
            }
            largest_pn = Some(largest_pn.map_or(f.last_pn, |p| p.max(f.last_pn)));
        };
        if ack > self.acked_below {
            let rest = self.unacked.split_off(&ack);
            for (_, f) in std::mem::replace(&mut self.unacked, rest) {
                record(f);
            }
            self.acked_below = ack;
        }
        for (i, byte) in sack.iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) == 0 {
                    continue;
                }
                let offset = (i * 8 + bit) as u64 + 1;
                if let Some(f) = ack.checked_add(offset).and_then(|s| self.unacked.remove(&s)) {
                    record(f);
                }
            }
        }
        // Karn's rule: only chunks sent once give an unambiguous sample.
        if let Some(sent) = freshest_single {
            rtt.sample(now.saturating_duration_since(sent));
        }
        self.largest_acked_pn = largest_pn;
        if let Some(largest) = largest_pn {
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
