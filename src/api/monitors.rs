//! `/balance-monitors`: create, get, list, list by balance, update, delete, and a monitor's events.
//! A body is turned into a definition here (`new_monitor`: the condition, its re-arm level and
//! window, the trigger, the action and its transfer); the engine checks what needs the balances.

use super::error::ApiError;
use super::extract::{JsonBody, Paging, PathId, Payload};
use super::filters::{self, FilterBody, ListQuery, Listed, Listing, MonitorList};
use super::{created, read, AppState};
use crate::domain::amount::Precision;
use crate::domain::currency;
use crate::domain::error::Resource;
use crate::domain::monitor::{check_definition, Action, AutoTransfer, Condition, LedgerScope, Trigger};
use crate::engine::{Command, NewMonitor, Outcome};
use crate::store::EventFilter;
use crate::wire::number::NumberText;
use crate::wire::{EventJson, MonitorJson};
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct MonitorBody {
    /// The balance to watch; or, instead, `ledger_id`.
    balance_id: Option<String>,
    /// (keel) A ledger-wide monitor: watches every balance of this ledger, present and future, each
    /// with its own state (instead of `balance_id`).
    ledger_id: Option<String>,
    /// (keel) With `ledger_id`: only the balances in this currency (required with a transfer).
    currency: Option<String>,
    /// (keel) With `ledger_id`: only the balances whose `meta_data` has every one of these keys
    /// with the same value (`{"tier": "gold"}`).
    #[schema(value_type = Option<Object>)]
    balance_meta_data: Option<Map<String, Value>>,
    condition: Option<ConditionBody>,
    description: Option<String>,
    call_back_url: Option<String>,
    #[schema(value_type = Option<Object>)]
    meta_data: Option<Map<String, Value>>,
    /// `every` (the default) or `crossing`; Blnk PR #388's `level` and `edge` are the same two.
    trigger: Option<String>,
    /// (keel) `notify` (the default); `reject`: a guard, refusing any transaction that would make
    /// the condition hold; `transfer`: records `transfer` when the monitor triggers.
    action: Option<String>,
    /// (keel) With `action: "transfer"`: what to record when the monitor triggers.
    transfer: Option<TransferBody>,
}

/// The transfer a monitor records when it triggers: between its balance and `source` (a top-up
/// into it) or `destination` (a sweep out of it).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TransferBody {
    source: Option<String>,
    destination: Option<String>,
    /// `"excess"` (what `balance` holds above a `>`/`>=` threshold), `"shortfall"` (what it lacks
    /// below a `<`/`<=` one), or an amount in the condition's precision.
    #[schema(schema_with = crate::wire::number::number_or_string_schema)]
    amount: Option<NumberText>,
    description: Option<String>,
    allow_overdraft: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConditionBody {
    field: Option<String>,
    operator: Option<String>,
    #[schema(schema_with = crate::wire::number::number_or_string_schema)]
    value: Option<NumberText>,
    #[schema(schema_with = crate::wire::number::number_or_string_schema)]
    precision: Option<NumberText>,
    /// (keel) The re-arm level of an edge monitor, in major units like `value`: once triggered it
    /// resolves only when the field no longer passes this level.
    #[schema(schema_with = crate::wire::number::number_or_string_schema)]
    reset_value: Option<NumberText>,
    /// (keel) The window `debit_volume`, `credit_volume` and `transaction_count` are measured over,
    /// rolling: `"90s"`, `"15m"`, `"1h"`, `"24h"`, `"7d"` (1 s to 366 d).
    window: Option<String>,
}

impl Payload for MonitorBody {
    const RESOURCE: Resource = Resource::Monitor;
}

/// Blnk's answer to a delete.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DeletedJson {
    /// `BalanceMonitor deleted successfully`
    message: &'static str,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(Resource::Monitor, field, message)
}

/// Turns a request body into a monitor definition; every refusal names the field. `allowed_hosts`
/// (the server's `--callback-allowed-hosts`) restricts where `call_back_url` may point.
fn new_monitor(body: MonitorBody, allowed_hosts: Option<&[String]>) -> Result<NewMonitor, ApiError> {
    let (balance_id, scope) = watched(body.balance_id, body.ledger_id, body.currency, body.balance_meta_data)?;
    let condition = new_condition(body.condition.ok_or_else(|| invalid("condition", "condition is required"))?)?;
    let trigger = match body.trigger.as_deref() {
        None | Some("") => Trigger::Every,
        Some(text) => Trigger::parse(text).ok_or_else(|| {
            invalid("trigger", "trigger must be \"every\" or \"crossing\" (Blnk's \"level\" or \"edge\")")
        })?,
    };
    let action = match body.action.as_deref() {
        None | Some("") => Action::Notify,
        Some(text) => Action::parse(text)
            .ok_or_else(|| invalid("action", "action must be \"notify\", \"reject\" or \"transfer\""))?,
    };
    let transfer = body.transfer.map(|t| new_transfer(t, condition.precision)).transpose()?;
    check_definition(&condition, trigger, action, transfer.as_ref())?;
    if transfer.is_some() && scope.as_ref().is_some_and(|s| s.currency.is_none()) {
        return Err(invalid("currency", "a ledger-wide monitor with a transfer names its currency"));
    }
    let call_back_url = body.call_back_url.unwrap_or_default().trim().to_string();
    if !call_back_url.is_empty() {
        crate::webhooks::callback::check(&call_back_url, allowed_hosts)
            .map_err(|refusal| invalid("call_back_url", refusal.to_string()))?;
    }
    Ok(NewMonitor {
        balance_id,
        scope,
        condition,
        description: body.description.unwrap_or_default(),
        call_back_url,
        meta_data: body.meta_data.unwrap_or_default(),
        trigger,
        action,
        transfer,
    })
}

/// What a monitor watches: one balance (`balance_id`), or every balance of a ledger (`ledger_id`,
/// narrowed by `currency` and `balance_meta_data`); exactly one of the two.
fn watched(
    balance_id: Option<String>,
    ledger_id: Option<String>,
    currency: Option<String>,
    balance_meta_data: Option<Map<String, Value>>,
) -> Result<(String, Option<LedgerScope>), ApiError> {
    let given = |id: Option<String>| id.map(|b| b.trim().to_string()).filter(|b| !b.is_empty());
    match (given(balance_id), given(ledger_id)) {
        (Some(_), Some(_)) => Err(invalid("ledger_id", "give balance_id or ledger_id, not both")),
        (None, None) => {
            Err(invalid("balance_id", "balance_id is required (or ledger_id, for every balance of a ledger)"))
        }
        (Some(balance_id), None) => {
            let narrowing = [("currency", currency.is_some()), ("balance_meta_data", balance_meta_data.is_some())];
            match narrowing.into_iter().find(|(_, given)| *given) {
                Some((field, _)) => {
                    Err(invalid(field, format!("{field} narrows a ledger-wide monitor: it needs ledger_id")))
                }
                None => Ok((balance_id, None)),
            }
        }
        (None, Some(ledger_id)) => {
            let currency = currency.map(|c| currency::parse(Resource::Monitor, Some(&c))).transpose()?;
            let balance_meta_data = balance_meta_data.unwrap_or_default();
            Ok((String::new(), Some(LedgerScope { ledger_id, currency, balance_meta_data })))
        }
    }
}

fn new_condition(body: ConditionBody) -> Result<Condition, ApiError> {
    let field = body.field.ok_or_else(|| invalid("condition.field", "condition.field is required"))?;
    let operator = body.operator.ok_or_else(|| invalid("condition.operator", "condition.operator is required"))?;
    let value = body.value.ok_or_else(|| invalid("condition.value", "condition.value is required"))?;
    let precision = body.precision.as_ref().map(|p| p.0.as_str());
    let mut condition = Condition::new(&field, &operator, &value.0, precision)?;
    if let Some(reset) = body.reset_value {
        condition = condition.with_reset(&reset.0)?;
    }
    if let Some(window) = body.window {
        condition = condition.with_window(&window)?;
    }
    Ok(condition)
}

fn new_transfer(body: TransferBody, precision: Precision) -> Result<AutoTransfer, ApiError> {
    let amount = body.amount.ok_or_else(|| invalid("transfer.amount", "transfer.amount is required"))?;
    let (source, destination) = (body.source.as_deref(), body.destination.as_deref());
    let description = body.description.unwrap_or_default();
    let overdraft = body.allow_overdraft.unwrap_or(false);
    Ok(AutoTransfer::new(source, destination, &amount.0, precision, description, overdraft)?)
}

fn monitor_reply(outcome: Outcome) -> MonitorJson {
    match outcome {
        Outcome::Monitor(m) => m.into(),
        other => unreachable!("monitor commands answer a monitor, not {other:?}"),
    }
}

#[utoipa::path(operation_id = "createBalanceMonitor",
    post,
    path = "/balance-monitors",
    tag = "balance-monitors",
    request_body = MonitorBody,
    responses(
        (status = 201, description = "the monitor", body = crate::wire::MonitorJson),
        (status = 400, description = "GEN_MALFORMED_REQUEST, BAL_VALIDATION_ERROR (naming the \
            field)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 413, description = "GEN_PAYLOAD_TOO_LARGE", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn create(State(app): State<AppState>, JsonBody(body): JsonBody<MonitorBody>) -> Result<Response, ApiError> {
    let monitor = new_monitor(body, app.callback_hosts.as_deref())?;
    let outcome = app.engine.submit(Command::CreateMonitor(monitor)).await?;
    Ok(created(monitor_reply(outcome)))
}

#[utoipa::path(operation_id = "updateBalanceMonitor",
    put,
    path = "/balance-monitors/{id}",
    tag = "balance-monitors",
    request_body = MonitorBody,
    params(("id" = String, Path, description = "monitor id")),
    responses(
        (status = 200, description = "the monitor, precise_value recomputed", body = crate::wire::MonitorJson),
        (status = 400, description = "BAL_VALIDATION_ERROR", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "BAL_MONITOR_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 413, description = "GEN_PAYLOAD_TOO_LARGE", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn update(
    State(app): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<MonitorBody>,
) -> Result<Json<MonitorJson>, ApiError> {
    let monitor = new_monitor(body, app.callback_hosts.as_deref())?;
    let outcome = app.engine.submit(Command::UpdateMonitor { id, monitor }).await?;
    Ok(Json(monitor_reply(outcome)))
}

#[utoipa::path(operation_id = "deleteBalanceMonitor",
    delete,
    path = "/balance-monitors/{id}",
    tag = "balance-monitors",
    params(("id" = String, Path, description = "monitor id")),
    responses(
        (status = 200, description = "deleted", body = DeletedJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "BAL_MONITOR_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn delete(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<DeletedJson>, ApiError> {
    app.engine.submit(Command::DeleteMonitor { id }).await?;
    Ok(Json(DeletedJson { message: "BalanceMonitor deleted successfully" }))
}

#[utoipa::path(operation_id = "getBalanceMonitor",
    get,
    path = "/balance-monitors/{id}",
    tag = "balance-monitors",
    params(("id" = String, Path, description = "monitor id")),
    responses(
        (status = 200, description = "the monitor", body = crate::wire::MonitorJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "BAL_MONITOR_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn get(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<MonitorJson>, ApiError> {
    let monitor = read(&app, move |r| r.monitor(&id)).await?;
    monitor.map(|m| Json(m.into())).ok_or_else(|| ApiError::not_found(Resource::Monitor))
}

#[utoipa::path(operation_id = "listBalanceMonitors",
    get,
    path = "/balance-monitors",
    tag = "balance-monitors",
    params(crate::api::filters::ListQueryDoc),
    responses(
        (status = 200, description = "monitors (and ledger-wide ones), newest first, filtered (see README, \
            Filters)", body = Vec<crate::wire::MonitorJson>),
        (status = 400, description = "GEN_VALIDATION_ERROR (a paging option, or a filter: `errors` names \
            it)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn list(
    State(app): State<AppState>,
    ListQuery(query, _): ListQuery<MonitorList>,
) -> Result<Listing<MonitorJson>, ApiError> {
    filters::answer(&app, query, |r, q| r.find_monitors(q), MonitorJson::from).await
}

#[utoipa::path(operation_id = "filterBalanceMonitors",
    post,
    path = "/balance-monitors/filter",
    tag = "balance-monitors",
    request_body = crate::api::filters::FilterBody,
    responses(
        (status = 200, description = "(keel) the monitors matching the filters", body = Vec<crate::wire::MonitorJson>),
        (status = 400, description = "GEN_MALFORMED_REQUEST, GEN_VALIDATION_ERROR (`errors` names the \
            filter)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn filter(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<FilterBody>,
) -> Result<Listing<MonitorJson>, ApiError> {
    let query = filters::from_body(MonitorList::COLLECTION, body)?;
    filters::answer(&app, query, |r, q| r.find_monitors(q), MonitorJson::from).await
}

#[utoipa::path(operation_id = "listBalanceMonitorsOfBalance",
    get,
    path = "/balance-monitors/balances/{id}",
    tag = "balance-monitors",
    params(("id" = String, Path, description = "balance id")),
    responses(
        (status = 200, description = "the balance's monitors ([] when none), then the ledger-wide monitors \
            that cover it, each with this balance's state", body = Vec<crate::wire::MonitorJson>),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn of_balance(
    State(app): State<AppState>,
    PathId(balance_id): PathId,
) -> Result<Json<Vec<MonitorJson>>, ApiError> {
    let monitors = read(&app, move |r| {
        let mut monitors = r.monitors_of_balance(&balance_id)?;
        let Some(balance) = r.balance(&balance_id)? else { return Ok(monitors) };
        // The ledger's rules that cover the balance, each as its instance there: its own state.
        let states = r.rule_states(std::slice::from_ref(&balance_id))?;
        for rule in r.rules_of_ledger(&balance.ledger_id)? {
            if rule.scope.as_ref().is_some_and(|s| s.covers(&balance)) {
                let state = states.iter().find(|s| s.monitor_id == rule.id);
                monitors.push(rule.instance_on(&balance, state, 0));
            }
        }
        Ok(monitors)
    })
    .await?;
    Ok(Json(monitors.into_iter().map(MonitorJson::from).collect()))
}

/// `GET /balance-monitors/{id}/events`: the monitor's history, newest first: its triggers, resolves
/// and failed automatic transfers, each with the transaction and the balance as it stood right
/// after it.
#[utoipa::path(operation_id = "listBalanceMonitorEvents",
    get,
    path = "/balance-monitors/{id}/events",
    tag = "balance-monitors",
    params(("id" = String, Path, description = "monitor id")),
    responses(
        (status = 200, description = "(keel) the monitor's history, newest first (balance.monitor, \
            balance.monitor.resolved, balance.monitor.action_failed), with transaction and balance snapshot",
            body = Vec<crate::wire::EventJson>),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "BAL_MONITOR_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn events(
    State(app): State<AppState>,
    PathId(id): PathId,
    Paging(page): Paging,
) -> Result<Json<Vec<EventJson>>, ApiError> {
    let found = read(&app, move |r| {
        if r.monitor(&id)?.is_none() {
            return Ok(None);
        }
        r.events(&EventFilter { delivery: None, monitor_id: Some(id) }, page).map(Some)
    })
    .await?;
    let events = found.ok_or_else(|| ApiError::not_found(Resource::Monitor))?;
    Ok(Json(events.into_iter().map(|e| EventJson::new(e, None)).collect()))
}
