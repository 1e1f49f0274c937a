//! `confab bench relay`: the ceiling to compare chat servers with. It reads lines and
//! writes each to every other connection, with no parsing, no names and no rooms; a
//! read's complete lines are forwarded as one shared chunk, so its cost per line is
//! what tokio and the kernel cost, and nothing a chat server adds.
//!
//! Each connection is greeted with one line once it is counted in, so that a client
//! knows when it will start receiving. Drive it with `confab bench fanout --protocol
//! raw` (also `connect` and `idle`).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::options::{is_loopback, seconds};
use crate::wire::RELAY_HELLO;

/// Options of `confab bench relay`.
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Address to listen on; loopback only.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:12345")]
    pub listen: SocketAddr,
    /// Seconds to run before exiting by itself (Ctrl-C ends it sooner).
    #[arg(long, value_name = "SECS", default_value_t = 600.0)]
    pub duration: f64,
    /// Bytes queued for one connection before it is dropped for not reading.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub send_queue: usize,
}

/// One connection's queue of chunks from the others.
struct Peer {
    id: u64,
    queue: Mutex<Queue>,
    ready: Notify,
}

#[derive(Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    bytes: usize,
    overflowed: bool,
}

/// Every connection, so that each chunk can be given to all but its author.
struct Hub {
    peers: Mutex<Vec<Arc<Peer>>>,
    send_queue: usize,
}

impl Hub {
    fn broadcast(&self, from: u64, chunk: &Bytes) {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        for peer in peers.iter().filter(|p| p.id != from) {
            let mut queue = peer.queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.overflowed {
                continue;
            }
            if queue.bytes + chunk.len() > self.send_queue {
                queue.overflowed = true;
                queue.chunks.clear();
            } else {
                queue.bytes += chunk.len();
                queue.chunks.push_back(chunk.clone());
                if queue.chunks.len() > 1 {
                    continue;
                }
            }
            drop(queue);
            peer.ready.notify_one();
        }
    }

    fn remove(&self, id: u64) {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| p.id != id);
    }
}

pub async fn serve(args: RelayArgs) -> anyhow::Result<ExitCode> {
    let duration = seconds("--duration", args.duration)?;
    let relay = Relay::bind(args.listen, args.send_queue).await?;
    // Printed before anything else so that scripts can wait for it.
    println!("confab bench relay: listening on {}", relay.local_addr()?);
    relay
        .run(async {
            tokio::select! {
                () = tokio::time::sleep(duration) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await;
    Ok(ExitCode::SUCCESS)
}

/// A bound relay, not yet relaying.
pub struct Relay {
    listener: TcpListener,
    hub: Arc<Hub>,
}

impl Relay {
    /// Binds `listen`, which must be a loopback address.
    pub async fn bind(listen: SocketAddr, send_queue: usize) -> anyhow::Result<Relay> {
        if !is_loopback(listen.ip()) {
            anyhow::bail!(
                "refusing to listen on {listen}: confab bench relay only listens on loopback addresses"
            );
        }
        let listener = TcpListener::bind(listen).await?;
        let hub = Arc::new(Hub {
            peers: Mutex::new(Vec::new()),
            send_queue,
        });
        Ok(Relay { listener, hub })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Relays until `until` resolves; connections still open then are dropped with the
    /// runtime or closed as their tasks notice.
    pub async fn run(self, until: impl std::future::Future<Output = ()>) {
        let mut until = std::pin::pin!(until);
        let mut next_id = 0;
        loop {
            let (stream, _) = tokio::select! {
                () = &mut until => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Usually out of descriptors: wait for some to close.
                        eprintln!("confab bench relay: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            next_id += 1;
            // The greeting is queued ahead of everything relayed to this connection,
            // so that a client that has read it knows it will get every later line.
            let hello = Bytes::from_static(RELAY_HELLO);
            let peer = Arc::new(Peer {
                id: next_id,
                queue: Mutex::new(Queue {
                    bytes: hello.len(),
                    chunks: VecDeque::from([hello]),
                    overflowed: false,
                }),
                ready: Notify::new(),
            });
            peer.ready.notify_one();
            self.hub
                .peers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(peer.clone());
            let hub = self.hub.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let _ = relay(&stream, &peer, &hub).await;
                hub.remove(peer.id);
            });
        }
    }
}

/// Bytes read per system call.
const READ_CHUNK: usize = 256 * 1024;

/// Longest line relayed; a longer one ends the connection.
const MAX_LINE: usize = 1 << 20;

/// iovecs per vectored write.
const MAX_IOVECS: usize = 64;

async fn relay(stream: &TcpStream, peer: &Peer, hub: &Hub) -> io::Result<()> {
    let mut buf = vec![0u8; READ_CHUNK];
    // The start of a line whose end has not arrived.
    let mut partial: Vec<u8> = Vec::new();
    let mut out: VecDeque<Bytes> = VecDeque::new();
    loop {
        tokio::select! {
            biased;
            () = peer.ready.notified(), if out.is_empty() => {
                let mut queue = peer.queue.lock().unwrap_or_else(|e| e.into_inner());
                if queue.overflowed {
                    return Err(io::Error::other("send queue exceeded"));
                }
                std::mem::swap(&mut queue.chunks, &mut out);
                queue.bytes = 0;
                drop(queue);
                write_some(stream, &mut out)?;
            }
            ready = stream.writable(), if !out.is_empty() => {
                ready?;
                write_some(stream, &mut out)?;
            }
            ready = stream.readable() => {
                ready?;
                let n = match stream.try_read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                };
                let data = &buf[..n];
                let Some(last) = memchr::memrchr(b'\n', data) else {
                    if partial.len() > MAX_LINE {
                        return Err(io::Error::other("line too long"));
                    }
                    partial.extend_from_slice(data);
                    continue;
                };
                let chunk = if partial.is_empty() {
                    Bytes::copy_from_slice(&data[..=last])
                } else {
                    partial.extend_from_slice(&data[..=last]);
                    Bytes::from(std::mem::take(&mut partial))
                };
                partial.extend_from_slice(&data[last + 1..]);
                hub.broadcast(peer.id, &chunk);
            }
        }
    }
}

/// Writes queued chunks until the socket is full or they are gone.
fn write_some(stream: &TcpStream, out: &mut VecDeque<Bytes>) -> io::Result<()> {
    while !out.is_empty() {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (slot, chunk) in slices.iter_mut().zip(out.iter()) {
            *slot = IoSlice::new(chunk);
            count += 1;
        }
        let mut written = match stream.try_write_vectored(&slices[..count]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        while written > 0 {
            let front = out.front_mut().expect("written bytes were queued");
            if front.len() <= written {
                written -= front.len();
                out.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }
    Ok(())
}
