//! The engine's clock: the instant each batch is stamped with (rows' `created_at`, delivery times,
//! velocity windows, what is due). The system clock in production; a clock a test moves by hand
//! (`Clock::manual`), so windows can be made to cross their boundaries without waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Copy, so it rides in every batch's configuration; a manual clock's time lives for the process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    /// Milliseconds since the epoch, when set by hand.
    manual: Option<&'static AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands at `start_ms` (milliseconds since the epoch) until moved. For tests: each
    /// one leaks a few bytes, for the life of the process.
    pub fn manual(start_ms: i64) -> Clock {
        Clock { manual: Some(Box::leak(Box::new(AtomicI64::new(start_ms)))) }
    }

    /// Moves a manual clock forward by `ms` (a no-op on the system clock).
    pub fn advance(&self, ms: i64) {
        if let Some(at) = self.manual {
            at.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Now: RFC 3339 (microseconds, UTC) for rows, milliseconds since the epoch for computing.
    pub fn now(&self) -> (String, i64) {
        let instant = match self.manual {
            Some(at) => UNIX_EPOCH + Duration::from_millis(at.load(Ordering::SeqCst).max(0) as u64),
            None => SystemTime::now(),
        };
        let ms = instant.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        (humantime::format_rfc3339_micros(instant).to_string(), ms)
    }
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
}
