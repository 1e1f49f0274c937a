//! TLS as a [`Transport`]: a `rustls::ServerConnection` driven by hand over a
//! non-blocking `TcpStream`, so that the line protocol and IRC over TLS run in the same
//! session loop as their plain versions.
//!
//! On `readable`, TLS records are read from the socket, decrypted, and the plaintext
//! handed out; on `writable`, the session's bytes are encrypted and the records written.
//! The handshake happens along the way: its messages are answered as they are read,
//! and the session's first lines wait in the write queue until it is done.
//!
//! Bounds: rustls bounds its buffer of incoming records and refuses to read more while
//! decrypted text waits; the socket is only read when no decrypted text is pending;
//! outgoing records are limited by rustls's buffer limit (64 KiB by default), past
//! which writes report `WouldBlock`.

use std::io::{self, IoSlice, Read as _, Write as _};
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::{ServerConfig, ServerConnection};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::transport::Transport;

/// Socket reads done in one `try_read` before giving other tasks a turn. A peer sending
/// records that carry no plaintext (handshake messages, alerts) cannot hold a worker
/// thread longer than this.
const READ_ROUNDS: usize = 8;

/// One TLS connection over a non-blocking TCP stream.
pub(crate) struct TlsTransport {
    tcp: TcpStream,
    conn: ServerConnection,
    /// When the handshake must be over.
    deadline: Instant,
    /// Decrypted bytes waiting in `conn`, so that `readable` resolves at once while
    /// there are some, without waiting for the socket.
    plaintext: usize,
}

impl TlsTransport {
    /// Starts a server-side TLS connection on an accepted stream; the handshake then
    /// runs in the session loop and must finish within `handshake_timeout`.
    pub(crate) fn new(
        tcp: TcpStream,
        config: Arc<ServerConfig>,
        handshake_timeout: std::time::Duration,
    ) -> Result<TlsTransport, rustls::Error> {
        Ok(TlsTransport {
            tcp,
            conn: ServerConnection::new(config)?,
            deadline: Instant::now() + handshake_timeout,
            plaintext: 0,
        })
    }

    /// Writes the connection's pending records without waiting; `Ok(true)` means none
    /// are left.
    fn flush_tls(&mut self) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut Socket(&self.tcp)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

impl Transport for TlsTransport {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.plaintext > 0 {
            return Poll::Ready(Ok(()));
        }
        self.tcp.poll_read_ready(cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // During the handshake the session's bytes cannot go out yet, so the socket's
        // write readiness only matters when handshake messages wait to be sent;
        // otherwise waiting on it would wake the loop for nothing, over and over.
        if self.conn.is_handshaking() && !self.conn.wants_write() {
            return Poll::Pending;
        }
        self.tcp.poll_write_ready(cx)
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        for _ in 0..READ_ROUNDS {
            // Plaintext already decrypted goes first, so that rustls never holds more
            // than it decrypted from one socket read.
            match self.conn.reader().read(buf) {
                Ok(n) => {
                    self.plaintext = self.plaintext.saturating_sub(n);
                    // Zero after `close_notify`: the client finished cleanly.
                    return Ok(n);
                }
                // The socket closed without `close_notify`. For line protocols this is
                // an ordinary end: a line cut short is never delivered anyway.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // `WouldBlock` from the socket goes back to the loop, which waits for
            // `readable`. A zero-byte read (the peer closed) is reported by the reader
            // on the next round.
            self.conn.read_tls(&mut Socket(&self.tcp))?;
            match self.conn.process_new_packets() {
                Ok(state) => self.plaintext = state.plaintext_bytes_to_read(),
                Err(e) => {
                    // rustls queued an alert saying what went wrong; the client gets it
                    // if the socket takes it right away, and is dropped either way.
                    let _ = self.flush_tls();
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            // Handshake replies go out now. If the socket is full they stay queued and
            // `wants_write` makes the loop wait for `writable`.
            self.flush_tls()?;
        }
        // The socket's read readiness is still set, so the loop comes straight back.
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // rustls would buffer plaintext written during the handshake, but holding it in
        // the session's queue instead keeps one place where output waits (and counts
        // against the send queue).
        if self.conn.is_handshaking() || !self.flush_tls()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let accepted = self.conn.writer().write_vectored(bufs)?;
        // Records that do not fit in the socket now wait in rustls, bounded by its
        // buffer limit, and `wants_write` makes the loop come back for them.
        self.flush_tls()?;
        if accepted == 0 {
            // Cannot happen for non-empty `bufs` once the records were flushed above;
            // said as `WouldBlock` rather than as a zero-length write, which the queue
            // would take for a dead socket.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(accepted)
    }

    fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    fn try_flush(&mut self) -> io::Result<bool> {
        self.flush_tls()
    }

    fn handshake_deadline(&self) -> Option<Instant> {
        self.conn.is_handshaking().then_some(self.deadline)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        // `close_notify` tells the client the end is deliberate, not a truncation.
        // rustls sends it only once however often this is called.
        self.conn.send_close_notify();
        if !self.flush_tls()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        socket2::SockRef::from(&self.tcp).shutdown(std::net::Shutdown::Write)
    }
}

/// The non-blocking socket as the `std::io` reader and writer rustls wants: every call
/// is a `try_` call, so "no data" and "no room" come back as `WouldBlock`.
struct Socket<'a>(&'a TcpStream);

impl io::Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl io::Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
