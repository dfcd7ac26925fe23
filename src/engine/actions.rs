//! Automatic transfers (`action: "transfer"`): queued as monitors trigger (`monitors.rs`), made
//! once the command that triggered them is done, as ordinary transactions of the batch, in chains
//! at most `MAX_ACTION_CHAIN` deep; and the check of a monitor's counterparty when it is written.

use super::batch::{new_id, ActionDue, Batch, MAX_ACTION_CHAIN};
use super::command::NewMonitor;
use crate::domain::balance::Balance;
use crate::domain::error::{DomainError, Resource};
use crate::domain::event::EventKind;
use crate::domain::monitor::{AutoTransfer, Monitor};
use crate::domain::transaction::{Movement, Status, Transaction};
use crate::store::{StoreResult, Writes};
use crate::wire::event::action_failed_body;
use num_bigint::BigInt;

impl Batch {
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
        let Some(other) = self.balances.get(&transfer.counterparty) else {
            // Beyond the chain `lock` loaded: refused, not guessed at.
            let message = format!("balance {} is not held by this batch", transfer.counterparty);
            return Ok(Err(DomainError::validation(Resource::Monitor, "transfer", message)));
        };
        // A ledger-wide rule's instance may sit on its own counterparty, or on a balance of another
        // currency when the rule names none: checked here, where a monitor of one balance was
        // checked when it was written.
        if other.id == balance.id || other.currency != balance.currency {
            let message = format!("balance {} cannot take an automatic transfer from balance {}", other.id, balance.id);
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
            // A rule may trigger on both balances of one transaction: its instances differ by balance.
            reference: match monitor.scope {
                None => format!("auto-{}-{triggered_by}", monitor.id),
                Some(_) => format!("auto-{}-{}-{triggered_by}", monitor.id, monitor.balance_id),
            },
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
    pub(super) fn check_counterparty(&self, new: &NewMonitor) -> Result<(), DomainError> {
        let Some(transfer) = &new.transfer else { return Ok(()) };
        let field = if transfer.outgoing { "transfer.destination" } else { "transfer.source" };
        let invalid = |message: String| DomainError::validation(Resource::Monitor, field, message);
        let Some(other) = self.balances.get(&transfer.counterparty) else {
            return Err(invalid(format!("{field} {} does not exist", transfer.counterparty)));
        };
        if let Some(scope) = &new.scope {
            // A rule's transfers move one currency: the rule names it (the API requires it).
            return match scope.currency.as_ref().is_some_and(|c| *c == other.currency) {
                true => Ok(()),
                false => Err(invalid(format!("{field} holds {}, not the rule's currency", other.currency))),
            };
        }
        if transfer.counterparty == new.balance_id {
            return Err(invalid(format!("{field} must be another balance than the one monitored")));
        }
        let mine = &self.balances[&new.balance_id];
        if other.currency != mine.currency {
            return Err(invalid(format!("{field} holds {}, the monitored balance {}", other.currency, mine.currency)));
        }
        Ok(())
    }
}
