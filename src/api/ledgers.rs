//! `/ledgers`: create, get, list, rename.

use super::error::ApiError;
use super::extract::{JsonBody, Paging, PathId, Payload};
use super::{created, read, AppState};
use crate::domain::error::Resource;
use crate::engine::{Command, Outcome};
use crate::wire::LedgerJson;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize)]
pub struct LedgerBody {
    name: Option<String>,
    meta_data: Option<Map<String, Value>>,
}

impl Payload for LedgerBody {
    const RESOURCE: Resource = Resource::Ledger;
}

fn required_name(body: &LedgerBody) -> Result<String, ApiError> {
    match body.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => Err(ApiError::validation(Resource::Ledger, "name", "name is required")),
    }
}

pub async fn create(State(app): State<AppState>, JsonBody(body): JsonBody<LedgerBody>) -> Result<Response, ApiError> {
    let name = required_name(&body)?;
    let command = Command::CreateLedger { name, meta_data: body.meta_data.unwrap_or_default() };
    match app.engine.submit(command).await? {
        Outcome::Ledger(l) => Ok(created(LedgerJson::from(l))),
        other => unreachable!("CreateLedger answers a ledger, not {other:?}"),
    }
}

pub async fn update(
    State(app): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<LedgerBody>,
) -> Result<Response, ApiError> {
    let name = required_name(&body)?;
    match app.engine.submit(Command::UpdateLedger { id, name, meta_data: body.meta_data }).await? {
        Outcome::Ledger(l) => Ok(Json(LedgerJson::from(l)).into_response()),
        other => unreachable!("UpdateLedger answers a ledger, not {other:?}"),
    }
}

pub async fn get(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<LedgerJson>, ApiError> {
    let ledger = read(&app, move |r| r.ledger(&id)).await?;
    ledger.map(|l| Json(l.into())).ok_or_else(|| ApiError::not_found(Resource::Ledger))
}

pub async fn list(State(app): State<AppState>, Paging(page): Paging) -> Result<Json<Vec<LedgerJson>>, ApiError> {
    let ledgers = read(&app, move |r| r.ledgers(page)).await?;
    Ok(Json(ledgers.into_iter().map(LedgerJson::from).collect()))
}
