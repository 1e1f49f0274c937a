//! One generated client's connection: connecting (from a chosen source address),
//! buffered non-blocking reads and writes, and the request-and-wait exchanges of
//! registration and joining.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Context as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::options::Protocol;
use crate::wire::{LineScanner, Reply};

/// Bytes asked for per read. Under load a read returns hundreds of lines at once, which
/// is what keeps the generator's cost per delivery low.
const READ_CHUNK: usize = 256 * 1024;

thread_local! {
    /// One read buffer per generator thread, not per connection, so that holding many
    /// idle connections costs no buffer memory.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// A client connection with its partial input line and its unsent output.
pub struct Conn {
    pub stream: TcpStream,
    scanner: LineScanner,
    /// Bytes to send; `out[sent..]` has not been written yet.
    pub out: Vec<u8>,
    sent: usize,
}

/// Above this the output buffer is released once written, so that a connection that
/// sent one large batch does not keep its memory while idle.
const KEEP_OUT: usize = 64 * 1024;

impl Conn {
    /// Connects to `addr`, from `source` if given (any free port on it).
    pub async fn open(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Conn> {
        let stream = match source {
            None => TcpStream::connect(addr).await?,
            Some(ip) => {
                let socket = if addr.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
        };
        // Batches are formed by the generator; Nagle would only add delay to them.
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            scanner: LineScanner::default(),
            out: Vec::new(),
            sent: 0,
        })
    }

    /// Connects to `addr` (from `source` if given) and registers as `nick`, waiting
    /// until the server has accepted the registration.
    pub async fn register(
        protocol: Protocol,
        addr: SocketAddr,
        source: Option<IpAddr>,
        nick: &str,
    ) -> anyhow::Result<Conn> {
        let mut conn = Conn::open(addr, source)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        protocol.register(nick, &mut conn.out);
        conn.converse(protocol, |reply| protocol.registered(reply))
            .await
            .context("registering")?;
        Ok(conn)
    }

    /// Joins `room`, waiting until the server has said the join is complete.
    pub async fn join(&mut self, protocol: Protocol, room: &str) -> anyhow::Result<()> {
        protocol.join(room, &mut self.out);
        self.converse(protocol, |reply| protocol.joined(room, reply))
            .await
            .with_context(|| format!("joining {room}"))
    }

    /// Whether output is waiting to be written.
    #[inline]
    pub fn pending(&self) -> bool {
        self.sent < self.out.len()
    }

    /// Writes as much output as the socket takes now. `Ok(true)` means all of it.
    pub fn try_flush(&mut self) -> io::Result<bool> {
        while self.pending() {
            match self.stream.try_write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.sent = 0;
        if self.out.capacity() > KEEP_OUT {
            self.out = Vec::new();
        }
        Ok(true)
    }

    /// Writes all output, waiting for the socket as needed.
    pub async fn flush(&mut self) -> io::Result<()> {
        while !self.try_flush()? {
            self.stream.writable().await?;
        }
        Ok(())
    }

    /// Reads whatever has arrived, at most `max_reads` system calls' worth, handing
    /// each chunk to `on_chunk` with the line scanner and the output buffer (for
    /// answers such as PONG). `Ok(false)` means the server closed the connection.
    #[inline]
    pub fn read_available(
        &mut self,
        max_reads: usize,
        mut on_chunk: impl FnMut(&mut LineScanner, &[u8], &mut Vec<u8>),
    ) -> io::Result<bool> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            for _ in 0..max_reads {
                match self.stream.try_read(&mut scratch) {
                    Ok(0) => return Ok(false),
                    Ok(n) => on_chunk(&mut self.scanner, &scratch[..n], &mut self.out),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                    Err(e) => return Err(e),
                }
            }
            Ok(true)
        })
    }

    /// Sends the queued output, then reads until `done` accepts a reply. Pings are
    /// answered on the way; an error reply before that, or the end of the stream, fails.
    /// Lines after the accepted reply in the same read are only checked for pings:
    /// nothing else that follows a welcome or a join is needed.
    pub async fn converse(
        &mut self,
        protocol: Protocol,
        mut done: impl FnMut(&Reply) -> bool,
    ) -> anyhow::Result<()> {
        loop {
            self.flush().await?;
            let mut finished = false;
            let mut failure = None;
            let open = self.read_available(4, |scanner, data, out| {
                scanner.feed(data, |line| match protocol.classify(line) {
                    Reply::Ping(token) => protocol.pong(token, out),
                    _ if finished || failure.is_some() => {}
                    Reply::Error(text) => failure = Some(text.to_string()),
                    reply => finished = done(&reply),
                })
            })?;
            if let Some(failure) = failure {
                bail!("the server said {failure:?}");
            }
            if finished {
                return Ok(self.flush().await?);
            }
            if !open {
                bail!("the server closed the connection");
            }
            self.stream.readable().await?;
        }
    }
}
