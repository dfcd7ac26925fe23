//! Balances: running totals of one currency. The four stored totals only ever grow or shrink by the
//! movements in `transaction.rs`; `balance` and `inflight_balance` are derived from them.

use super::velocity::CheckpointLog;
use num_bigint::BigInt;
use num_traits::Signed;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    pub id: String,
    pub ledger_id: String,
    pub identity_id: String,
    /// Empty for ordinary balances; `@World`, `@Revenue`, … for indicator balances.
    pub indicator: String,
    pub currency: String,
    pub credit_balance: BigInt,
    pub debit_balance: BigInt,
    pub inflight_credit_balance: BigInt,
    pub inflight_debit_balance: BigInt,
    /// Bumped by every change, so a reader can tell two snapshots apart.
    pub version: i64,
    pub created_at: String,
    pub meta_data: Map<String, Value>,
    /// Some ledger-wide monitor has stored a state for this balance (`RuleState`): a batch that
    /// loads the balance reads those states, and skips the read for every other balance (most of
    /// them, under a rule that has not acted on them). Never shown to clients.
    pub has_rule_states: bool,
    /// The balance's latest checkpoints for its velocity windows (empty unless a velocity monitor
    /// watches it): kept on its row, written with its totals (see `domain::velocity`). Never
    /// shown to clients.
    pub checkpoints: CheckpointLog,
}

impl Balance {
    pub fn new(id: String, ledger_id: String, currency: String, created_at: String) -> Self {
        Balance {
            id,
            ledger_id,
            identity_id: String::new(),
            indicator: String::new(),
            currency,
            credit_balance: BigInt::default(),
            debit_balance: BigInt::default(),
            inflight_credit_balance: BigInt::default(),
            inflight_debit_balance: BigInt::default(),
            version: 0,
            created_at,
            meta_data: Map::new(),
            has_rule_states: false,
            checkpoints: CheckpointLog::default(),
        }
    }

    pub fn balance(&self) -> BigInt {
        &self.credit_balance - &self.debit_balance
    }

    pub fn inflight_balance(&self) -> BigInt {
        &self.inflight_credit_balance - &self.inflight_debit_balance
    }

    /// What the balance may still send: its balance less what is already held for inflight debits.
    pub fn available(&self) -> BigInt {
        self.balance() - &self.inflight_debit_balance
    }

    /// Indicator balances (`@World`) stand for the outside world and may always go negative.
    pub fn is_indicator(&self) -> bool {
        !self.indicator.is_empty()
    }

    /// Invariant B1: the four totals are sums of positive movements (less released holds), so none
    /// can be negative. A violation means a movement was applied wrongly: a bug, not bad input.
    pub fn assert_invariants(&self) {
        assert!(
            !self.credit_balance.is_negative()
                && !self.debit_balance.is_negative()
                && !self.inflight_credit_balance.is_negative()
                && !self.inflight_debit_balance.is_negative(),
            "invariant B1 violated: negative total on balance {}",
            self.id
        );
    }
}
