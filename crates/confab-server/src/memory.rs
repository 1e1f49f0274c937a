//! Gives memory back to the operating system after many clients leave at once.
//!
//! glibc's allocator keeps freed memory for reuse rather than returning it, so after
//! 19,000 clients drop at once the server's resident size stays at its peak although
//! nothing uses that memory any more (bench/mass-reconnect.sh measured 1.1 GB held
//! with nobody connected). `malloc_trim` returns the free pages. It walks the heap, so
//! it runs only when the number of clients has fallen well below its recent peak, not
//! on every disconnect. Other platforms' allocators, and musl's, need no help, so this
//! is a no-op there.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::connection::Shared;

/// How often the client count is looked at.
const CHECK: Duration = Duration::from_secs(1);
/// Trim when at least this many clients left since the peak...
const LEFT_AT_LEAST: usize = 1000;

/// Watches the number of clients and trims the heap after a large drop.
pub(crate) async fn release_after_drops(shared: Arc<Shared>, token: CancellationToken) {
    let mut peak = 0;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(CHECK) => {}
        }
        let now = shared.lock_core().client_count();
        peak = peak.max(now);
        // ...and at least half of the peak is gone, and the process is big enough for
        // trimming to matter. The trim walks the whole heap and holds the allocator's
        // locks while it does, a pause of milliseconds for everyone: worth it to give
        // back a gigabyte, not to shave a server of a few dozen megabytes.
        if peak - now >= LEFT_AT_LEAST && now <= peak / 2 {
            peak = now;
            if resident_bytes().is_some_and(|bytes| bytes < WORTH_TRIMMING) {
                continue;
            }
            // Off the runtime's threads, so that only allocations wait for it.
            let released = tokio::task::spawn_blocking(trim).await.unwrap_or(false);
            tracing::info!(peak, now, released, "clients left; memory given back");
        }
    }
}

/// Resident size below which a trim is not worth its pause.
const WORTH_TRIMMING: usize = 64 << 20;

/// The process's resident size, from /proc/self/statm.
#[cfg(target_os = "linux")]
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    // 4 KiB pages: an estimate where pages are bigger, which only makes trims rarer.
    Some(pages * 4096)
}

#[cfg(not(target_os = "linux"))]
fn resident_bytes() -> Option<usize> {
    None
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> bool {
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists; it is
    // thread-safe in glibc and takes no pointers from us.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}
