//! Balance snapshots: a balance's settled totals at the start of a UTC day, so that what a balance
//! was at an instant is read from the latest snapshot before it plus the few transactions since
//! (`GET /balances/{id}/at`), never by replaying the balance's whole log.
//!
//! A snapshot at instant `at` holds the sums of the balance's `APPLIED` transactions whose
//! effective instant (`effective_date`, else `created_at`) is before `at` (invariant H1). Snapshots
//! are taken at the start of each day after one on which the balance moved (and within a busy day
//! after every [`DENSE`] transactions), up to the start of the current day less [`SETTLING_MS`]:
//! rows written later with an effective instant before a snapshot (a backdated `effective_date`, a
//! queued transaction applied late) bring it up to date in their own commit
//! (`Writes::insert_transaction`).

use num_bigint::BigInt;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A day is snapshotted only this long after it started: a transaction without `effective_date`
/// takes its batch's instant, so a process whose clock is up to half this behind another's still
/// never writes one before a snapshot the other took.
pub const SETTLING_MS: i64 = 10 * 60 * 1000;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A balance's settled totals just before `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct BalanceSnapshot {
    pub balance_id: String,
    /// RFC 3339 in UTC, microseconds: the start of a day.
    pub at: String,
    pub credit_balance: BigInt,
    pub debit_balance: BigInt,
}

/// The latest day boundary a snapshot may be taken at, at `now_ms` (milliseconds since the epoch).
pub fn horizon(now_ms: i64) -> String {
    day_start((now_ms - SETTLING_MS).div_euclid(DAY_MS) * DAY_MS)
}

/// The instant `ms` as rows write it (RFC 3339, microseconds, UTC); the epoch for anything before it.
fn day_start(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_micros(at).to_string()
}

/// The start of the day after `day` (`YYYY-MM-DD`, as an instant's first ten characters); `None`
/// for what is not such a day or lies before 1970 (not snapshotted: read from the transactions).
pub fn day_after(day: &str) -> Option<String> {
    after(&format!("{day}T00:00:00Z"), DAY_MS)
}

/// The start of the minute after `minute` (`YYYY-MM-DDTHH:MM`, an instant's first 16 characters).
fn minute_after(minute: &str) -> Option<String> {
    after(&format!("{minute}:00Z"), 60_000)
}

fn after(instant: &str, ms: i64) -> Option<String> {
    let at = humantime::parse_rfc3339(instant).ok()?;
    let since_epoch = at.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64;
    Some(day_start(since_epoch + ms))
}

/// One past `at` (RFC 3339, microseconds): "up to and including `at`" as an exclusive bound.
pub fn just_after(at: SystemTime) -> SystemTime {
    at + Duration::from_micros(1)
}

/// What moved a balance's way in one minute: the minute (`YYYY-MM-DDTHH:MM`), the sum, how many
/// transactions.
pub type Minute = (String, BigInt, u64);

/// The snapshots a balance needs after `start` (its latest snapshot, or nothing before its first),
/// below `horizon`, from its settled credits and debits per minute since `start.at`: one at the
/// start of each day following a day it moved on, and one at the start of the minute after every
/// [`DENSE`] transactions since the last, so a read sums at most that many and one minute's.
pub fn following(
    start: &BalanceSnapshot,
    credits: &[Minute],
    debits: &[Minute],
    horizon: &str,
) -> Vec<BalanceSnapshot> {
    let mut minutes: BTreeMap<&str, (BigInt, BigInt, u64)> = BTreeMap::new();
    for (minute, amount, count) in credits {
        let entry = minutes.entry(minute).or_default();
        entry.0 += amount;
        entry.2 += count;
    }
    for (minute, amount, count) in debits {
        let entry = minutes.entry(minute).or_default();
        entry.1 += amount;
        entry.2 += count;
    }
    let (mut credit, mut debit, mut since) = (start.credit_balance.clone(), start.debit_balance.clone(), 0);
    let mut taken: Vec<BalanceSnapshot> = Vec::new();
    let mut moved = minutes.into_iter().peekable();
    while let Some((minute, (credited, debited, count))) = moved.next() {
        credit += credited;
        debit += debited;
        since += count;
        let day_ends = moved.peek().is_none_or(|(next, _)| next[..10] != minute[..10]);
        let at = match (day_ends, since >= DENSE) {
            (true, _) => day_after(&minute[..10]),
            (false, true) => minute_after(minute),
            (false, false) => None,
        };
        match at {
            Some(at) if at.as_str() <= horizon && at > start.at => {
                since = 0;
                taken.push(BalanceSnapshot {
                    balance_id: start.balance_id.clone(),
                    at,
                    credit_balance: credit.clone(),
                    debit_balance: debit.clone(),
                })
            }
            _ => {}
        }
    }
    taken
}

/// Transactions a read sums at most beyond one minute's (see `following`).
pub const DENSE: u64 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(at: &str, credit: i64, debit: i64) -> BalanceSnapshot {
        BalanceSnapshot {
            balance_id: "b".into(),
            at: at.into(),
            credit_balance: credit.into(),
            debit_balance: debit.into(),
        }
    }

    #[test]
    fn the_horizon_is_the_start_of_the_day_once_it_has_settled() {
        let midnight = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        assert_eq!(horizon(midnight + SETTLING_MS + 1), "2026-01-01T00:00:00.000000Z");
        assert_eq!(horizon(midnight + SETTLING_MS - 1), "2025-12-31T00:00:00.000000Z");
        assert_eq!(day_after("2025-12-31").as_deref(), Some("2026-01-01T00:00:00.000000Z"));
        assert_eq!(day_after("1969-12-31"), None);
        assert_eq!(day_after("nonsense"), None);
    }

    #[test]
    fn each_day_moved_on_gets_a_snapshot_at_the_next_days_start_with_running_totals() {
        let start = snapshot("2026-01-02T00:00:00.000000Z", 100, 10);
        let minute = |m: &str, amount: i64| (m.to_string(), BigInt::from(amount), 1);
        let credits = [minute("2026-01-02T10:00", 5), minute("2026-01-04T09:30", 7)];
        let debits = [minute("2026-01-04T23:59", 3), minute("2026-01-05T00:01", 1)];
        let taken = following(&start, &credits, &debits, "2026-01-05T00:00:00.000000Z");
        assert_eq!(
            taken,
            vec![snapshot("2026-01-03T00:00:00.000000Z", 105, 10), snapshot("2026-01-05T00:00:00.000000Z", 112, 13)],
            "the 5th's movements are past the horizon: its snapshot would be the 6th's"
        );
    }

    #[test]
    fn a_busy_day_gets_a_snapshot_after_every_dense_run_of_transactions() {
        let start = snapshot("", 0, 0);
        let credits: Vec<Minute> =
            (0..5).map(|h| (format!("2026-01-02T0{h}:00"), BigInt::from(1), DENSE / 2)).collect();
        let taken = following(&start, &credits, &[], "2026-01-10T00:00:00.000000Z");
        let at: Vec<(&str, i64)> =
            taken.iter().map(|s| (s.at.as_str(), i64::try_from(&s.credit_balance).unwrap())).collect();
        assert_eq!(
            at,
            vec![
                ("2026-01-02T01:01:00.000000Z", 2),
                ("2026-01-02T03:01:00.000000Z", 4),
                ("2026-01-03T00:00:00.000000Z", 5)
            ]
        );
    }
}
