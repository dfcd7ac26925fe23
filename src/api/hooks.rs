//! `/hooks`: Blnk's transaction hooks (master key only), served by Keel's webhook endpoints. A hook
//! is an endpoint that is sent Blnk's hook body (`transaction_id`, `hook_type`, `timestamp`, `data`)
//! with Blnk's headers (`X-Hook-ID`, `X-Hook-Type`, `X-Blnk-Signature` by the master key), at least
//! once, retried `retry_count` times, each call waiting `timeout` seconds.

use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, PathId, Payload};
use super::{created, read, AppState};
use crate::domain::endpoint::{Endpoint, EventTypes, Headers, HookType};
use crate::domain::error::Resource;
use crate::engine::{Command, EndpointPatch, NewEndpoint, Outcome, HOOK_PREFIX, MAX_ENDPOINTS};
use crate::store::{EndpointFilter, Page};
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Blnk's defaults and bounds (`internal/hooks/manager.go validateHook`): a timeout of 0 or less
/// is 30 s; a negative retry count is 3; more than 10 is 10.
const DEFAULT_TIMEOUT_SECONDS: i64 = 30;
const DEFAULT_RETRY_COUNT: i64 = 3;
const MAX_RETRY_COUNT: i64 = 10;
/// Keel's bound on a hook's timeout (Blnk has none): a call is never awaited longer than an hour.
const MAX_TIMEOUT_SECONDS: i64 = 3600;

/// Blnk's `Hook`, as a client sends it. `id`, `created_at`, `last_run` and `last_success` are the
/// server's: accepted (an SDK may send back a hook it read) and not used.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct HookBody {
    name: Option<String>,
    /// `http://` or `https://`.
    url: Option<String>,
    /// `PRE_TRANSACTION` or `POST_TRANSACTION`.
    #[serde(rename = "type")]
    hook_type: Option<String>,
    /// Default `false`, as Blnk's: an inactive hook is not called.
    active: Option<bool>,
    /// Seconds to wait for an answer; 0 or less is 30.
    timeout: Option<i64>,
    /// Retries after a failed call; negative is 3, at most 10.
    retry_count: Option<i64>,
    #[allow(dead_code)]
    id: Option<serde_json::Value>,
    #[allow(dead_code)]
    created_at: Option<serde_json::Value>,
    #[allow(dead_code)]
    last_run: Option<serde_json::Value>,
    #[allow(dead_code)]
    last_success: Option<serde_json::Value>,
}

impl Payload for HookBody {
    const RESOURCE: Resource = Resource::Hook;
}

/// Blnk's `Hook`, as Blnk answers it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HookJson {
    id: String,
    name: String,
    url: String,
    #[serde(rename = "type")]
    hook_type: &'static str,
    active: bool,
    /// Seconds.
    timeout: i64,
    retry_count: u32,
    created_at: String,
    /// When its last call ended (Go's zero time, `0001-01-01T00:00:00Z`, before the first).
    last_run: String,
    last_success: bool,
}

impl HookJson {
    fn new(e: Endpoint) -> Self {
        HookJson {
            hook_type: e.hook.map_or("", HookType::as_str),
            timeout: e.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_SECONDS * 1000) / 1000,
            retry_count: e.max_attempts.unwrap_or(1).saturating_sub(1),
            last_run: e.last_run.unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            last_success: e.last_success.unwrap_or(false),
            id: e.id,
            name: e.name,
            url: e.url,
            active: e.active,
            created_at: e.created_at,
        }
    }
}

/// The hook a body describes, checked and defaulted as Blnk does; a bad field is `400 HOOK_INVALID`.
fn check(body: HookBody) -> Result<NewEndpoint, ApiError> {
    let invalid = |field: &str, message: &str| ApiError::validation(Resource::Hook, field, message);
    let url = body.url.filter(|u| !u.is_empty()).ok_or_else(|| invalid("url", "hook URL is required"))?;
    crate::webhooks::callback::check(&url, None)
        .map_err(|_| invalid("url", "url must be an http:// or https:// URL"))?;
    let text = body.hook_type.unwrap_or_default();
    let hook =
        HookType::parse(&text).ok_or_else(|| invalid("type", "type must be PRE_TRANSACTION or POST_TRANSACTION"))?;
    let timeout = match body.timeout.unwrap_or(0) {
        t if t <= 0 => DEFAULT_TIMEOUT_SECONDS,
        t if t > MAX_TIMEOUT_SECONDS => return Err(invalid("timeout", "timeout must be at most 3600 seconds")),
        t => t,
    };
    let retries = match body.retry_count.unwrap_or(0) {
        r if r < 0 => DEFAULT_RETRY_COUNT,
        r => r.min(MAX_RETRY_COUNT),
    };
    Ok(NewEndpoint {
        url,
        event_types: EventTypes(hook.events().iter().map(|k| k.as_str().to_string()).collect()),
        // Blnk signs hooks with its secret key; Keel with the master key (`WebhookConfig::hook_secret`).
        secret: Some(String::new()),
        headers: Headers::default(),
        active: body.active.unwrap_or(false),
        description: String::new(),
        name: body.name.unwrap_or_default(),
        hook: Some(hook),
        timeout_ms: Some(timeout * 1000),
        max_attempts: Some(retries as u32 + 1),
    })
}

fn hook_reply(outcome: Outcome) -> HookJson {
    match outcome {
        Outcome::Endpoint { endpoint, .. } => HookJson::new(endpoint),
        other => unreachable!("a hook command answers an endpoint, not {other:?}"),
    }
}

/// `id` if it names a hook; a `/webhooks` endpoint is not one (404 here).
fn hook_id(id: String) -> Result<String, ApiError> {
    match id.strip_prefix(HOOK_PREFIX).is_some_and(|rest| rest.starts_with('_')) {
        true => Ok(id),
        false => Err(ApiError::not_found(Resource::Hook)),
    }
}

#[utoipa::path(operation_id = "registerHook", post, path = "/hooks", tag = "hooks",
    request_body = HookBody,
    responses((status = 201, description = "the hook (Blnk's `Hook`)", body = HookJson),
        (status = 400, description = "HOOK_INVALID (url, type, timeout)", body = ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_MASTER_KEY_REQUIRED", body = ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<HookBody>,
) -> Result<axum::response::Response, ApiError> {
    let new = check(body)?;
    Ok(created(hook_reply(app.changed_endpoints(app.engine.submit(Command::CreateEndpoint(new)).await)?)))
}

#[utoipa::path(operation_id = "listHooks", get, path = "/hooks", tag = "hooks",
    params(("type" = Option<String>, Query, description = "PRE_TRANSACTION or POST_TRANSACTION; all when left out")),
    responses((status = 200, description = "hooks, oldest first", body = Vec<HookJson>),
        (status = 400, description = "HOOK_INVALID (type)", body = ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_MASTER_KEY_REQUIRED", body = ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<HookJson>>, ApiError> {
    let hook_type = match query.get("type").filter(|t| !t.is_empty()) {
        None => None,
        Some(text) => Some(HookType::parse(text).ok_or_else(|| {
            ApiError::validation(Resource::Hook, "type", "type must be PRE_TRANSACTION or POST_TRANSACTION")
        })?),
    };
    let filter = EndpointFilter { id_prefix: Some(HOOK_PREFIX), hook_type };
    let hooks = read(&app, move |r| r.endpoints(&filter, Page::first(MAX_ENDPOINTS as u32, 0))).await?;
    Ok(Json(hooks.into_iter().map(HookJson::new).collect()))
}

#[utoipa::path(operation_id = "getHook", get, path = "/hooks/{id}", tag = "hooks",
    params(("id" = String, Path, description = "hook id")),
    responses((status = 200, description = "the hook", body = HookJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_MASTER_KEY_REQUIRED", body = ErrorBody),
        (status = 404, description = "HOOK_NOT_FOUND", body = ErrorBody)))]
pub async fn get(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<HookJson>, ApiError> {
    let id = hook_id(id)?;
    let hook = read(&app, move |r| r.endpoint(&id)).await?;
    Ok(Json(HookJson::new(hook.ok_or_else(|| ApiError::not_found(Resource::Hook))?)))
}

#[utoipa::path(operation_id = "updateHook", put, path = "/hooks/{id}", tag = "hooks",
    params(("id" = String, Path, description = "hook id")),
    request_body = HookBody,
    responses((status = 200, description = "the hook, replaced by the body (as Blnk: every field, defaults for \
            those left out)", body = HookJson),
        (status = 400, description = "HOOK_INVALID", body = ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_MASTER_KEY_REQUIRED", body = ErrorBody),
        (status = 404, description = "HOOK_NOT_FOUND", body = ErrorBody)))]
pub async fn update(
    State(app): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<HookBody>,
) -> Result<Json<HookJson>, ApiError> {
    let (id, new) = (hook_id(id)?, check(body)?);
    let patch = EndpointPatch {
        url: Some(new.url),
        event_types: Some(new.event_types),
        active: Some(new.active),
        name: Some(new.name),
        hook: new.hook,
        timeout_ms: new.timeout_ms,
        max_attempts: new.max_attempts,
        ..EndpointPatch::default()
    };
    Ok(Json(hook_reply(app.changed_endpoints(app.engine.submit(Command::UpdateEndpoint { id, patch }).await)?)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HookDeletedJson {
    message: &'static str,
}

#[utoipa::path(operation_id = "deleteHook", delete, path = "/hooks/{id}", tag = "hooks",
    params(("id" = String, Path, description = "hook id")),
    responses((status = 200, description = "{\"message\": \"hook deleted successfully\"}", body = HookDeletedJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / AUTH_INVALID_API_KEY", body = ErrorBody),
        (status = 403, description = "AUTH_MASTER_KEY_REQUIRED", body = ErrorBody),
        (status = 404, description = "HOOK_NOT_FOUND", body = ErrorBody)))]
pub async fn delete(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<HookDeletedJson>, ApiError> {
    app.changed_endpoints(app.engine.submit(Command::DeleteEndpoint { id: hook_id(id)? }).await)?;
    Ok(Json(HookDeletedJson { message: "hook deleted successfully" }))
}
