//! `/events` (Keel's): the outbox and its delivery log. List by status, read one with every
//! attempt, redeliver one; and the feed, every event in commit order from a cursor, long-polling.

use super::error::ApiError;
use super::extract::{Paging, PathId};
use super::{read, read_lagging, AppState};
use crate::domain::error::Resource;
use crate::domain::event::Delivery;
use crate::engine::{Command, Outcome};
use crate::store::EventFilter;
use crate::wire::{EventFeedJson, EventJson};
use axum::extract::{Query, State};
use axum::Json;
use std::collections::HashMap;
use std::time::Duration;

/// Events a feed page holds by default, and at most.
const FEED_LIMIT: (u32, u32) = (100, 1000);

/// The longest `wait` of a feed request, in seconds (also bounded by the request timeout).
const FEED_MAX_WAIT_SECONDS: u64 = 30;

/// While a feed request waits, how often it looks for events this process was not told of (those
/// another Keel process committed on a shared PostgreSQL).
const FEED_POLL: Duration = Duration::from_millis(250);

/// `GET /events?status=pending|delivered|failed|no_target&limit=&offset=&sort_order=`, newest first.
#[utoipa::path(operation_id = "listEvents",
    get,
    path = "/events",
    tag = "events",
    params(
        crate::api::extract::PagingQuery,
        ("status" = Option<String>, Query, description = "pending, delivered, failed or no_target"),
        ("include_count" = Option<bool>, Query, description = "`true`: answer `{data, total_count}`")
    ),
    responses(
        (status = 200, description = "(keel) the outbox, newest first (`{data, total_count}` with include_count)",
            body = Vec<crate::wire::EventJson>),
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
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = EventFilter { delivery: status(&query)?, monitor_id: None };
    let counted = match query.get("include_count").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::validation(Resource::Event, "include_count", "include_count must be true or false"))
        }
    };
    let (events, total) = read_lagging(&app, move |r| {
        let total = if counted { Some(r.count_events(&filter)?) } else { None };
        Ok((r.events(&filter, page)?, total))
    })
    .await?;
    let events: Vec<EventJson> = events.into_iter().map(|e| EventJson::new(e, None)).collect();
    Ok(Json(match total {
        None => serde_json::json!(events),
        Some(total) => serde_json::json!({ "data": events, "total_count": total }),
    }))
}

/// The `status` option of the event routes.
fn status(query: &HashMap<String, String>) -> Result<Option<Delivery>, ApiError> {
    match query.get("status") {
        None => Ok(None),
        Some(text) => Delivery::parse(text).map(Some).ok_or_else(|| {
            ApiError::validation(Resource::Event, "status", "status must be pending, delivered, failed or no_target")
        }),
    }
}

/// Failed events a `redeliver-failed` request sends again at most; the answer says how many remain.
const REDELIVER_AT_ONCE: u32 = 500;

/// `POST /events/redeliver-failed`: every failed event (up to 500 a request, oldest first) pending
/// again, as `POST /events/{id}/redeliver` makes one.
#[utoipa::path(operation_id = "redeliverFailedEvents",
    post,
    path = "/events/redeliver-failed",
    tag = "events",
    responses(
        (status = 200, description = "(keel) `{redelivered, remaining}`: how many failed events are pending again, \
            and how many are still failed (more than 500: ask again)", body = Object),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS \
            (events:write)", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn redeliver_failed(State(app): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let failed = EventFilter { delivery: Some(Delivery::Failed), monitor_id: None };
    let page = crate::store::Page::first(REDELIVER_AT_ONCE, 0);
    let chosen = failed.clone();
    let events = read(&app, move |r| r.events(&chosen, page)).await?;
    // All submitted at once: the engine commits them together, not one commit each.
    let mut submitted = tokio::task::JoinSet::new();
    for event in events {
        let engine = app.engine.clone();
        submitted.spawn(async move { engine.submit(Command::RedeliverEvent { id: event.id }).await });
    }
    let mut redelivered = 0;
    while let Some(answer) = submitted.join_next().await {
        match answer.map_err(|_| ApiError::internal())?.map_err(ApiError::from) {
            Ok(_) => redelivered += 1,
            // Deleted meanwhile (its endpoint went): nothing to send.
            Err(error) if error.status == axum::http::StatusCode::NOT_FOUND => {}
            Err(error) => return Err(error),
        }
    }
    let remaining = read(&app, move |r| r.count_events(&failed)).await?;
    Ok(Json(serde_json::json!({ "redelivered": redelivered, "remaining": remaining })))
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

/// `GET /events/feed?after=&limit=&wait=`: every event after the cursor, in commit order.
#[utoipa::path(operation_id = "eventFeed",
    get,
    path = "/events/feed",
    tag = "events",
    params(
        ("after" = Option<String>, Query, description = "a cursor: the `next_cursor` of an earlier page, or an \
            event's `sequence`; from the first event when omitted"),
        ("limit" = Option<u32>, Query, description = "events in the page, 1 to 1000 (default 100)"),
        ("wait" = Option<u64>, Query, description = "seconds to wait for an event when there is none yet, 0 \
            to 30 (default 0: answer at once)")
    ),
    responses(
        (status = 200, description = "(keel) the events after the cursor, oldest first, and the cursor to \
            ask from next", body = crate::wire::EventFeedJson),
        (status = 400, description = "GEN_VALIDATION_ERROR (after, limit, wait)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn feed(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<EventFeedJson>, ApiError> {
    let (after, limit, wait) = feed_query(&query)?;
    // Never past the request timeout: the answer would be a 408 instead of an empty page.
    let wait = wait.min(app.request_timeout.saturating_sub(Duration::from_secs(1)));
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribed before the first read, so a commit between the read and the wait is not missed.
    let mut committed = app.engine.events_committed();
    loop {
        let events = read(&app, move |r| r.events_after(after, limit)).await?;
        let now = tokio::time::Instant::now();
        if !events.is_empty() || now >= deadline {
            let next_cursor = events.last().map_or(after, |e| e.sequence).to_string();
            let events = events.into_iter().map(|e| EventJson::new(e, None)).collect();
            return Ok(Json(EventFeedJson { events, next_cursor }));
        }
        committed.mark_unchanged();
        tokio::select! {
            _ = committed.changed() => {}
            _ = tokio::time::sleep(FEED_POLL.min(deadline - now)) => {}
        }
    }
}

/// `after`, `limit` and `wait`, validated; a bad one is a 400 naming it.
fn feed_query(query: &HashMap<String, String>) -> Result<(i64, u32, Duration), ApiError> {
    let invalid = |field: &'static str, message: &str| ApiError::validation(Resource::Event, field, message);
    let after = match query.get("after") {
        None => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| invalid("after", "after must be a cursor from an earlier page (a whole number)"))?,
    };
    let limit = match query.get("limit") {
        None => FEED_LIMIT.0,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=FEED_LIMIT.1).contains(n))
            .ok_or_else(|| invalid("limit", "limit must be a whole number from 1 to 1000"))?,
    };
    let wait = match query.get("wait") {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= FEED_MAX_WAIT_SECONDS)
            .ok_or_else(|| invalid("wait", "wait must be a whole number of seconds from 0 to 30"))?,
    };
    Ok((after, limit, Duration::from_secs(wait)))
}
