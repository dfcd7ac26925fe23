//! `/balances`: create, get, list, and find an indicator balance by currency.

use super::error::ApiError;
use super::extract::{JsonBody, Paging, PathId, PathPair, Payload};
use super::{created, read, AppState};
use crate::domain::error::Resource;
use crate::engine::{Command, Outcome};
use crate::wire::BalanceJson;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
pub struct CreateBalanceBody {
    ledger_id: Option<String>,
    currency: Option<String>,
    identity_id: Option<String>,
    meta_data: Option<Map<String, Value>>,
}

impl Payload for CreateBalanceBody {
    const RESOURCE: Resource = Resource::Balance;
}

pub async fn create(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<CreateBalanceBody>,
) -> Result<Response, ApiError> {
    let required = |value: Option<String>, field: &str| match value.map(|v| v.trim().to_string()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::validation(Resource::Balance, field, format!("{field} is required"))),
    };
    let command = Command::CreateBalance {
        ledger_id: required(body.ledger_id, "ledger_id")?,
        currency: required(body.currency, "currency")?,
        identity_id: body.identity_id.unwrap_or_default(),
        meta_data: body.meta_data.unwrap_or_default(),
    };
    match app.engine.submit(command).await? {
        Outcome::Balance(b) => Ok(created(BalanceJson::from(b))),
        other => unreachable!("CreateBalance answers a balance, not {other:?}"),
    }
}

pub async fn get(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<BalanceJson>, ApiError> {
    let balance = read(&app, move |r| r.balance(&id)).await?;
    balance.map(|b| Json(b.into())).ok_or_else(|| ApiError::not_found(Resource::Balance))
}

pub async fn list(State(app): State<AppState>, Paging(page): Paging) -> Result<Json<Vec<BalanceJson>>, ApiError> {
    let balances = read(&app, move |r| r.balances(page)).await?;
    Ok(Json(balances.into_iter().map(BalanceJson::from).collect()))
}

/// `GET /balances/indicator/{indicator}/currency/{currency}`; the leading `@` may be left out.
pub async fn by_indicator(
    State(app): State<AppState>,
    PathPair(indicator, currency): PathPair,
) -> Result<Json<BalanceJson>, ApiError> {
    let indicator = if indicator.starts_with('@') { indicator } else { format!("@{indicator}") };
    let balance = read(&app, move |r| r.balance_by_indicator(&indicator, &currency)).await?;
    balance.map(|b| Json(b.into())).ok_or_else(|| ApiError::not_found(Resource::Balance))
}
