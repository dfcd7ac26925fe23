//! A ledger as Blnk writes it.

use crate::domain::ledger::Ledger;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Serialize, utoipa::ToSchema)]
pub struct LedgerJson {
    pub ledger_id: String,
    pub name: String,
    pub created_at: String,
    #[schema(value_type = Option<Object>)]
    pub meta_data: Map<String, Value>,
}

impl From<Ledger> for LedgerJson {
    fn from(l: Ledger) -> Self {
        LedgerJson { ledger_id: l.id, name: l.name, created_at: l.created_at, meta_data: l.meta_data }
    }
}
