//! `keel check`: verifies the ledger's invariants over the whole database, from one consistent
//! snapshot, and reports every balance that does not match its transactions:
//! - each balance's four totals equal the replay of the transaction log (`domain::replay`, R1);
//! - no stored total is negative (invariant B1);
//! - per currency, `balance` and `inflight_balance` sum to zero (double entry, D1);
//! - every balance a transaction names exists;
//! - every balance snapshot equals its balance's transactions effective before it (H1).

use crate::domain::replay::{Replay, Totals};
use crate::store::{Page, Store, StoreResult};
use num_bigint::BigInt;
use num_traits::{Signed, Zero};
use std::collections::{BTreeMap, HashSet};

const PAGE: u32 = 1000;
/// A progress line every this many rows.
const PROGRESS_EVERY: u64 = 100_000;

#[derive(Debug, Default)]
pub struct Report {
    pub transactions: u64,
    pub balances: u64,
    pub snapshots: u64,
    pub problems: Vec<String>,
}

pub fn run(store: &dyn Store, progress: &mut dyn FnMut(String)) -> StoreResult<Report> {
    let mut report = Report::default();
    store.read_consistent(&mut |reader| {
        report = Report::default();
        let mut replay = Replay::default();
        loop {
            let page = reader.transactions(Page::first(PAGE, replay.transactions))?;
            for t in &page {
                replay.apply(t);
                if replay.transactions % PROGRESS_EVERY == 0 {
                    progress(format!("replayed {} transactions", replay.transactions));
                }
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        report.transactions = replay.transactions;

        let mut sums: BTreeMap<String, (BigInt, BigInt)> = BTreeMap::new();
        let mut seen = HashSet::new();
        loop {
            let page = reader.balances(Page::first(PAGE, report.balances))?;
            for b in &page {
                report.balances += 1;
                if report.balances % PROGRESS_EVERY == 0 {
                    progress(format!("checked {} balances", report.balances));
                }
                let stored = Totals::of(b);
                let expected = replay.expected(&b.id);
                if stored != expected {
                    report.problems.push(format!(
                        "balance {} ({}): stored credit {} debit {} inflight credit {} inflight debit {}, \
                         but its transactions give {} {} {} {}",
                        b.id,
                        b.currency,
                        stored.credit,
                        stored.debit,
                        stored.inflight_credit,
                        stored.inflight_debit,
                        expected.credit,
                        expected.debit,
                        expected.inflight_credit,
                        expected.inflight_debit
                    ));
                }
                if [&stored.credit, &stored.debit, &stored.inflight_credit, &stored.inflight_debit]
                    .iter()
                    .any(|v| v.is_negative())
                {
                    report.problems.push(format!("balance {}: a stored total is negative", b.id));
                }
                let sum = sums.entry(b.currency.clone()).or_default();
                sum.0 += b.balance();
                sum.1 += b.inflight_balance();
                seen.insert(b.id.clone());
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        for id in replay.balance_ids().filter(|id| !seen.contains(*id)) {
            report.problems.push(format!("transactions move balance {id}, which does not exist"));
        }
        for (currency, (balance, inflight)) in &sums {
            if !balance.is_zero() || !inflight.is_zero() {
                report.problems.push(format!(
                    "{currency}: balances sum to {balance} and inflight balances to {inflight}; both must be 0"
                ));
            }
        }
        check_snapshots(reader, &mut report, progress)
    })?;
    Ok(report)
}

/// H1: each balance snapshot holds the settled sums of its balance's transactions effective before
/// it, computed again from every one of them.
fn check_snapshots(
    reader: &dyn crate::store::Reads,
    report: &mut Report,
    progress: &mut dyn FnMut(String),
) -> StoreResult<()> {
    loop {
        let page = reader.snapshots(Page::first(PAGE, report.snapshots))?;
        for s in &page {
            report.snapshots += 1;
            if report.snapshots.is_multiple_of(PROGRESS_EVERY) {
                progress(format!("checked {} snapshots", report.snapshots));
            }
            let credit = reader.settled_sum(&s.balance_id, "", &s.at, false)?;
            let debit = reader.settled_sum(&s.balance_id, "", &s.at, true)?;
            if (&credit, &debit) != (&s.credit_balance, &s.debit_balance) {
                report.problems.push(format!(
                    "snapshot of balance {} at {}: credit {} debit {}, but its transactions give {credit} {debit}",
                    s.balance_id, s.at, s.credit_balance, s.debit_balance
                ));
            }
        }
        if page.len() < PAGE as usize {
            return Ok(());
        }
    }
}
