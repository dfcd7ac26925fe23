//! The velocity half of monitors in a batch: each velocity monitor's window moved to the batch's
//! instant when the batch locks its balance, a checkpoint of each moved balance's totals (in the
//! log on its row) when the batch flushes, and a new window's start (see `domain::velocity` for
//! why this is exact and where checkpoints are kept).

use super::batch::Batch;
use super::command::NewMonitor;
use crate::domain::balance::Balance;
use crate::domain::monitor::Monitor;
use crate::domain::velocity::{Checkpoint, Velocity};
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
    /// reading checkpoints only where one has fallen out of the window (amortized, each stored
    /// chunk read once per checkpoint in it), and the balance's chunks no window reaches any more
    /// deleted.
    pub(super) fn roll_windows(&mut self, w: &mut dyn Writes) -> StoreResult<()> {
        let now_ms = self.now_ms;
        for (balance_id, monitors) in self.monitors.iter_mut() {
            let Some(balance) = self.balances.get(balance_id) else { continue };
            let mut read_chunks = false;
            for monitor in monitors.iter_mut() {
                let (Some(window), Some(velocity)) = (&monitor.condition.window, &mut monitor.velocity) else {
                    continue;
                };
                if !velocity.needs_roll(window, now_ms, balance) {
                    continue;
                }
                let start = window.start_at(now_ms);
                let found = window_start(w, balance, velocity.base.version, start)?;
                read_chunks |= found.read_chunks;
                // Kept until every window of the balance has passed it; if the one the hint named
                // is gone, the window cannot be measured, and a guard must not guess.
                if found.latest.is_none() && velocity.next_at_ms.is_some() {
                    let what = format!("the checkpoints of balance {balance_id} before {start} are missing");
                    return Err(StoreError::new(ErrorKind::Corrupt, what));
                }
                if velocity.roll_to(found.latest, found.next_at_ms) {
                    self.changed_monitors.insert((monitor.id.clone(), balance_id.clone()));
                }
            }
            if read_chunks {
                let oldest = monitors.iter().filter_map(|m| m.velocity.as_ref().map(|v| v.base.version)).min();
                w.prune_checkpoint_chunks(balance_id, oldest.expect("a window rolled"))?;
            }
        }
        Ok(())
    }

    /// Step 4's first part, before the balances are written: each moved balance with a velocity
    /// monitor gets a checkpoint of its totals at this batch's instant in the log on its row, which
    /// is stored as a chunk once full; its windows will roll to the checkpoint once it leaves them.
    pub(super) fn checkpoint_windows(&mut self, w: &mut dyn Writes) -> StoreResult<()> {
        for balance_id in &self.changed {
            let Some(monitors) = self.monitors.get_mut(balance_id) else { continue };
            if monitors.iter().all(|m| m.velocity.is_none()) {
                continue;
            }
            let balance = self.balances.get_mut(balance_id).expect("E2: a changed balance was loaded");
            let checkpoint = Checkpoint::of(balance, self.now_ms);
            let previous_version = balance.checkpoints.last().map(|last| last.version);
            if previous_version.is_some_and(|previous| previous >= checkpoint.version) {
                debug_assert!(false, "a moved balance's version did not rise since its last checkpoint: {balance_id}");
                continue;
            }
            for velocity in monitors.iter_mut().filter_map(|m| m.velocity.as_mut()) {
                velocity.checkpoint_written(&checkpoint, previous_version);
            }
            // Stored as a chunk before the new checkpoint is appended, so that the log on the row
            // is never empty again and keeps one width (`store::codec::padded_log`).
            if balance.checkpoints.is_full() {
                w.save_checkpoint_chunk(balance_id, &balance.checkpoints.take())?;
            }
            balance.checkpoints.push(checkpoint);
        }
        Ok(())
    }
}

/// Where a window starting at `start` begins, for a window whose base has `base_version`.
struct WindowStart {
    /// The latest checkpoint at or before `start` newer than the base, if any.
    latest: Option<Checkpoint>,
    /// The instant of the first checkpoint after `start`, if any: when the window rolls again.
    next_at_ms: Option<i64>,
    /// Whether stored chunks were read (so some may now be behind every window).
    read_chunks: bool,
}

/// Walks `balance`'s checkpoints newer than `base_version` in order (its stored chunks, then the log
/// on its row) up to the first one after `start`. The stored chunks are skipped when the log
/// already begins at or before the base.
fn window_start(w: &mut dyn Writes, balance: &Balance, base_version: i64, start: i64) -> StoreResult<WindowStart> {
    let mut found = WindowStart { latest: None, next_at_ms: None, read_chunks: false };
    let log = balance.checkpoints.entries();
    let mut after = base_version;
    if log.first().is_none_or(|first| first.version > base_version) {
        while let Some(chunk) = w.checkpoint_chunk_after(&balance.id, after)? {
            found.read_chunks = true;
            if found.take_until(chunk.entries(), after, start) {
                return Ok(found);
            }
            after = chunk.last().expect("a stored chunk holds at least one checkpoint").version;
        }
    }
    found.take_until(log, after, start);
    Ok(found)
}

impl WindowStart {
    /// Takes `checkpoints` newer than `after` as the latest until one is after `start`; true once
    /// that one is found.
    fn take_until(&mut self, checkpoints: Vec<Checkpoint>, after: i64, start: i64) -> bool {
        for checkpoint in checkpoints.into_iter().filter(|c| c.version > after) {
            if checkpoint.at_ms > start {
                self.next_at_ms = Some(checkpoint.at_ms);
                return true;
            }
            self.latest = Some(checkpoint);
        }
        false
    }
}
