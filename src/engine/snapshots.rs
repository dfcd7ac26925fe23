//! Balance snapshots (`domain::snapshot`): for each balance asked for, the snapshots it needs since
//! its latest (a day's start after a day it moved on; within a busy day, after every
//! `snapshot::DENSE` transactions), up to today's horizon. Reads only
//! committed rows (the command runs in a batch of its own) under the balances' locks.

use super::batch::Batch;
use super::command::Outcome;
use super::failure::Ruled;
use crate::domain::snapshot::{self, BalanceSnapshot};
use crate::store::Writes;

impl Batch {
    pub(super) fn take_snapshots(&mut self, w: &mut dyn Writes, balance_ids: &[String]) -> Ruled<Outcome> {
        let horizon = snapshot::horizon(self.now_ms);
        let mut taken = 0;
        for id in balance_ids {
            let start = w.latest_snapshot(id, None)?.unwrap_or_else(|| BalanceSnapshot {
                balance_id: id.clone(),
                at: String::new(),
                credit_balance: Default::default(),
                debit_balance: Default::default(),
            });
            if start.at >= horizon {
                continue;
            }
            let credits = w.settled_minutes(id, &start.at, &horizon, false)?;
            let debits = w.settled_minutes(id, &start.at, &horizon, true)?;
            for snapshot in snapshot::following(&start, &credits, &debits, &horizon) {
                w.insert_snapshot(&snapshot)?;
                taken += 1;
            }
        }
        Ok(Outcome::Snapshots(taken))
    }
}
