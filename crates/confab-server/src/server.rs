//! The server: binds every listener, accepts connections up to the limit, runs one
//! session task per connection and shuts them all down in order.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_core::Core;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept::Acceptor;
use crate::admission::{Admission, Refusal};
use crate::config::Config;
use crate::connection;
use crate::history::{Durability, History};
use crate::irc::IrcSession;
use crate::line::LineSession;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::tls::{TlsConfig, TlsTransport};
use crate::transport::Transport;
use crate::web;

pub use crate::frontend::Frontend;

/// A bound, not yet running server.
pub struct Server {
    listeners: Vec<(Frontend, TcpListener)>,
    shared: Arc<Shared>,
    /// The certificate and handshake limit of the TLS listeners, if there are any.
    tls: Option<TlsConfig>,
}

/// Failure to start: an address that could not be bound, or a store that could not
/// be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen on {addr}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("cannot open the history database")]
    Store(#[from] confab_store::StoreError),
    #[error("cannot join the cluster")]
    Cluster(#[from] crate::cluster::ClusterError),
}

impl Server {
    /// Binds every configured address. Nothing is accepted until [`Server::run`].
    pub async fn bind(config: Config) -> Result<Server, BindError> {
        let mut listeners = Vec::new();
        let mut wanted = Vec::new();
        if !config.tls.as_ref().is_some_and(|tls| tls.tls_only) {
            wanted.extend([
                (Frontend::Line, &config.line_listen),
                (Frontend::Irc, &config.irc_listen),
                (Frontend::Http, &config.http_listen),
            ]);
        }
        if let Some(tls) = &config.tls {
            wanted.extend([
                (Frontend::LineTls, &tls.line_listen),
                (Frontend::IrcTls, &tls.irc_listen),
                (Frontend::Https, &tls.https_listen),
            ]);
        }
        for (frontend, addrs) in wanted {
            for addr in addrs {
                let listener =
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| BindError::Listen {
                            addr: *addr,
                            source,
                        })?;
                listeners.push((frontend, listener));
            }
        }
        let metrics = Arc::new(Metrics::default());
        let admission = Admission::new(&config.limits, metrics.clone());
        // PostgreSQL when a database URL is given (every node of a cluster shares it),
        // else SQLite in the data directory, else no history at all.
        let opened = match (&config.database_url, &config.data_dir) {
            (Some(url), _) => Some(open_postgres(url.clone(), metrics.clone()).await?),
            (None, Some(dir)) => Some(open_sqlite(dir, metrics.clone())?),
            (None, None) => None,
        };
        let (mut core, history, durability) = match opened {
            Some((history, last_id, accounts, rooms)) => {
                let durability = history.durability();
                let mut core = Core::with_journal(Box::new(history.clone()), last_id);
                for name in &accounts {
                    core.add_account(name);
                }
                for json in &rooms {
                    match serde_json::from_str(json) {
                        Ok(record) => core.restore_room(record),
                        Err(e) => tracing::warn!("skipping a kept room that does not parse: {e}"),
                    }
                }
                (core, Some(history), durability)
            }
            None => (Core::new(), None, Durability::always()),
        };
        core.set_limits(config.limits.core());
        core.set_default_room(&config.default_room);
        let mut first_id = 1;
        let cluster = match &config.cluster {
            Some(cluster) => {
                let (cluster, index, link) = crate::cluster::Cluster::connect(cluster).await?;
                core.join_cluster(&config.cluster.as_ref().expect("matched").node, index, link);
                first_id = cluster.first_client_id();
                Some(cluster)
            }
            None => None,
        };
        Ok(Server {
            listeners,
            tls: config.tls,
            shared: Arc::new(Shared {
                core: Mutex::new(core),
                history,
                durability,
                logins: Default::default(),
                limits: config.limits,
                default_room: config.default_room,
                allowed_origins: config.allowed_origins,
                irc: config.irc,
                started: std::time::SystemTime::now(),
                admission,
                deadlines: Default::default(),
                metrics,
                next_id: AtomicU64::new(first_id),
                cluster,
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
            // Only TLS listeners get the TLS settings; `bind` made TLS listeners only
            // when there are settings.
            let tls = self.tls.as_ref().filter(|_| frontend.is_tls());
            let timeout = tls.map(|tls| tls.handshake_timeout);
            match frontend {
                Frontend::Line | Frontend::Irc | Frontend::LineTls | Frontend::IrcTls => {
                    let tls = tls.map(|tls| tls.identity.stream_config());
                    tracker.spawn(accept_loop(
                        frontend,
                        listener,
                        shared,
                        tls.zip(timeout),
                        token.clone(),
                        tracker.clone(),
                    ));
                }
                Frontend::Http | Frontend::Https => {
                    let tls = tls.map(|tls| tls.identity.https_config().into());
                    tracker.spawn(web::serve(
                        listener,
                        shared,
                        tls.zip(timeout),
                        token.clone(),
                        tracker.clone(),
                    ));
                }
            }
        }
        if let Some(cluster) = &self.shared.cluster {
            cluster.start(&self.shared, token.clone());
        }
        tokio::spawn(self.shared.deadlines.clone().run(token.clone()));
        shutdown.await;
        tracing::info!("shutting down");
        if let Some(cluster) = &self.shared.cluster {
            cluster.leave().await;
        }
        token.cancel();
        // Connections look at the token when woken; they wait on their outbox, not on
        // the token, which would take a future in every connection.
        self.shared
            .lock_core()
            .each_local_mailbox(|outbox| outbox.0.wake());
        tracker.close();
        let grace = self.shared.limits.shutdown_grace + Duration::from_secs(1);
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("some connections did not close within {grace:?}");
        }
    }
}

/// Accepts line-protocol or IRC connections, over TLS when `tls` holds its settings
/// (the rustls configuration and the time a handshake may take).
async fn accept_loop(
    frontend: Frontend,
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<(Arc<ServerConfig>, Duration)>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    // Addresses are logged with Display (`127.0.0.1:5000`), never as a Debug `Option`.
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, frontend = frontend.label(), "listening");
    }
    let acceptor = Acceptor::new(listener, frontend, shared.admission.clone(), &shared.limits);
    let answer = |stream: &_, peer, why| refuse(stream, peer, frontend, why);
    while let Some((stream, peer, permit)) = acceptor.next(&token, &answer).await {
        let id = shared.next_client_id();
        let shared = shared.clone();
        let token = token.clone();
        // Every connection's start and end are logged at info level (the README promises
        // them); the end's line carries the same id and the reason.
        tracing::info!(%peer, id, frontend = frontend.label(), "connected");
        let tls = tls.clone();
        let irc = matches!(frontend, Frontend::Irc | Frontend::IrcTls);
        // Plain and TLS sessions are spawned as different tasks: one future holding
        // either would make every plain connection as big as a TLS one (rustls state
        // is kilobytes), and most connections are plain.
        match tls {
            None => spawn_session(&tracker, irc, stream, peer, id, shared, token, permit),
            // The handshake runs inside the session loop, under its own deadline.
            Some((config, timeout)) => match TlsTransport::new(stream, config, timeout) {
                Ok(stream) => spawn_session(&tracker, irc, stream, peer, id, shared, token, permit),
                Err(e) => tracing::warn!(%peer, "cannot start TLS: {e}"),
            },
        }
    }
}

/// Tells a refused client why, in its front-end's words, and logs it. The socket is
/// closed when `stream` is dropped.
fn refuse(stream: &TcpStream, peer: SocketAddr, frontend: Frontend, why: Refusal) {
    let text = match why {
        Refusal::ServerFull => {
            tracing::warn!(%peer, ?frontend, "refused: server full");
            "Server is full; try again later"
        }
        // Per-address refusals are logged at debug level only: they are what a
        // connection flood produces, and the log must not become the flood.
        Refusal::TooMany => {
            tracing::debug!(%peer, ?frontend, "refused: too many connections from the address");
            "Too many connections from your address"
        }
        Refusal::TooFast => {
            tracing::debug!(%peer, ?frontend, "refused: connecting too often from the address");
            "Too many connections from your address; try again later"
        }
    };
    let refusal = match frontend {
        Frontend::Irc => format!("ERROR :{text}\r\n"),
        // A TLS client could not read a plain-text refusal; it is just closed.
        Frontend::LineTls | Frontend::IrcTls | Frontend::Https => return,
        _ => format!("! {text}\n"),
    };
    let _ = stream.try_write(refusal.as_bytes());
}

/// Spawns one connection's task. Each protocol and transport is a task type of its
/// own, and the connection's future is spawned as it is, with nothing around it: a
/// future that could hold either protocol, or plain or TLS, would make every
/// connection as big as the biggest (rustls state is kilobytes), and an idle
/// connection is mostly its future.
#[allow(clippy::too_many_arguments)]
fn spawn_session<T: Transport + 'static>(
    tracker: &TaskTracker,
    irc: bool,
    stream: T,
    peer: SocketAddr,
    id: confab_core::ClientId,
    shared: Arc<Shared>,
    token: CancellationToken,
    permit: crate::admission::Slot,
) {
    if irc {
        let session = IrcSession::new(peer, &shared);
        tracker.spawn(connection::run(stream, id, shared, token, session, permit));
    } else {
        let session = LineSession::new(peer, shared.limits.max_line);
        tracker.spawn(connection::run(stream, id, shared, token, session, permit));
    }
}

/// A store opened at startup, with its thread running: the history handle, the last
/// message id, and the registered account names and kept rooms the core starts with.
type OpenedStore = (History, u64, Vec<String>, Vec<String>);

/// Reads what the core starts with from a store, then hands the store to its thread.
fn start_store(
    store: Box<dyn confab_store::Store>,
    metrics: Arc<Metrics>,
) -> Result<OpenedStore, confab_store::StoreError> {
    let accounts = store.account_names()?;
    let rooms = store.rooms()?;
    let (history, last_id) = History::start(store, metrics)?;
    Ok((history, last_id, accounts, rooms))
}

/// Opens (creating it if needed) the SQLite database in `dir`.
fn open_sqlite(
    dir: &std::path::Path,
    metrics: Arc<Metrics>,
) -> Result<OpenedStore, confab_store::StoreError> {
    let store = confab_store::SqliteStore::open_dir(dir)?;
    let opened = start_store(Box::new(store), metrics)?;
    tracing::info!(dir = %dir.display(), last_id = opened.1, "history kept in SQLite");
    Ok(opened)
}

/// Connects to PostgreSQL on the blocking pool: its synchronous client blocks on a
/// runtime of its own, which tokio forbids inside an async task. From then on the
/// store lives on the store thread, where blocking is the point.
async fn open_postgres(
    url: String,
    metrics: Arc<Metrics>,
) -> Result<OpenedStore, confab_store::StoreError> {
    let opening = tokio::task::spawn_blocking(move || {
        let store = confab_store::PostgresStore::connect(&url)?;
        let place = store.place().to_string();
        let opened = start_store(Box::new(store), metrics)?;
        tracing::info!(database = %place, last_id = opened.1, "history kept in PostgreSQL");
        Ok(opened)
    });
    match opening.await {
        Ok(opened) => opened,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("connecting to PostgreSQL was cancelled: {e}"),
    }
}
