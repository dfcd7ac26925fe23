//! Blnk's bulk request (`POST /transactions/bulk`): up to 10,000 transactions in one command, so in
//! one batch and one commit. Each item is recorded as a transaction whose `parent_transaction` is
//! the batch's id (`bulk_…`). Atomic: every item's rules are checked first, on copies of the
//! balances, and either all are recorded or none is (Blnk records them one by one and refunds or
//! voids the earlier ones when one fails). Not atomic: items are recorded in order up to the first
//! refused, as Blnk does; those before it stand.

use super::batch::{new_id, Batch};
use super::command::{NewBulk, Outcome};
use super::failure::{Failure, Ruled};
use crate::domain::event::EventKind;
use crate::store::Writes;
use serde_json::json;

impl Batch {
    pub(super) fn create_bulk(
        &mut self,
        w: &mut dyn Writes,
        bulk: &NewBulk,
        resolved: Vec<(String, String)>,
    ) -> Ruled<Outcome> {
        assert_eq!(bulk.items.len(), resolved.len(), "the plan resolved every item");
        let id = new_id("bulk");
        let mut recorded = Vec::with_capacity(bulk.items.len());
        let mut refused = None;
        if bulk.atomic {
            refused = self.check_all(&bulk.items, &resolved).err();
        }
        if refused.is_none() {
            for (i, (item, (source, destination))) in bulk.items.iter().zip(resolved).enumerate() {
                match self.record_new(w, item, source, destination, Some(&id)) {
                    Ok(transaction) => recorded.push(transaction),
                    Err(Failure::Refused(why)) => {
                        assert!(!bulk.atomic, "an atomic batch was checked whole before its first item");
                        refused = Some((i, why));
                        break;
                    }
                    Err(store) => return Err(store),
                }
            }
        }
        if bulk.run_async {
            self.bulk_event(w, &id, bulk, refused.as_ref().map(|(i, why)| (*i, why.to_string())))?;
        }
        Ok(Outcome::Bulk { id, recorded, refused })
    }

    /// Blnk's `bulk_transaction.applied` / `.inflight` / `.failed` webhook, for `run_async`.
    fn bulk_event(
        &mut self,
        w: &mut dyn Writes,
        id: &str,
        bulk: &NewBulk,
        refused: Option<(usize, String)>,
    ) -> crate::store::StoreResult<()> {
        if !self.config.webhook_url_configured {
            return Ok(());
        }
        // The request's `inflight` is every item's (the API set it on each).
        let inflight = bulk.items.first().is_some_and(|item| item.inflight);
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
                    bulk.items[i].reference
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
