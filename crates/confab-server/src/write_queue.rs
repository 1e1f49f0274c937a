//! A connection's output on its way to the socket: shared chunks written with vectored
//! writes, held back at durability gates until the messages they follow are on disk.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};

use crate::history::Durability;
use crate::outbox::release_if_empty;
use crate::transport::Transport;

/// Bytes waiting for the socket, as shared chunks written with vectored writes.
///
/// With history on, a message may be queued before it is durable; a *gate* then marks
/// its position in the stream, and nothing from there on is written until the
/// durability watermark reaches its id. Everything before the gate flows as usual.
#[derive(Default)]
pub(crate) struct WriteQueue {
    chunks: VecDeque<Bytes>,
    bytes: usize,
    /// Bytes ever queued and ever written: stream positions for the gates.
    queued: u64,
    written: u64,
    /// (stream position, message id) pairs, in stream order.
    /// Boxed: only there with history on and output held, and an empty `VecDeque`
    /// inline would cost every connection 24 bytes more for nothing.
    #[allow(clippy::box_collection)]
    gates: Option<Box<VecDeque<(u64, u64)>>>,
}

/// iovecs handed to one `writev`; well under every platform's `IOV_MAX`.
const MAX_IOVECS: usize = 256;

impl WriteQueue {
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.bytes += chunk.len();
            self.queued += chunk.len() as u64;
            self.chunks.push_back(chunk);
        }
    }

    /// Holds everything queued from now on until message `id` is durable.
    pub(crate) fn gate(&mut self, id: u64, durable: u64) {
        if id > durable {
            self.gates
                .get_or_insert_default()
                .push_back((self.queued, id));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Bytes queued and not yet written.
    pub(crate) fn len(&self) -> usize {
        self.bytes
    }

    /// Bytes that may be written now, after dropping gates that `durable` opened.
    fn open_len(&mut self, durable: u64) -> u64 {
        let gates = self.gates.as_deref_mut();
        if let Some(gates) = gates {
            while gates.front().is_some_and(|&(_, id)| id <= durable) {
                gates.pop_front();
            }
        }
        match self.gates.as_ref().and_then(|gates| gates.front()) {
            Some(&(position, _)) => position - self.written,
            None => self.bytes as u64,
        }
    }

    /// Whether some bytes can be written now.
    pub(crate) fn has_open(&mut self, durable: u64) -> bool {
        !self.is_empty() && self.open_len(durable) > 0
    }

    /// The message id everything queued is waiting for, when nothing can be written.
    pub(crate) fn blocked_on(&mut self, durable: u64) -> Option<u64> {
        if self.is_empty() || self.open_len(durable) > 0 {
            return None;
        }
        self.gates
            .as_ref()
            .and_then(|gates| gates.front())
            .map(|&(_, id)| id)
    }

    /// The queued chunks, in order.
    pub fn into_chunks(self) -> impl Iterator<Item = Bytes> {
        self.chunks.into_iter()
    }

    /// Writes as much as the socket and the gates allow without waiting. `Ok(true)`
    /// means everything open was written.
    pub(crate) fn write_some<T: Transport>(
        &mut self,
        stream: &mut T,
        durable: u64,
    ) -> io::Result<bool> {
        // The transport's own bytes (TLS records) go first: they come before ours on
        // the wire.
        if !stream.try_flush()? {
            return Ok(false);
        }
        loop {
            let open = self.open_len(durable);
            if open == 0 {
                return Ok(true);
            }
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            let mut budget = open;
            for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
                if budget == 0 {
                    break;
                }
                let take = (chunk.len() as u64).min(budget) as usize;
                *slot = IoSlice::new(&chunk[..take]);
                budget -= take as u64;
                count += 1;
            }
            let written = match stream.try_write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            self.bytes -= written;
            self.written += written as u64;
            let mut left = written;
            while left > 0 {
                let front = self.chunks.front_mut().expect("written bytes were queued");
                if front.len() <= left {
                    left -= front.len();
                    self.chunks.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
            if self.chunks.is_empty() {
                release_if_empty(&mut self.chunks);
                if self.gates.as_ref().is_some_and(|gates| gates.is_empty()) {
                    self.gates = None;
                }
            }
        }
    }

    /// Writes everything, waiting for the socket and for durability as needed.
    pub(crate) async fn flush<T: Transport>(
        &mut self,
        stream: &mut T,
        durability: &Durability,
    ) -> io::Result<()> {
        while !self.is_empty() {
            if let Some(id) = self.blocked_on(durability.durable()) {
                durability.wait_for(id).await;
            } else if !self.write_some(stream, durability.durable())? {
                stream.writable().await?;
            }
        }
        Ok(())
    }
}
