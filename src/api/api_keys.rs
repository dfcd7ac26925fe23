//! `/api-keys` (master key only): create scoped keys, list them, revoke one. A key's secret is in
//! the answer to its creation and nowhere else, ever.

use super::error::ApiError;
use super::extract::{JsonBody, Paging, PathId, Payload};
use super::{created, read, AppState};
use crate::domain::api_key::{ApiKey, Scope};
use crate::domain::error::Resource;
use crate::engine::{Command, Outcome};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateApiKeyBody {
    name: Option<String>,
    owner: Option<String>,
    /// `RESOURCE:ACTION`: RESOURCE one of ledgers, balances, transactions, balance-monitors, events,
    /// metrics, or `*`; ACTION `read` (GET), `write` (anything else) or `*`.
    scopes: Option<Vec<String>>,
    /// RFC 3339 in UTC (`2027-01-31T00:00:00Z`); absent never expires.
    expires_at: Option<String>,
}

impl Payload for CreateApiKeyBody {
    const RESOURCE: Resource = Resource::General;
}

/// `GET /api-keys?owner=`.
#[derive(Deserialize)]
pub struct OwnerFilter {
    owner: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyJson {
    api_key_id: String,
    name: String,
    owner: String,
    /// Blnk's name for `owner` (both are sent).
    owner_id: String,
    scopes: Vec<String>,
    created_at: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    is_revoked: bool,
    /// The secret, only in the answer to the creation: store it, it cannot be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl ApiKeyJson {
    fn new(k: ApiKey, secret: Option<String>) -> Self {
        ApiKeyJson {
            api_key_id: k.id,
            name: k.name,
            owner_id: k.owner.clone(),
            owner: k.owner,
            scopes: k.scopes.iter().map(ToString::to_string).collect(),
            created_at: k.created_at,
            is_revoked: k.revoked_at.is_some(),
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            key: secret,
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(Resource::General, field, message)
}

#[utoipa::path(operation_id = "createApiKey", post, path = "/api-keys", tag = "api-keys",
    request_body = CreateApiKeyBody,
    responses((status = 201, description = "the key, with its secret (shown this once)", body = ApiKeyJson),
        (status = 400, description = "GEN_VALIDATION_ERROR", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS: only the master key manages \
            keys", body = crate::api::error::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<CreateApiKeyBody>,
) -> Result<Response, ApiError> {
    let name = body
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("name", "name is required"))?;
    let scopes = body
        .scopes
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("scopes", "scopes must list at least one scope"))?;
    let scopes = scopes.iter().map(|s| Scope::parse(s)).collect::<Result<Vec<_>, _>>()?;
    let expires_at = match body.expires_at {
        None => None,
        Some(text) => {
            let at = humantime::parse_rfc3339(&text)
                .map_err(|_| invalid("expires_at", "expires_at must be RFC 3339 in UTC, e.g. 2027-01-31T00:00:00Z"))?;
            Some(humantime::format_rfc3339_micros(at).to_string())
        }
    };
    let command = Command::CreateApiKey { name, owner: body.owner.unwrap_or_default(), scopes, expires_at };
    match app.engine.submit(command).await? {
        Outcome::ApiKey { key, secret } => Ok(created(ApiKeyJson::new(key, secret))),
        other => unreachable!("CreateApiKey answers a key, not {other:?}"),
    }
}

#[utoipa::path(operation_id = "listApiKeys", get, path = "/api-keys", tag = "api-keys",
    params(("owner" = Option<String>, Query, description = "only this owner's keys"),
        crate::api::extract::PagingQuery),
    responses((status = 200, description = "keys, newest first (as Blnk), without secrets", body = Vec<ApiKeyJson>),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS", body = crate::api::error::ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    Paging(page): Paging,
    filter: Result<Query<OwnerFilter>, QueryRejection>,
) -> Result<Json<Vec<ApiKeyJson>>, ApiError> {
    let Query(filter) = filter.map_err(|e| ApiError::validation(Resource::General, "owner", e.body_text()))?;
    let keys = read(&app, move |r| r.api_keys(filter.owner.as_deref(), page)).await?;
    Ok(Json(keys.into_iter().map(|k| ApiKeyJson::new(k, None)).collect()))
}

#[utoipa::path(operation_id = "revokeApiKey", delete, path = "/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "api_key_id"),
        ("owner" = Option<String>, Query, description = "refuse (403) if the key is another owner's")),
    responses((status = 204, description = "revoked (Blnk's answer: no body)"),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 403, description = "AUTH_INSUFFICIENT_PERMISSIONS", body = crate::api::error::ErrorBody),
        (status = 404, description = "GEN_NOT_FOUND", body = crate::api::error::ErrorBody)))]
pub async fn revoke(
    State(app): State<AppState>,
    PathId(id): PathId,
    filter: Result<Query<OwnerFilter>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(filter) = filter.map_err(|e| ApiError::validation(Resource::General, "owner", e.body_text()))?;
    if let Some(owner) = filter.owner {
        // Blnk's `?owner=`: a key of another owner is not revoked (a key's owner never changes).
        let lookup = id.clone();
        let key = read(&app, move |r| r.api_key(&lookup)).await?;
        if key.is_some_and(|k| k.owner != owner) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "AUTH_INSUFFICIENT_PERMISSIONS",
                "this key belongs to another owner",
            ));
        }
    }
    match app.engine.submit(Command::RevokeApiKey { id }).await? {
        Outcome::ApiKey { .. } => Ok(StatusCode::NO_CONTENT),
        other => unreachable!("RevokeApiKey answers a key, not {other:?}"),
    }
}
