//! The rules of money movement: new transactions (applied at once or queued), queued ones applied
//! in arrival order, inflight commits and voids, refunds. Each checks everything before its first
//! mutation, so a refusal (`Failure::Refused`, carried by `?`) has changed nothing.

use super::batch::{new_id, Batch};
use super::command::{InflightAction, NewTransaction, Outcome};
use super::failure::Ruled;
use crate::domain::error::{DomainError, Resource};
use crate::domain::event::EventKind;
use crate::domain::transaction::{apply_movement, first_movement, resolve_amount, Movement, Status, Transaction};
use crate::store::Writes;
use num_bigint::BigInt;
use serde_json::{Map, Value};

impl Batch {
    pub(super) fn create_transaction(
        &mut self,
        w: &mut dyn Writes,
        new: &NewTransaction,
        source: String,
        destination: String,
    ) -> Ruled<Outcome> {
        self.record_new(w, new, source, destination, None).map(Outcome::Transaction)
    }

    /// The rules a new transaction meets before anything moves: both balances exist and hold its
    /// currency, and its reference is free.
    pub(super) fn check_new(&self, new: &NewTransaction, source: &str, destination: &str) -> Result<(), DomainError> {
        for (id, given, field) in [(source, &new.source, "source"), (destination, &new.destination, "destination")] {
            match self.balances.get(id) {
                // Blnk 0.15.4: an unknown source or destination is 404 `BAL_NOT_FOUND`.
                None => return Err(DomainError::not_found(Resource::Balance, field)),
                Some(b) if b.currency != new.currency => {
                    let message = format!("{field} balance {given} holds {}, not {}", b.currency, new.currency);
                    return Err(DomainError::validation(Resource::Transaction, "currency", message));
                }
                Some(_) => {}
            }
        }
        if self.taken_references.contains(&new.reference) {
            return Err(DomainError::DuplicateReference(new.reference.clone()));
        }
        Ok(())
    }

    /// Records `new` (moving its money now with `skip_queue`), as a leg of split `group` if given.
    pub(super) fn record_new(
        &mut self,
        w: &mut dyn Writes,
        new: &NewTransaction,
        source: String,
        destination: String,
        group: Option<&str>,
    ) -> Ruled<Transaction> {
        self.check_new(new, &source, &destination)?;
        let mut transaction = Transaction {
            id: new_id("txn"),
            parent: None,
            group: group.map(str::to_string),
            precise_amount: new.precise_amount.clone(),
            precision: new.precision,
            reference: new.reference.clone(),
            description: new.description.clone(),
            currency: new.currency.clone(),
            source: new.source.clone(),
            destination: new.destination.clone(),
            source_balance_id: source,
            destination_balance_id: destination,
            status: Status::Queued,
            allow_overdraft: new.allow_overdraft,
            overdraft_limit: new.overdraft_limit.clone(),
            effective_date: new.effective_date.clone(),
            scheduled_for: new.scheduled_for.clone(),
            inflight_expiry_date: new.inflight_expiry_date.clone().filter(|_| new.inflight),
            inflight_commit_date: new.inflight_commit_date.clone().filter(|_| new.inflight),
            inflight: new.inflight,
            created_at: self.now.clone(),
            meta_data: new.meta_data.clone(),
        };
        // Not due yet: it waits, whatever `skip_queue` says (Blnk: `SCHEDULED`).
        let waits = new.scheduled_for.as_ref().is_some_and(|at| *at > self.now);
        if waits {
            transaction.status = Status::Scheduled;
        } else if new.skip_queue {
            let (movement, status) = first_movement(new.inflight);
            self.move_money(&transaction, movement, &transaction.precise_amount)?;
            transaction.status = status;
            self.after_movement(w, &transaction)?;
        }
        w.insert_transaction(&transaction)?;
        self.taken_references.insert(transaction.reference.clone());
        self.transaction_event(w, &transaction)?;
        Ok(transaction)
    }

    pub(super) fn apply_queued(&mut self, w: &mut dyn Writes, queued: &Transaction) -> Ruled<Outcome> {
        let mut transaction = queued.clone();
        let (movement, status) = first_movement(queued.inflight);
        transaction.status = match self.move_money(queued, movement, &queued.precise_amount) {
            Ok(()) => status,
            Err(refused) => {
                tracing::info!(transaction_id = %queued.id, reason = %refused, "queued transaction rejected");
                Status::Rejected
            }
        };
        w.set_transaction_status(&transaction.id, transaction.status)?;
        if transaction.status != Status::Rejected {
            self.after_movement(w, &transaction)?;
        }
        self.transaction_event(w, &transaction)?;
        Ok(Outcome::Transaction(transaction))
    }

    pub(super) fn finish_inflight(&mut self, w: &mut dyn Writes, id: &str, action: &InflightAction) -> Ruled<Outcome> {
        let Some(parent) = w.transaction(id)? else {
            return Err(DomainError::not_found(Resource::Transaction, "transaction_id").into());
        };
        match parent.status {
            Status::Inflight => {}
            Status::Commit => return Err(DomainError::AlreadyCommitted.into()),
            Status::Void => return Err(DomainError::AlreadyVoided.into()),
            _ => return Err(DomainError::NotInflight.into()),
        }
        let committed: BigInt =
            w.children(&parent.id)?.iter().filter(|c| c.status == Status::Applied).map(|c| &c.precise_amount).sum();
        let remaining = &parent.precise_amount - committed;
        // Invariant I1: an INFLIGHT transaction always has something left to commit or void.
        assert!(remaining > BigInt::ZERO, "invariant I1 violated: inflight {} has nothing left", parent.id);
        let (amount, movement, child_status, parent_status) = match action {
            InflightAction::Commit { amount, precise_amount } => {
                let amount = if amount.is_none() && precise_amount.is_none() {
                    remaining.clone()
                } else {
                    resolve_amount(amount.as_deref(), precise_amount.as_deref(), parent.precision)?
                };
                if amount > remaining {
                    return Err(DomainError::CommitAmountExceeded(parent.precision.to_major(&remaining)).into());
                }
                let parent_status = if amount == remaining { Status::Commit } else { Status::Inflight };
                (amount, Movement::CommitHold, Status::Applied, parent_status)
            }
            InflightAction::Void => (remaining, Movement::ReleaseHold, Status::Void, Status::Void),
        };
        let child = self.child_of(&parent, amount, child_status, false);
        self.move_money(&parent, movement, &child.precise_amount)
            .expect("committing or releasing a hold never needs funds");
        w.insert_transaction(&child)?;
        if parent_status != parent.status {
            w.set_transaction_status(&parent.id, parent_status)?;
        }
        self.after_movement(w, &child)?;
        self.transaction_event(w, &child)?;
        Ok(Outcome::Transaction(child))
    }

    pub(super) fn refund(
        &mut self,
        w: &mut dyn Writes,
        id: &str,
        description: &str,
        meta_data: &Map<String, Value>,
    ) -> Ruled<Outcome> {
        let Some(original) = w.transaction(id)? else {
            return Err(DomainError::not_found(Resource::Transaction, "transaction_id").into());
        };
        if original.status != Status::Applied {
            return Err(DomainError::validation(
                Resource::Transaction,
                "transaction_id",
                format!("only APPLIED transactions can be refunded; this one is {}", original.status.as_str()),
            )
            .into());
        }
        // An APPLIED child of an APPLIED transaction is its refund (a commit's parent is INFLIGHT
        // or COMMIT); and an APPLIED transaction's only children are its refunds.
        if let Some(parent) = &original.parent {
            if w.transaction(parent)?.is_some_and(|p| p.status == Status::Applied) {
                return Err(
                    DomainError::AlreadyRefunded(format!("{id} is a refund; a refund cannot be refunded")).into()
                );
            }
        }
        if !w.children(&original.id)?.is_empty() {
            return Err(DomainError::AlreadyRefunded(format!("transaction {id} has already been refunded")).into());
        }
        let mut refund = self.child_of(&original, original.precise_amount.clone(), Status::Applied, true);
        // Blnk's reference for a refund, so a client can find it without being told.
        refund.reference = format!("{}_refund", original.id);
        if self.taken_references.contains(&refund.reference) || w.transaction_by_reference(&refund.reference)?.is_some()
        {
            return Err(DomainError::DuplicateReference(refund.reference).into());
        }
        if !description.is_empty() {
            refund.description = description.to_string();
        }
        refund.meta_data.extend(meta_data.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.move_money(&refund, Movement::Transfer, &refund.precise_amount)?;
        w.insert_transaction(&refund)?;
        self.taken_references.insert(refund.reference.clone());
        self.after_movement(w, &refund)?;
        self.transaction_event(w, &refund)?;
        Ok(Outcome::Transaction(refund))
    }

    /// A commit, void or refund of `parent`. A refund swaps source and destination.
    fn child_of(&self, parent: &Transaction, amount: BigInt, status: Status, reversed: bool) -> Transaction {
        let mut child = parent.clone();
        child.id = new_id("txn");
        child.parent = Some(parent.id.clone());
        child.group = None;
        child.scheduled_for = None;
        child.inflight_expiry_date = None;
        child.inflight_commit_date = None;
        child.precise_amount = amount;
        child.reference = new_id("ref");
        child.status = status;
        child.inflight = false;
        child.created_at = self.now.clone();
        if reversed {
            std::mem::swap(&mut child.source, &mut child.destination);
            std::mem::swap(&mut child.source_balance_id, &mut child.destination_balance_id);
        }
        child
    }

    /// Moves `amount` between `t`'s balances (as loaded in step 2), all or nothing.
    pub(super) fn move_money(
        &mut self,
        t: &Transaction,
        movement: Movement,
        amount: &BigInt,
    ) -> Result<(), DomainError> {
        let (source, destination) = (&t.source_balance_id, &t.destination_balance_id);
        // Invariant T1: a transaction moves money between two different balances (`plan` refuses
        // one whose source and destination resolve to the same balance).
        assert_ne!(source, destination, "T1: transaction {} moves money between two balances", t.id);
        let [Some(source), Some(destination)] = self.balances.get_disjoint_mut([source, destination]) else {
            panic!("a planned balance was loaded: transaction {}", t.id);
        };
        let result = apply_movement(movement, source, destination, amount, &t.overdraft());
        if result.is_ok() {
            self.changed.insert(t.source_balance_id.clone());
            self.changed.insert(t.destination_balance_id.clone());
        }
        result
    }
}

/// The lifecycle event a transaction's status calls for.
pub(super) fn lifecycle_event(status: Status) -> EventKind {
    match status {
        Status::Scheduled => EventKind::TransactionScheduled,
        Status::Queued => EventKind::TransactionQueued,
        Status::Applied | Status::Commit => EventKind::TransactionApplied,
        Status::Inflight => EventKind::TransactionInflight,
        Status::Void => EventKind::TransactionVoid,
        Status::Rejected => EventKind::TransactionRejected,
    }
}
