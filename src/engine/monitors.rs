//! The monitor half of a batch: monitor commands, evaluation after every movement, and the events
//! both write to the outbox. Everything here runs inside the batch's database transaction, so an
//! event exists exactly when the change that caused it committed.

use super::batch::{new_id, ActionDue, Batch, RuleChange};
use super::command::{NewMonitor, Outcome};
use super::failure::Ruled;
use super::transactions::lifecycle_event;
use crate::domain::error::{DomainError, Resource};
use crate::domain::event::{Delivery, Event, EventKind};
use crate::domain::monitor::{Monitor, Signal, State};
use crate::domain::transaction::Transaction;
use crate::domain::velocity::Window;
use crate::store::{ErrorKind, StoreError, StoreResult, Writes};
use crate::wire::event::{monitor_event_body, transaction_event_body};

impl Batch {
    pub(super) fn create_monitor(&mut self, w: &mut dyn Writes, new: &NewMonitor) -> Ruled<Outcome> {
        if new.scope.is_some() {
            return self.create_rule(w, new);
        }
        if let Err(refused) = self.balance_exists(&new.balance_id) {
            return Err(refused.into());
        }
        self.check_counterparty(new)?;
        let monitor = Monitor { velocity: self.window_starting_now(new, None), ..new_monitor(new, &self.now) };
        w.insert_monitor(&monitor)?;
        self.monitors_evicted.insert(monitor.balance_id.clone());
        // A transaction later in this batch on this balance must see the new monitor: after the
        // balance's own, before the rules' instances, as storage lists them (C1).
        if let Some(list) = self.monitors.get_mut(&monitor.balance_id) {
            let own = list.iter().position(|m| m.scope.is_some()).unwrap_or(list.len());
            list.insert(own, monitor.clone());
        }
        Ok(Outcome::Monitor(monitor))
    }

    pub(super) fn update_monitor(&mut self, w: &mut dyn Writes, id: &str, new: &NewMonitor) -> Ruled<Outcome> {
        let Some(current) = self.current_monitor(w, id)? else {
            return Err(DomainError::not_found(Resource::Monitor, "monitor_id").into());
        };
        match (&current.scope, &new.scope) {
            (Some(_), Some(_)) => return self.update_rule(w, current, new),
            (None, None) => {}
            (Some(_), None) => return Err(kind_is_kept("balance_id", "a ledger-wide monitor").into()),
            (None, Some(_)) => return Err(kind_is_kept("ledger_id", "a monitor of one balance").into()),
        }
        self.check_locked(&current)?;
        if let Err(refused) = self.balance_exists(&new.balance_id) {
            return Err(refused.into());
        }
        self.check_counterparty(new)?;
        let current_balance = current.balance_id.clone();
        let velocity = self.window_starting_now(new, Some(&current));
        // A window watching the same balance carries on (`window_starting_now`).
        let old_window = current.condition.window.clone().filter(|_| current_balance == new.balance_id);
        let mut monitor = Monitor { velocity, ..redefined(current, new) };
        carry_window(old_window.as_ref(), &mut monitor, self.now_ms);
        w.update_monitor(&monitor)?;
        self.monitors_evicted.insert(current_balance.clone());
        self.monitors_evicted.insert(monitor.balance_id.clone());
        if current_balance == monitor.balance_id {
            // It keeps its place among its balance's monitors, as its row keeps its place in
            // storage; it is written already, so the batch must not write an older copy.
            self.changed_monitors.retain(|(monitor, _)| monitor != id);
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
        if current.scope.is_some() {
            w.delete_rule(id)?;
            self.rule_changed(w, id, None)?;
            *self.rules_changed.last_mut().expect("just noted") = RuleChange::Deleted(id.to_string());
            return Ok(Outcome::MonitorDeleted);
        }
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
                    self.changed_monitors.insert((monitor.id.clone(), balance_id.clone()));
                }
            }
        }
        for (kind, body, url, monitor_id) in signalled {
            self.record_event(w, kind, body, url, monitor_id, Some(&t.id))?;
        }
        Ok(())
    }

    /// The `transaction.*` event for `t`'s status, when a server-wide webhook URL or the feed takes it.
    pub(super) fn transaction_event(&mut self, w: &mut dyn Writes, t: &Transaction) -> StoreResult<()> {
        if !self.config.records_server_events() {
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
        self.events_written += 1;
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

    /// The monitor as this batch knows it (it may have changed earlier in the batch); a rule as
    /// stored (a batch holds only its instances).
    fn current_monitor(&self, w: &mut dyn Writes, id: &str) -> StoreResult<Option<Monitor>> {
        if let Some(m) = self.monitors.values().flatten().find(|m| m.id == id && m.scope.is_none()) {
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
        self.changed_monitors.retain(|(monitor, _)| monitor != id);
    }

    /// A ledger-wide monitor (a rule): one row, whatever number of balances it covers; each
    /// balance gets an instance when a batch loads it (`batch::rule_instances`).
    fn create_rule(&mut self, w: &mut dyn Writes, new: &NewMonitor) -> Ruled<Outcome> {
        let scope = new.scope.as_ref().expect("a rule has its scope");
        if w.ledger(&scope.ledger_id)?.is_none() {
            let message = format!("ledger_id {} does not exist", scope.ledger_id);
            return Err(DomainError::validation(Resource::Monitor, "ledger_id", message).into());
        }
        self.check_counterparty(new)?;
        let rule = new_monitor(new, &self.now);
        w.insert_rule(&rule)?;
        self.rule_changed(w, &rule.id, Some(&rule))?;
        if rule.condition.window.is_none() {
            *self.rules_changed.last_mut().expect("just noted") = RuleChange::Created(Box::new(rule.clone()));
        }
        Ok(Outcome::Monitor(rule))
    }

    /// A rule's new definition: every balance's instance re-armed (as a monitor of one balance is),
    /// keeping its trigger count and, where both definitions have a window, what it counted (G2).
    fn update_rule(&mut self, w: &mut dyn Writes, current: Monitor, new: &NewMonitor) -> Ruled<Outcome> {
        let scope = new.scope.as_ref().expect("a rule has its scope");
        if scope.ledger_id != current.scope.as_ref().expect("a rule has its scope").ledger_id {
            return Err(kind_is_kept("ledger_id", "a rule of its ledger").into());
        }
        self.check_counterparty(new)?;
        let keep_windows = current.condition.window.is_some() && new.condition.window.is_some();
        let old_window = current.condition.window.clone();
        let mut rule = redefined(current, new);
        carry_window(old_window.as_ref(), &mut rule, self.now_ms);
        w.update_rule(&rule, keep_windows)?;
        self.rule_changed(w, &rule.id, Some(&rule))?;
        Ok(Outcome::Monitor(rule))
    }

    /// Brings the instances of rule `id` in this batch's lists in line with its new definition
    /// (`None`: deleted): re-armed where they stay, fresh where it now covers a balance, gone
    /// where it no longer does. The engine's cache is dropped once the batch commits.
    fn rule_changed(&mut self, w: &mut dyn Writes, id: &str, rule: Option<&Monitor>) -> StoreResult<()> {
        self.rules_changed.push(RuleChange::Other);
        let (mut to_store, mut orphans) = (Vec::new(), Vec::new());
        for (balance_id, list) in self.monitors.iter_mut() {
            let old = list.iter().position(|m| m.id == id).map(|at| list.remove(at));
            let (Some(rule), Some(balance)) = (rule, self.balances.get(balance_id)) else { continue };
            let evaluated = self.changed_monitors.contains(&(id.to_string(), balance_id.clone()));
            let kept = match old {
                Some(old) => {
                    let mut state = old.rule_state();
                    state.state = State::Ok;
                    state.velocity = state.velocity.filter(|_| rule.condition.window.is_some());
                    Some(state)
                }
                // Newly covered (a wider currency): a state it kept from before, as `update_rule`
                // left it, if it has one.
                None if balance.has_rule_states => {
                    let stored = w.rule_states(std::slice::from_ref(balance_id))?;
                    stored.into_iter().find(|s| s.monitor_id == id)
                }
                None => None,
            };
            if !rule.scope.as_ref().is_some_and(|s| s.covers(balance)) {
                // No longer covered (another currency now): what this batch counted is kept, as
                // the stored states of balances it did not load are, for the flush will not see it.
                if let Some(kept) = kept.filter(|_| evaluated) {
                    orphans.push(kept);
                }
                continue;
            }
            let instance = rule.instance_on(balance, kept.as_ref(), self.now_ms);
            // Stored at the flush: what this batch evaluated before the change, re-armed, or a
            // window starting now (what storage holds for the rest is re-armed by `update_rule`).
            let window_starts = instance.velocity.is_some() && kept.as_ref().is_none_or(|k| k.velocity.is_none());
            if evaluated || window_starts {
                to_store.push((id.to_string(), balance_id.clone()));
            }
            // Among the rules' instances in the rules' order (their ids'), as storage lists them (C1).
            let at = list.iter().position(|m| m.scope.is_some() && m.id.as_str() > id).unwrap_or(list.len());
            list.insert(at, instance);
        }
        self.changed_monitors.retain(|(monitor, _)| monitor != id);
        self.changed_monitors.extend(to_store);
        for state in orphans {
            self.save_rule_state(w, &state)?;
        }
        Ok(())
    }
}

/// Where both definitions have a window, the new one carries on from where `old` had reached at
/// `now_ms` (G2: it keeps what the old one counted, and nothing the old one had let go).
fn carry_window(old: Option<&Window>, monitor: &mut Monitor, now_ms: i64) {
    if let (Some(old), Some(new)) = (old, monitor.condition.window.as_mut()) {
        *new = new.clone().carrying_on_from(old, now_ms);
    }
}

/// A new monitor as `new` defines it: armed, never triggered, created now; a rule if `new` has a
/// scope (then without a balance), and without a window's state (the caller gives one).
fn new_monitor(new: &NewMonitor, now: &str) -> Monitor {
    Monitor {
        id: new_id("mon"),
        balance_id: new.balance_id.clone(),
        condition: new.condition.clone(),
        description: new.description.clone(),
        call_back_url: new.call_back_url.clone(),
        meta_data: new.meta_data.clone(),
        created_at: now.to_string(),
        trigger: new.trigger,
        action: new.action,
        state: State::Ok,
        trigger_count: 0,
        last_triggered_at: None,
        velocity: None,
        transfer: new.transfer.clone(),
        scope: new.scope.clone(),
    }
}

/// `current` with `new`'s definition (and balance, or scope), re-armed: a new condition starts
/// unarmed, so a `crossing` monitor fires when it first holds. Its id, creation, trigger count and
/// window state stay (the caller decides about the window).
fn redefined(current: Monitor, new: &NewMonitor) -> Monitor {
    Monitor {
        balance_id: new.balance_id.clone(),
        condition: new.condition.clone(),
        description: new.description.clone(),
        call_back_url: new.call_back_url.clone(),
        meta_data: new.meta_data.clone(),
        trigger: new.trigger,
        action: new.action,
        transfer: new.transfer.clone(),
        scope: new.scope.clone(),
        state: State::Ok,
        ..current
    }
}

/// A monitor stays of its kind: one balance's, or a ledger's rule (of the same ledger).
fn kind_is_kept(field: &str, kind: &str) -> DomainError {
    DomainError::validation(Resource::Monitor, field, format!("{field} cannot change: this is {kind}"))
}
