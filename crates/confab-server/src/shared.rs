//! The state every connection shares: the chat core behind its lock, the limits, the
//! store and the cluster; the one handle a front-end holds on the server.
//!
//! A front-end reaches the server through this handle and the [`crate::ctx::Ctx`] made
//! from it: commands go through `Ctx` (which keeps their replies in order), reads and
//! small changes of chat state through `Ctx`'s named methods (`is_online`, `set_echo`,
//! `lusers`...) and the few here for code without a `Ctx` (`connect`, `leave`,
//! `name_of_party`, `render_metrics`...), history through `history`, logins through
//! `accounts`, settings through the fields below. No front-end locks the core itself. Everything this module holds sits
//! below it; the modules among those that need the core back (history, the cluster)
//! get it through the `Chat` and `Node` traits implemented here, so none of them
//! imports this module.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use confab_core::{ClientId, Core};

use crate::admission::Admission;
use crate::chat::Chat;
use crate::cluster::Node;
use crate::config::Limits;
use crate::history::{Durability, History};
use crate::metrics::{CoreSnapshot, Metrics, Reason};
use crate::outbox::OutboxRef;

/// State every connection shares.
pub(crate) struct Shared {
    /// The chat. Locked only for the synchronous duration of one command, never across
    /// an `.await`.
    pub core: Mutex<Core<OutboxRef>>,
    pub limits: Limits,
    pub default_room: String,
    /// Server identity and operator credentials for the IRC front-end.
    pub irc: crate::config::IrcConfig,
    /// When the server started, for IRC's "created" line.
    pub started: std::time::SystemTime,
    /// Origins allowed to open the WebSocket besides the page's own.
    pub allowed_origins: Vec<String>,
    /// The coarse timer that connections' far deadlines wait on.
    pub deadlines: Arc<crate::deadlines::Deadlines>,
    /// Which connections are served: the server-wide cap and the per-address limits.
    /// A connection holds its `admission::Slot` until it ends.
    pub admission: Arc<Admission>,
    /// Counters and gauges for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The next client id; ids are never reused.
    pub next_id: AtomicU64,
    /// The store thread, when history is on.
    pub history: Option<History>,
    /// How far messages are durable; clients are sent nothing beyond it.
    pub durability: Arc<Durability>,
    /// Failed logins per account and per address.
    pub logins: crate::logins::LoginThrottle,
    /// This node's cluster, when it is one of several.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Shared {
    /// The chat core, locked. A panic while it was held leaves it usable (the core
    /// keeps its invariants per command), so a poisoned lock is taken anyway rather
    /// than taking the whole server down with it.
    pub fn lock_core(&self) -> std::sync::MutexGuard<'_, Core<OutboxRef>> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Client `id` joins the chat from `host`, getting its own messages back when
    /// `echo` is set; both in one look at the core, before anything reaches it.
    pub fn connect(&self, id: ClientId, outbox: OutboxRef, host: &str, echo: bool) {
        let mut core = self.lock_core();
        core.connect(id, outbox, host);
        if echo {
            core.set_echo(id, true);
        }
    }

    /// Client `id` leaves the chat for `reason`: counted first, so that whoever sees
    /// the quit sees it counted, then removed, so that nothing more is queued for it,
    /// then the cluster is told its names changed.
    pub fn leave(&self, id: ClientId, reason: Reason, text: &str) {
        self.metrics.disconnected(reason);
        self.lock_core().disconnect(id, text);
        if let Some(cluster) = &self.cluster {
            cluster.names_changed();
        }
    }

    /// The name a party goes by now (see `Core::name_of_party`).
    pub fn name_of_party(&self, party: &str) -> Option<String> {
        self.lock_core().name_of_party(party).map(|n| n.to_string())
    }

    /// A new client id; ids are never reused.
    pub fn next_client_id(&self) -> ClientId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the server keeps history (and so accounts).
    pub fn keeps_history(&self) -> bool {
        self.history.is_some()
    }

    /// The Prometheus text of the server's counters and gauges, with the core's
    /// counts from one look so that they agree.
    pub fn render_metrics(&self) -> String {
        let snapshot = {
            let core = self.lock_core();
            CoreSnapshot {
                stats: core.stats(),
                clients: core.client_count(),
                users: core.user_count(),
                rooms: core.room_count(),
            }
        };
        self.metrics.render(&snapshot)
    }
}

impl Chat for Shared {
    #[inline]
    fn lock_core(&self) -> std::sync::MutexGuard<'_, Core<OutboxRef>> {
        Shared::lock_core(self)
    }
}

impl Node for Shared {
    #[inline]
    fn durability(&self) -> &Durability {
        &self.durability
    }
}
