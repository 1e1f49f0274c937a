//! Standard input read on a plain thread, for pipe mode (shared with `confab peer`).
//!
//! `tokio::io::stdin` reads on the runtime's blocking pool, and a blocking read cannot be
//! cancelled, so when the connection drops while stdin is still open (`sleep 100 |
//! confab join ...`) the runtime would wait for that read before the process could
//! exit. A detached thread does not hold the process up.

use std::io::{self, Read};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// How many chunks the reader thread may run ahead of the client; this and the chunk
/// size bound the memory held for input not yet sent.
const CHUNKS_AHEAD: usize = 4;
const CHUNK: usize = 8 * 1024;

/// The process's standard input as an [`AsyncBufRead`].
pub struct ThreadStdin {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    /// What is left of the chunk being consumed.
    current: Bytes,
    /// Set once the thread has reported end of input or an error.
    done: bool,
}

impl ThreadStdin {
    pub fn spawn() -> io::Result<Self> {
        let (tx, chunks) = mpsc::channel(CHUNKS_AHEAD);
        std::thread::Builder::new()
            .name("confab-stdin".into())
            .spawn(move || {
                let mut stdin = io::stdin().lock();
                let mut buf = vec![0; CHUNK];
                loop {
                    let chunk = match stdin.read(&mut buf) {
                        Ok(0) => Ok(Bytes::new()),
                        Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => Err(e),
                    };
                    let last = !matches!(&chunk, Ok(c) if !c.is_empty());
                    // A send error means the client is gone; nobody needs more input.
                    if tx.blocking_send(chunk).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(ThreadStdin {
            chunks,
            current: Bytes::new(),
            done: false,
        })
    }
}

impl AsyncBufRead for ThreadStdin {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.current.is_empty() && !this.done {
            match ready!(this.chunks.poll_recv(cx)) {
                Some(Ok(chunk)) if !chunk.is_empty() => this.current = chunk,
                Some(Err(e)) => {
                    this.done = true;
                    return Poll::Ready(Err(e));
                }
                // End of input, or the thread is gone, which can only follow it.
                Some(Ok(_)) | None => this.done = true,
            }
        }
        Poll::Ready(Ok(&this.current))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().current.advance(amt);
    }
}

impl AsyncRead for ThreadStdin {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let available = ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}
