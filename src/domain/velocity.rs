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
//! and checkpoints no window reaches any more are deleted. The count in the current batch costs
//! nothing extra: the in-memory balance already holds the totals after every earlier movement.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Velocity {
    /// The balance's totals at the window's start (its `at_ms` is when they were taken).
    pub base: Checkpoint,
    /// The instant of the first checkpoint after `base`, if one was written: until the window's
    /// start passes it, `base` is still the right one and nothing needs reading.
    pub next_at_ms: Option<i64>,
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

    /// Whether a checkpoint newer than `base` has fallen out of `window` at `now_ms` (then the
    /// base must roll forward to the latest one at or before the window's start, `now - window`).
    pub fn needs_roll(&self, window: &Window, now_ms: i64) -> bool {
        self.next_at_ms.is_some_and(|next| next <= now_ms - window.ms)
    }

    /// Rolls the base forward to `latest` (the latest checkpoint at or before the window's start),
    /// with `next_at_ms` the instant of the one after it, if any.
    pub fn roll_to(&mut self, latest: Checkpoint, next_at_ms: Option<i64>) {
        debug_assert!(latest.at_ms >= self.base.at_ms, "a window's start only moves forward");
        self.base = latest;
        self.next_at_ms = next_at_ms;
    }

    /// A checkpoint was written at `at_ms`: if the base had none after it, that one is next.
    /// True if the state changed.
    pub fn checkpoint_written(&mut self, at_ms: i64) -> bool {
        if self.next_at_ms.is_none() && at_ms >= self.base.at_ms {
            self.next_at_ms = Some(at_ms);
            return true;
        }
        false
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
        // A checkpoint at 2,000 (totals after that batch) becomes the base once it leaves the window.
        assert!(v.checkpoint_written(2_000));
        assert!(!v.checkpoint_written(3_000), "only the first one after the base is remembered");
        assert!(!v.needs_roll(&hour, 3_601_999));
        assert!(v.needs_roll(&hour, 3_602_000));
        v.roll_to(Checkpoint::of(&balance(200, 50, 7), 2_000), Some(3_000));
        assert_eq!(v.measure(Measure::DebitVolume, &now), BigInt::from(50));
        assert_eq!(v.measure(Measure::TransactionCount, &now), BigInt::from(2));
        assert!(!v.needs_roll(&hour, 3_602_999) && v.needs_roll(&hour, 3_603_000));
    }
}
