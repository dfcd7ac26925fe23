//! `/webhooks` (Keel's own, master key only): webhook endpoints, each with its URL, event types,
//! signing secret and headers; a test delivery; and each endpoint's deliveries that needed more
//! than one attempt, redeliverable.

use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, Paging, PathId, PathPair, Payload};
use super::{created, read, AppState};
use crate::domain::endpoint::{check_secret, EventTypes, Headers};
use crate::domain::error::Resource;
use crate::domain::event::Delivery;
use crate::engine::{new_id, Command, EndpointPatch, NewEndpoint, Outcome, ENDPOINT_PREFIX};
use crate::store::EndpointFilter;
use crate::webhooks::send::{self, send, Target};
use crate::wire::{EndpointDeliveryJson, EndpointJson};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

/// The fields of an endpoint a client sets. On `POST`, `url` is required; on `PUT`, every field
/// left out stays as it is.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct WebhookBody {
    /// `http://` or `https://`.
    url: Option<String>,
    /// Event types (`balance.monitor`), prefixes (`transaction.*`) or `*` (the default).
    events: Option<Vec<String>>,
    /// 16 to 256 printable characters; generated (`whsec_…`, Standard Webhooks) when left out.
    secret: Option<String>,
    /// Sent with every delivery (`{"Authorization": "Bearer …"}`); not the ones Keel sets.
    headers: Option<BTreeMap<String, String>>,
    /// Default `true`. An inactive endpoint is sent nothing; reactivated, it receives the events
    /// committed from then on.
    active: Option<bool>,
    description: Option<String>,
}

impl Payload for WebhookBody {
    const RESOURCE: Resource = Resource::Webhook;
    const ONLY: Option<&'static [&'static str]> =
        Some(&["url", "events", "secret", "headers", "active", "description"]);
}

/// The body's fields, checked: each bad one is a 400 naming it.
fn check(body: WebhookBody) -> Result<EndpointPatch, ApiError> {
    let invalid = |field: &str, message: String| ApiError::validation(Resource::Webhook, field, message);
    if let Some(url) = &body.url {
        crate::webhooks::callback::check(url, None)
            .map_err(|_| invalid("url", "url must be an http:// or https:// URL".into()))?;
    }
    let event_types = body.events.map(EventTypes::parse).transpose().map_err(|m| invalid("events", m))?;
    if let Some(secret) = &body.secret {
        check_secret(secret).map_err(|m| invalid("secret", m))?;
    }
    let headers = body.headers.map(Headers::parse).transpose().map_err(|m| invalid("headers", m))?;
    if body.description.as_ref().is_some_and(|d| d.len() > 1024) {
        return Err(invalid("description", "description must be at most 1024 bytes".into()));
    }
    Ok(EndpointPatch {
        url: body.url,
        event_types,
        secret: body.secret,
        headers,
        active: body.active,
        description: body.description,
        ..EndpointPatch::default()
    })
}

/// `id` if it names a `/webhooks` endpoint; a Blnk hook's is managed at `/hooks` only (404 here).
fn ours(id: String) -> Result<String, ApiError> {
    match id.strip_prefix(ENDPOINT_PREFIX).is_some_and(|rest| rest.starts_with('_')) {
        true => Ok(id),
        false => Err(ApiError::not_found(Resource::Webhook)),
    }
}

fn endpoint_reply(outcome: Outcome) -> EndpointJson {
    match outcome {
        Outcome::Endpoint { endpoint, show_secret } => EndpointJson::new(endpoint, show_secret),
        other => unreachable!("an endpoint command answers an endpoint, not {other:?}"),
    }
}

#[utoipa::path(operation_id = "createWebhook", post, path = "/webhooks", tag = "webhooks",
    request_body = WebhookBody,
    responses((status = 201, description = "(keel) the endpoint, with its secret (shown this once); it receives the \
            events committed from now on", body = EndpointJson),
        (status = 400, description = "GEN_VALIDATION_ERROR (url, events, secret, headers, description, or a field \
            this request does not have)", body = ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS (master key only)", body = ErrorBody),
        (status = 409, description = "GEN_CONFLICT (1,000 endpoints already)", body = ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<WebhookBody>,
) -> Result<axum::response::Response, ApiError> {
    let patch = check(body)?;
    let url = patch.url.ok_or_else(|| ApiError::validation(Resource::Webhook, "url", "url is required"))?;
    let new = NewEndpoint {
        url,
        event_types: patch.event_types.unwrap_or_else(EventTypes::all),
        secret: patch.secret,
        headers: patch.headers.unwrap_or_default(),
        active: patch.active.unwrap_or(true),
        description: patch.description.unwrap_or_default(),
        name: String::new(),
        hook: None,
        timeout_ms: None,
        max_attempts: None,
    };
    Ok(created(endpoint_reply(app.changed_endpoints(app.engine.submit(Command::CreateEndpoint(new)).await)?)))
}

#[utoipa::path(operation_id = "listWebhooks", get, path = "/webhooks", tag = "webhooks",
    params(crate::api::extract::PagingQuery),
    responses((status = 200, description = "(keel) endpoints, newest first, without secrets", body = Vec<EndpointJson>),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS", body = ErrorBody)))]
pub async fn list(State(app): State<AppState>, Paging(page): Paging) -> Result<Json<Vec<EndpointJson>>, ApiError> {
    let filter = EndpointFilter { id_prefix: Some(ENDPOINT_PREFIX), hook_type: None };
    let endpoints = read(&app, move |r| r.endpoints(&filter, page)).await?;
    Ok(Json(endpoints.into_iter().map(|e| EndpointJson::new(e, false)).collect()))
}

#[utoipa::path(operation_id = "getWebhook", get, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "endpoint id")),
    responses((status = 200, description = "(keel) the endpoint, without its secret", body = EndpointJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS", body = ErrorBody),
        (status = 404, description = "GEN_NOT_FOUND", body = ErrorBody)))]
pub async fn get(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<EndpointJson>, ApiError> {
    let id = ours(id)?;
    let endpoint = read(&app, move |r| r.endpoint(&id)).await?;
    let endpoint = endpoint.ok_or_else(|| ApiError::not_found(Resource::Webhook))?;
    Ok(Json(EndpointJson::new(endpoint, false)))
}

#[utoipa::path(operation_id = "updateWebhook", put, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "endpoint id")),
    request_body = WebhookBody,
    responses((status = 200, description = "(keel) the endpoint (with its secret if this request set it)",
            body = EndpointJson),
        (status = 400, description = "GEN_VALIDATION_ERROR", body = ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS", body = ErrorBody),
        (status = 404, description = "GEN_NOT_FOUND", body = ErrorBody)))]
pub async fn update(
    State(app): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<WebhookBody>,
) -> Result<Json<EndpointJson>, ApiError> {
    let (id, patch) = (ours(id)?, check(body)?);
    Ok(Json(endpoint_reply(app.changed_endpoints(app.engine.submit(Command::UpdateEndpoint { id, patch }).await)?)))
}

#[utoipa::path(operation_id = "deleteWebhook", delete, path = "/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "endpoint id")),
    responses((status = 204, description = "(keel) deleted: nothing more is sent to it"),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS", body = ErrorBody),
        (status = 404, description = "GEN_NOT_FOUND", body = ErrorBody)))]
pub async fn delete(State(app): State<AppState>, PathId(id): PathId) -> Result<StatusCode, ApiError> {
    app.changed_endpoints(app.engine.submit(Command::DeleteEndpoint { id: ours(id)? }).await)?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a test delivery came to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestDeliveryJson {
    /// The test event's id (its `webhook-id`); it is not stored.
    event_id: String,
    /// The receiver answered 2xx.
    delivered: bool,
    status_code: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
}

#[utoipa::path(operation_id = "testWebhook", post, path = "/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "endpoint id")),
    responses((status = 200, description = "(keel) a `webhook.test` event was posted to the endpoint now, signed \
            and with its headers, whether or not it is active; the answer says how the receiver took it",
            body = TestDeliveryJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS", body = ErrorBody),
        (status = 404, description = "GEN_NOT_FOUND", body = ErrorBody)))]
pub async fn test(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<TestDeliveryJson>, ApiError> {
    let id = ours(id)?;
    let endpoint = read(&app, move |r| r.endpoint(&id)).await?;
    let endpoint = endpoint.ok_or_else(|| ApiError::not_found(Resource::Webhook))?;
    let event_id = new_id("evt");
    let sent_at = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    let body = serde_json::json!({
        "event": "webhook.test",
        "data": { "endpoint_id": endpoint.id, "sent_at": sent_at },
    });
    // Answered before the request's own time runs out.
    let client = send::client(app.request_timeout.saturating_sub(Duration::from_secs(1)).min(Duration::from_secs(10)));
    let target =
        Target { url: &endpoint.url, secret: Some(&endpoint.secret), headers: &endpoint.headers, timeout: None };
    let sent = send(&client, &target, &event_id, body.to_string()).await;
    Ok(Json(TestDeliveryJson {
        event_id,
        delivered: sent.delivered(),
        status_code: sent.status_code,
        error: sent.error,
        duration_ms: sent.duration_ms,
    }))
}

#[utoipa::path(operation_id = "listWebhookDeliveries", get, path = "/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "endpoint id"),
        ("status" = Option<String>, Query, description = "pending, delivered or failed"),
        crate::api::extract::PagingQuery),
    responses((status = 200, description = "(keel) the endpoint's events that needed more than one attempt (or \
            were redelivered), newest first; an event delivered at once has none", body = Vec<EndpointDeliveryJson>),
        (status = 400, description = "GEN_VALIDATION_ERROR (status)", body = ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS", body = ErrorBody),
        (status = 404, description = "GEN_NOT_FOUND", body = ErrorBody)))]
pub async fn deliveries(
    State(app): State<AppState>,
    PathId(id): PathId,
    Paging(page): Paging,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<EndpointDeliveryJson>>, ApiError> {
    let status = match query.get("status") {
        None => None,
        Some(text) => Some(Delivery::parse(text).filter(|d| *d != Delivery::NoTarget).ok_or_else(|| {
            ApiError::validation(Resource::Webhook, "status", "status must be pending, delivered or failed")
        })?),
    };
    let id = ours(id)?;
    let found = read(&app, move |r| match r.endpoint(&id)? {
        Some(_) => r.endpoint_deliveries(&id, status, page).map(Some),
        None => Ok(None),
    })
    .await?;
    let list = found.ok_or_else(|| ApiError::not_found(Resource::Webhook))?;
    Ok(Json(list.into_iter().map(|d| EndpointDeliveryJson::new(d, None)).collect()))
}

#[utoipa::path(operation_id = "getWebhookDelivery", get, path = "/webhooks/{id}/deliveries/{event_id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "endpoint id"), ("event_id" = String, Path, description = "event id")),
    responses((status = 200, description = "(keel) the delivery with every attempt", body = EndpointDeliveryJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS", body = ErrorBody),
        (status = 404, description = "GEN_NOT_FOUND (no such endpoint, or the event needed one attempt only)",
            body = ErrorBody)))]
pub async fn delivery(
    State(app): State<AppState>,
    PathPair(id, event_id): PathPair,
) -> Result<Json<EndpointDeliveryJson>, ApiError> {
    let id = ours(id)?;
    let found = read(&app, move |r| match r.endpoint_delivery(&id, &event_id)? {
        Some(delivery) => Ok(Some((delivery, r.endpoint_attempts(&id, &event_id)?))),
        None => Ok(None),
    })
    .await?;
    let (delivery, attempts) = found.ok_or_else(|| ApiError::not_found(Resource::Webhook))?;
    Ok(Json(EndpointDeliveryJson::new(delivery, Some(attempts))))
}

#[utoipa::path(operation_id = "redeliverToWebhook", post, path = "/webhooks/{id}/deliveries/{event_id}/redeliver",
    tag = "webhooks",
    params(("id" = String, Path, description = "endpoint id"), ("event_id" = String, Path, description = "event id")),
    responses((status = 200, description = "(keel) the event is sent to the endpoint again: pending, due now, with a \
            fresh allowance of attempts (any event of the outbox, delivered or not)", body = EndpointDeliveryJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS", body = ErrorBody),
        (status = 404, description = "GEN_NOT_FOUND (endpoint or event)", body = ErrorBody)))]
pub async fn redeliver(
    State(app): State<AppState>,
    PathPair(endpoint_id, event_id): PathPair,
) -> Result<Json<EndpointDeliveryJson>, ApiError> {
    let endpoint_id = ours(endpoint_id)?;
    match app.engine.submit(Command::RedeliverToEndpoint { endpoint_id, event_id }).await? {
        Outcome::EndpointDelivery(delivery) => Ok(Json(EndpointDeliveryJson::new(delivery, None))),
        other => unreachable!("RedeliverToEndpoint answers a delivery, not {other:?}"),
    }
}
