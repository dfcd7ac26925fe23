//! Webhook bodies (`{"event": "...", "data": {...}}`) and the API's view of an event and its
//! deliveries.

use super::{BalanceJson, MonitorJson, TransactionJson};
use crate::domain::balance::Balance;
use crate::domain::event::{Attempt, Event, EventKind};
use crate::domain::monitor::Monitor;
use crate::domain::transaction::Transaction;
use serde::Serialize;
use serde_json::{json, Value};

/// `balance.monitor`: the monitor (state as of this trigger), the balance right after the
/// transaction, and the transaction's id.
pub fn monitor_event_body(monitor: &Monitor, balance: &Balance, transaction_id: &str) -> String {
    let mut data = serde_json::to_value(MonitorJson::from(monitor.clone())).expect("a monitor serializes");
    data["balance"] = serde_json::to_value(BalanceJson::from(balance.clone())).expect("a balance serializes");
    data["transaction_id"] = json!(transaction_id);
    json!({ "event": EventKind::BalanceMonitor.as_str(), "data": data }).to_string()
}

/// `transaction.*`: the transaction as the API shows it.
pub fn transaction_event_body(kind: EventKind, transaction: &Transaction) -> String {
    let data = TransactionJson::from(transaction.clone());
    json!({ "event": kind.as_str(), "data": data }).to_string()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptJson {
    pub attempt: u32,
    pub attempted_at: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventJson {
    pub event_id: String,
    pub event: &'static str,
    pub monitor_id: Option<String>,
    pub transaction_id: Option<String>,
    pub created_at: String,
    /// `pending`, `delivered`, `failed` or `no_target`.
    pub status: &'static str,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    /// The webhook body's `data`: for `balance.monitor`, the monitor, `balance` and `transaction_id`.
    #[schema(value_type = Object)]
    pub data: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<AttemptJson>>,
}

impl EventJson {
    pub fn new(e: Event, attempts: Option<Vec<Attempt>>) -> Self {
        let data = serde_json::from_str::<Value>(&e.body).map(|mut b| b["data"].take()).unwrap_or(Value::Null);
        EventJson {
            event: e.kind.as_str(),
            status: e.delivery.as_str(),
            event_id: e.id,
            monitor_id: e.monitor_id,
            transaction_id: e.transaction_id,
            created_at: e.created_at,
            attempts: e.attempts,
            last_error: e.last_error,
            delivered_at: e.delivered_at,
            data,
            deliveries: attempts.map(|list| {
                list.into_iter()
                    .map(|a| AttemptJson {
                        attempt: a.attempt,
                        attempted_at: a.attempted_at,
                        status_code: a.status_code,
                        error: a.error,
                        duration_ms: a.duration_ms,
                    })
                    .collect()
            }),
        }
    }
}
