//! `/balances`: create, get, list, and find an indicator balance by currency.

use super::error::ApiError;
use super::extract::{JsonBody, PathId, PathPair, Payload};
use super::filters::{self, BalanceList, FilterBody, ListQuery, Listed, Listing};
use super::{created, read, AppState};
use crate::domain::currency;
use crate::domain::error::Resource;
use crate::domain::ledger::GENERAL_LEDGER_ID;
use crate::engine::{Command, Outcome};
use crate::wire::BalanceJson;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
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

#[utoipa::path(operation_id = "getBalance",
    get,
    path = "/balances/{id}",
    tag = "balances",
    params(("id" = String, Path, description = "balance id")),
    responses(
        (status = 200, description = "the balance", body = crate::wire::BalanceJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "BAL_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn get(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<BalanceJson>, ApiError> {
    let balance = read(&app, move |r| r.balance(&id)).await?;
    balance.map(|b| Json(b.into())).ok_or_else(|| ApiError::not_found(Resource::Balance))
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
    let found = read(&app, move |r| r.find_balances(&query)).await?;
    Ok(Listing::of(found, BalanceJson::from))
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
    let found = read(&app, move |r| r.find_balances(&query)).await?;
    Ok(Listing::of(found, BalanceJson::from))
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
