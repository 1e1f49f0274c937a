//! Round-trip time estimation and the retransmission timeout, after RFC 6298.
//!
//! Two departures from the RFC. The floor is 50 ms instead of 1 s: the RFC's floor guards
//! against acknowledgements delayed on purpose, and confab never delays them, so the
//! floor only has to cover scheduling jitter; on a LAN a lost message then costs tens of
//! milliseconds, not a second. And the backed-off timeout is capped at 4 s instead of
//! 60 s, so that a friend who comes back is noticed soon.

use std::time::Duration;

/// The timeout before any sample, from RFC 6298 (2.1).
const INITIAL: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_millis(50);
const MAX: Duration = Duration::from_secs(4);
/// The clock granularity `G` of the RFC; `Instant` is much finer, so this is a floor on
/// the variance term.
const GRANULARITY: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct Rtt {
    srtt: Option<Duration>,
    rttvar: Duration,
    /// How many times the timeout has doubled since the last fresh sample.
    backoff: u32,
}

impl Default for Rtt {
    fn default() -> Self {
        Rtt {
            srtt: None,
            rttvar: Duration::ZERO,
            backoff: 0,
        }
    }
}

impl Rtt {
    /// Takes a measurement from a chunk sent exactly once (Karn's rule is the caller's).
    pub fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        self.backoff = 0;
    }

    /// The smoothed round-trip time, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The current retransmission timeout, backoff included.
    pub fn rto(&self) -> Duration {
        let base = match self.srtt {
            None => INITIAL,
            Some(srtt) => srtt + (self.rttvar * 4).max(GRANULARITY),
        };
        let backed = base.saturating_mul(1u32 << self.backoff.min(8));
        backed.clamp(MIN, MAX)
    }

    /// Doubles the timeout after it expired (RFC 6298, 5.5).
    pub fn back_off(&mut self) {
        if self.rto() < MAX {
            self.backoff = self.backoff.saturating_add(1);
        }
    }
}
