//! One coarse timer for every connection's far deadline, so that an idle connection
//! waits for its keepalive without a timer of its own.
//!
//! Every connection always has a deadline (registration, keepalive ping, idle cut),
//! almost always far away and almost always moved before it comes: each line a client
//! sends pushes its keepalive back. A tokio `Sleep` per connection is 112 bytes kept
//! in every connection for that. Instead, a connection whose deadline is more than
//! [`NEAR`] away puts a weak reference to its outbox in a bucket of this wheel, once;
//! when the bucket's time comes the outbox is woken, and the connection looks at its
//! deadline again: passed (it acts), near (it takes a precise timer of its own for
//! the last stretch) or moved later (it goes back into the wheel). A deadline that
//! moves is therefore not touched here on every line, only looked at when it was due,
//! which is how Netty's `IdleStateHandler` treats idle timeouts.
//!
//! Why not tokio's `DelayQueue`: its entries are keyed for removal and moved on every
//! reset, which is the per-line work this avoids, and it would need one task to own
//! it and a channel to reach it; this is a map of buckets behind a lock taken once per
//! connection per deadline.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::outbox::Outbox;

/// Deadlines closer than this get a precise timer of the connection's own.
pub(crate) const NEAR: Duration = Duration::from_secs(1);

/// The wheel's resolution: a bucket's outboxes are woken together at its end.
const TICK: Duration = Duration::from_millis(250);

/// The wheel: buckets of outboxes to wake, by bucket number (time since `epoch` in
/// ticks).
pub(crate) struct Deadlines {
    epoch: Instant,
    buckets: Mutex<BTreeMap<u32, Vec<Weak<Outbox>>>>,
    /// Wakes the ticker when a bucket earlier than all others appears.
    earlier: Notify,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            epoch: Instant::now(),
            buckets: Mutex::new(BTreeMap::new()),
            earlier: Notify::new(),
        }
    }
}

impl Deadlines {
    /// The bucket to wait in for `deadline`: it ends between `NEAR / 2` and
    /// `NEAR / 2 - TICK` before it, so that the connection, woken, finds the deadline
    /// near and times the rest precisely. Never 0, for a deadline more than `NEAR` away.
    pub(crate) fn bucket_for(&self, deadline: Instant) -> u32 {
        let at = deadline
            .saturating_duration_since(self.epoch)
            .saturating_sub(NEAR / 2);
        ticks(at)
    }

    /// Whether bucket `bucket` has been woken already (or is being woken now).
    pub(crate) fn passed(&self, bucket: u32, now: Instant) -> bool {
        bucket < ticks(now.saturating_duration_since(self.epoch))
    }

    /// Wakes `outbox` when bucket `bucket` ends.
    pub(crate) fn insert(&self, bucket: u32, outbox: &Arc<Outbox>) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let first = buckets.keys().next().is_none_or(|&k| bucket < k);
        buckets
            .entry(bucket)
            .or_default()
            .push(Arc::downgrade(outbox));
        drop(buckets);
        if first {
            self.earlier.notify_one();
        }
    }

    /// Wakes each bucket's outboxes at its end, until `token` is cancelled.
    pub(crate) async fn run(self: Arc<Self>, token: CancellationToken) {
        loop {
            let next = {
                let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
                buckets.keys().next().copied()
            };
            // A far-off stand-in when the wheel is empty; an insertion wakes us.
            let until = next.map_or(Instant::now() + Duration::from_secs(3600), |bucket| {
                self.epoch + TICK * (bucket + 1)
            });
            tokio::select! {
                () = token.cancelled() => return,
                // `notify_one` keeps a permit when nobody waits, so an insertion
                // between reading `next` and waiting here is not missed.
                () = self.earlier.notified() => continue,
                () = sleep_until(until) => {}
            }
            let now = ticks(Instant::now().saturating_duration_since(self.epoch));
            let due = {
                let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
                let later = buckets.split_off(&now);
                std::mem::replace(&mut *buckets, later)
            };
            for outbox in due.into_values().flatten() {
                if let Some(outbox) = outbox.upgrade() {
                    outbox.wake();
                }
            }
        }
    }
}

/// Whole ticks in `span`.
fn ticks(span: Duration) -> u32 {
    u32::try_from(span.as_millis() / TICK.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_far_deadline_waits_in_a_bucket_that_ends_shortly_before_it() {
        let wheel = Deadlines::default();
        let deadline = wheel.epoch + Duration::from_secs(10);
        let bucket = wheel.bucket_for(deadline);
        let end = wheel.epoch + TICK * (bucket + 1);
        assert!(
            end < deadline && deadline - end <= NEAR / 2 + TICK,
            "{bucket}"
        );
        assert!(deadline - end >= NEAR / 2 - TICK);
        assert!(!wheel.passed(bucket, end - Duration::from_millis(1)));
        assert!(wheel.passed(bucket, end));
    }

    #[tokio::test(start_paused = true)]
    async fn outboxes_are_woken_when_their_bucket_ends() {
        let wheel = Arc::new(Deadlines::default());
        let token = CancellationToken::new();
        tokio::spawn(wheel.clone().run(token.clone()));
        let soon = Arc::new(Outbox::new(1024));
        let later = Arc::new(Outbox::new(1024));
        let now = Instant::now();
        wheel.insert(wheel.bucket_for(now + Duration::from_secs(5)), &later);
        wheel.insert(wheel.bucket_for(now + Duration::from_secs(2)), &soon);
        soon.ready().await;
        assert!(Instant::now() < now + Duration::from_secs(2));
        assert!(Instant::now() >= now + Duration::from_secs(2) - NEAR);
        assert!(
            !std::future::poll_fn(|cx| std::task::Poll::Ready(later.poll_ready(cx).is_ready()))
                .await
        );
        later.ready().await;
        assert!(Instant::now() >= now + Duration::from_secs(5) - NEAR);
        token.cancel();
    }
}
