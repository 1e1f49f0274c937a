//! Taking connections off a listener, for every front-end: the wait for the next one,
//! the back-off when accepting fails, admission, and the socket options every
//! connection gets. What a connection then becomes is the caller's business.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::admission::{Admission, Refusal, Slot};
use crate::config::Limits;
use crate::frontend::Frontend;

/// A listener with what it takes to let connections in: which front-end it serves,
/// the admission limits, and the socket options to give each connection.
pub(crate) struct Acceptor {
    listener: TcpListener,
    frontend: Frontend,
    admission: Arc<Admission>,
    tcp_keepalive: Duration,
}

impl Acceptor {
    pub(crate) fn new(
        listener: TcpListener,
        frontend: Frontend,
        admission: Arc<Admission>,
        limits: &Limits,
    ) -> Self {
        Acceptor {
            listener,
            frontend,
            admission,
            tcp_keepalive: limits.tcp_keepalive,
        }
    }

    /// Waits for the next connection that admission lets in, and returns it tuned,
    /// with its slot; `None` once `token` is cancelled. A refused connection goes to
    /// `refuse`, which tells the client why in its front-end's words (the socket
    /// closes when it returns), and the wait goes on.
    pub(crate) async fn next(
        &self,
        token: &CancellationToken,
        refuse: impl Fn(&TcpStream, SocketAddr, Refusal),
    ) -> Option<(TcpStream, SocketAddr, Slot)> {
        loop {
            let accepted = tokio::select! {
                () = token.cancelled() => return None,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning,
                    // and let closing connections free some.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self.admission.admit(peer.ip(), self.frontend) {
                Ok(slot) => {
                    tune(&stream, self.tcp_keepalive);
                    return Some((stream, peer, slot));
                }
                Err(why) => refuse(&stream, peer, why),
            }
        }
    }
}

/// Socket options every connection gets: no Nagle delay (chat lines are small and
/// latency matters more than packet count) and TCP keepalive to find vanished peers.
fn tune(stream: &TcpStream, keepalive: Duration) {
    let _ = stream.set_nodelay(true);
    let keepalive = TcpKeepalive::new().with_time(keepalive);
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    let keepalive = keepalive.with_interval(Duration::from_secs(10));
    let _ = SockRef::from(stream).set_tcp_keepalive(&keepalive);
}
