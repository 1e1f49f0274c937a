//! The web front-end: the bundled chat page and its WebSocket endpoint.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::Shared;

/// Serves HTTP on `listener` until `token` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    _shared: Arc<Shared>,
    token: CancellationToken,
    _tracker: TaskTracker,
) {
    tracing::warn!(addr = ?listener.local_addr().ok(), "the web front-end is not built yet");
    token.cancelled().await;
}
