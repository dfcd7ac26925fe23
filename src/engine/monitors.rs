//! The monitor half of a batch: monitor commands, evaluation after every movement, and the events
//! both write to the outbox. Everything here runs inside the batch's database transaction, so an
//! event exists exactly when the change that caused it committed.

use super::batch::{new_id, ActionDue, Batch, MAX_ACTION_CHAIN};
use super::command::{NewMonitor, Outcome};
use super::failure::Ruled;
use super::transactions::lifecycle_event;
use crate::domain::balance::Balance;
use crate::domain::error::{DomainError, Resource};
use crate::domain::event::{Delivery, Event, EventKind};
use crate::domain::monitor::{AutoTransfer, Monitor, Signal, State};
use crate::domain::transaction::{Movement, Status, Transaction};
use crate::domain::velocity::Velocity;
use crate::store::{ErrorKind, StoreError, StoreResult, Writes};
use crate::wire::event::{action_failed_body, monitor_event_body, transaction_event_body};
use num_bigint::BigInt;

impl Batch {
    pub(super) fn create_monitor(&mut self, w: &mut dyn Writes, new: &NewMonitor) -> Ruled<Outcome> {
        if let Err(refused) = self.balance_exists(&new.balance_id) {
            return Err(refused.into());
        }
        self.check_counterparty(new)?;
        let velocity = self.window_starting_now(new, None);
        let monitor = Monitor {
            velocity,
            transfer: new.transfer.clone(),
            id: new_id("mon"),
            balance_id: new.balance_id.clone(),
            condition: new.condition.clone(),
            description: new.description.clone(),
            call_back_url: new.call_back_url.clone(),
            meta_data: new.meta_data.clone(),
            created_at: self.now.clone(),
            trigger: new.trigger,
            action: new.action,
            state: State::Ok,
            trigger_count: 0,
            last_triggered_at: None,
        };
        w.insert_monitor(&monitor)?;
        self.monitors_evicted.insert(monitor.balance_id.clone());
        // A transaction later in this batch on this balance must see the new monitor.
        if let Some(list) = self.monitors.get_mut(&monitor.balance_id) {
            list.push(monitor.clone());
        }
        Ok(Outcome::Monitor(monitor))
    }

    pub(super) fn update_monitor(&mut self, w: &mut dyn Writes, id: &str, new: &NewMonitor) -> Ruled<Outcome> {
        let Some(current) = self.current_monitor(w, id)? else {
            return Err(DomainError::not_found(Resource::Monitor, "monitor_id").into());
        };
        self.check_locked(&current)?;
        if let Err(refused) = self.balance_exists(&new.balance_id) {
            return Err(refused.into());
        }
        self.check_counterparty(new)?;
        let current_balance = current.balance_id.clone();
        let velocity = self.window_starting_now(new, Some(&current));
        let monitor = Monitor {
            velocity,
            transfer: new.transfer.clone(),
            balance_id: new.balance_id.clone(),
            condition: new.condition.clone(),
            description: new.description.clone(),
            call_back_url: new.call_back_url.clone(),
            meta_data: new.meta_data.clone(),
            trigger: new.trigger,
            action: new.action,
            // A new condition starts unarmed: a `crossing` monitor fires when it first holds.
            state: State::Ok,
            ..current
        };
        w.update_monitor(&monitor)?;
        self.monitors_evicted.insert(current_balance.clone());
        self.monitors_evicted.insert(monitor.balance_id.clone());
        if current_balance == monitor.balance_id {
            // It keeps its place among its balance's monitors, as its row keeps its place in
            // storage; it is written already, so the batch must not write an older copy.
            self.changed_monitors.remove(id);
            let list = self.monitors.get_mut(&monitor.balance_id);
            if let Some(slot) = list.and_then(|list| list.iter_mut().find(|m| m.id == id)) {
                *slot = monitor.clone();
            }
        } else {
            self.forget_monitor(id);
            // A transaction later in this batch on the new balance must see it.
            if let Some(list) = self.monitors.get_mut(&monitor.balance_id) {
                list.push(monitor.clone());
                self.monitor_order_unknown.insert(monitor.balance_id.clone());
            }
        }
        Ok(Outcome::Monitor(monitor))
    }

    pub(super) fn delete_monitor(&mut self, w: &mut dyn Writes, id: &str) -> Ruled<Outcome> {
        let Some(current) = self.current_monitor(w, id)? else {
            return Err(DomainError::not_found(Resource::Monitor, "monitor_id").into());
        };
        self.check_locked(&current)?;
        w.delete_monitor(id)?;
        self.monitors_evicted.insert(current.balance_id);
        self.forget_monitor(id);
        Ok(Outcome::MonitorDeleted)
    }

    pub(super) fn redeliver_event(&mut self, w: &mut dyn Writes, id: &str) -> Ruled<Outcome> {
        if !w.redeliver_event(id, self.now_ms)? {
            return Err(DomainError::not_found(Resource::Event, "event_id").into());
        }
        self.events_to_deliver += 1;
        let event = w.event(id)?.expect("an event just redelivered exists in the same transaction");
        Ok(Outcome::Event(event))
    }

    /// Evaluates the monitors of both balances `t` moved, each against its balance as it stands
    /// right after `t`, and records an event for each monitor that signals (it triggered, or an
    /// edge monitor resolved).
    pub(super) fn after_movement(&mut self, w: &mut dyn Writes, t: &Transaction) -> StoreResult<()> {
        let mut signalled = Vec::new();
        for balance_id in [&t.source_balance_id, &t.destination_balance_id] {
            let balance = &self.balances[balance_id];
            let monitors = self.monitors.get_mut(balance_id).expect("monitors of touched balances are loaded");
            for monitor in monitors.iter_mut() {
                let before = (monitor.state, monitor.trigger_count);
                self.monitor_evaluations += 1;
                if let Some(signal) = monitor.evaluate(balance, &self.now) {
                    let kind = match signal {
                        Signal::Triggered => {
                            self.monitor_triggers += 1;
                            if monitor.transfer.is_some() {
                                let (triggered_by, depth) = (t.id.clone(), self.action_depth + 1);
                                self.actions_due.push(ActionDue { monitor: monitor.clone(), triggered_by, depth });
                            }
                            EventKind::BalanceMonitor
                        }
                        Signal::Resolved => EventKind::BalanceMonitorResolved,
                    };
                    let url = (!monitor.call_back_url.is_empty()).then(|| monitor.call_back_url.clone());
                    let body = monitor_event_body(kind, monitor, balance, &t.id);
                    signalled.push((kind, body, url, Some(monitor.id.clone())));
                }
                if (monitor.state, monitor.trigger_count) != before {
                    self.changed_monitors.insert(monitor.id.clone());
                }
            }
        }
        for (kind, body, url, monitor_id) in signalled {
            self.record_event(w, kind, body, url, monitor_id, Some(&t.id))?;
        }
        Ok(())
    }

    /// Makes the automatic transfers the last command's movements triggered, in the order they
    /// triggered, each in this batch: its transaction moves money by every rule a client's would
    /// (funds, overdraft, guards), and its own movement is evaluated like any other, which may
    /// trigger further actions, up to `MAX_ACTION_CHAIN` deep. One that cannot be made (no funds,
    /// a guard, a chain too long) moves nothing and is recorded as a
    /// `balance.monitor.action_failed` event; the transaction that triggered it stands.
    pub(super) fn run_actions(&mut self, w: &mut dyn Writes) -> StoreResult<()> {
        // A wave at a time: the actions a wave's transfers trigger make the next, one deeper.
        while !self.actions_due.is_empty() {
            for due in std::mem::take(&mut self.actions_due) {
                self.action_depth = due.depth;
                let made = self.make_transfer(w, &due);
                self.action_depth = 0;
                if let Err(refused) = made? {
                    let body = action_failed_body(&due.monitor, &refused, &due.triggered_by);
                    let url = (!due.monitor.call_back_url.is_empty()).then(|| due.monitor.call_back_url.clone());
                    let (kind, monitor_id) = (EventKind::BalanceMonitorActionFailed, Some(due.monitor.id.clone()));
                    self.record_event(w, kind, body, url, monitor_id, Some(&due.triggered_by))?;
                }
            }
        }
        Ok(())
    }

    /// One automatic transfer: `Ok(Err(why))` if it was refused (nothing moved).
    fn make_transfer(&mut self, w: &mut dyn Writes, due: &ActionDue) -> StoreResult<Result<(), DomainError>> {
        let monitor = &due.monitor;
        let transfer = monitor.transfer.as_ref().expect("only a monitor with a transfer has actions due");
        if due.depth > MAX_ACTION_CHAIN {
            let message = format!("automatic transfers may follow one another {MAX_ACTION_CHAIN} deep, no further");
            return Ok(Err(DomainError::validation(Resource::Monitor, "transfer", message)));
        }
        let Some(balance) = self.balances.get(&monitor.balance_id) else {
            unreachable!("a monitor that triggered was evaluated on its loaded balance");
        };
        if !self.balances.contains_key(&transfer.counterparty) {
            // Beyond the chain `lock` loaded: refused, not guessed at.
            let message = format!("balance {} is not held by this batch", transfer.counterparty);
            return Ok(Err(DomainError::validation(Resource::Monitor, "transfer", message)));
        }
        // The amount from the balance as it stands now (an earlier action may have moved it).
        let Some(amount) = transfer.amount_for(&monitor.condition, &monitor.observe(balance)) else {
            return Ok(Ok(()));
        };
        let t = self.auto_transaction(monitor, transfer, balance, amount, &due.triggered_by);
        if let Err(refused) = self.move_money(&t, Movement::Transfer, &t.precise_amount) {
            return Ok(Err(refused));
        }
        w.insert_transaction(&t)?;
        self.taken_references.insert(t.reference.clone());
        self.after_movement(w, &t)?;
        self.transaction_event(w, &t)?;
        Ok(Ok(()))
    }

    /// The transaction an automatic transfer records: between the monitored balance and its
    /// counterparty, in the balance's currency and the condition's precision, named after the
    /// monitor and the transaction that triggered it (`meta_data`, and a reference unique to the two).
    fn auto_transaction(
        &self,
        monitor: &Monitor,
        transfer: &AutoTransfer,
        balance: &Balance,
        amount: BigInt,
        triggered_by: &str,
    ) -> Transaction {
        let (mine, theirs) = (monitor.balance_id.clone(), transfer.counterparty.clone());
        let (source, destination) = if transfer.outgoing { (mine, theirs) } else { (theirs, mine) };
        let mut meta_data = serde_json::Map::new();
        meta_data.insert("monitor_id".into(), monitor.id.clone().into());
        meta_data.insert("triggered_by".into(), triggered_by.into());
        Transaction {
            id: new_id("txn"),
            parent: None,
            group: None,
            precise_amount: amount,
            precision: monitor.condition.precision,
            reference: format!("auto-{}-{triggered_by}", monitor.id),
            description: transfer.description.clone(),
            currency: balance.currency.clone(),
            source: source.clone(),
            destination: destination.clone(),
            source_balance_id: source,
            destination_balance_id: destination,
            status: Status::Applied,
            allow_overdraft: transfer.allow_overdraft,
            overdraft_limit: BigInt::ZERO,
            effective_date: None,
            scheduled_for: None,
            inflight_expiry_date: None,
            inflight_commit_date: None,
            inflight: false,
            created_at: self.now.clone(),
            meta_data,
        }
    }

    /// An automatic transfer's other balance exists (the plan loaded it), is another balance, and
    /// holds the monitored balance's currency.
    fn check_counterparty(&self, new: &NewMonitor) -> Result<(), DomainError> {
        let Some(transfer) = &new.transfer else { return Ok(()) };
        let field = if transfer.outgoing { "transfer.destination" } else { "transfer.source" };
        let invalid = |message: String| DomainError::validation(Resource::Monitor, field, message);
        let Some(other) = self.balances.get(&transfer.counterparty) else {
            return Err(invalid(format!("{field} {} does not exist", transfer.counterparty)));
        };
        if transfer.counterparty == new.balance_id {
            return Err(invalid(format!("{field} must be another balance than the one monitored")));
        }
        let mine = &self.balances[&new.balance_id];
        if other.currency != mine.currency {
            return Err(invalid(format!("{field} holds {}, the monitored balance {}", other.currency, mine.currency)));
        }
        Ok(())
    }

    /// The `transaction.*` event for `t`'s status, when a server-wide webhook URL listens.
    pub(super) fn transaction_event(&mut self, w: &mut dyn Writes, t: &Transaction) -> StoreResult<()> {
        if !self.config.webhook_url_configured {
            return Ok(());
        }
        let kind = lifecycle_event(t.status);
        self.record_event(w, kind, transaction_event_body(kind, t), None, None, Some(&t.id))
    }

    pub(super) fn record_event(
        &mut self,
        w: &mut dyn Writes,
        kind: EventKind,
        body: String,
        url: Option<String>,
        monitor_id: Option<String>,
        transaction_id: Option<&str>,
    ) -> StoreResult<()> {
        let delivery = if url.is_some() || self.config.webhook_url_configured {
            self.events_to_deliver += 1;
            Delivery::Pending
        } else {
            Delivery::NoTarget
        };
        w.insert_event(&Event {
            id: new_id("evt"),
            kind,
            body,
            url,
            monitor_id,
            transaction_id: transaction_id.map(str::to_string),
            created_at: self.now.clone(),
            delivery,
            attempts: 0,
            next_attempt_at: self.now_ms,
            last_error: None,
            delivered_at: None,
            sequence: 0,
        })
    }

    /// A velocity monitor's window state: carried over from `current` when it watched the same
    /// balance over a window too (changing a limit must not forget what was spent; a longer window
    /// then reaches back to where the old one started), else a window starting now, from the
    /// balance as this batch holds it. `None` for a monitor without a window.
    fn window_starting_now(&self, new: &NewMonitor, current: Option<&Monitor>) -> Option<Velocity> {
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
            let mut rolled = false;
            for monitor in monitors.iter_mut() {
                let (Some(window), Some(velocity)) = (&monitor.condition.window, &mut monitor.velocity) else {
                    continue;
                };
                if !velocity.needs_roll(window, now_ms) {
                    continue;
                }
                let (latest, next) = w.checkpoint_at(balance_id, now_ms - window.ms)?;
                // Kept until every window of the balance has passed it; if it is gone, the window
                // cannot be measured, and a guard must not guess: the batch fails instead.
                let Some(latest) = latest else {
                    let what = format!(
                        "the checkpoint of balance {balance_id} at {next_ms} is missing",
                        next_ms = now_ms - window.ms
                    );
                    return Err(StoreError::new(ErrorKind::Corrupt, what));
                };
                velocity.roll_to(latest, next);
                self.changed_monitors.insert(monitor.id.clone());
                rolled = true;
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
            for monitor in monitors.iter_mut() {
                if monitor.velocity.as_mut().is_some_and(|v| v.checkpoint_written(self.now_ms)) {
                    self.changed_monitors.insert(monitor.id.clone());
                }
            }
        }
        Ok(())
    }

    /// The monitor as this batch knows it (it may have changed earlier in the batch).
    fn current_monitor(&self, w: &mut dyn Writes, id: &str) -> StoreResult<Option<Monitor>> {
        if let Some(m) = self.monitors.values().flatten().find(|m| m.id == id) {
            return Ok(Some(m.clone()));
        }
        w.monitor(id)
    }

    /// A monitor command holds the lock of the monitor's balance (`plan` named it). Another process
    /// may have moved the monitor between `plan`'s read and the lock: then the batch runs again.
    fn check_locked(&self, monitor: &Monitor) -> StoreResult<()> {
        if self.monitors.contains_key(&monitor.balance_id) {
            Ok(())
        } else {
            Err(StoreError::new(
                ErrorKind::Transient,
                format!("changing monitor {}, which moved to another balance meanwhile", monitor.id),
            ))
        }
    }

    /// The balance a monitor is to watch exists (it was loaded, under its lock, with the batch).
    fn balance_exists(&self, balance_id: &str) -> Result<(), DomainError> {
        match self.balances.contains_key(balance_id) {
            true => Ok(()),
            false => Err(DomainError::validation(
                Resource::Monitor,
                "balance_id",
                format!("balance_id {balance_id} does not exist"),
            )),
        }
    }

    fn forget_monitor(&mut self, id: &str) {
        for list in self.monitors.values_mut() {
            list.retain(|m| m.id != id);
        }
        self.changed_monitors.remove(id);
    }
}
