//! A transaction as Blnk writes it.

use super::number::{decimal, integer};
use crate::domain::split::{Share, SplitSide};
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inflight_expiry_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inflight_commit_date: Option<String>,
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
            // A commit's, void's or refund's transaction, or the split a leg belongs to.
            parent_transaction: t.parent.or(t.group).unwrap_or_default(),
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
            scheduled_for: t.scheduled_for,
            inflight_expiry_date: t.inflight_expiry_date,
            inflight_commit_date: t.inflight_commit_date,
            meta_data: t.meta_data,
        }
    }
}

/// A split transaction's answer, as Blnk writes it: the parent (not stored itself: its legs are,
/// each with `parent_transaction` set to its id) with the shares, each naming its leg. Built as a
/// map rather than with `#[serde(flatten)]`, which cannot carry `arbitrary_precision` numbers.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(value_type = Object)]
pub struct SplitJson(Map<String, Value>);

#[derive(Serialize, utoipa::ToSchema)]
pub struct ShareJson {
    pub identifier: String,
    pub distribution: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub precise_distribution: String,
    /// The leg's transaction; empty for a share that came to 0 (no leg).
    pub transaction_id: String,
    /// (keel) What the share came to, in minor units.
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub precise_amount: Number,
}

impl SplitJson {
    pub fn new(parent: Transaction, side: SplitSide, shares: &[Share], legs: Vec<Option<Transaction>>) -> Self {
        let shares: Vec<ShareJson> = shares
            .iter()
            .zip(legs)
            .map(|(share, leg)| ShareJson {
                identifier: share.identifier.clone(),
                distribution: share.distribution.clone(),
                precise_distribution: share.precise_distribution.clone(),
                transaction_id: leg.as_ref().map(|t| t.id.clone()).unwrap_or_default(),
                precise_amount: integer(&leg.map(|t| t.precise_amount).unwrap_or_default()),
            })
            .collect();
        let serialized = serde_json::to_value(TransactionJson::from(parent)).expect("a transaction serializes");
        let Value::Object(mut map) = serialized else { unreachable!("a transaction is a JSON object") };
        let key = match side {
            SplitSide::Sources => "sources",
            SplitSide::Destinations => "destinations",
        };
        map.insert(key.into(), serde_json::to_value(shares).expect("shares serialize"));
        SplitJson(map)
    }
}
