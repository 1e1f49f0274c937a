//! Flood control: a token bucket per connection on input lines (or WebSocket
//! requests), shared by every front-end.
//!
//! Semantics, the same everywhere:
//! 1. A client may send `burst` inputs at once, then `rate` a second.
//! 2. Past its budget it is *slowed*: the server stops reading from it until a token
//!    comes back, so nothing is dropped and TCP backpressure slows the sender.
//! 3. A client that stays over its budget without a pause for `grace` is disconnected
//!    ("Excess Flood"). A paste of a few dozen lines is slowed, never cut; a client
//!    that keeps sending faster than the rate is cut.
//! 4. Keepalives (PING, PONG) may dip a few tokens below empty, so that a client's
//!    answer to a server ping is not held up behind its own budget.
//!
//! Time is passed in, never read here, so tests drive the bucket with any clock.

use std::time::Duration;

use tokio::time::Instant;

/// Tokens a keepalive may borrow below an empty bucket.
const KEEPALIVE_ALLOWANCE: u32 = 3;

/// The client stayed over its budget for the whole grace period.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Flooded;

/// One connection's input budget.
///
/// The bucket is kept as one instant, `full_at`: when it will be full again if nothing
/// more is taken (a generic cell rate algorithm). Taking a token moves it one interval
/// later; the bucket is empty when it lies `burst` intervals ahead of now. No division
/// and no floating point on the per-line path.
#[derive(Debug)]
pub(crate) struct FloodControl {
    /// Nanoseconds for one token to come back; zero when flood control is off. The
    /// settings are kept as small integers and the depths derived when needed: every
    /// connection carries this all its life.
    interval_ns: u32,
    /// Tokens the bucket holds: `full_at` may run `burst` intervals ahead of now with a
    /// token still left.
    burst: u32,
    /// How long a client may stay over its budget without a pause, in milliseconds.
    grace_ms: u32,
    full_at: Instant,
    /// Since when input has been waiting for budget with no pause in between.
    stalled_since: Option<Instant>,
}

impl FloodControl {
    /// A full bucket of `burst` tokens refilled at `rate` a second; a rate of zero turns
    /// flood control off.
    pub(crate) fn new(burst: u32, rate: u32, grace: Duration, now: Instant) -> FloodControl {
        FloodControl {
            // At least one a second, so at most 10^9: fits.
            interval_ns: 1_000_000_000u32.checked_div(rate).map_or(0, |ns| ns.max(1)),
            burst: burst.max(1),
            grace_ms: u32::try_from(grace.as_millis()).unwrap_or(u32::MAX),
            full_at: now,
            stalled_since: None,
        }
    }

    fn interval(&self) -> Option<Duration> {
        (self.interval_ns > 0).then(|| Duration::from_nanos(u64::from(self.interval_ns)))
    }

    /// `tokens` intervals.
    fn span(&self, tokens: u32) -> Duration {
        Duration::from_nanos(u64::from(self.interval_ns) * u64::from(tokens))
    }

    /// How far `full_at` may run ahead of now with a token still left.
    fn depth(&self) -> Duration {
        self.span(self.burst)
    }

    fn room(&self, now: Instant, depth: Duration) -> bool {
        match self.interval() {
            None => true,
            Some(interval) => self.full_at.saturating_duration_since(now) + interval <= depth,
        }
    }

    /// Whether an input may be taken now; `keepalive` inputs may borrow a little.
    pub(crate) fn allows(&self, now: Instant, keepalive: bool) -> bool {
        let depth = if keepalive {
            self.span(self.burst.saturating_add(KEEPALIVE_ALLOWANCE))
        } else {
            self.depth()
        };
        self.room(now, depth)
    }

    /// Spends one token on an input the caller was allowed to take. When half the
    /// budget is still left afterwards, the client has paused and is not flooding,
    /// whatever came before.
    pub(crate) fn take(&mut self, now: Instant) {
        let Some(interval) = self.interval() else {
            return;
        };
        self.full_at = self.full_at.max(now) + interval;
        // Only a real pause ends a stall: half the burst must have come back. Merely
        // having a token left is not enough, since a server that wakes a little late
        // for a flooder finds one, and the flooder would never be cut.
        if self.full_at.saturating_duration_since(now) <= self.depth() / 2 {
            self.stalled_since = None;
        }
    }

    /// When the next ordinary input will be allowed.
    pub(crate) fn ready_at(&self, now: Instant) -> Instant {
        match self.interval() {
            None => now,
            // `room` holds once `full_at - t + interval <= depth`.
            Some(interval) => match self.depth().checked_sub(interval) {
                Some(slack) => self.full_at.checked_sub(slack).map_or(now, |t| t.max(now)),
                None => self.full_at.max(now),
            },
        }
    }

    /// Input is waiting and the budget is spent: the client is being slowed. Fails once
    /// that has lasted the whole grace period without a pause.
    pub(crate) fn stall(&mut self, now: Instant) -> Result<(), Flooded> {
        let since = *self.stalled_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= Duration::from_millis(self.grace_ms.into()) {
            return Err(Flooded);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Takes inputs at `now` while allowed, returning how many.
    fn drain(flood: &mut FloodControl, now: Instant) -> usize {
        let mut n = 0;
        while flood.allows(now, false) {
            flood.take(now);
            n += 1;
        }
        n
    }

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let mut flood = FloodControl::new(3, 10, ms(5000), start);
        assert_eq!(drain(&mut flood, start), 3);
        assert_eq!(flood.ready_at(start), start + ms(100));
        assert!(!flood.allows(start + ms(99), false));
        assert_eq!(drain(&mut flood, start + ms(100)), 1);
        assert_eq!(drain(&mut flood, start + ms(150)), 0);
        assert_eq!(drain(&mut flood, start + ms(200)), 1);
        // A long pause refills to the burst and no further.
        assert_eq!(drain(&mut flood, start + ms(60_000)), 3);
    }

    #[test]
    fn keepalives_may_borrow_a_little() {
        let start = Instant::now();
        let mut flood = FloodControl::new(2, 1, ms(5000), start);
        assert_eq!(drain(&mut flood, start), 2);
        let mut borrowed = 0;
        while flood.allows(start, true) {
            flood.take(start);
            borrowed += 1;
        }
        assert_eq!(borrowed, KEEPALIVE_ALLOWANCE);
        // The debt is paid back before ordinary input flows again.
        assert!(!flood.allows(start + ms(3000), false));
        assert!(flood.allows(start + ms(4000), false));
    }

    #[test]
    fn a_flooder_served_late_is_still_cut() {
        // Burst 4 at 10 a second, grace 1 s; the server always wakes 150 ms late, so a
        // token or more is back each time, yet the client never pauses.
        let start = Instant::now();
        let mut flood = FloodControl::new(4, 10, ms(1000), start);
        let mut now = start;
        let mut cut = false;
        for _ in 0..100 {
            while flood.allows(now, false) {
                flood.take(now);
            }
            if flood.stall(now).is_err() {
                cut = true;
                break;
            }
            now = flood.ready_at(now) + ms(150);
        }
        assert!(cut, "a client that never pauses is cut");
    }

    #[test]
    fn a_sustained_flood_is_cut_after_the_grace_and_a_paste_is_not() {
        let start = Instant::now();
        // A flooder always has input waiting: it is slowed to the rate, then cut.
        let mut flood = FloodControl::new(5, 10, ms(1000), start);
        let mut now = start;
        let result = loop {
            drain(&mut flood, now);
            if let Err(e) = flood.stall(now) {
                break e;
            }
            now = flood.ready_at(now);
        };
        assert_eq!(result, Flooded);
        assert_eq!(now - start, ms(1000));

        // A paste: over budget for a while, then quiet; the next input, with budget to
        // spare, forgives the stall.
        let mut flood = FloodControl::new(5, 10, ms(1000), start);
        drain(&mut flood, start);
        assert!(flood.stall(start).is_ok());
        let later = start + ms(900);
        assert!(flood.allows(later, false));
        flood.take(later);
        assert!(flood.stall(start + ms(1500)).is_ok());
    }

    #[test]
    fn a_rate_of_zero_turns_it_off() {
        let start = Instant::now();
        let mut flood = FloodControl::new(1, 0, ms(10), start);
        for _ in 0..10_000 {
            assert!(flood.allows(start, false));
            flood.take(start);
        }
        assert_eq!(flood.ready_at(start), start);
    }
}
