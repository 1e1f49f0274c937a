//! The web front-end: HTTP on its own listeners, serving the bundled chat page,
//! `/healthz`, and the WebSocket JSON protocol of docs/web-protocol.md at `/ws`.
//!
//! # Layout
//! - this file: accepting HTTP connections (each holds a connection slot, like every
//!   other front-end's), over TLS on HTTPS listeners, routing, the embedded page and
//!   the Origin check.
//! - `protocol`: the JSON requests and events, pure.
//! - `session`: one WebSocket client's loop, limits and close.
//!
//! The page's files live in `crates/confab-server/web/` and are compiled into the
//! binary, so `confab serve` needs nothing beside it.

pub(crate) mod protocol;
mod session;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, State};
use axum::http::header::{self, HeaderMap};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

use crate::accept::Acceptor;
use crate::admission::{Refusal, Slot};
use crate::config::Limits;
use crate::frontend::Frontend;
use crate::shared::Shared;

/// The smallest frame limit; the limit grows with `--max-line` so that any message the
/// other front-ends accept fits in a frame, JSON escaping included.
const MIN_FRAME: usize = 16 * 1024;
/// Time a client has to send a request's headers, and the longest an idle keep-alive
/// connection stays open.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most a request's head may take in memory.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes of outgoing frames gathered before they are flushed to the socket.
const WRITE_BUFFER: usize = 64 * 1024;

/// The web front-end's limits, derived from the server's.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Longest message text or reason, in bytes: the line protocol's `max_line`.
    max_message: usize,
    /// Longest frame or message, in bytes; a larger one ends the session.
    max_frame: usize,
    burst: u32,
    per_second: u32,
}

impl Settings {
    fn for_limits(limits: &Limits) -> Settings {
        Settings {
            max_message: limits.max_line,
            max_frame: limits
                .max_line
                .saturating_mul(2)
                .saturating_add(1024)
                .max(MIN_FRAME),
            burst: limits.flood_burst,
            per_second: limits.flood_rate,
        }
    }

    fn wire_limits(&self) -> protocol::Limits {
        protocol::Limits {
            max_message: self.max_message,
            max_frame: self.max_frame,
            burst: self.burst,
            per_second: self.per_second,
        }
    }
}

/// What every request handler needs.
#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    settings: Settings,
}

/// One HTTP connection, as its requests see it.
#[derive(Clone)]
struct Conn {
    peer: SocketAddr,
    /// The connection's slot. A WebSocket upgrade takes it over, because the WebSocket
    /// outlives the HTTP connection task that accepted it.
    permit: Arc<Mutex<Option<Slot>>>,
}

/// Serves HTTP on `listener` until `token` is cancelled; HTTPS when `tls` holds the
/// acceptor and the time a handshake may take. Every connection and every WebSocket
/// session runs on `tracker`, so that shutdown waits for them.
///
/// HTTPS uses tokio-rustls rather than the session loop's hand-driven transport
/// because hyper wants an `AsyncRead + AsyncWrite` stream, which `TlsStream` is.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<(TlsAcceptor, Duration)>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    let https = tls.is_some();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, https, "web front-end listening");
    }
    let grace = shared.limits.shutdown_grace;
    let router = router(App {
        settings: Settings::for_limits(&shared.limits),
        shared: shared.clone(),
        shutdown: token.clone(),
        tracker: tracker.clone(),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD);
    let frontend = if https {
        Frontend::Https
    } else {
        Frontend::Http
    };
    let acceptor = Acceptor::new(listener, frontend, shared.admission.clone(), &shared.limits);
    let answer = |stream: &_, peer, why| refuse(stream, peer, https, why);
    while let Some((stream, peer, permit)) = acceptor.next(&token, &answer).await {
        let conn = Conn {
            peer,
            permit: Arc::new(Mutex::new(Some(permit))),
        };
        let (router, http, token) = (router.clone(), http.clone(), token.clone());
        let Some((acceptor, handshake_timeout)) = &tls else {
            tracker.spawn(serve_connection(stream, conn, router, http, token, grace));
            continue;
        };
        // The handshake runs in the connection's task, so that a slow or failing one
        // holds up nobody else, and is bounded in time like every other wait.
        let handshake = tokio::time::timeout(*handshake_timeout, acceptor.accept(stream));
        tracker.spawn(async move {
            let accepted = tokio::select! {
                () = token.cancelled() => return,
                accepted = handshake => accepted,
            };
            match accepted {
                Ok(Ok(stream)) => serve_connection(stream, conn, router, http, token, grace).await,
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Answers a refused connection with 503 (server full) or 429 (too many from the
/// address), before closing it. A TLS client could not read a plain-text answer; it is
/// just closed.
fn refuse(stream: &tokio::net::TcpStream, peer: SocketAddr, https: bool, why: Refusal) {
    let (status, text) = match why {
        Refusal::ServerFull => {
            tracing::warn!(%peer, "refused: server full");
            (
                "503 Service Unavailable",
                "Server is full; try again later\n",
            )
        }
        Refusal::TooMany | Refusal::TooFast => {
            // Debug level only: this is what a connection flood produces.
            tracing::debug!(%peer, ?why, "refused: too many connections from the address");
            (
                "429 Too Many Requests",
                "Too many connections from your address; try again later\n",
            )
        }
    };
    if https {
        return;
    }
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Retry-After: 10\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

/// Serves one HTTP/1.1 connection; on shutdown, finishes the request in progress and
/// closes.
async fn serve_connection<S>(
    stream: S,
    conn: Conn,
    router: Router,
    http: hyper::server::conn::http1::Builder,
    shutdown: CancellationToken,
    grace: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(conn.clone());
        router.clone().call(request)
    });
    let connection = http
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(grace, connection).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "HTTP connection ended: {e}");
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(script))
        .route("/style.css", get(style))
        .route("/favicon.svg", get(icon))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/ws", get(websocket))
        .fallback(not_found)
        .with_state(app)
}

/// What the page may load and where it may connect: only from this server. Nothing on
/// the page is inline, so scripts and styles need no exceptions.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file, with headers that keep the browser from guessing its type or
/// keeping a stale copy after the server is upgraded.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    )
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("../web/style.css"))
}

async fn icon() -> Response {
    asset("image/svg+xml", include_str!("../web/favicon.svg"))
}

async fn healthz() -> Response {
    asset("text/plain; charset=utf-8", "ok\n")
}

/// The Prometheus text exposition of the server's counters and gauges.
async fn metrics(State(app): State<App>) -> Response {
    let shared = &app.shared;

    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        shared.render_metrics(),
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not found\n").into_response()
}

async fn websocket(
    State(app): State<App>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(origin) = check_origin(&headers, &app.shared.allowed_origins) {
        tracing::info!(peer = %conn.peer, ?origin, "WebSocket refused: origin not allowed");
        return (
            StatusCode::FORBIDDEN,
            "This origin may not open the WebSocket (see --allow-origin)\n",
        )
            .into_response();
    }
    let permit = conn.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(permit) = permit else {
        return (StatusCode::SERVICE_UNAVAILABLE, "Server is full\n").into_response();
    };
    // Counted from now, not from when the upgrade completes, so that a shutdown starting
    // in between still waits for this session.
    let tracked = app.tracker.token();
    let App {
        shared,
        shutdown,
        settings,
        ..
    } = app;
    let max_frame = settings.max_frame;
    // Outgoing frames gather up to `WRITE_BUFFER` before a flush; the ceiling only
    // guards against a single event far larger than the send queue allows.
    let write_ceiling = WRITE_BUFFER + shared.limits.send_queue.saturating_mul(8);
    upgrade
        .max_frame_size(max_frame)
        .max_message_size(max_frame)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(write_ceiling)
        .on_upgrade(move |socket| async move {
            session::run(socket, conn.peer, shared, shutdown, settings, permit).await;
            drop(tracked);
        })
}

/// Allows a request with no `Origin` (not from a browser), from the page's own origin,
/// or from an origin on the allow-list (`*` allows any). Otherwise returns the origin.
fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let Ok(origin) = origin.to_str() else {
        return Err(String::from_utf8_lossy(origin.as_bytes()).into_owned());
    };
    let wanted = normalize_origin(origin);
    if allowed
        .iter()
        .any(|a| a.trim() == "*" || normalize_origin(a) == wanted)
    {
        return Ok(());
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (host, wanted.split_once("://")) {
        (Some(host), Some((scheme, authority)))
            if !authority.contains('/')
                && without_default_port(scheme, authority)
                    == without_default_port(scheme, &host.to_ascii_lowercase()) =>
        {
            Ok(())
        }
        _ => Err(origin.to_string()),
    }
}

/// Origins compare without case or a trailing slash: `HTTPS://Chat.Example.org/` is
/// `https://chat.example.org`.
fn normalize_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// `example.org:80` is `example.org` over http, as browsers leave default ports out.
fn without_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = match scheme {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => return authority,
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn check(origin: Option<&str>, host: Option<&str>, allowed: &[&str], ok: bool) {
        let mut headers = HeaderMap::new();
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        if let Some(host) = host {
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            check_origin(&headers, &allowed).is_ok(),
            ok,
            "origin {origin:?}, host {host:?}, allowed {allowed:?}"
        );
    }

    #[test]
    fn origins_are_checked() {
        let host = Some("127.0.0.1:8080");
        check(None, host, &[], true);
        check(Some("http://127.0.0.1:8080"), host, &[], true);
        check(Some("http://127.0.0.1:8081"), host, &[], false);
        check(Some("http://evil.example"), host, &[], false);
        check(Some("null"), host, &[], false);
        check(Some("http://127.0.0.1:8080/x"), host, &[], false);
        check(Some("http://127.0.0.1:8080"), None, &[], false);
        check(
            Some("HTTP://Chat.Example.org"),
            Some("chat.example.org:80"),
            &[],
            true,
        );
        check(
            Some("https://chat.example.org"),
            Some("chat.example.org"),
            &[],
            true,
        );
        check(
            Some("https://app.example"),
            host,
            &["https://app.example/"],
            true,
        );
        check(
            Some("https://APP.example"),
            host,
            &["https://app.example"],
            true,
        );
        check(
            Some("https://other.example"),
            host,
            &["https://app.example"],
            false,
        );
        check(Some("https://other.example"), host, &["*"], true);
    }

    #[test]
    fn the_frame_limit_fits_the_longest_message() {
        let settings = Settings::for_limits(&Limits::default());
        assert_eq!(settings.max_frame, MIN_FRAME);
        let big = Settings::for_limits(&Limits {
            max_line: 64 * 1024,
            ..Limits::default()
        });
        assert!(big.max_frame > 2 * big.max_message);
    }
}
