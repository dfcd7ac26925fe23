//! Webhook bodies (`{"event": "...", "data": {...}}`) and the API's view of an event and its
//! deliveries.

use super::{BalanceJson, LedgerJson, MonitorJson, TransactionJson};
use crate::domain::balance::Balance;
use crate::domain::error::DomainError;
use crate::domain::event::{Attempt, Event, EventKind};
use crate::domain::ledger::Ledger;
use crate::domain::monitor::Monitor;
use crate::domain::transaction::Transaction;
use serde::Serialize;
use serde_json::{json, Value};

/// `balance.monitor` (or `balance.monitor.resolved`, the same shape): the monitor (state as of
/// this evaluation), the balance right after the transaction, and the transaction's id.
pub fn monitor_event_body(kind: EventKind, monitor: &Monitor, balance: &Balance, transaction_id: &str) -> String {
    let mut data = serde_json::to_value(MonitorJson::from(monitor.clone())).expect("a monitor serializes");
    data["balance"] = serde_json::to_value(BalanceJson::from(balance.clone())).expect("a balance serializes");
    data["transaction_id"] = json!(transaction_id);
    json!({ "event": kind.as_str(), "data": data }).to_string()
}

/// `balance.monitor.action_failed`: the monitor, why its automatic transfer was refused (Blnk's
/// error code and message, as the API would answer it), and the transaction that triggered it.
pub fn action_failed_body(monitor: &Monitor, refused: &DomainError, transaction_id: &str) -> String {
    let mut data = serde_json::to_value(MonitorJson::from(monitor.clone())).expect("a monitor serializes");
    data["error"] = json!({"code": refused.code(), "message": refused.to_string()});
    data["transaction_id"] = json!(transaction_id);
    json!({ "event": EventKind::BalanceMonitorActionFailed.as_str(), "data": data }).to_string()
}

/// `ledger.created`: the ledger as the API shows it.
pub fn ledger_event_body(ledger: &Ledger) -> String {
    let data = LedgerJson::from(ledger.clone());
    json!({ "event": EventKind::LedgerCreated.as_str(), "data": data }).to_string()
}

/// `balance.created`: the balance as the API shows it (all totals 0).
pub fn balance_event_body(balance: &Balance) -> String {
    let data = BalanceJson::from(balance.clone());
    json!({ "event": EventKind::BalanceCreated.as_str(), "data": data }).to_string()
}

/// `transaction.*`: the transaction as the API shows it.
pub fn transaction_event_body(kind: EventKind, transaction: &Transaction) -> String {
    /// Serialized straight to text, not through a `Value`: one is written for every transaction
    /// when webhooks are on, and the detour cost as much as the rest of the event's write.
    #[derive(Serialize)]
    struct Body {
        event: &'static str,
        data: TransactionJson,
    }
    let body = Body { event: kind.as_str(), data: TransactionJson::from(transaction.clone()) };
    serde_json::to_string(&body).expect("a transaction serializes")
}

/// The body as delivered: the stored body with the event's outbox `sequence` as its first field
/// (`{"sequence": 42, "event": …, "data": …}`). The same bytes on every attempt, so a receiver
/// may deduplicate on `webhook-id` and order by `sequence`.
pub fn delivered_body(event: &Event) -> String {
    let rest = event.body.trim_start().strip_prefix('{').unwrap_or(&event.body);
    let separator = if rest.trim_start().starts_with('}') { "" } else { "," };
    format!("{{\"sequence\":{}{separator}{rest}", event.sequence)
}

/// The body of a Blnk hook's call (`POST /hooks`): Blnk's `HookPayload`, with the transaction
/// of a `transaction.*` event as `data`.
pub fn hook_body(event: &Event, hook_type: &str) -> String {
    let data = serde_json::from_str::<Value>(&event.body).map(|mut b| b["data"].take()).unwrap_or(Value::Null);
    json!({
        "transaction_id": data["transaction_id"],
        "hook_type": hook_type,
        "timestamp": event.created_at,
        "data": data,
    })
    .to_string()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptJson {
    pub attempt: u32,
    pub attempted_at: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The endpoint (`/webhooks`) it was made to; absent for the server's webhook URL or a
    /// monitor's `call_back_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
}

impl From<Attempt> for AttemptJson {
    fn from(a: Attempt) -> Self {
        AttemptJson {
            attempt: a.attempt,
            attempted_at: a.attempted_at,
            status_code: a.status_code,
            error: a.error,
            duration_ms: a.duration_ms,
            endpoint_id: a.endpoint_id,
        }
    }
}

/// A page of the event feed (`GET /events/feed`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventFeedJson {
    /// Oldest first, in commit order.
    pub events: Vec<EventJson>,
    /// Where the next page starts (`after=`): the last event's `sequence`, or the cursor asked
    /// from when the page is empty.
    pub next_cursor: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventJson {
    pub event_id: String,
    /// The event's place in the outbox, also the webhook body's `sequence`: for events about one
    /// balance, the order their changes committed in.
    pub sequence: i64,
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
            sequence: e.sequence,
            monitor_id: e.monitor_id,
            transaction_id: e.transaction_id,
            created_at: e.created_at,
            attempts: e.attempts,
            last_error: e.last_error,
            delivered_at: e.delivered_at,
            data,
            deliveries: attempts.map(|list| list.into_iter().map(AttemptJson::from).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Delivery;

    #[test]
    fn the_delivered_body_starts_with_the_sequence() {
        let mut event = Event {
            id: "evt_1".into(),
            kind: EventKind::TransactionApplied,
            body: r#"{"event":"transaction.applied","data":{"amount":1}}"#.into(),
            url: None,
            monitor_id: None,
            transaction_id: None,
            created_at: "t".into(),
            delivery: Delivery::Pending,
            attempts: 0,
            next_attempt_at: 0,
            last_error: None,
            delivered_at: None,
            sequence: 42,
        };
        assert_eq!(delivered_body(&event), r#"{"sequence":42,"event":"transaction.applied","data":{"amount":1}}"#);
        event.body = "{}".into();
        assert_eq!(delivered_body(&event), r#"{"sequence":42}"#);
    }
}
