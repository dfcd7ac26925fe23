//! `/events` (Keel's): the outbox and its delivery log. List by status, read one with every
//! attempt, redeliver one.

use super::error::ApiError;
use super::extract::{Paging, PathId};
use super::{read, AppState};
use crate::domain::error::Resource;
use crate::domain::event::Delivery;
use crate::engine::{Command, Outcome};
use crate::store::EventFilter;
use crate::wire::EventJson;
use axum::extract::{Query, State};
use axum::Json;
use std::collections::HashMap;

/// `GET /events?status=pending|delivered|failed|no_target&limit=&offset=&sort_order=`, newest first.
#[utoipa::path(operation_id = "listEvents",
    get,
    path = "/events",
    tag = "events",
    params(
        crate::api::extract::PagingQuery,
        ("status" = Option<String>, Query, description = "pending, delivered, failed or no_target")
    ),
    responses(
        (status = 200, description = "(keel) the outbox, newest first", body = Vec<crate::wire::EventJson>),
        (status = 400, description = "GEN_VALIDATION_ERROR (status, limit, \
            offset)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn list(
    State(app): State<AppState>,
    Paging(page): Paging,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<EventJson>>, ApiError> {
    let delivery = match query.get("status") {
        None => None,
        Some(text) => Some(Delivery::parse(text).ok_or_else(|| {
            ApiError::validation(Resource::Event, "status", "status must be pending, delivered, failed or no_target")
        })?),
    };
    let filter = EventFilter { delivery, monitor_id: None };
    let events = read(&app, move |r| r.events(&filter, page)).await?;
    Ok(Json(events.into_iter().map(|e| EventJson::new(e, None)).collect()))
}

#[utoipa::path(operation_id = "getEvent",
    get,
    path = "/events/{id}",
    tag = "events",
    params(("id" = String, Path, description = "event id (the webhook-id header)")),
    responses(
        (status = 200, description = "(keel) the event with every delivery attempt", body = crate::wire::EventJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "GEN_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn get(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<EventJson>, ApiError> {
    let found = read(&app, move |r| match r.event(&id)? {
        Some(event) => Ok(Some((event, r.attempts(&id)?))),
        None => Ok(None),
    })
    .await?;
    let (event, attempts) = found.ok_or_else(|| ApiError::not_found(Resource::Event))?;
    Ok(Json(EventJson::new(event, Some(attempts))))
}

/// `POST /events/{id}/redeliver`: pending again, due now, with a fresh allowance of attempts.
#[utoipa::path(operation_id = "redeliverEvent",
    post,
    path = "/events/{id}/redeliver",
    tag = "events",
    params(("id" = String, Path, description = "event id")),
    responses(
        (status = 200, description = "(keel) the event, pending again", body = crate::wire::EventJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "GEN_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn redeliver(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<EventJson>, ApiError> {
    match app.engine.submit(Command::RedeliverEvent { id }).await? {
        Outcome::Event(event) => Ok(Json(EventJson::new(event, None))),
        other => unreachable!("RedeliverEvent answers an event, not {other:?}"),
    }
}
