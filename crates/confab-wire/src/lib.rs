//! Pure codecs for confab's wire formats, shared by the server, the terminal client and
//! the peer mode (the benchmark has its own small parsers, see `confab-bench`'s
//! `wire.rs`). Nothing here touches a socket or a clock: what a result depends on (a
//! client's caps, the time) is a parameter, so that every codec is tested without a
//! runtime.
//!
//! # Layout
//! - [`framing`]: splits a byte stream into bounded lines.
//! - [`line`](mod@line): the tutorials' line protocol: what a user types ([`line::Input`]), what
//!   the server prints for each core event ([`line::encode_event`]), and how a client
//!   reads those lines back ([`line::ServerLine`]).
//! - [`irc`]: the IRC message codec (tags, source, parameters, limits);
//!   [`irc::encode`] the core's events as IRC lines, one function per variant the
//!   server caches ([`irc::encode::encode_broadcast`], [`irc::encode::encode_tags`],
//!   [`irc::encode::put_message_with`]), the server's own lines and labeled responses;
//!   [`irc::reply`] the core's replies to one client as numerics ([`irc::numerics`]
//!   names them); [`irc::split`] a message too long for one IRC line as several.
//! - [`web`]: the WebSocket JSON protocol: the page's requests
//!   ([`web::parse_request`]), each core event as JSON ([`web::encode_event`]) and
//!   history pages.
//! - [`peer`]: the peer datagram protocol (framing, encryption, the ARQ session).
//! - [`time`]: timestamps as text.

pub mod framing;
pub mod irc;
pub mod line;
pub mod peer;
pub mod time;
pub mod web;
