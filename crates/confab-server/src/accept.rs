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
use crate::server::Frontend;

/// Waits for the next connection on `listener` that `admission` lets in, and returns
/// it tuned, with its slot; `None` once `token` is cancelled. A refused connection goes
/// to `refuse`, which tells the client why in its front-end's words (the socket closes
/// when it returns), and the wait goes on.
pub(crate) async fn next(
    listener: &TcpListener,
    frontend: Frontend,
    admission: &Arc<Admission>,
    tcp_keepalive: Duration,
    token: &CancellationToken,
    refuse: impl Fn(&TcpStream, SocketAddr, Refusal),
) -> Option<(TcpStream, SocketAddr, Slot)> {
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => return None,
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
        match admission.admit(peer.ip(), frontend) {
            Ok(slot) => {
                tune(&stream, tcp_keepalive);
                return Some((stream, peer, slot));
            }
            Err(why) => refuse(&stream, peer, why),
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
