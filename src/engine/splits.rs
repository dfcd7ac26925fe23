//! Split transactions: one request, one leg per share (`domain::split` worked out the amounts),
//! each leg a transaction of its own whose `parent` is the request's id, as Blnk records them.
//! Unlike Blnk, which records the legs one by one, every leg is applied in the batch's commit or
//! none is: every rule is checked for every leg, against the balances as the earlier legs leave
//! them, before the first one moves.

use super::batch::{new_id, Batch};
use super::command::{NewSplit, NewTransaction, Outcome};
use super::failure::Ruled;
use super::transactions::Trial;
use crate::domain::error::DomainError;
use crate::domain::transaction::{first_movement, Status, Transaction};
use crate::store::Writes;
use foldhash::{HashSet, HashSetExt};

impl Batch {
    /// `resolved[k]`: the balances leg `k` (of `split.legs()`) moves between, from `plan`.
    pub(super) fn create_split(
        &mut self,
        w: &mut dyn Writes,
        split: &NewSplit,
        resolved: Vec<(String, String)>,
    ) -> Ruled<Outcome> {
        let legs = split.legs();
        assert_eq!(legs.len(), resolved.len(), "the plan resolved every leg");
        self.check_all(legs.iter().map(|(_, leg)| leg), &resolved).map_err(|(_, refused)| refused)?;
        let parent_id = new_id("txn");
        let mut recorded: Vec<Option<Transaction>> = vec![None; split.shares.len()];
        for ((share, leg), (source, destination)) in legs.into_iter().zip(resolved) {
            let transaction = self.record_new(w, &leg, source, destination, Some(&parent_id))?;
            recorded[share] = Some(transaction);
        }
        let (_, status) = first_movement(split.template.inflight);
        let parent = Transaction {
            id: parent_id,
            parent: None,
            group: None,
            precise_amount: split.template.precise_amount.clone(),
            precision: split.template.precision,
            reference: split.template.reference.clone(),
            description: split.template.description.clone(),
            currency: split.template.currency.clone(),
            source: split.template.source.clone(),
            destination: split.template.destination.clone(),
            source_balance_id: String::new(),
            destination_balance_id: String::new(),
            status,
            allow_overdraft: split.template.allow_overdraft,
            overdraft_limit: split.template.overdraft_limit.clone(),
            effective_date: split.template.effective_date.clone(),
            scheduled_for: None,
            inflight_expiry_date: None,
            inflight_commit_date: None,
            inflight: split.template.inflight,
            created_at: self.now.clone(),
            meta_data: split.template.meta_data.clone(),
        };
        debug_assert!(parent.status != Status::Queued);
        Ok(Outcome::Split { parent, legs: recorded })
    }

    /// Every rule for every leg, tried before anything is written, so a refusal changes nothing:
    /// each leg's balances exist and hold its currency, its reference is free (also among the
    /// legs), and its movement (if it moves money now: neither queued nor scheduled ahead) fits the
    /// balances as the legs before it leave them. A refusal says which leg (the first to break any
    /// rule). The balances end as they began (`Trial`).
    pub(super) fn check_all<'a>(
        &mut self,
        legs: impl IntoIterator<Item = &'a NewTransaction>,
        resolved: &'a [(String, String)],
    ) -> Result<(), (usize, DomainError)> {
        let legs: Vec<&NewTransaction> = legs.into_iter().collect();
        let mut references = HashSet::with_capacity(legs.len());
        let mut first_refused = None;
        for (i, (leg, (source, destination))) in legs.iter().zip(resolved).enumerate() {
            let refused = match self.check_new(leg, source, destination) {
                Ok(()) if !references.insert(leg.reference.as_str()) => {
                    Some(DomainError::DuplicateReference(leg.reference.clone()))
                }
                Ok(()) => None,
                Err(refused) => Some(refused),
            };
            if let Some(refused) = refused {
                first_refused = Some((i, refused));
                break;
            }
        }
        // The movements of the legs before the first refused: one of them may be refused first.
        let checked = first_refused.as_ref().map_or(legs.len(), |(i, _)| *i);
        let now = self.now.clone();
        let mut trial = Trial::on(&mut self.balances, &self.monitors);
        for (i, (leg, (source, destination))) in legs.into_iter().zip(resolved).enumerate().take(checked) {
            if !leg.skip_queue || leg.scheduled_for.as_ref().is_some_and(|at| *at > now) {
                continue;
            }
            let (movement, _) = first_movement(leg.inflight);
            let overdraft = Transaction::overdraft_of(leg.allow_overdraft, &leg.overdraft_limit);
            trial.apply(source, destination, movement, &leg.precise_amount, &overdraft).map_err(|e| (i, e))?;
        }
        first_refused.map_or(Ok(()), Err)
    }
}
