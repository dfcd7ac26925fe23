//! When to try a failed delivery again: exponential backoff (base × 2^(attempt−1), capped) with
//! jitter (a random point in the upper half of the delay), so receivers that come back are not hit
//! by every event at the same instant.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; then the event is marked failed.
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// The delay before attempt `attempts + 1`, after `attempts` failures; `None` when spent.
    pub fn next_delay(&self, attempts: u32) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let exponent = attempts.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(1u32 << exponent).min(self.cap);
        let half = full / 2;
        let jitter = Duration::from_nanos(fastrand::u64(0..=half.as_nanos().min(u64::MAX as u128) as u64));
        Some(half + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_and_cap_then_stop() {
        let policy = RetryPolicy { max_attempts: 6, base: Duration::from_millis(100), cap: Duration::from_secs(1) };
        for _ in 0..100 {
            for (attempts, full_ms) in [(1u32, 100u64), (2, 200), (3, 400), (4, 800), (5, 1000)] {
                let d = policy.next_delay(attempts).unwrap();
                assert!(
                    d >= Duration::from_millis(full_ms / 2) && d <= Duration::from_millis(full_ms),
                    "{attempts}: {d:?}"
                );
            }
        }
        assert_eq!(policy.next_delay(6), None);
    }
}
