//! The IRC front-end (being built).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use confab_core::Envelope;

use crate::connection::{Close, Ctx, Flow, Protocol, Shared, WriteQueue};

pub(crate) struct IrcSession {
    _peer: SocketAddr,
}

impl IrcSession {
    pub(crate) fn new(peer: SocketAddr, _shared: &Shared) -> Self {
        IrcSession { _peer: peer }
    }
}

impl Protocol for IrcSession {
    fn greet(&mut self, _ctx: &Ctx) {}
    fn on_line(&mut self, _line: &[u8], _ctx: &Ctx) -> Flow {
        Flow::Close(Close::Quit("IRC is not built yet".into()))
    }
    fn on_too_long(&mut self, _ctx: &Ctx) {}
    fn on_event(&mut self, _envelope: &Arc<Envelope>, _ctx: &Ctx, _out: &mut WriteQueue) {}
    fn farewell(&mut self, _why: &Close) -> Option<Bytes> {
        None
    }
    fn registered(&self) -> bool {
        false
    }
}
