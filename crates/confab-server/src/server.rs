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
use crate::irc::IrcSession;
use crate::line::LineSession;
use crate::web;

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    Line,
    Irc,
    Http,
}

/// A bound, not yet running server.
pub struct Server {
    listeners: Vec<(Frontend, TcpListener)>,
    shared: Arc<Shared>,
}

/// Failure to start: which address could not be bound, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: io::Error,
}

impl Server {
    /// Binds every configured address. Nothing is accepted until [`Server::run`].
    pub async fn bind(config: Config) -> Result<Server, BindError> {
        let mut listeners = Vec::new();
        let wanted = [
            (Frontend::Line, &config.line_listen),
            (Frontend::Irc, &config.irc_listen),
            (Frontend::Http, &config.http_listen),
        ];
        for (frontend, addrs) in wanted {
            for addr in addrs {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| BindError { addr: *addr, source })?;
                listeners.push((frontend, listener));
            }
        }
        let slots = Arc::new(Semaphore::new(config.limits.max_connections));
        Ok(Server {
            listeners,
            shared: Arc::new(Shared {
                core: Mutex::new(Core::new()),
                limits: config.limits,
                default_room: config.default_room,
                allowed_origins: config.allowed_origins,
                irc: config.irc,
                started: std::time::SystemTime::now(),
                slots,
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// The addresses actually bound (useful with port 0), with what each one speaks.
    pub fn local_addrs(&self) -> Vec<(Frontend, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(f, l)| Some((*f, l.local_addr().ok()?)))
            .collect()
    }

    /// The addresses bound for one front-end.
    pub fn addrs(&self, frontend: Frontend) -> Vec<SocketAddr> {
        self.local_addrs()
            .into_iter()
            .filter(|(f, _)| *f == frontend)
            .map(|(_, a)| a)
            .collect()
    }

    /// The addresses bound for the line protocol.
    pub fn line_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(Frontend::Line)
    }

    /// Serves until `shutdown` resolves, then tells every client, closes every
    /// connection and returns once they are all gone (or the grace period ran out).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        for (frontend, listener) in self.listeners {
            let shared = self.shared.clone();
            match frontend {
                Frontend::Line | Frontend::Irc => {
                    tracker.spawn(accept_loop(
                        frontend,
                        listener,
                        shared,
                        token.clone(),
                        tracker.clone(),
                    ));
                }
                Frontend::Http => {
                    tracker.spawn(web::serve(listener, shared, token.clone(), tracker.clone()));
                }
            }
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
    frontend: Frontend,
    listener: TcpListener,
    shared: Arc<Shared>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, ?frontend, "listening");
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
        let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "refused: server full");
            let refusal: &[u8] = match frontend {
                Frontend::Irc => b"ERROR :Server is full; try again later\r\n",
                _ => b"! Server is full; try again later\n",
            };
            let _ = stream.try_write(refusal);
            continue;
        };
        tune(&stream, &shared);
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let token = token.clone();
        tracing::debug!(%peer, id, ?frontend, "connected");
        tracker.spawn(async move {
            match frontend {
                Frontend::Irc => {
                    let session = IrcSession::new(peer, &shared);
                    connection::run(stream, peer, id, shared, token, session).await
                }
                _ => {
                    let session = LineSession::new(peer, shared.limits.max_line);
                    connection::run(stream, peer, id, shared, token, session).await
                }
            }
            drop(permit);
        });
    }
}

/// Socket options every connection gets: no Nagle delay (chat lines are small and
/// latency matters more than packet count) and TCP keepalive to find vanished peers.
pub(crate) fn tune(stream: &TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let keepalive = TcpKeepalive::new().with_time(shared.limits.tcp_keepalive);
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    let keepalive = keepalive.with_interval(Duration::from_secs(10));
    let _ = SockRef::from(stream).set_tcp_keepalive(&keepalive);
}
