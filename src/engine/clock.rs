//! The engine's clock: the instant each batch is stamped with (rows' `created_at`, delivery times,
//! velocity windows, what is due). The system clock in production; a clock a test moves by hand
//! (`Clock::manual`), so windows can be made to cross their boundaries without waiting.
//!
//! It never goes back (invariant **M1**, docs/invariants.md): an instant it hands out is never
//! before one it handed out already, nor before a stamp it was told is stored (`not_before_ms`:
//! the latest transaction's at start, the latest checkpoint of each balance a batch holds). A
//! system clock steps back — NTP corrects it, a virtual machine resumes from a snapshot, another
//! process's clock runs ahead — and a velocity window whose start moved back would count what
//! moved before it (G2). While the clock is behind, stamps stand still at the floor.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The farthest ahead of the clock a stored stamp may be and still hold it back. A stamp further
/// ahead is a clock set wrong somewhere (or a hand edit): following it would stop time here.
pub const LARGEST_STEP_BACK_MS: i64 = 24 * 3_600_000;

/// When a stored stamp too far ahead was last logged (milliseconds since the epoch).
static LAST_WARNED_MS: AtomicI64 = AtomicI64::new(i64::MIN / 2);

/// The system clock's floor, in microseconds since the epoch: one per process.
static SYSTEM_FLOOR: AtomicI64 = AtomicI64::new(0);

/// Copy, so it rides in every batch's configuration; a manual clock's time lives for the process.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Milliseconds since the epoch, when set by hand.
    manual: Option<&'static AtomicI64>,
    /// The latest instant handed out or known stored, in microseconds since the epoch.
    floor: &'static AtomicI64,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { manual: None, floor: &SYSTEM_FLOOR }
    }

    /// A clock that stands at `start_ms` (milliseconds since the epoch) until moved. For tests: each
    /// one leaks a few bytes, for the life of the process.
    pub fn manual(start_ms: i64) -> Clock {
        Clock {
            manual: Some(Box::leak(Box::new(AtomicI64::new(start_ms)))),
            floor: Box::leak(Box::new(AtomicI64::new(0))),
        }
    }

    /// Moves a manual clock by `ms`, back if negative, as a system clock may be (a no-op on the
    /// system clock).
    pub fn advance(&self, ms: i64) {
        if let Some(at) = self.manual {
            at.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Now: RFC 3339 (microseconds, UTC) for rows, milliseconds since the epoch for computing.
    /// Never before an instant handed out or known stored (M1).
    pub fn now(&self) -> (String, i64) {
        let source = self.source_micros();
        let micros = self.floor.fetch_max(source, Ordering::SeqCst).max(source);
        let instant = UNIX_EPOCH + Duration::from_micros(micros.max(0) as u64);
        (humantime::format_rfc3339_micros(instant).to_string(), micros / 1_000)
    }

    /// A stamp at `ms` (milliseconds since the epoch) is stored: no later `now` is before it,
    /// unless it is more than `LARGEST_STEP_BACK_MS` ahead of the clock (then it is logged and
    /// not followed). True if followed.
    pub fn not_before_ms(&self, ms: i64) -> bool {
        let source_ms = self.source_micros() / 1_000;
        if ms > source_ms.saturating_add(LARGEST_STEP_BACK_MS) {
            // Once a minute at most: a balance with such a checkpoint meets every batch on it.
            let warned = LAST_WARNED_MS.load(Ordering::Relaxed);
            if source_ms - warned < 60_000 || LAST_WARNED_MS.swap(source_ms, Ordering::Relaxed) != warned {
                return false;
            }
            tracing::warn!(
                stored_ms = ms,
                clock_ms = source_ms,
                "a stored stamp is more than a day ahead of this machine's clock: check the clocks; \
                 it is not followed"
            );
            return false;
        }
        self.floor.fetch_max(ms.saturating_mul(1_000), Ordering::SeqCst);
        true
    }

    /// The source's own reading (the system clock, or the manual one), in microseconds.
    fn source_micros(&self) -> i64 {
        match self.manual {
            Some(at) => at.load(Ordering::SeqCst).max(0).saturating_mul(1_000),
            None => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64),
        }
    }
}

/// Milliseconds since the epoch of an RFC 3339 stamp as Keel writes them; `None` if it is not one.
pub fn stamp_ms(stamp: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339(stamp).ok()?;
    Some(at.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_moved() {
        let clock = Clock::manual(1_700_000_000_000);
        assert_eq!(clock.now(), ("2023-11-14T22:13:20.000000Z".to_string(), 1_700_000_000_000));
        clock.advance(1_500);
        assert_eq!(clock.now().1, 1_700_000_001_500);
        let system = Clock::system().now().1;
        assert!(system > 1_700_000_000_000);
    }

    #[test]
    fn the_clock_never_goes_back() {
        let clock = Clock::manual(1_700_000_000_000);
        clock.advance(1_500);
        assert_eq!(clock.now().1, 1_700_000_001_500);
        clock.advance(-1_000);
        assert_eq!(clock.now().1, 1_700_000_001_500, "M1: stepped back, it stands at the floor");
        clock.advance(2_000);
        assert_eq!(clock.now().1, 1_700_000_002_500, "and goes on once the clock passes it");
        assert!(clock.not_before_ms(1_700_000_010_000));
        assert_eq!(clock.now().1, 1_700_000_010_000, "a stored stamp ahead holds it back");
        assert!(!clock.not_before_ms(1_700_000_010_000 + LARGEST_STEP_BACK_MS), "not one a day ahead");
        assert_eq!(clock.now().1, 1_700_000_010_000);
        assert_eq!(stamp_ms(&clock.now().0), Some(1_700_000_010_000));
        assert_eq!(stamp_ms("not a stamp"), None);
    }
}
