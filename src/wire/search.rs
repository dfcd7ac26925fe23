//! Blnk's search documents (Typesense's): a record's JSON with `id` (the record's own id), every
//! instant as Unix seconds, and balances' amounts and transactions' `precise_amount` as strings.
//! The search indexer takes a record's terms from the same document (`terms`), so what is found
//! by a field is what the document shows in it.

use super::{BalanceJson, IdentityJson, LedgerJson, TransactionJson};
use crate::domain::balance::Balance;
use crate::domain::filter::Collection;
use crate::domain::identity::Identity;
use crate::domain::ledger::Ledger;
use crate::domain::transaction::Transaction;
use serde_json::{Map, Value};

/// Fields holding an instant, shown as Unix seconds (negative before 1970, as a `dob` may be).
const INSTANTS: [&str; 6] =
    ["created_at", "effective_date", "scheduled_for", "inflight_expiry_date", "inflight_expires_at", "dob"];
/// Amounts a search document shows as strings of minor units.
const AMOUNTS: [&str; 7] = [
    "balance",
    "credit_balance",
    "debit_balance",
    "inflight_balance",
    "inflight_credit_balance",
    "inflight_debit_balance",
    "precise_amount",
];

pub fn ledger(ledger: Ledger) -> Value {
    let id = ledger.id.clone();
    document(serde_json::to_value(LedgerJson::from(ledger)), id)
}

pub fn balance(balance: Balance) -> Value {
    let id = balance.id.clone();
    document(serde_json::to_value(BalanceJson::from(balance)), id)
}

pub fn transaction(transaction: Transaction) -> Value {
    let id = transaction.id.clone();
    document(serde_json::to_value(TransactionJson::from(transaction)), id)
}

pub fn identity(identity: Identity) -> Value {
    let id = identity.id.clone();
    document(serde_json::to_value(IdentityJson::from(identity)), id)
}

fn document(json: serde_json::Result<Value>, id: String) -> Value {
    let Ok(Value::Object(mut fields)) = json else { unreachable!("a record's JSON is an object") };
    for name in INSTANTS {
        if let Some(Value::String(text)) = fields.get(name) {
            let seconds = unix_seconds(text);
            fields.insert(name.to_string(), seconds.map_or(Value::Null, Value::from));
        }
    }
    for name in AMOUNTS {
        if let Some(Value::Number(n)) = fields.get(name) {
            let text = n.to_string();
            fields.insert(name.to_string(), Value::String(text));
        }
    }
    fields.insert("id".into(), Value::String(id));
    Value::Object(fields)
}

/// RFC 3339 (or a bare date, as `dob` may be) as Unix seconds.
fn unix_seconds(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let text = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_string() };
    time::OffsetDateTime::parse(&text, &Rfc3339).ok().map(|at| at.unix_timestamp())
}

/// A document's search terms (`domain::search::terms`): its text fields and its metadata.
pub fn terms(collection: Collection, document: &Value) -> Vec<String> {
    let fields: Vec<(&str, &str)> = crate::domain::search::text_fields(collection)
        .iter()
        .map(|name| (*name, document.get(*name).and_then(Value::as_str).unwrap_or("")))
        .collect();
    let empty = Map::new();
    let meta_data = document.get("meta_data").and_then(Value::as_object).unwrap_or(&empty);
    crate::domain::search::terms(&fields, meta_data)
}
