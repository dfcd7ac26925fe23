//! `POST /{id}/metadata`: merge new keys into an entity's metadata, as Blnk does. The id's prefix
//! names the entity: `ldg_` a ledger, `bln_` a balance, `txn_` a transaction (whose children, its
//! commits, voids and refunds, get the keys too) or a split (every leg), `bulk_` a bulk request
//! (every item).

use super::batch::Batch;
use super::command::Outcome;
use super::failure::Ruled;
use crate::domain::error::{DomainError, Resource};
use crate::store::Writes;
use serde_json::{Map, Value};

impl Batch {
    pub(super) fn update_metadata(&mut self, w: &mut dyn Writes, id: &str, new: &Map<String, Value>) -> Ruled<Outcome> {
        let merge = |current: &mut Map<String, Value>| current.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
        let not_found = || DomainError::not_found(Resource::Metadata, "entity_id");
        let merged = match id.split_once('_').map(|(prefix, _)| prefix) {
            Some("ldg") => {
                let mut ledger = w.ledger(id)?.ok_or_else(not_found)?;
                merge(&mut ledger.meta_data);
                w.update_ledger(&ledger)?;
                ledger.meta_data
            }
            Some("bln") => {
                // Loaded and locked by `plan`: the batch's copy is what the cache gets back.
                let balance = self.balances.get_mut(id).ok_or_else(not_found)?;
                merge(&mut balance.meta_data);
                w.set_balance_meta_data(id, &balance.meta_data)?;
                balance.meta_data.clone()
            }
            Some("txn" | "bulk") => match w.transaction(id)? {
                Some(mut transaction) => {
                    merge_into_children(w, id, &merge)?;
                    merge(&mut transaction.meta_data);
                    w.set_transaction_meta_data(id, &transaction.meta_data)?;
                    transaction.meta_data
                }
                // A split's or a bulk request's id: every leg or item (and its children) gets the
                // keys; there is no one metadata to answer with, so the answer is the keys merged,
                // as Blnk answers for transactions.
                None => {
                    let members = w.members(id)?;
                    if members.is_empty() {
                        return Err(not_found().into());
                    }
                    for mut member in members {
                        merge_into_children(w, &member.id, &merge)?;
                        merge(&mut member.meta_data);
                        w.set_transaction_meta_data(&member.id, &member.meta_data)?;
                    }
                    new.clone()
                }
            },
            _ => {
                let message = format!("{id} is not the id of a ledger, balance, transaction or bulk request");
                return Err(DomainError::validation(Resource::Metadata, "entity_id", message).into());
            }
        };
        Ok(Outcome::MetaData(merged))
    }
}

/// Merges into the metadata of `parent`'s children (its commits, voids and refunds).
fn merge_into_children(
    w: &mut dyn Writes,
    parent: &str,
    merge: &dyn Fn(&mut Map<String, Value>),
) -> crate::store::StoreResult<()> {
    for mut child in w.children(parent)? {
        merge(&mut child.meta_data);
        w.set_transaction_meta_data(&child.id, &child.meta_data)?;
    }
    Ok(())
}
