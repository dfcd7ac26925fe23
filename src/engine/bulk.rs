//! Blnk's bulk request (`POST /transactions/bulk`): up to 10,000 transactions in one command, so in
//! one batch and one commit. Each item is recorded as a transaction whose `parent_transaction` is
//! the batch's id (`bulk_…`); a split item as its legs, each so, all or none. Atomic: every item's
//! rules are checked first, on copies of the balances, and either all are recorded or none is (Blnk
//! records them one by one and refunds or voids the earlier ones when one fails). Not atomic: items
//! are recorded in order up to the first refused, as Blnk does; those before it stand.

use super::batch::{item_of_leg, new_id, Batch};
use super::command::{BulkItem, NewBulk, NewTransaction, Outcome};
use super::failure::{Failure, Ruled};
use crate::domain::error::DomainError;
use crate::domain::event::EventKind;
use crate::domain::transaction::Transaction;
use crate::store::{StoreResult, Writes};
use serde_json::json;

impl Batch {
    /// `resolved`: the balances each leg of the request moves between (an item is one leg, a split
    /// item one per share with an amount), in order, from `plan`.
    pub(super) fn create_bulk(
        &mut self,
        w: &mut dyn Writes,
        bulk: &NewBulk,
        resolved: Vec<(String, String)>,
    ) -> Ruled<Outcome> {
        let items: Vec<_> = bulk.items.iter().map(BulkItem::legs).collect();
        assert_eq!(items.iter().map(|legs| legs.len()).sum::<usize>(), resolved.len(), "the plan resolved every leg");
        let id = new_id("bulk");
        let mut recorded = Vec::with_capacity(resolved.len());
        let mut refused = None;
        if bulk.atomic {
            let legs = items.iter().flat_map(|legs| legs.iter());
            refused = self.check_all(legs, &resolved).err().map(|(leg, why)| (item_of_leg(&bulk.items, leg), why));
        }
        let mut parties = resolved.into_iter();
        for (i, legs) in items.iter().enumerate() {
            if refused.is_some() {
                break;
            }
            let parties: Vec<(String, String)> = parties.by_ref().take(legs.len()).collect();
            match self.record_item(w, legs, parties, &id)? {
                Ok(transactions) => recorded.extend(transactions),
                Err((why, _)) => {
                    assert!(!bulk.atomic, "an atomic batch was checked whole before its first item");
                    refused = Some((i, why));
                }
            }
        }
        if bulk.run_async {
            self.bulk_event(w, &id, bulk, refused.as_ref().map(|(i, why)| (*i, why.to_string())))?;
        }
        Ok(Outcome::Bulk { id, recorded, refused })
    }

    /// Records one item as transactions of the batch `group`: itself, or a split item's legs, all
    /// or none. A refusal says whether it comes as the request is made (a reference taken, a
    /// balance missing, a split item's leg short: a queued request stops there too) rather than
    /// when the item's money moves (a queued item the queue would then reject, and go on).
    pub(super) fn record_item(
        &mut self,
        w: &mut dyn Writes,
        legs: &[NewTransaction],
        parties: Vec<(String, String)>,
        group: &str,
    ) -> StoreResult<Result<Vec<Transaction>, (DomainError, bool)>> {
        let checked = match legs {
            [leg] => self.check_new(leg, &parties[0].0, &parties[0].1),
            _ => self.check_all(legs.iter(), &parties).map_err(|(_, why)| why),
        };
        if let Err(why) = checked {
            return Ok(Err((why, true)));
        }
        let mut recorded = Vec::with_capacity(legs.len());
        for (leg, (source, destination)) in legs.iter().zip(parties) {
            match self.record_new(w, leg, source, destination, Some(group)) {
                Ok(transaction) => recorded.push(transaction),
                Err(Failure::Refused(why)) => {
                    assert_eq!(legs.len(), 1, "S1: a split item was checked whole before its first leg");
                    return Ok(Err((why, false)));
                }
                Err(Failure::Store(error)) => return Err(error),
            }
        }
        Ok(Ok(recorded))
    }

    /// Blnk's `bulk_transaction.applied` / `.inflight` / `.failed` webhook, for `run_async`.
    fn bulk_event(
        &mut self,
        w: &mut dyn Writes,
        id: &str,
        bulk: &NewBulk,
        refused: Option<(usize, String)>,
    ) -> crate::store::StoreResult<()> {
        if !self.config.records_server_events() {
            return Ok(());
        }
        // The request's `inflight` is every item's (the API set it on each).
        let inflight = bulk.items.first().is_some_and(|item| item.template().inflight);
        let (kind, data) = match refused {
            None => {
                let kind = if inflight { EventKind::BulkInflight } else { EventKind::BulkApplied };
                let status = if inflight { "inflight" } else { "applied" };
                (
                    kind,
                    json!({"batch_id": id, "status": status, "timestamp": self.now,
                        "transaction_count": bulk.items.len()}),
                )
            }
            Some((i, why)) => {
                let rest = if bulk.atomic {
                    "No transaction in this batch was recorded"
                } else {
                    "Previous transactions were not rolled back"
                };
                let error = format!(
                    "failed to record transaction {} (reference {}): {why}. {rest}.",
                    i + 1,
                    bulk.items[i].template().reference
                );
                (
                    EventKind::BulkFailed,
                    json!({"batch_id": id, "status": "failed", "timestamp": self.now, "error": error}),
                )
            }
        };
        let body = json!({"event": kind.as_str(), "data": data}).to_string();
        self.record_event(w, kind, body, None, None, None)
    }
}
