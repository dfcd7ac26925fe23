//! `/balances`: create, get, list, and find an indicator balance by currency.

use super::error::ApiError;
use super::extract::{JsonBody, PathId, PathPair, Payload, QueryPairs};
use super::filters::{self, BalanceList, FilterBody, ListQuery, Listed, Listing};
use super::{created, read, AppState};
use crate::domain::currency;
use crate::domain::error::Resource;
use crate::domain::ledger::GENERAL_LEDGER_ID;
use crate::domain::replay::Replay;
use crate::engine::{Command, Outcome};
use crate::wire::number::integer;
use crate::wire::BalanceJson;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use num_bigint::BigInt;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateBalanceBody {
    ledger_id: Option<String>,
    currency: Option<String>,
    identity_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    meta_data: Option<Map<String, Value>>,
    /// Only with `ledger_id: general_ledger_id`: an indicator balance (`@Fees`) made ahead of its
    /// first use. `@` then no whitespace; surrounding spaces are trimmed.
    indicator: Option<String>,
}

impl Payload for CreateBalanceBody {
    const RESOURCE: Resource = Resource::Balance;
    const NOT_YET: &'static [&'static str] = &["precision", "track_fund_lineage", "allocation_strategy"];
}

#[utoipa::path(operation_id = "createBalance",
    post,
    path = "/balances",
    tag = "balances",
    request_body = CreateBalanceBody,
    responses(
        (status = 201, description = "the balance, all amounts 0", body = crate::wire::BalanceJson),
        (status = 400, description = "GEN_MALFORMED_REQUEST, \
            BAL_VALIDATION_ERROR", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "LGR_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 409, description = "GEN_CONFLICT: that indicator exists in that \
            currency", body = crate::api::error::ErrorBody),
        (status = 413, description = "GEN_PAYLOAD_TOO_LARGE", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn create(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<CreateBalanceBody>,
) -> Result<Response, ApiError> {
    let required = |value: Option<String>, field: &str| match value.map(|v| v.trim().to_string()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::validation(Resource::Balance, field, format!("{field} is required"))),
    };
    let ledger_id = required(body.ledger_id, "ledger_id")?;
    let indicator = body.indicator.as_deref().map(str::trim).unwrap_or_default().to_string();
    if !indicator.is_empty() {
        let invalid = |message: &str| ApiError::validation(Resource::Balance, "indicator", message);
        if ledger_id != GENERAL_LEDGER_ID {
            return Err(invalid(
                "indicator is only allowed for General Ledger balances (ledger_id = general_ledger_id)",
            ));
        }
        if !indicator.starts_with('@') || indicator.len() < 2 || indicator.chars().any(char::is_whitespace) {
            return Err(invalid("indicator must start with '@' and contain no whitespace (e.g. '@cash')"));
        }
    }
    let command = Command::CreateBalance {
        ledger_id,
        indicator,
        currency: currency::parse(Resource::Balance, body.currency.as_deref())?,
        identity_id: body.identity_id.unwrap_or_default(),
        meta_data: body.meta_data.unwrap_or_default(),
    };
    match app.engine.submit(command).await? {
        Outcome::Balance(b) => Ok(created(BalanceJson::from(b))),
        other => unreachable!("CreateBalance answers a balance, not {other:?}"),
    }
}

/// `GET /balances/{id}`'s options, as Blnk's SDKs send them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by `balance_options` from the query string; this type only describes it
pub struct BalanceOptions {
    /// `ledger` and/or `identity` (repeated, or comma-separated): embed them.
    include: Option<String>,
    /// `true`: add `queued_debit_balance` and `queued_credit_balance`.
    with_queued: Option<bool>,
    /// `true`: the four totals recomputed from the balance's transactions (the log), not read.
    from_source: Option<bool>,
}

#[derive(Default)]
struct Options {
    ledger: bool,
    identity: bool,
    with_queued: bool,
    from_source: bool,
}

fn balance_options(pairs: &[(String, String)]) -> Result<Options, ApiError> {
    let mut o = Options::default();
    let invalid = |field: &str, message: String| ApiError::validation(Resource::Balance, field, message);
    let flag = |field: &str, value: &str| match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "" | "false" | "0" => Ok(false),
        _ => Err(invalid(field, format!("{field} must be true or false"))),
    };
    for (name, value) in pairs {
        match name.as_str() {
            "with_queued" => o.with_queued = flag(name, value)?,
            "from_source" => o.from_source = flag(name, value)?,
            "include" => {
                for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    match part {
                        "ledger" => o.ledger = true,
                        "identity" => o.identity = true,
                        other => {
                            return Err(invalid("include", format!("include may be ledger or identity, not {other}")))
                        }
                    }
                }
            }
            other => {
                let message = format!("{other} is not an option of this route (include, with_queued, from_source)");
                return Err(invalid(other, message));
            }
        }
    }
    Ok(o)
}

#[utoipa::path(operation_id = "getBalance",
    get,
    path = "/balances/{id}",
    tag = "balances",
    params(("id" = String, Path, description = "balance id"), BalanceOptions),
    responses(
        (status = 200, description = "the balance", body = crate::wire::BalanceJson),
        (status = 400, description = "BAL_VALIDATION_ERROR (an option)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "BAL_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn get(
    State(app): State<AppState>,
    PathId(id): PathId,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<BalanceJson>, ApiError> {
    let o = balance_options(&pairs)?;
    let found = read(&app, move |r| {
        let Some(mut balance) = r.balance(&id)? else { return Ok(None) };
        if o.from_source {
            let mut replay = Replay::default();
            r.transactions_of_balance(&id)?.iter().for_each(|t| replay.apply(t));
            let totals = replay.expected(&id);
            (balance.credit_balance, balance.debit_balance) = (totals.credit, totals.debit);
            (balance.inflight_credit_balance, balance.inflight_debit_balance) =
                (totals.inflight_credit, totals.inflight_debit);
        }
        let queued = if o.with_queued { Some(r.queued_of_balance(&id)?) } else { None };
        let ledger = if o.ledger { r.ledger(&balance.ledger_id)? } else { None };
        let identity = match o.identity && !balance.identity_id.is_empty() {
            true => r.identity(&balance.identity_id)?,
            false => None,
        };
        Ok(Some((balance, queued, ledger, identity)))
    })
    .await?;
    let (balance, queued, ledger, identity) = found.ok_or_else(|| ApiError::not_found(Resource::Balance))?;
    let id = balance.id.clone();
    let mut json = BalanceJson::from(balance);
    if let Some(queued) = queued {
        let side = |debit: bool| {
            let sum: BigInt =
                queued.iter().filter(|t| (t.source_balance_id == id) == debit).map(|t| &t.precise_amount).sum();
            integer(&sum)
        };
        (json.queued_debit_balance, json.queued_credit_balance) = (Some(side(true)), Some(side(false)));
    }
    json.ledger = ledger.map(Into::into);
    json.identity = identity.map(Into::into);
    Ok(Json(json))
}

/// `PUT /balances/{id}/identity`'s body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct BalanceIdentityBody {
    identity_id: Option<String>,
}

impl Payload for BalanceIdentityBody {
    const RESOURCE: Resource = Resource::Balance;
}

#[utoipa::path(operation_id = "updateBalanceIdentity",
    put,
    path = "/balances/{id}/identity",
    tag = "balances",
    params(("id" = String, Path, description = "balance id")),
    request_body = BalanceIdentityBody,
    responses(
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 200, description = "`{\"message\": \"Balance identity updated successfully\"}` \
            (Blnk's)", body = Object),
        (status = 400, description = "GEN_VALIDATION_ERROR (identity_id)", body = crate::api::error::ErrorBody),
        (status = 404, description = "BAL_NOT_FOUND, IDT_NOT_FOUND", body = crate::api::error::ErrorBody))
)]
pub async fn set_identity(
    State(app): State<AppState>,
    PathId(balance_id): PathId,
    JsonBody(body): JsonBody<BalanceIdentityBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let identity_id = body.identity_id.map(|i| i.trim().to_string()).filter(|i| !i.is_empty());
    let identity_id =
        identity_id.ok_or_else(|| ApiError::validation(Resource::General, "identity_id", "identity_id is required"))?;
    match app.engine.submit(Command::SetBalanceIdentity { balance_id, identity_id }).await? {
        Outcome::Done => Ok(Json(serde_json::json!({ "message": "Balance identity updated successfully" }))),
        other => unreachable!("SetBalanceIdentity answers Done, not {other:?}"),
    }
}

#[utoipa::path(operation_id = "listBalances",
    get,
    path = "/balances",
    tag = "balances",
    params(crate::api::filters::ListQueryDoc),
    responses(
        (status = 200, description = "balances, newest first (as Blnk), filtered; `{data, total_count}` with \
            include_count=true", body = Vec<crate::wire::BalanceJson>),
        (status = 400, description = "GEN_VALIDATION_ERROR (a paging option, or a filter: `errors` names \
            it)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn list(
    State(app): State<AppState>,
    ListQuery(query, _): ListQuery<BalanceList>,
) -> Result<Listing<BalanceJson>, ApiError> {
    filters::answer(&app, query, |r, q| r.find_balances(q), BalanceJson::from).await
}

#[utoipa::path(operation_id = "filterBalances",
    post,
    path = "/balances/filter",
    tag = "balances",
    request_body = crate::api::filters::FilterBody,
    responses(
        (status = 200, description = "the balances matching the filters (an array; `{data, total_count}` with \
            include_count)", body = Vec<crate::wire::BalanceJson>),
        (status = 400, description = "GEN_MALFORMED_REQUEST, GEN_VALIDATION_ERROR (`errors` names the \
            filter)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn filter(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<FilterBody>,
) -> Result<Listing<BalanceJson>, ApiError> {
    let query = filters::from_body(BalanceList::COLLECTION, body)?;
    filters::answer(&app, query, |r, q| r.find_balances(q), BalanceJson::from).await
}

/// `GET /balances/indicator/{indicator}/currency/{currency}`; the leading `@` may be left out.
#[utoipa::path(operation_id = "getBalanceByIndicator",
    get,
    path = "/balances/indicator/{indicator}/currency/{currency}",
    tag = "balances",
    params(("indicator" = String, Path, description = "e.g. @World (the @ may be left \
        out)"), ("currency" = String, Path, description = "e.g. USD")),
    responses(
        (status = 200, description = "the indicator balance", body = crate::wire::BalanceJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "BAL_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn by_indicator(
    State(app): State<AppState>,
    PathPair(indicator, currency): PathPair,
) -> Result<Json<BalanceJson>, ApiError> {
    let indicator = if indicator.starts_with('@') { indicator } else { format!("@{indicator}") };
    let balance = read(&app, move |r| r.balance_by_indicator(&indicator, &currency)).await?;
    balance.map(|b| Json(b.into())).ok_or_else(|| ApiError::not_found(Resource::Balance))
}
