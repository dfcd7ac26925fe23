//! Replaying the transaction log from zero: what every balance's four totals must be if each
//! transaction had exactly its recorded effect. `keel check` compares the stored balances with it.

use super::balance::Balance;
use super::transaction::{Status, Transaction};
use num_bigint::BigInt;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub credit: BigInt,
    pub debit: BigInt,
    pub inflight_credit: BigInt,
    pub inflight_debit: BigInt,
}

impl Totals {
    pub fn of(b: &Balance) -> Totals {
        Totals {
            credit: b.credit_balance.clone(),
            debit: b.debit_balance.clone(),
            inflight_credit: b.inflight_credit_balance.clone(),
            inflight_debit: b.inflight_debit_balance.clone(),
        }
    }
}

/// Feed it the log in order (parents come before their children).
#[derive(Debug, Default)]
pub struct Replay {
    totals: HashMap<String, Totals>,
    /// Ids of transactions that were created inflight: their `APPLIED` children are commits.
    inflight: HashSet<String>,
    pub transactions: u64,
}

impl Replay {
    pub fn apply(&mut self, t: &Transaction) {
        self.transactions += 1;
        if t.inflight {
            self.inflight.insert(t.id.clone());
        }
        let commits_a_hold = t.parent.as_ref().is_some_and(|p| self.inflight.contains(p));
        let a = &t.precise_amount;
        let mut source = self.totals.remove(&t.source_balance_id).unwrap_or_default();
        let destination = self.totals.entry(t.destination_balance_id.clone()).or_default();
        match t.status {
            Status::Scheduled | Status::Queued | Status::Rejected => {}
            // A commit moves part of a hold into the real balances; a refund is a plain transfer.
            Status::Applied if commits_a_hold => {
                source.inflight_debit -= a;
                destination.inflight_credit -= a;
                source.debit += a;
                destination.credit += a;
            }
            Status::Applied => {
                source.debit += a;
                destination.credit += a;
            }
            // A void child gives back what was left of its parent's hold. (A hold that was voided,
            // a refund of a void among them, is `inflight` itself: its children did the giving.)
            Status::Void if !t.inflight => {
                source.inflight_debit -= a;
                destination.inflight_credit -= a;
            }
            // An inflight transaction holds its whole amount, whatever became of it since.
            Status::Inflight | Status::Commit | Status::Void => {
                source.inflight_debit += a;
                destination.inflight_credit += a;
            }
        }
        self.totals.insert(t.source_balance_id.clone(), source);
    }

    /// What the log says `balance_id` must hold.
    pub fn expected(&self, balance_id: &str) -> Totals {
        self.totals.get(balance_id).cloned().unwrap_or_default()
    }

    /// Balances the log touches, for spotting transactions whose balance is missing.
    pub fn balance_ids(&self) -> impl Iterator<Item = &String> {
        self.totals.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::amount::Precision;
    use serde_json::Map;

    fn txn(
        id: &str,
        parent: Option<&str>,
        amount: i64,
        status: Status,
        inflight: bool,
        from: &str,
        to: &str,
    ) -> Transaction {
        Transaction {
            id: id.into(),
            parent: parent.map(Into::into),
            precise_amount: amount.into(),
            precision: Precision::ONE,
            reference: id.into(),
            description: String::new(),
            currency: "USD".into(),
            source: from.into(),
            destination: to.into(),
            source_balance_id: from.into(),
            destination_balance_id: to.into(),
            status,
            allow_overdraft: false,
            overdraft_limit: 0.into(),
            effective_date: None,
            scheduled_for: None,
            inflight_expiry_date: None,
            inflight_commit_date: None,
            group: None,
            inflight,
            created_at: String::new(),
            meta_data: Map::new(),
        }
    }

    #[test]
    fn a_hold_committed_in_part_then_voided_and_a_refund() {
        let mut r = Replay::default();
        r.apply(&txn("t1", None, 100, Status::Applied, false, "w", "a"));
        r.apply(&txn("t2", None, 60, Status::Void, true, "a", "b")); // the parent, voided in the end
        r.apply(&txn("t3", Some("t2"), 40, Status::Applied, false, "a", "b")); // commit 40
        r.apply(&txn("t4", Some("t2"), 20, Status::Void, false, "a", "b")); // release 20
        r.apply(&txn("t5", Some("t3"), 40, Status::Applied, false, "b", "a")); // refund of the commit
        r.apply(&txn("t6", None, 999, Status::Rejected, false, "a", "b"));
        let a = r.expected("a");
        assert_eq!((a.credit, a.debit, a.inflight_debit), (140.into(), 40.into(), 0.into()));
        let b = r.expected("b");
        assert_eq!((b.credit, b.debit, b.inflight_credit), (40.into(), 40.into(), 0.into()));
        assert_eq!(r.transactions, 6);
    }
}
