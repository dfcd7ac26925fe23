//! `POST /{id}/metadata`: merge new keys into an entity's metadata, as Blnk does. The id's prefix
//! names the entity: `ldg_` a ledger, `bln_` a balance, `txn_` a transaction (whose children, its
//! commits, voids and refunds, get the keys too) or a split (every leg), `bulk_` a bulk request
//! (every item).

use super::batch::{rule_instances, Batch};
use super::command::Outcome;
use super::failure::Ruled;
use crate::domain::error::{DomainError, Resource};
use crate::domain::monitor::Monitor;
use crate::store::{StoreResult, Writes};
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
                let merged = balance.meta_data.clone();
                self.rules_rematched(w, id)?;
                merged
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

impl Batch {
    /// A balance's metadata changed: the ledger-wide rules narrowed by metadata may now cover it,
    /// or no longer. Instances this batch already holds keep their state; new ones come with
    /// their stored state (or fresh).
    fn rules_rematched(&mut self, w: &mut dyn Writes, id: &str) -> StoreResult<()> {
        let balance = self.balances[id].clone();
        let covering = rule_instances(w, &[&balance], self.now_ms)?;
        let list = self.monitors.get_mut(id).expect("a loaded balance has its list of monitors");
        let mut held: Vec<Monitor> = Vec::new();
        list.retain(|m| match m.scope {
            None => true,
            Some(_) => {
                held.push(m.clone());
                false
            }
        });
        for (instance, starts_now) in covering {
            match held.iter().position(|h| h.id == instance.id) {
                Some(at) => list.push(held.swap_remove(at)),
                None => {
                    if starts_now {
                        self.changed_monitors.insert((instance.id.clone(), id.to_string()));
                    }
                    list.push(instance);
                }
            }
        }
        // Those no longer covering keep their state, should the balance match again: what this
        // batch changed is stored now, as the flush will not see them.
        for gone in held {
            if self.changed_monitors.remove(&(gone.id.clone(), id.to_string())) {
                self.save_rule_state(w, &gone.rule_state())?;
            }
        }
        Ok(())
    }
}

/// Merges into the metadata of `parent`'s children (its commits, voids and refunds).
fn merge_into_children(w: &mut dyn Writes, parent: &str, merge: &dyn Fn(&mut Map<String, Value>)) -> StoreResult<()> {
    for mut child in w.children(parent)? {
        merge(&mut child.meta_data);
        w.set_transaction_meta_data(&child.id, &child.meta_data)?;
    }
    Ok(())
}
