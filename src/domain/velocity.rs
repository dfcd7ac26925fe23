//! Velocity windows: what moved through a balance in the last `window` (`debit_volume`,
//! `credit_volume`, `transaction_count` over `"1h"`, `"24h"`, …), rolling and exact.
//!
//! How it stays exact with bounded memory and O(1) amortized work: what moved through a balance
//! in a window is the difference of two of its running totals, now and at the window's start
//! (`debit_balance` for the debit volume, `credit_balance` for the credit volume, `version`, which
//! every movement bumps, for the count). So a velocity monitor keeps only the totals at its
//! window's start (`Velocity::base`). The totals at each instant come from checkpoints the engine
//! writes once per batch for each balance with a velocity monitor (`Checkpoint`); as the window's
//! start moves past the next checkpoint, the base rolls forward to the latest checkpoint at or
//! before it (`Velocity::needs_roll`, `Velocity::roll_to`). Each checkpoint is rolled past once,
//! and checkpoints no window reaches any more are deleted. Only the base is stored, and it changes
//! only when it rolls, so a monitor costs no write of its own while its window does not move. The
//! current batch costs nothing extra: the in-memory balance already holds the totals after every
//! earlier movement.
//!
//! Resolution: a movement belongs to the instant of its batch, in milliseconds of the engine's
//! clock; it counts while that instant is within the last `window` (`now - window < at <= now`).

use super::balance::Balance;
use num_bigint::BigInt;
use std::time::Duration;

/// The longest window: a year and a day, so a checkpoint's age fits any clock.
const LONGEST_MS: i64 = 366 * 24 * 3600 * 1000;

/// A balance's running totals at one instant: what a window's start is measured from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Milliseconds since the epoch, of the batch whose totals these are.
    pub at_ms: i64,
    pub debit_balance: BigInt,
    pub credit_balance: BigInt,
    pub version: i64,
}

impl Checkpoint {
    /// `balance`'s totals as they stand, at `at_ms`.
    pub fn of(balance: &Balance, at_ms: i64) -> Checkpoint {
        Checkpoint {
            at_ms,
            debit_balance: balance.debit_balance.clone(),
            credit_balance: balance.credit_balance.clone(),
            version: balance.version,
        }
    }
}

/// What a velocity monitor measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    DebitVolume,
    CreditVolume,
    TransactionCount,
}

/// A window's length, as the client wrote it (`"24h"`, read back unchanged) and in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub text: String,
    pub ms: i64,
}

impl Window {
    /// Parses a window (`"90s"`, `"15m"`, `"1h"`, `"24h"`, `"7d"`): whole milliseconds, at least a
    /// second, at most 366 days.
    pub fn parse(text: &str) -> Result<Window, String> {
        let length = humantime::parse_duration(text.trim())
            .map_err(|e| format!("window {text:?} is not a duration such as \"1h\" or \"24h\": {e}"))?;
        if length < Duration::from_secs(1) || length.as_millis() > LONGEST_MS as u128 {
            return Err(format!("window {text:?} must be between 1s and 366d"));
        }
        if length.subsec_nanos() % 1_000_000 != 0 {
            return Err(format!("window {text:?} must be whole milliseconds"));
        }
        Ok(Window { text: text.trim().to_string(), ms: length.as_millis() as i64 })
    }
}

/// A velocity monitor's state: the balance's totals at its window's start.
#[derive(Debug, Clone, Eq)]
pub struct Velocity {
    /// The balance's totals at the window's start (its `at_ms` is when they were taken). The only
    /// part stored: it changes only when the window's start rolls past a checkpoint.
    pub base: Checkpoint,
    /// In memory only, a hint: the instant of the first checkpoint after `base`, once known, so that
    /// until the window's start passes it nothing needs reading. Unknown after a load; then the
    /// balance's `version` says whether there is such a checkpoint at all (every batch that moved
    /// it since `base` wrote one), and one read finds it.
    pub next_at_ms: Option<i64>,
}

/// Two states are the same state whatever each knows of the next checkpoint (the cache's copy and
/// the stored row compare equal, C1).
impl PartialEq for Velocity {
    fn eq(&self, other: &Self) -> bool {
        self.base == other.base
    }
}

impl Velocity {
    /// A window that starts now, on `balance` as it stands: nothing has moved in it yet.
    pub fn starting(balance: &Balance, now_ms: i64) -> Velocity {
        Velocity { base: Checkpoint::of(balance, now_ms), next_at_ms: None }
    }

    /// What moved through `balance` (as it stands now) within the window.
    pub fn measure(&self, measure: Measure, balance: &Balance) -> BigInt {
        match measure {
            Measure::DebitVolume => &balance.debit_balance - &self.base.debit_balance,
            Measure::CreditVolume => &balance.credit_balance - &self.base.credit_balance,
            Measure::TransactionCount => BigInt::from(balance.version - self.base.version),
        }
    }

    /// Whether a checkpoint newer than `base` may have fallen out of `window` at `now_ms`, on
    /// `balance` as loaded (then the latest checkpoint at or before the window's start must be
    /// read, `now - window`): known from the hint, or else possible once the balance has moved
    /// since `base` and the window's start has reached `base`'s instant.
    pub fn needs_roll(&self, window: &Window, now_ms: i64, balance: &Balance) -> bool {
        let start = now_ms - window.ms;
        match self.next_at_ms {
            Some(next) => next <= start,
            None => balance.version > self.base.version && self.base.at_ms <= start,
        }
    }

    /// Moves the base to `latest` (the latest checkpoint at or before the window's start, if
    /// any) when that one is newer, and remembers `next_at_ms`, the first one after the start.
    /// True if the base moved (the state to store changed).
    pub fn roll_to(&mut self, latest: Option<Checkpoint>, next_at_ms: Option<i64>) -> bool {
        self.next_at_ms = next_at_ms;
        // Checkpoints of one balance grow in `version` as in time; one at `base`'s own instant with
        // a higher version holds what that batch moved after `base` was taken.
        match latest.filter(|latest| latest.version > self.base.version) {
            Some(latest) => {
                debug_assert!(latest.at_ms >= self.base.at_ms, "a window's start only moves forward");
                self.base = latest;
                true
            }
            None => false,
        }
    }

    /// A checkpoint was written at `at_ms`: if none after `base` was known, that one is next.
    pub fn checkpoint_written(&mut self, at_ms: i64) {
        if self.next_at_ms.is_none() && at_ms >= self.base.at_ms {
            self.next_at_ms = Some(at_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balance(debit: i64, credit: i64, version: i64) -> Balance {
        let mut b = Balance::new("bln".into(), "ldg".into(), "USD".into(), "t".into());
        (b.debit_balance, b.credit_balance, b.version) = (debit.into(), credit.into(), version);
        b
    }

    #[test]
    fn windows_parse_as_durations_within_bounds() {
        let ms = |text: &str| Window::parse(text).map(|w| w.ms);
        assert_eq!(ms("1h"), Ok(3_600_000));
        assert_eq!(ms("24h"), Ok(86_400_000));
        assert_eq!(ms("7d"), Ok(7 * 86_400_000));
        assert_eq!(ms(" 90s"), Ok(90_000));
        assert_eq!(Window::parse(" 90s ").unwrap().text, "90s");
        for bad in ["", "abc", "500ms", "0s", "367d", "1.5us", "-1h"] {
            assert!(Window::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn what_moved_in_the_window_is_the_difference_of_two_totals() {
        let hour = Window::parse("1h").unwrap();
        let mut v = Velocity::starting(&balance(100, 40, 3), 1_000);
        let now = balance(250, 70, 9);
        assert_eq!(v.measure(Measure::DebitVolume, &now), BigInt::from(150));
        assert_eq!(v.measure(Measure::CreditVolume, &now), BigInt::from(30));
        assert_eq!(v.measure(Measure::TransactionCount, &now), BigInt::from(6));
        // Nothing known of later checkpoints: the balance moved, so one must be read once the
        // window's start reaches the base's instant, not before.
        assert!(!v.needs_roll(&hour, 3_600_999, &now));
        assert!(v.needs_roll(&hour, 3_601_000, &now));
        assert!(!v.needs_roll(&hour, 3_601_000, &balance(100, 40, 3)), "it has not moved since");
        // A checkpoint at 2,000 (totals after that batch) becomes the base once it leaves the window.
        v.checkpoint_written(2_000);
        v.checkpoint_written(3_000);
        assert_eq!(v.next_at_ms, Some(2_000), "the first one after the base is remembered");
        assert!(!v.needs_roll(&hour, 3_601_999, &now));
        assert!(v.needs_roll(&hour, 3_602_000, &now));
        assert!(v.roll_to(Some(Checkpoint::of(&balance(200, 50, 7), 2_000)), Some(3_000)));
        assert_eq!(v.measure(Measure::DebitVolume, &now), BigInt::from(50));
        assert_eq!(v.measure(Measure::TransactionCount, &now), BigInt::from(2));
        assert!(!v.needs_roll(&hour, 3_602_999, &now) && v.needs_roll(&hour, 3_603_000, &now));
        // Only a newer checkpoint moves the base; the hint is kept either way.
        assert!(!v.roll_to(Some(Checkpoint::of(&balance(200, 50, 7), 2_000)), Some(9_000)));
        assert_eq!(v.next_at_ms, Some(9_000));
        // The hint is memory, not state.
        let mut other = v.clone();
        other.next_at_ms = None;
        assert_eq!(v, other);
    }
}
