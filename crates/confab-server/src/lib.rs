//! `confab serve`: listeners, per-connection sessions, limits and shutdown around one
//! shared chat core.
//!
//! # Layout
//! - [`config`]: [`Config`] and [`Limits`], every tunable with its default.
//! - [`server`]: [`Server`], which binds the listeners, accepts connections, caps their
//!   number and shuts everything down in order.
//! - `outbox`: each client's bounded send queue, the core's [`confab_core::Mailbox`].
//! - `admission`: who gets a connection: the server-wide cap and the per-address
//!   count and rate limits, and the slot a connection holds until it ends.
//! - `flood`: the per-connection token bucket on input that slows, then cuts, a
//!   flooding client.
//! - `metrics`: relaxed-atomic counters and gauges, rendered for `GET /metrics`.
//! - `accounts`: registration, login with its throttle, offline delivery.
//! - `connection`: the socket loop every front-end shares: reading bounded lines,
//!   draining the outbox, batched vectored writes, timeouts, lingering close.
//! - `history`: the store thread (group commits, history queries) and the durability
//!   watermark that holds messages back from clients until they are on disk.
//! - `line`: the line protocol front-end, a `connection::Protocol` implementation.
//! - `irc`: the IRC front-end, another `connection::Protocol`.
//! - `web`: the HTTP front-end: the bundled page and the WebSocket JSON protocol.
//! - [`tls`]: certificates and TLS for every front-end ([`TlsConfig`], [`TlsIdentity`]).
//! - [`cluster`]: several nodes sharing one chat over NATS ([`ClusterConfig`]).
//!
//! A request's path: `server` accepts → `connection::run` reads a line → the protocol
//! parses it and calls [`confab_core::Core::handle`] under the core mutex → the core
//! drops events into recipients' outboxes → each recipient's connection task wakes,
//! encodes (once per wire format, shared) and writes.

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
