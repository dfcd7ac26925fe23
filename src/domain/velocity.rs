//! Velocity windows: what moved through a balance in the last `window` (`debit_volume`,
//! `credit_volume`, `transaction_count` over `"1h"`, `"24h"`, …), rolling and exact.
//!
//! How it stays exact with bounded memory and O(1) amortized work: what moved through a balance
//! in a window is the difference of two of its running totals, now and at the window's start
//! (`debit_balance` for the debit volume, `credit_balance` for the credit volume, `version`, which
//! every movement bumps, for the count). So a velocity monitor keeps only the totals at its
//! window's start (`Velocity::base`). The totals at each instant come from checkpoints the engine
//! takes once per batch for each balance with a velocity monitor (`Checkpoint`); as the window's
//! start moves past the next checkpoint, the base rolls forward to the latest checkpoint at or
//! before it (`Velocity::needs_roll`, `Velocity::roll_to`). Each checkpoint is rolled past once,
//! and checkpoints no window reaches any more are deleted. Only the base is stored, and it changes
//! only when it rolls, so a monitor costs no write of its own while its window does not move. The
//! current batch costs nothing extra: the in-memory balance already holds the totals after every
//! earlier movement.
//!
//! Where checkpoints are kept, and why: a balance's latest ones ride on its own row, compactly
//! (`CheckpointLog`, each as the difference from the one before), because every batch that moves
//! the balance rewrites that row anyway; once they fill `LOG_BYTES`, they are stored as one chunk
//! of their own and the log starts again with the next one. A row of its own per checkpoint, keyed
//! by balance, put every checkpoint on a page of its own and doubled the pages each commit wrote
//! (see docs/performance.md); a chunk costs that page once per many checkpoints.
//!
//! Resolution: a movement belongs to the instant of its batch, in milliseconds of the engine's
//! clock; it counts while that instant is within the last `window` (`now - window < at <= now`),
//! and, in a window an update lengthened, after where the old window had reached (`Window::since_ms`).

use super::balance::Balance;
use num_bigint::BigInt;
use num_traits::ToPrimitive;
use std::fmt::Write;
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

/// How long a balance's checkpoint log grows on its row before it is stored as a chunk: every
/// batch that moves the balance writes the row with the log at its full width
/// (`store::codec::padded_log`), so the log is kept short, yet a chunk holds half a dozen or more.
/// 120 bytes beat 240 in three interleaved pairs out of three (1.02×, 1.07×, 1.08×; 60 bytes was
/// not clearly better than 120; docs/performance.md).
pub const LOG_BYTES: usize = 120;

/// A balance's checkpoints in order (each batch's later than the one before, versions rising),
/// kept as text: the first checkpoint's totals, then each as its difference from the one before
/// (`at_ms,debit,credit,version;…`), so half a dozen fit in about a hundred bytes. The balance's
/// latest ones (on its row, `Balance::checkpoints`) and a stored chunk are both such logs.
#[derive(Debug, Clone, Default)]
pub struct CheckpointLog {
    text: String,
    /// The last checkpoint, decoded: what the next one is written as a difference from.
    last: Option<Checkpoint>,
}

/// Two logs are the same log if their text is (the decoded last one follows from it).
impl PartialEq for CheckpointLog {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CheckpointLog {}

impl CheckpointLog {
    /// Reads a log written by `as_text`.
    pub fn parse(text: &str) -> Result<CheckpointLog, String> {
        let entries = decode(text)?;
        if entries.windows(2).any(|pair| pair[1].version <= pair[0].version) {
            return Err(format!("checkpoint log {text:?}: versions do not rise"));
        }
        Ok(CheckpointLog { text: text.to_string(), last: entries.into_iter().last() })
    }

    pub fn as_text(&self) -> &str {
        &self.text
    }

    /// Whether the log has reached `LOG_BYTES` and is to be stored as a chunk before the next
    /// checkpoint is appended (so a balance's log, once begun, always holds its latest).
    pub fn is_full(&self) -> bool {
        self.text.len() >= LOG_BYTES
    }

    pub fn last(&self) -> Option<&Checkpoint> {
        self.last.as_ref()
    }

    /// Appends `checkpoint`, which must be newer (a higher version) than the last one.
    pub fn push(&mut self, checkpoint: Checkpoint) {
        if !self.text.is_empty() {
            self.text.push(';');
        }
        let last = self.last.as_ref();
        if let Some(last) = last {
            assert!(checkpoint.version > last.version, "a checkpoint log's versions rise");
        }
        let at = checkpoint.at_ms - last.map_or(0, |l| l.at_ms);
        let version = checkpoint.version - last.map_or(0, |l| l.version);
        write!(self.text, "{at},").expect("writing to a String");
        write_difference(&mut self.text, &checkpoint.debit_balance, last.map(|l| &l.debit_balance));
        self.text.push(',');
        write_difference(&mut self.text, &checkpoint.credit_balance, last.map(|l| &l.credit_balance));
        write!(self.text, ",{version}").expect("writing to a String");
        self.last = Some(checkpoint);
    }

    /// The checkpoints, oldest first.
    pub fn entries(&self) -> Vec<Checkpoint> {
        decode(&self.text).expect("a log's text was written by push or checked by parse")
    }

    /// Empties the log, returning what it held.
    pub fn take(&mut self) -> CheckpointLog {
        std::mem::take(self)
    }
}

/// Writes `now - before` (or `now`): in 64 bits when both fit, as nearly every total does, since a
/// batch writes one per moved balance and BigInt's general arithmetic and formatting cost several
/// times more.
fn write_difference(text: &mut String, now: &BigInt, before: Option<&BigInt>) {
    let small = match before {
        None => now.to_i64(),
        Some(before) => now.to_i64().zip(before.to_i64()).and_then(|(now, before)| now.checked_sub(before)),
    };
    match small {
        Some(small) => text.push_str(itoa::Buffer::new().format(small)),
        None => {
            write!(text, "{}", before.map_or_else(|| now.clone(), |before| now - before)).expect("writing to a String")
        }
    }
}

fn decode(text: &str) -> Result<Vec<Checkpoint>, String> {
    let bad = || format!("checkpoint log {text:?}");
    let mut entries: Vec<Checkpoint> = Vec::new();
    for entry in text.split(';').filter(|_| !text.is_empty()) {
        let mut parts = entry.split(',');
        let mut next = || parts.next().ok_or_else(bad);
        let (at, debit, credit, version) = (next()?, next()?, next()?, next()?);
        let int = |t: &str| t.parse::<i64>().map_err(|_| bad());
        let amount = |t: &str| t.parse::<BigInt>().map_err(|_| bad());
        let mut checkpoint = Checkpoint {
            at_ms: int(at)?,
            debit_balance: amount(debit)?,
            credit_balance: amount(credit)?,
            version: int(version)?,
        };
        if let Some(last) = entries.last() {
            checkpoint.at_ms = checkpoint.at_ms.checked_add(last.at_ms).ok_or_else(bad)?;
            checkpoint.debit_balance += &last.debit_balance;
            checkpoint.credit_balance += &last.credit_balance;
            checkpoint.version = checkpoint.version.checked_add(last.version).ok_or_else(bad)?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        entries.push(checkpoint);
    }
    Ok(entries)
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
    /// Where the window may reach back to at most, when an update lengthened it: the old window's
    /// start at the update's instant, so the longer window carries on with what the old one counted
    /// and never takes back what had already left it. `None` once it cannot matter.
    pub since_ms: Option<i64>,
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
        Ok(Window { text: text.trim().to_string(), ms: length.as_millis() as i64, since_ms: None })
    }

    /// Where the window starts at `now_ms`: a movement counts if it is after this instant.
    pub fn start_at(&self, now_ms: i64) -> i64 {
        let start = now_ms - self.ms;
        self.since_ms.map_or(start, |since| since.max(start))
    }

    /// This window, replacing `old` at `now_ms` on the same balance: it carries on from where `old`
    /// had reached, never further back (a limit changed from 1h to 24h keeps what the hour counted,
    /// and does not count again what the hour had already let go).
    pub fn carrying_on_from(self, old: &Window, now_ms: i64) -> Window {
        let reached = old.start_at(now_ms);
        Window { since_ms: (reached > now_ms - self.ms).then_some(reached), ..self }
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
    /// read, `Window::start_at`): known from the hint, or else possible once the balance has moved
    /// since `base` and the window's start has reached `base`'s instant.
    pub fn needs_roll(&self, window: &Window, now_ms: i64, balance: &Balance) -> bool {
        let start = window.start_at(now_ms);
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
                debug_assert!(
                    latest.at_ms >= self.base.at_ms,
                    "a window's start only moves forward (M1: the clock never goes back)"
                );
                self.base = latest;
                true
            }
            None => false,
        }
    }

    /// `checkpoint` was taken, after the balance's checkpoint of `previous_version` (its latest
    /// before, when the log on its row holds one): when that one is not newer than `base` and the
    /// new one is, the new one is the first after the base. Otherwise an unknown hint stays
    /// unknown: a hint is lost when the balance is read again, and checkpoints taken since `base`
    /// may exist; and a window started after the batch's movements starts at the new one.
    pub fn checkpoint_written(&mut self, checkpoint: &Checkpoint, previous_version: Option<i64>) {
        let first_after_base = checkpoint.version > self.base.version
            && previous_version.is_some_and(|previous| previous <= self.base.version);
        if self.next_at_ms.is_none() && first_after_base {
            self.next_at_ms = Some(checkpoint.at_ms);
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
    fn a_lengthened_window_reaches_back_only_as_far_as_the_old_one_had() {
        let (hour, day) = (Window::parse("1h").unwrap(), Window::parse("24h").unwrap());
        let now = 10 * 24 * 3_600_000;
        let longer = day.clone().carrying_on_from(&hour, now);
        assert_eq!(longer.since_ms, Some(now - 3_600_000));
        assert_eq!(longer.start_at(now + 1_000), now - 3_600_000, "not the day before");
        assert_eq!(longer.start_at(now + 24 * 3_600_000), now, "a day on, the day's own start");
        // Shortened, or lengthened again before the floor mattered: only what still can.
        assert_eq!(hour.clone().carrying_on_from(&day, now).since_ms, None);
        let again = Window::parse("48h").unwrap().carrying_on_from(&longer, now + 1_000);
        assert_eq!(again.since_ms, Some(now - 3_600_000));
        assert_eq!(day.carrying_on_from(&longer, now + 24 * 3_600_000).since_ms, None);
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
        // Checkpoints written after an unknown one may not be the first after the base; one that
        // is the base (a window started after the batch's movements) is not after it.
        v.checkpoint_written(&Checkpoint::of(&balance(150, 40, 6), 1_500), Some(5));
        v.checkpoint_written(&Checkpoint::of(&balance(100, 40, 3), 1_500), Some(2));
        assert_eq!(v.next_at_ms, None);
        v.checkpoint_written(&Checkpoint::of(&balance(200, 50, 7), 2_000), Some(3));
        v.checkpoint_written(&Checkpoint::of(&balance(220, 50, 8), 3_000), Some(7));
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

    #[test]
    fn a_checkpoint_log_keeps_each_as_its_difference_and_reads_back_the_same() {
        let mut log = CheckpointLog::default();
        assert!(log.as_text().is_empty() && log.last().is_none() && log.entries().is_empty());
        let checkpoints = [
            Checkpoint::of(&balance(1_000_000, 5, 3), 1_733_000_000_000),
            Checkpoint::of(&balance(1_000_250, 5, 4), 1_733_000_000_042),
            Checkpoint::of(&balance(1_000_250, 90, 9), 1_733_000_000_042),
        ];
        for checkpoint in checkpoints.clone() {
            log.push(checkpoint);
        }
        assert_eq!(log.as_text(), "1733000000000,1000000,5,3;42,250,0,1;0,0,85,5");
        assert_eq!(log.entries(), checkpoints);
        assert_eq!(log.last(), checkpoints.last());
        let read = CheckpointLog::parse(log.as_text()).unwrap();
        assert_eq!(read, log);
        assert_eq!(read.last(), checkpoints.last(), "the next push continues from the decoded last one");
        assert_eq!(CheckpointLog::parse("").unwrap(), CheckpointLog::default());
        // Amounts beyond 64 bits, as any total may be.
        let mut big = CheckpointLog::default();
        let huge: BigInt = "123456789012345678901234567890".parse().unwrap();
        let mut b = balance(0, 0, 1);
        b.debit_balance = huge.clone();
        big.push(Checkpoint::of(&b, 7));
        b.debit_balance = &huge * 2;
        b.version = 2;
        big.push(Checkpoint::of(&b, 8));
        assert_eq!(CheckpointLog::parse(big.as_text()).unwrap().entries()[1].debit_balance, &huge * 2);
        for bad in [
            "x",
            "1,2,3",
            "1,2,3,4,5",
            "1,2,3,4;",
            "1,2,3,4;0,0,0,0",
            "1,2,3,4;0,0,0,-1",
            "9223372036854775807,0,0,1;1,0,0,1",
        ] {
            assert!(CheckpointLog::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_checkpoint_log_is_full_after_about_a_hundred_bytes() {
        let mut log = CheckpointLog::default();
        let mut pushed = 0;
        while !log.is_full() {
            pushed += 1;
            log.push(Checkpoint::of(
                &balance(pushed * 10_000, pushed * 7_500, pushed),
                1_733_000_000_000 + pushed * 40,
            ));
        }
        assert!(pushed >= 6, "a chunk holds half a dozen or more typical checkpoints, not {pushed}");
        assert!(log.as_text().len() < LOG_BYTES + 64);
        assert_eq!(log.take().entries().len() as i64, pushed);
        assert!(log.as_text().is_empty());
    }
}
