//! `confab serve`: listeners, per-connection sessions, limits and shutdown around one
//! shared chat core.
//!
//! # Layout
//! Top to bottom: a module imports only modules listed after it (ARCHITECTURE.md draws
//! the layers).
//! - [`server`]: [`Server`], which binds the listeners, accepts connections, caps their
//!   number and shuts everything down in order.
//! - `web`: the HTTP front-end: the bundled page and the WebSocket JSON protocol.
//! - `line`: the line protocol front-end, a `protocol::Protocol` implementation.
//! - `irc`: the IRC front-end, another `protocol::Protocol`.
//! - `connection`: the socket loop every line-based front-end shares: reading bounded
//!   lines, draining the outbox, batched vectored writes, timeouts, lingering close.
//!   Its contract is a numbered list at its top; `connection::input` is its input path.
//! - `protocol`: the `Protocol` trait a line-based front-end implements, and the
//!   `Close` and `Flow` it answers with.
//! - `accounts`: registration, login, offline delivery.
//! - `ctx`: the narrow API a front-end holds (`Ctx`): run commands (runs of messages
//!   together), queue its own lines, hand out its outbox to answers that come later,
//!   reach history, and (`ctx/state.rs`) read or change its client's chat state through
//!   named methods; no front-end locks the core itself.
//! - `shared`: `Shared`, the state every session shares, with the few methods for code
//!   that has no `Ctx` (`connect`, `leave`, `render_metrics`...).
//! - [`cluster`]: several nodes sharing one chat over NATS; reaches its node through
//!   the `Node` trait, which `Shared` implements.
//! - `accept`: taking connections off a listener for every front-end: the back-off when
//!   accepting fails, admission, and the socket options every connection gets.
//! - `admission`: who gets a connection: the server-wide cap and the per-address
//!   count and rate limits, and the slot a connection holds until it ends.
//! - `write_queue`: output on its way to the socket, held at durability gates.
//! - `history`: the store thread (group commits, history queries) and the durability
//!   watermark that holds messages back from clients until they are on disk.
//! - [`config`]: [`Config`] and [`Limits`], every tunable with its default, and
//!   [`ClusterConfig`].
//! - `chat`: the `Chat` trait, the core as the modules below `shared` reach it.
//! - `metrics`: relaxed-atomic counters and gauges, rendered for `GET /metrics`.
//! - [`tls`]: certificates and TLS for every front-end ([`TlsConfig`], [`TlsIdentity`]).
//! - `deadlines`: the server-wide wheel that connections' far deadlines wait on.
//! - `outbox`: each client's bounded send queue, the core's [`confab_core::Mailbox`].
//! - `transport`: the `Transport` trait the socket loop runs over, and plain TCP's.
//! - `frontend`: [`Frontend`], which protocol a listener speaks.
//! - `flood`: the per-connection token bucket on input that slows, then cuts, a
//!   flooding client.
//! - `logins`: the failed-login throttle.
//!
//! A request's path: `server` accepts → `connection::run` reads a line → the protocol
//! parses it and calls [`confab_core::Core::handle`] under the core mutex → the core
//! drops events into recipients' outboxes → each recipient's connection task wakes,
//! encodes (once per wire format, shared) and writes.

mod accept;
mod accounts;
mod admission;
mod chat;
pub mod cluster;
pub mod config;
mod connection;
mod ctx;
mod deadlines;
mod flood;
mod frontend;
mod history;
mod irc;
mod line;
mod logins;
mod metrics;
mod outbox;
mod protocol;
pub mod server;
mod shared;
pub mod tls;
mod transport;
mod web;
mod write_queue;

pub use cluster::ClusterError;
pub use config::{parse_oper, seconds, ClusterConfig, Config, ConfigError, IrcConfig, Limits};
pub use frontend::Frontend;
pub use server::{BindError, Server};
pub use tls::{TlsConfig, TlsError, TlsIdentity};

/// Entry points for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses one WebSocket text frame as a request, discarding the result.
    pub fn web_request(text: &str) {
        let _ = crate::web::protocol::parse_request(text);
    }

    /// Parses one configuration value of every hand-parsed kind, discarding the results.
    pub fn config_value(text: &str) {
        let _ = crate::config::parse_oper(text);
        if let Ok(secs) = text.trim().parse::<u64>() {
            let _ = tokio::time::Instant::now() + crate::config::seconds(secs);
        }
    }
}
