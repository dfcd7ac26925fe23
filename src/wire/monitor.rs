//! A balance monitor as Blnk writes it, plus Blnk PR #388's `condition_state` and Keel's own fields
//! (`trigger`, `action`, `state`, `trigger_count`, `last_triggered_at`, `condition.reset_value`, and a
//! ledger-wide monitor's `ledger_id`, `currency` and `balance_meta_data`).

use super::number::{decimal, integer};
use crate::domain::monitor::{AutoAmount, AutoTransfer, Monitor, State};
use serde::Serialize;
use serde_json::{Map, Number, Value};

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConditionJson {
    pub field: &'static str,
    pub operator: &'static str,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub value: Number,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub precision: Number,
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub precise_value: Number,
    /// (keel) The re-arm level, when the monitor has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::wire::number::exact_number_schema)]
    pub reset_value: Option<Number>,
    /// (keel) A velocity field's window, as written (`"24h"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// A monitor's automatic transfer: to `destination` (a sweep) or from `source` (a top-up).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TransferJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// `"excess"`, `"shortfall"`, or an amount in the condition's precision.
    #[schema(value_type = Object)]
    pub amount: Value,
    pub description: String,
    pub allow_overdraft: bool,
}

impl From<AutoTransfer> for TransferJson {
    fn from(t: AutoTransfer) -> Self {
        let (source, destination) = match t.outgoing {
            true => (None, Some(t.counterparty)),
            false => (Some(t.counterparty), None),
        };
        let amount = match &t.amount {
            AutoAmount::Fixed(text, _) => Value::Number(decimal(text)),
            other => Value::String(other.as_text().to_string()),
        };
        TransferJson { source, destination, amount, description: t.description, allow_overdraft: t.allow_overdraft }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MonitorJson {
    pub monitor_id: String,
    /// The balance watched. A ledger-wide monitor read on its own has `""`; read among a balance's
    /// monitors, or in an event, it names that balance and shows that balance's state.
    pub balance_id: String,
    /// (keel) A ledger-wide monitor: the ledger whose balances it watches, present and future.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_id: Option<String>,
    /// (keel) A ledger-wide monitor narrowed to the balances of one currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// (keel) A ledger-wide monitor narrowed to the balances whose `meta_data` has these keys
    /// with these values.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub balance_meta_data: Option<Map<String, Value>>,
    pub condition: ConditionJson,
    pub description: String,
    pub call_back_url: String,
    #[schema(value_type = Option<Object>)]
    pub meta_data: Map<String, Value>,
    pub created_at: String,
    /// As written: `every`/`crossing`, or Blnk PR #388's `level`/`edge`.
    pub trigger: &'static str,
    /// Blnk PR #388: whether the condition is taken to hold (`false` = armed); `state == "triggered"`.
    pub condition_state: bool,
    /// (keel) `notify`, `reject` (a guard) or `transfer`.
    pub action: &'static str,
    /// (keel) What `action: "transfer"` records when the monitor triggers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferJson>,
    pub state: &'static str,
    pub trigger_count: i64,
    pub last_triggered_at: Option<String>,
}

impl From<Monitor> for MonitorJson {
    fn from(m: Monitor) -> Self {
        MonitorJson {
            condition: ConditionJson {
                field: m.condition.field.as_str(),
                operator: m.condition.operator.as_str(),
                value: decimal(&m.condition.value),
                precision: integer(&m.condition.precision.value()),
                precise_value: integer(&m.condition.precise_value),
                reset_value: m.condition.reset_value.as_deref().map(decimal),
                window: m.condition.window.map(|w| w.text),
            },
            ledger_id: m.scope.as_ref().map(|s| s.ledger_id.clone()),
            currency: m.scope.as_ref().and_then(|s| s.currency.clone()),
            balance_meta_data: m.scope.map(|s| s.balance_meta_data),
            monitor_id: m.id,
            balance_id: m.balance_id,
            description: m.description,
            call_back_url: m.call_back_url,
            meta_data: m.meta_data,
            created_at: m.created_at,
            trigger: m.trigger.as_str(),
            condition_state: m.state == State::Triggered,
            action: m.action.as_str(),
            transfer: m.transfer.map(TransferJson::from),
            state: m.state.as_str(),
            trigger_count: m.trigger_count,
            last_triggered_at: m.last_triggered_at,
        }
    }
}
