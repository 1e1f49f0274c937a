//! Pure codecs for confab's wire formats, shared by the server, the terminal client, the
//! peer mode and the benchmark. Nothing here touches a socket.
//!
//! # Layout
//! - [`framing`]: splits a byte stream into bounded lines.
//! - [`irc`]: the IRC message codec (tags, source, parameters, limits).
//! - [`time`]: timestamps as text.
//! - [`line`]: the tutorials' line protocol: what a user types ([`line::Input`]), what
//!   the server prints for each core event ([`line::encode_event`]), and how a client
//!   reads those lines back ([`line::ServerLine`]).

pub mod framing;
pub mod irc;
pub mod line;
pub mod peer;
pub mod time;
pub mod web;
