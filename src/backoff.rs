//! One exponential backoff with jitter, capped: broker reconnects, FHIR
//! retries and workers stalled by an unreachable sink all wait this way.

use std::time::Duration;

use rand::Rng;

/// Waits that double from `initial` up to `max`; each wait is drawn at
/// random from [d/2, d] ("equal jitter"), so replicas and workers that fail
/// together do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(initial);
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The longest the next wait can be.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// The next wait; the one after it may be twice as long.
    pub fn next_wait(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        let half = d / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// Back to the first wait (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_within_their_jitter_and_reset() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(700));
        for nominal in [100, 200, 400, 700, 700] {
            assert_eq!(b.peek(), ms(nominal));
            let w = b.next_wait();
            assert!(
                w >= ms(nominal) / 2 && w <= ms(nominal),
                "{w:?} for {nominal}"
            );
        }
        b.reset();
        assert_eq!(b.peek(), ms(100));
        // Jitter: not every wait is the longest.
        let mut b = Backoff::new(ms(1000), ms(1000));
        assert!((0..50).any(|_| b.next_wait() < ms(1000)));
        // A cap under the first wait is the first wait.
        assert_eq!(Backoff::new(ms(300), ms(10)).peek(), ms(300));
        let mut b = Backoff::new(ms(300), ms(10));
        b.next_wait();
        assert_eq!(b.peek(), ms(300));
    }
}
