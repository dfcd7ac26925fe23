//! Ledgers group balances. The general ledger always exists and holds the indicator balances.

use serde_json::{Map, Value};

pub const GENERAL_LEDGER_ID: &str = "general_ledger_id";

#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub meta_data: Map<String, Value>,
}
