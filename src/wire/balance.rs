//! A balance as Blnk writes it: the four stored totals, the two derived ones, all exact numbers.

use super::number::integer;
use crate::domain::balance::Balance;
use serde::Serialize;
use serde_json::{Map, Number, Value};

#[derive(Serialize, utoipa::ToSchema)]
pub struct BalanceJson {
    pub balance_id: String,
    pub ledger_id: String,
    pub identity_id: String,
    pub indicator: String,
    pub currency: String,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub balance: Number,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub credit_balance: Number,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub debit_balance: Number,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub inflight_balance: Number,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub inflight_credit_balance: Number,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub inflight_debit_balance: Number,
    pub version: i64,
    pub created_at: String,
    #[schema(value_type = Option<Object>)]
    pub meta_data: Map<String, Value>,
    /// With `with_queued=true`: what its `QUEUED` transactions will take from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub queued_debit_balance: Option<Number>,
    /// With `with_queued=true`: what its `QUEUED` transactions will bring it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub queued_credit_balance: Option<Number>,
    /// With `include=ledger`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger: Option<super::LedgerJson>,
    /// With `include=identity`, when the balance belongs to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<super::IdentityJson>,
}

impl From<Balance> for BalanceJson {
    fn from(b: Balance) -> Self {
        BalanceJson {
            balance: integer(&b.balance()),
            inflight_balance: integer(&b.inflight_balance()),
            credit_balance: integer(&b.credit_balance),
            debit_balance: integer(&b.debit_balance),
            inflight_credit_balance: integer(&b.inflight_credit_balance),
            inflight_debit_balance: integer(&b.inflight_debit_balance),
            balance_id: b.id,
            ledger_id: b.ledger_id,
            identity_id: b.identity_id,
            indicator: b.indicator,
            currency: b.currency,
            version: b.version,
            created_at: b.created_at,
            meta_data: b.meta_data,
            queued_debit_balance: None,
            queued_credit_balance: None,
            ledger: None,
            identity: None,
        }
    }
}
