//! Balance snapshots (`domain::snapshot`): for each balance asked for, the snapshots it needs since
//! its latest (a day's start after a day it moved on; within a busy day, after every
//! `snapshot::DENSE` transactions), up to today's horizon. Reads only
//! committed rows (the command runs in a batch of its own) under the balances' locks.

use super::batch::Batch;
use super::command::Outcome;
use super::failure::Ruled;
use crate::domain::snapshot::{self, BalanceSnapshot};
use crate::store::{Reads, StoreResult, Writes};

impl Batch {
    pub(super) fn take_snapshots(&mut self, w: &mut dyn Writes, balance_ids: &[String]) -> Ruled<Outcome> {
        let horizon = snapshot::horizon(self.now_ms);
        let mut taken = 0;
        for id in balance_ids {
            for snapshot in due_snapshots(w, id, &horizon)? {
                w.insert_snapshot(&snapshot)?;
                taken += 1;
            }
        }
        Ok(Outcome::Snapshots(taken))
    }
}

/// The snapshots balance `id` lacks up to `horizon`, as `reads` sees it: the engine takes them
/// under the balance's lock; a run reads them beforehand on a reader, so that only the balances
/// that lack some hold the engine (most balances do not move every day).
pub fn due_snapshots(reads: &dyn Reads, id: &str, horizon: &str) -> StoreResult<Vec<BalanceSnapshot>> {
    let start = reads.latest_snapshot(id, None)?.unwrap_or_else(|| BalanceSnapshot {
        balance_id: id.to_string(),
        at: String::new(),
        credit_balance: Default::default(),
        debit_balance: Default::default(),
    });
    if start.at.as_str() >= horizon {
        return Ok(Vec::new());
    }
    let credits = reads.settled_minutes(id, &start.at, horizon, false)?;
    let debits = reads.settled_minutes(id, &start.at, horizon, true)?;
    Ok(snapshot::following(&start, &credits, &debits, horizon))
}
