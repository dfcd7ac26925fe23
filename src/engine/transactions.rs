//! The rules of money movement: new transactions (applied at once or queued), queued ones applied
//! in arrival order, inflight commits and voids, refunds (of one transaction, or of everything a
//! split or bulk request recorded). Each checks everything before its first mutation, so a refusal
//! (`Failure::Refused`, carried by `?`) has changed nothing.

use super::batch::{new_id, Batch};
use super::command::{InflightAction, NewTransaction, Outcome};
use super::failure::Ruled;
use crate::domain::balance::Balance;
use crate::domain::error::{DomainError, Resource};
use crate::domain::event::EventKind;
use crate::domain::monitor::{Action, Monitor};
use crate::domain::transaction::{
    apply_movement, first_movement, resolve_amount, undo_movement, Movement, Overdraft, Status, Transaction,
};
use crate::store::{StoreResult, Writes};
use foldhash::HashMap;
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
        if self.waits(new) {
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

    /// Not due yet: it waits, whatever `skip_queue` says (Blnk: `SCHEDULED`), and moves nothing now.
    pub(super) fn waits(&self, new: &NewTransaction) -> bool {
        new.scheduled_for.as_ref().is_some_and(|at| *at > self.now)
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

    /// A commit or void of the inflight transaction `id`; or, when `id` is a split's or a bulk
    /// request's, of every leg or item still inflight, each whole (Blnk commits or voids "every
    /// pending inflight leg" by that id). Once their status is checked, only a guard can refuse a
    /// commit, and every commit is tried first, so settling several is all or nothing too.
    pub(super) fn finish_inflight(&mut self, w: &mut dyn Writes, id: &str, action: &InflightAction) -> Ruled<Outcome> {
        if let Some(hold) = w.transaction(id)? {
            return Ok(Outcome::Transactions(vec![self.settle(w, &hold, action)?]));
        }
        let members = w.members(id)?;
        if members.is_empty() {
            return Err(DomainError::not_found(Resource::Transaction, "transaction_id").into());
        }
        if let InflightAction::Commit { amount, precise_amount } = action {
            if amount.is_some() || precise_amount.is_some() {
                let message = "a split or bulk request is committed whole: to commit part of a leg, commit that \
                               leg by its own transaction_id";
                return Err(DomainError::validation(Resource::Transaction, "amount", message).into());
            }
        }
        let holds: Vec<&Transaction> = members.iter().filter(|m| m.status == Status::Inflight).collect();
        if holds.is_empty() {
            let all = |status| members.iter().all(|m| m.status == status);
            return Err(match () {
                _ if all(Status::Commit) => DomainError::AlreadyCommitted,
                _ if all(Status::Void) => DomainError::AlreadyVoided,
                _ => DomainError::NotInflight,
            }
            .into());
        }
        if holds.len() > 1 && matches!(action, InflightAction::Commit { .. }) {
            // Only a guard can refuse a commit: every one is tried before the first is made.
            let left = holds.iter().map(|hold| left_inflight(w, hold)).collect::<StoreResult<Vec<_>>>()?;
            let overdrafts: Vec<Overdraft> = holds.iter().map(|hold| hold.overdraft()).collect();
            let mut trial = Trial::on(&mut self.balances, &self.monitors);
            for ((hold, amount), overdraft) in holds.iter().zip(&left).zip(&overdrafts) {
                let (source, destination) = (&hold.source_balance_id, &hold.destination_balance_id);
                trial.apply(source, destination, Movement::CommitHold, amount, overdraft)?;
            }
        }
        let mut children = Vec::with_capacity(holds.len());
        for hold in holds {
            match self.settle(w, hold, action) {
                Ok(child) => children.push(child),
                Err(refused) if children.is_empty() => return Err(refused),
                Err(refused) => unreachable!("S1: every commit was tried before the first was made: {refused:?}"),
            }
        }
        Ok(Outcome::Transactions(children))
    }

    /// Commits all or part of what is left of the hold `parent`, or voids the rest: the child written.
    fn settle(&mut self, w: &mut dyn Writes, parent: &Transaction, action: &InflightAction) -> Ruled<Transaction> {
        match parent.status {
            Status::Inflight => {}
            Status::Commit => return Err(DomainError::AlreadyCommitted.into()),
            Status::Void => return Err(DomainError::AlreadyVoided.into()),
            _ => return Err(DomainError::NotInflight.into()),
        }
        let remaining = left_inflight(w, parent)?;
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
        let child = self.child_of(parent, amount, child_status, false);
        // Committing or releasing a hold never needs funds; a commit may still be refused by a
        // guard (a commit is what moves `balance` and `debit_balance`), and then nothing is written.
        self.move_money(parent, movement, &child.precise_amount)?;
        w.insert_transaction(&child)?;
        if parent_status != parent.status {
            w.set_transaction_status(&parent.id, parent_status)?;
        }
        self.after_movement(w, &child)?;
        self.transaction_event(w, &child)?;
        Ok(child)
    }

    /// Reverses what `id` moved (`refundable` says what that is), all in this commit or none: when
    /// there are several refunds, every one is tried first (`Trial`) before the first one moves.
    pub(super) fn refund(
        &mut self,
        w: &mut dyn Writes,
        id: &str,
        description: &str,
        meta_data: &Map<String, Value>,
    ) -> Ruled<Outcome> {
        let originals = self.refundable(w, id)?;
        let refunds: Vec<Transaction> = originals
            .iter()
            .map(|original| {
                // Blnk refunds a void (the part of a hold that was released) by holding it back the
                // other way: a new inflight hold, to be committed or voided in its turn.
                let held_back = original.status == Status::Void;
                let status = if held_back { Status::Inflight } else { Status::Applied };
                let mut refund = self.child_of(original, original.precise_amount.clone(), status, true);
                refund.inflight = held_back;
                // Blnk's reference for a refund, so a client can find it without being told.
                refund.reference = refund_reference(&original.id);
                if !description.is_empty() {
                    refund.description = description.to_string();
                }
                refund.meta_data.extend(meta_data.iter().map(|(k, v)| (k.clone(), v.clone())));
                refund
            })
            .collect();
        let movement = |refund: &Transaction| if refund.inflight { Movement::Hold } else { Movement::Transfer };
        if refunds.len() > 1 {
            let mut trial = Trial::on(&mut self.balances, &self.monitors);
            for refund in &refunds {
                let (source, destination) = (&refund.source_balance_id, &refund.destination_balance_id);
                let overdraft = refund.overdraft();
                trial.apply(source, destination, movement(refund), &refund.precise_amount, &overdraft)?;
            }
        }
        for refund in &refunds {
            match self.move_money(refund, movement(refund), &refund.precise_amount) {
                Ok(()) => {}
                Err(refused) if refunds.len() == 1 => return Err(refused.into()),
                Err(refused) => unreachable!("S1: every refund was tried before the first moved: {refused}"),
            }
            w.insert_transaction(refund)?;
            self.taken_references.insert(refund.reference.clone());
            self.after_movement(w, refund)?;
            self.transaction_event(w, refund)?;
        }
        Ok(Outcome::Transactions(refunds))
    }

    /// What a refund of `id` reverses, in the order they were recorded, as Blnk resolves it
    /// (`GetRefundableTransactionsByParentID`): an `APPLIED` transaction itself; an inflight
    /// transaction's commits and its void (the hold itself moved nothing for good); a split's legs
    /// or a bulk request's items, each so (Keel also finds a bulk request's inflight items'
    /// commits and voids, which Blnk's one-level query misses). A refund is never refunded, and
    /// none of them may have been refunded before.
    fn refundable(&self, w: &mut dyn Writes, id: &str) -> Ruled<Vec<Transaction>> {
        let roots = match w.transaction(id)? {
            Some(t) if is_refund(&t) => {
                return Err(
                    DomainError::AlreadyRefunded(format!("{id} is a refund; a refund cannot be refunded")).into()
                )
            }
            Some(t) => vec![t],
            None => w.members(id)?,
        };
        let Some(first) = roots.first() else {
            return Err(DomainError::not_found(Resource::Transaction, "transaction_id").into());
        };
        let what = format!("{id} ({})", first.status.as_str());
        let mut originals = Vec::new();
        for root in roots {
            match root.status {
                Status::Applied => originals.push(root),
                Status::Inflight | Status::Commit | Status::Void if root.inflight => {
                    let settled = w.children(&root.id)?.into_iter();
                    originals.extend(
                        settled.filter(|c| !is_refund(c) && matches!(c.status, Status::Applied | Status::Void)),
                    );
                }
                _ => {}
            }
        }
        if originals.is_empty() {
            return Err(DomainError::NothingToRefund(format!(
                "no transaction to refund: {what} has moved nothing that can be refunded; only APPLIED \
                 transactions, and the commits and voids of an inflight one, can be"
            ))
            .into());
        }
        let references: Vec<String> = originals.iter().map(|o| refund_reference(&o.id)).collect();
        let mut taken: foldhash::HashSet<String> = w.existing_references(&references)?.into_iter().collect();
        taken.extend(references.iter().filter(|r| self.taken_references.contains(*r)).cloned());
        for (original, reference) in originals.iter().zip(references) {
            if !taken.contains(&reference) {
                continue;
            }
            return Err(match w.transaction_by_reference(&reference)? {
                Some(other) if other.parent.as_deref() != Some(&original.id) => {
                    DomainError::DuplicateReference(reference)
                }
                _ => DomainError::AlreadyRefunded(format!("transaction {} has already been refunded", original.id)),
            }
            .into());
        }
        Ok(originals)
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

    /// Moves `amount` between `t`'s balances (as loaded in step 2), all or nothing, if the guards
    /// of both let it.
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
        let result =
            guarded_movement(&mut self.balances, &self.monitors, source, destination, movement, amount, &t.overdraft());
        if result.is_ok() {
            self.changed.insert(t.source_balance_id.clone());
            self.changed.insert(t.destination_balance_id.clone());
        }
        result
    }
}

/// `apply_movement` on two of the batch's balances, then the check of both balances' guards
/// (monitors with `action: "reject"`) against the balances before and after: a movement a guard
/// refuses is taken back exactly and refused, so a guard's limit is never passed, whatever runs
/// in the same batch. Both balances are locked by the batch, on every process, so no other
/// writer can move them between the check and the commit. Releasing a hold is never refused: it
/// only gives back what the hold took, and an expiring hold must always be able to go.
pub(super) fn guarded_movement(
    balances: &mut HashMap<String, Balance>,
    monitors: &HashMap<String, Vec<Monitor>>,
    source: &str,
    destination: &str,
    movement: Movement,
    amount: &BigInt,
    overdraft: &Overdraft,
) -> Result<(), DomainError> {
    let [Some(from), Some(to)] = balances.get_disjoint_mut([source, destination]) else {
        panic!("a movement's two balances were loaded: {source}, {destination}");
    };
    let guards = |id: &str| monitors.get(id).into_iter().flatten().filter(|m| m.action == Action::Reject);
    let guarded = guards(source).next().is_some() || guards(destination).next().is_some();
    if !guarded || movement == Movement::ReleaseHold {
        return apply_movement(movement, from, to, amount, overdraft);
    }
    apply_movement(movement, from, to, amount, overdraft)?;
    // Nearly always no guard's condition holds afterwards, and then none refuses: nothing more to
    // do. Otherwise, what each guard saw just before decides (the movement is taken back to look).
    let holds_after = |id: &str, b: &Balance| guards(id).any(|g| g.condition.holds_for(&g.observe(b)));
    if !holds_after(source, from) && !holds_after(destination, to) {
        return Ok(());
    }
    undo_movement(movement, from, to, amount);
    let seen = |id: &str, b: &Balance| guards(id).map(|g| g.observe(b).into_owned()).collect::<Vec<_>>();
    let (from_seen, to_seen) = (seen(source, from), seen(destination, to));
    apply_movement(movement, from, to, amount, overdraft).expect("the same movement on the same balances");
    let refuser = |id: &str, before: &[BigInt], after: &Balance| {
        guards(id).zip(before).find(|(g, then)| g.refuses(then, after)).map(|(g, _)| g.refusal(after))
    };
    let refusal = refuser(source, &from_seen, from).or_else(|| refuser(destination, &to_seen, to));
    match refusal {
        Some(refused) => {
            undo_movement(movement, from, to, amount);
            Err(refused)
        }
        None => Ok(()),
    }
}

/// What is left of the hold `parent` to commit or void: its amount less what its commits took.
fn left_inflight(w: &mut dyn Writes, parent: &Transaction) -> StoreResult<BigInt> {
    let children = w.children(&parent.id)?;
    let committed: BigInt = children.iter().filter(|c| c.status == Status::Applied).map(|c| &c.precise_amount).sum();
    Ok(&parent.precise_amount - committed)
}

/// Blnk's reference for the refund of `original`: `{id}_refund`. Only a refund has it (a client
/// choosing it for a transaction of its own makes that refund a duplicate reference instead).
pub(super) fn refund_reference(original: &str) -> String {
    format!("{original}_refund")
}

/// Whether `t` is a refund (of its parent).
pub(super) fn is_refund(t: &Transaction) -> bool {
    t.parent.as_deref().is_some_and(|parent| t.reference.strip_suffix("_refund") == Some(parent))
}

/// An all-or-nothing command's trial: its movements made in order on the batch's own balances,
/// then taken back exactly (in reverse, when the trial is dropped), before the first one is made
/// for real. Taking back the arithmetic costs less than copying every balance a batch of thousands
/// of transfers touches.
pub(super) struct Trial<'a> {
    balances: &'a mut HashMap<String, Balance>,
    /// The batch's monitors, for their guards: a trial is refused where the real movement would be.
    monitors: &'a HashMap<String, Vec<Monitor>>,
    made: Vec<(&'a str, &'a str, Movement, &'a BigInt)>,
}

impl<'a> Trial<'a> {
    pub(super) fn on(
        balances: &'a mut HashMap<String, Balance>,
        monitors: &'a HashMap<String, Vec<Monitor>>,
    ) -> Trial<'a> {
        Trial { balances, monitors, made: Vec::new() }
    }

    /// Moves `amount` between two balances the batch has loaded, for now.
    pub(super) fn apply(
        &mut self,
        source: &'a str,
        destination: &'a str,
        movement: Movement,
        amount: &'a BigInt,
        overdraft: &Overdraft,
    ) -> Result<(), DomainError> {
        guarded_movement(self.balances, self.monitors, source, destination, movement, amount, overdraft)?;
        self.made.push((source, destination, movement, amount));
        Ok(())
    }
}

impl Drop for Trial<'_> {
    fn drop(&mut self) {
        for (source, destination, movement, amount) in self.made.drain(..).rev() {
            let [Some(from), Some(to)] = self.balances.get_disjoint_mut([source, destination]) else {
                unreachable!("the trial moved money between these two");
            };
            undo_movement(movement, from, to, amount);
        }
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
