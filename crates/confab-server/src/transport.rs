//! The byte stream under the socket loop: the [`Transport`] trait and its plain TCP
//! implementation (TLS's is `TlsTransport` in tls/transport.rs).

use std::future::Future;
use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use tokio::net::TcpStream;
use tokio::time::Instant;

/// A connection's byte stream as the session loop drives it: readiness futures and
/// non-blocking reads and writes, the shape of tokio's `TcpStream` API.
///
/// Why readiness rather than tokio-rustls's `TlsStream` behind `AsyncRead` and
/// `AsyncWrite`: the loop waits for readiness, reads into a scratch buffer shared by the
/// worker thread and writes queued `Bytes` with one vectored write, so an idle plain
/// connection owns no buffer. For `TcpStream` this trait is exactly the calls the loop
/// made before it existed, so the plain path gains no copy and no allocation. The TLS
/// transport drives a `rustls::ServerConnection` from the same readiness events (the
/// handshake included), which keeps one loop, one set of timeouts and one shutdown for
/// both, where a `TlsStream` would have needed poll-style reads with a task context
/// and a second way of writing.
///
/// Contract:
/// 1. `try_read` and `try_write_vectored` never wait; `WouldBlock` means "wait for
///    `readable` or `writable`, then try again".
/// 2. `try_read` returning `Ok(0)` means the peer finished sending.
/// 3. Bytes that `try_write_vectored` accepted are sent in order, with bytes of the
///    transport's own (TLS records) going out through `try_flush` when `wants_write`.
/// 4. A transport holds a bounded amount of data of its own.
pub(crate) trait Transport: Send + Sync {
    /// Ready when `try_read` may make progress (it may still find nothing).
    ///
    /// Readiness is polled rather than awaited so that a connection waiting on its
    /// socket keeps no future for it: every connection waits all its life.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when a write may make progress (it may still find no room).
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Resolves when `try_read` may make progress.
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        std::future::poll_fn(|cx| self.poll_read_ready(cx))
    }
    /// Resolves when a write may make progress.
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        std::future::poll_fn(|cx| self.poll_write_ready(cx))
    }
    /// Reads what is available without waiting.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes what fits without waiting.
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Whether the transport has bytes of its own waiting for the socket, such as a
    /// TLS handshake message, so that the loop waits for `writable` even with nothing
    /// of the session's to write.
    fn wants_write(&self) -> bool {
        false
    }
    /// Sends the transport's own pending bytes without waiting; `Ok(true)` means none
    /// are left.
    fn try_flush(&mut self) -> io::Result<bool> {
        Ok(true)
    }
    /// While a handshake is still running, the time by which it must have finished.
    fn handshake_deadline(&self) -> Option<Instant> {
        None
    }
    /// Ends our direction of the stream, after the transport's own pending bytes;
    /// `WouldBlock` means "wait for `writable` and call again".
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_write_ready(self, cx)
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::try_read(self, buf)
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        TcpStream::try_write_vectored(self, bufs)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        socket2::SockRef::from(&*self).shutdown(std::net::Shutdown::Write)
    }
}
