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

/// `GET /events?status=pending|delivered|failed|no_target&limit=&offset=`, newest first.
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
pub async fn redeliver(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<EventJson>, ApiError> {
    match app.engine.submit(Command::RedeliverEvent { id }).await? {
        Outcome::Event(event) => Ok(Json(EventJson::new(event, None))),
        other => unreachable!("RedeliverEvent answers an event, not {other:?}"),
    }
}
