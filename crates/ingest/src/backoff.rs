//! Exponential backoff with jitter for reconnects.
//!
//! Each failure doubles the ceiling (from `initial` up to `max`); the delay
//! is drawn uniformly from `[ceiling/2, ceiling]` ("equal jitter"), so many
//! ingest processes restarted together do not reconnect in lockstep, and a
//! delay never collapses to zero. A successful connection resets it.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            ceiling: initial,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(self.max);
        let hi = ceiling.as_millis().max(1) as u64;
        let lo = hi / 2;
        Duration::from_millis(rand::rng().random_range(lo..=hi))
    }

    /// After a successful connection.
    pub fn reset(&mut self) {
        self.ceiling = self.initial;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(200), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<u64> = (0..6).map(|_| b.next_delay().as_millis() as u64).collect();
        assert!((50..=100).contains(&d[0]), "{d:?}");
        assert!((100..=200).contains(&d[1]), "{d:?}");
        assert!((200..=400).contains(&d[2]), "{d:?}");
        assert!((500..=1000).contains(&d[5]), "{d:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
