//! The velocity half of monitors in a batch: each velocity monitor's window moved to the batch's
//! instant when the batch locks its balance, a checkpoint of each moved balance's totals when the
//! batch flushes, and a new window's start (see `domain::velocity` for why this is exact).

use super::batch::Batch;
use super::command::NewMonitor;
use crate::domain::monitor::Monitor;
use crate::domain::velocity::Velocity;
use crate::store::{ErrorKind, StoreError, StoreResult, Writes};

impl Batch {
    /// A velocity monitor's window state: carried over from `current` when it watched the same
    /// balance over a window too (changing a limit must not forget what was spent; a longer window
    /// then reaches back to where the old one started), else a window starting now, from the
    /// balance as this batch holds it. `None` for a monitor without a window.
    pub(super) fn window_starting_now(&self, new: &NewMonitor, current: Option<&Monitor>) -> Option<Velocity> {
        new.condition.window.as_ref()?;
        if let Some(carried) = current.filter(|c| c.balance_id == new.balance_id).and_then(|c| c.velocity.clone()) {
            return Some(carried);
        }
        Some(Velocity::starting(&self.balances[&new.balance_id], self.now_ms))
    }

    /// Step 2's last part: every loaded velocity monitor's window moved to this batch's instant,
    /// reading a checkpoint only where one has fallen out of the window (amortized, one read per
    /// checkpoint written), and the balance's checkpoints no window reaches any more deleted.
    pub(super) fn roll_windows(&mut self, w: &mut dyn Writes) -> StoreResult<()> {
        let now_ms = self.now_ms;
        for (balance_id, monitors) in self.monitors.iter_mut() {
            let Some(balance) = self.balances.get(balance_id) else { continue };
            let mut rolled = false;
            for monitor in monitors.iter_mut() {
                let (Some(window), Some(velocity)) = (&monitor.condition.window, &mut monitor.velocity) else {
                    continue;
                };
                if !velocity.needs_roll(window, now_ms, balance) {
                    continue;
                }
                let (latest, next) = w.checkpoint_at(balance_id, now_ms - window.ms)?;
                // Kept until every window of the balance has passed it; if the one the hint named
                // is gone, the window cannot be measured, and a guard must not guess.
                if latest.is_none() && velocity.next_at_ms.is_some() {
                    let what =
                        format!("the checkpoints of balance {balance_id} before {} are missing", now_ms - window.ms);
                    return Err(StoreError::new(ErrorKind::Corrupt, what));
                }
                if velocity.roll_to(latest, next) {
                    self.changed_monitors.insert((monitor.id.clone(), balance_id.clone()));
                    rolled = true;
                }
            }
            if rolled {
                let oldest = monitors.iter().filter_map(|m| m.velocity.as_ref().map(|v| v.base.at_ms)).min();
                w.prune_checkpoints(balance_id, oldest.expect("a window rolled"))?;
            }
        }
        Ok(())
    }

    /// Step 4's first part: each moved balance with a velocity monitor gets a checkpoint of its
    /// totals at this batch's instant, which its windows will roll to once it leaves them.
    pub(super) fn checkpoint_windows(&mut self, w: &mut dyn Writes) -> StoreResult<()> {
        for balance_id in &self.changed {
            let Some(monitors) = self.monitors.get_mut(balance_id) else { continue };
            if monitors.iter().all(|m| m.velocity.is_none()) {
                continue;
            }
            w.save_checkpoint(&self.balances[balance_id], self.now_ms)?;
            for velocity in monitors.iter_mut().filter_map(|m| m.velocity.as_mut()) {
                velocity.checkpoint_written(self.now_ms);
            }
        }
        Ok(())
    }
}
