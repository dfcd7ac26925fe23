//! `/ledgers`: create, get, list, rename.

use super::error::ApiError;
use super::extract::{JsonBody, PathId, Payload};
use super::filters::{self, FilterBody, LedgerList, ListQuery, Listed, Listing};
use super::{created, read, AppState};
use crate::domain::error::Resource;
use crate::engine::{Command, Outcome};
use crate::wire::LedgerJson;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LedgerBody {
    name: Option<String>,
    #[schema(value_type = Option<Object>)]
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

#[utoipa::path(operation_id = "createLedger",
    post,
    path = "/ledgers",
    tag = "ledgers",
    request_body = LedgerBody,
    responses(
        (status = 201, description = "the ledger", body = crate::wire::LedgerJson),
        (status = 400, description = "GEN_MALFORMED_REQUEST, \
            GEN_VALIDATION_ERROR", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 413, description = "GEN_PAYLOAD_TOO_LARGE", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn create(State(app): State<AppState>, JsonBody(body): JsonBody<LedgerBody>) -> Result<Response, ApiError> {
    let name = required_name(&body)?;
    let command = Command::CreateLedger { name, meta_data: body.meta_data.unwrap_or_default() };
    match app.engine.submit(command).await? {
        Outcome::Ledger(l) => Ok(created(LedgerJson::from(l))),
        other => unreachable!("CreateLedger answers a ledger, not {other:?}"),
    }
}

#[utoipa::path(operation_id = "updateLedger",
    put,
    path = "/ledgers/{id}",
    tag = "ledgers",
    request_body = LedgerBody,
    params(("id" = String, Path, description = "ledger id")),
    responses(
        (status = 200, description = "the renamed ledger", body = crate::wire::LedgerJson),
        (status = 400, description = "GEN_VALIDATION_ERROR", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "LGR_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 413, description = "GEN_PAYLOAD_TOO_LARGE", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
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

#[utoipa::path(operation_id = "getLedger",
    get,
    path = "/ledgers/{id}",
    tag = "ledgers",
    params(("id" = String, Path, description = "ledger id")),
    responses(
        (status = 200, description = "the ledger", body = crate::wire::LedgerJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "LGR_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn get(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<LedgerJson>, ApiError> {
    let ledger = read(&app, move |r| r.ledger(&id)).await?;
    ledger.map(|l| Json(l.into())).ok_or_else(|| ApiError::not_found(Resource::Ledger))
}

#[utoipa::path(operation_id = "listLedgers",
    get,
    path = "/ledgers",
    tag = "ledgers",
    params(crate::api::filters::ListQueryDoc),
    responses(
        (status = 200, description = "ledgers, newest first (as Blnk), filtered; `{data, total_count}` with \
            include_count=true", body = Vec<crate::wire::LedgerJson>),
        (status = 400, description = "GEN_VALIDATION_ERROR (a paging option, or a filter: `errors` names \
            it)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn list(
    State(app): State<AppState>,
    ListQuery(query, _): ListQuery<LedgerList>,
) -> Result<Listing<LedgerJson>, ApiError> {
    filters::answer(&app, query, |r, q| r.find_ledgers(q), LedgerJson::from).await
}

#[utoipa::path(operation_id = "filterLedgers",
    post,
    path = "/ledgers/filter",
    tag = "ledgers",
    request_body = crate::api::filters::FilterBody,
    responses(
        (status = 200, description = "the ledgers matching the filters (an array; `{data, total_count}` with \
            include_count)", body = Vec<crate::wire::LedgerJson>),
        (status = 400, description = "GEN_MALFORMED_REQUEST, GEN_VALIDATION_ERROR (`errors` names the \
            filter)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn filter(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<FilterBody>,
) -> Result<Listing<LedgerJson>, ApiError> {
    let query = filters::from_body(LedgerList::COLLECTION, body)?;
    filters::answer(&app, query, |r, q| r.find_ledgers(q), LedgerJson::from).await
}
