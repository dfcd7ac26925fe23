//! A transaction as Blnk writes it.

use super::number::{decimal, integer};
use crate::domain::transaction::Transaction;
use serde::Serialize;
use serde_json::{Map, Number, Value};

#[derive(Serialize, utoipa::ToSchema)]
pub struct TransactionJson {
    pub transaction_id: String,
    pub parent_transaction: String,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub amount: Number,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub precise_amount: Number,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub precision: Number,
    pub reference: String,
    pub description: String,
    pub currency: String,
    pub source: String,
    pub destination: String,
    pub status: &'static str,
    pub allow_overdraft: bool,
    /// Major units; 0 when the transaction has no limit of its own.
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub overdraft_limit: Number,
    pub inflight: bool,
    pub created_at: String,
    /// RFC 3339 in UTC; absent when the client gave none (then it is `created_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub meta_data: Map<String, Value>,
}

impl From<Transaction> for TransactionJson {
    fn from(t: Transaction) -> Self {
        TransactionJson {
            amount: decimal(&t.amount()),
            precise_amount: integer(&t.precise_amount),
            precision: integer(&t.precision.value()),
            transaction_id: t.id,
            parent_transaction: t.parent.unwrap_or_default(),
            reference: t.reference,
            description: t.description,
            currency: t.currency,
            source: t.source,
            destination: t.destination,
            status: t.status.as_str(),
            allow_overdraft: t.allow_overdraft,
            overdraft_limit: decimal(&t.precision.to_major(&t.overdraft_limit)),
            inflight: t.inflight,
            created_at: t.created_at,
            effective_date: t.effective_date,
            meta_data: t.meta_data,
        }
    }
}
