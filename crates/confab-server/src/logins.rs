//! The failed-login throttle: failures counted per account and per client address,
//! so that passwords cannot be guessed at speed from one place or against one account.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins allowed per account and per address within [`WINDOW`].
const MAX_FAILURES: u32 = 5;
const WINDOW: Duration = Duration::from_secs(60);
/// Entries the throttle keeps before it forgets the oldest; bounds its memory.
const MAX_ENTRIES: usize = 100_000;

/// Counts failed logins per account and per client address.
#[derive(Default)]
pub(crate) struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    /// `Err(seconds)` when any of `keys` failed too often lately.
    pub(crate) fn check(&self, keys: &[String]) -> Result<(), u64> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if let Some(&(count, since)) = failures.get(key) {
                let left = WINDOW.saturating_sub(since.elapsed());
                if count >= MAX_FAILURES && !left.is_zero() {
                    return Err(left.as_secs().max(1));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn failed(&self, keys: &[String]) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_ENTRIES {
            failures.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }

    pub(crate) fn succeeded(&self, account: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_counts_failures_per_key() {
        let throttle = LoginThrottle::default();
        let keys = vec!["account:a".to_string(), "ip:1".to_string()];
        for _ in 0..MAX_FAILURES {
            assert!(throttle.check(&keys).is_ok());
            throttle.failed(&keys);
        }
        assert!(throttle.check(&keys).is_err());
        assert!(throttle.check(&["ip:2".to_string()]).is_ok());
        throttle.succeeded("account:a");
        assert!(throttle.check(&["account:a".to_string()]).is_ok());
        assert!(
            throttle.check(&keys).is_err(),
            "the address stays throttled"
        );
    }
}
