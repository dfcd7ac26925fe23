//! The rules of ledgers and balances.

use super::batch::{new_id, Batch};
use super::command::Outcome;
use super::failure::Ruled;
use crate::domain::balance::Balance;
use crate::domain::error::{DomainError, Resource};
use crate::domain::event::EventKind;
use crate::domain::ledger::Ledger;
use crate::store::{StoreResult, Writes};
use crate::wire::event::{balance_event_body, ledger_event_body};
use serde_json::{Map, Value};

impl Batch {
    pub(super) fn create_ledger(
        &mut self,
        w: &mut dyn Writes,
        name: &str,
        meta: &Map<String, Value>,
    ) -> Ruled<Outcome> {
        let ledger =
            Ledger { id: new_id("ldg"), name: name.to_string(), created_at: self.now.clone(), meta_data: meta.clone() };
        w.insert_ledger(&ledger)?;
        if self.config.records_server_events() {
            self.record_event(w, EventKind::LedgerCreated, ledger_event_body(&ledger), None, None, None)?;
        }
        Ok(Outcome::Ledger(ledger))
    }

    pub(super) fn update_ledger(
        &mut self,
        w: &mut dyn Writes,
        id: &str,
        name: &str,
        meta_data: Option<&Map<String, Value>>,
    ) -> Ruled<Outcome> {
        let mut ledger = w.ledger(id)?.ok_or_else(|| DomainError::not_found(Resource::Ledger, "ledger_id"))?;
        ledger.name = name.to_string();
        if let Some(meta_data) = meta_data {
            ledger.meta_data = meta_data.clone();
        }
        w.update_ledger(&ledger)?;
        Ok(Outcome::Ledger(ledger))
    }

    pub(super) fn create_balance(
        &mut self,
        w: &mut dyn Writes,
        ledger_id: &str,
        currency: &str,
        identity_id: &str,
        meta_data: &Map<String, Value>,
        indicator: &str,
    ) -> Ruled<Outcome> {
        if w.ledger(ledger_id)?.is_none() {
            return Err(DomainError::not_found(Resource::Ledger, "ledger_id").into());
        }
        let mut balance = Balance::new(new_id("bln"), ledger_id.to_string(), currency.to_string(), self.now.clone());
        balance.identity_id = identity_id.to_string();
        balance.meta_data = meta_data.clone();
        if indicator.is_empty() {
            w.insert_balance(&balance)?;
        } else {
            // Blnk 0.15.3: a general-ledger balance made ahead of its first use. The insert does
            // nothing if the pair exists (made by a transaction's first use, or another process).
            balance.indicator = indicator.to_string();
            if !w.insert_indicator(&balance)? {
                let message = format!("a balance with indicator {indicator} in {currency} already exists");
                return Err(DomainError::Conflict(message).into());
            }
        }
        self.balance_created(w, &balance)?;
        Ok(Outcome::Balance(balance))
    }

    /// Blnk's `balance.created`, for the server's webhook URL (also for an indicator balance a
    /// transaction created on first use, once the batch keeps it).
    pub(super) fn balance_created(&mut self, w: &mut dyn Writes, balance: &Balance) -> StoreResult<()> {
        if !self.config.records_server_events() {
            return Ok(());
        }
        self.record_event(w, EventKind::BalanceCreated, balance_event_body(balance), None, None, None)
    }
}
