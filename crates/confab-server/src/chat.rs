//! The chat core as the modules below the shared state (shared.rs) reach it: one narrow trait,
//! [`Chat`], so that history and the cluster can lock the core without depending on
//! the state that holds them (and holds the core). Users are generic over it, so the
//! calls are as direct as before: no `dyn`, no extra pointer.

use std::sync::{Arc, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use confab_core::{ClientId, Command, Core};

use crate::outbox::OutboxRef;

/// Something that holds the server's chat core: `Shared` (shared.rs).
pub(crate) trait Chat: Send + Sync {
    /// The chat core, locked; see `Shared::lock_core`.
    fn lock_core(&self) -> MutexGuard<'_, Core<OutboxRef>>;
}

impl<C: Chat + ?Sized> Chat for Arc<C> {
    #[inline]
    fn lock_core(&self) -> MutexGuard<'_, Core<OutboxRef>> {
        (**self).lock_core()
    }
}

/// Runs one command in the core now.
#[inline]
pub(crate) fn run_now<C: Chat + ?Sized>(chat: &C, id: ClientId, command: Command) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut core = chat.lock_core();
    core.handle(id, command, now_ms);
}
