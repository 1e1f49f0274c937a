//! The server: binds every listener, accepts connections up to the limit, runs one
//! session task per connection and shuts them all down in order.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_core::Core;
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::connection::{self, Shared};
use crate::line::LineSession;

/// A bound, not yet running server.
pub struct Server {
    line_listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
}

/// Failure to start: which address could not be bound, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: io::Error,
}

impl Server {
    /// Binds every configured address. Nothing is accepted until [`Server::run`].
    pub async fn bind(config: Config) -> Result<Server, BindError> {
        let mut line_listeners = Vec::new();
        for addr in &config.line_listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| BindError { addr: *addr, source })?;
            line_listeners.push(listener);
        }
        Ok(Server {
            line_listeners,
            shared: Arc::new(Shared {
                core: Mutex::new(Core::new()),
                limits: config.limits,
                default_room: config.default_room,
            }),
        })
    }

    /// The addresses actually bound for the line protocol (useful with port 0).
    pub fn line_addrs(&self) -> Vec<SocketAddr> {
        self.line_listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` resolves, then tells every client, closes every
    /// connection and returns once they are all gone (or the grace period ran out).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(self.shared.limits.max_connections));
        let ids = Arc::new(AtomicU64::new(1));
        for listener in self.line_listeners {
            tracker.spawn(accept_loop(
                listener,
                self.shared.clone(),
                token.clone(),
                tracker.clone(),
                slots.clone(),
                ids.clone(),
            ));
        }
        shutdown.await;
        tracing::info!("shutting down");
        token.cancel();
        tracker.close();
        let grace = self.shared.limits.shutdown_grace + Duration::from_secs(1);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("some connections did not close within {grace:?}");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    token: CancellationToken,
    tracker: TaskTracker,
    slots: Arc<Semaphore>,
    ids: Arc<AtomicU64>,
) {
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "listening for the line protocol");
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning, and let
                // closing connections free some.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "refused: server full");
            let _ = stream.try_write(b"! Server is full; try again later\n");
            continue;
        };
        tune(&stream, &shared);
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let session = LineSession::new(peer, shared.limits.max_line);
        let shared = shared.clone();
        let token = token.clone();
        tracing::debug!(%peer, id, "connected");
        tracker.spawn(async move {
            connection::run(stream, peer, id, shared, token, session).await;
            drop(permit);
        });
    }
}

/// Socket options every connection gets: no Nagle delay (chat lines are small and
/// latency matters more than packet count) and TCP keepalive to find vanished peers.
fn tune(stream: &TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let keepalive = TcpKeepalive::new().with_time(shared.limits.tcp_keepalive);
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    let keepalive = keepalive.with_interval(Duration::from_secs(10));
    let _ = SockRef::from(stream).set_tcp_keepalive(&keepalive);
}
