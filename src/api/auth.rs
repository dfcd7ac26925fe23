//! `X-Blnk-Key` authentication. With no key configured every request passes; `/health`,
//! `/openapi.json` and the pages `/docs` and `/console` with their files always do.

use super::error::ApiError;
use super::extract::read_limited;
use super::AppState;
use crate::domain::api_key::{hash_secret, Action, RESOURCES};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::SystemTime;
use subtle::ConstantTimeEq;

pub const HEADER: &str = "x-blnk-key";

/// Who made a request, as authentication found it; a request extension for handlers that answer
/// differently by caller (`/console/session`). Public routes have none.
#[derive(Clone)]
pub enum Caller {
    /// The server has no key: everything is open.
    Open,
    Master,
    Scoped(crate::domain::api_key::ApiKey),
}

pub async fn require_key(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(expected) = app.api_key.as_deref() else {
        request.extensions_mut().insert(Caller::Open);
        return next.run(request).await;
    };
    // Health, the API's own description and the pages' files (which hold no data) are public.
    if matches!(request.uri().path(), "/health" | "/openapi.json") || super::assets::is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let caller = match request.headers().get(HEADER) {
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "AUTH_MISSING_API_KEY", "API key is required")),
        // Constant time: the comparison must not reveal how much of a guess was right.
        Some(given) if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) => Ok(Caller::Master),
        Some(given) => scoped_key(
            &app,
            given.to_str().ok(),
            request.uri().path().to_string(),
            request.uri().query().is_some_and(|q| q.contains("identity")),
            request.method().clone(),
        )
        .await
        .map(Caller::Scoped),
    };
    match caller {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => {
            drain(request).await;
            error.into_response()
        }
    }
}

/// The scoped key sent, if it may make this request; else why not. Keys are looked up by the hash
/// of what was sent; the stored hash is compared again in constant time.
/// `with_identity`: the query may ask for an identity in the answer (`include=identity`).
async fn scoped_key(
    app: &AppState,
    given: Option<&str>,
    path: String,
    with_identity: bool,
    method: Method,
) -> Result<crate::domain::api_key::ApiKey, ApiError> {
    let invalid = || ApiError::new(StatusCode::UNAUTHORIZED, "AUTH_INVALID_API_KEY", "API key is invalid");
    let given = given.ok_or_else(invalid)?;
    let hash = hash_secret(given);
    let lookup = hash.clone();
    let key = match super::read(app, move |r| r.api_key_by_hash(&lookup)).await? {
        Some(key) if bool::from(key.key_hash.as_bytes().ct_eq(hash.as_bytes())) => key,
        _ => return Err(invalid()),
    };
    if key.revoked_at.is_some() {
        return Err(invalid());
    }
    let expired = key
        .expires_at
        .as_deref()
        .and_then(|at| humantime::parse_rfc3339(at).ok())
        .is_some_and(|at| at <= SystemTime::now());
    if expired {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "AUTH_EXPIRED_API_KEY", "API key has expired"));
    }
    let mut needed = required_scopes(&method, &path)?;
    // `GET /balances/{id}?include=identity` answers with the identity too.
    if with_identity && path.starts_with("/balances/") {
        needed.push(("identities", Action::Read));
    }
    let missing: Vec<String> = needed
        .iter()
        .filter(|(resource, action)| !key.allows(resource, *action))
        .map(|(resource, action)| format!("{resource}:{}", action.as_str()))
        .collect();
    if missing.is_empty() {
        return Ok(key);
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "AUTH_INSUFFICIENT_PERMISSIONS",
        format!("this API key's scopes do not allow this request: it also needs {}", missing.join(", ")),
    ))
}

/// The scopes a request needs: `RESOURCE:read` (GET, HEAD) or `RESOURCE:write` (anything else) for
/// the resource it acts on, plus `read` of every other resource whose data its answer carries
/// (README, "What each scope reveals"). `Err` for `/api-keys`, which only the master key may use;
/// an empty list for routes that are not a resource (a 404 for any valid key).
fn required_scopes(method: &Method, path: &str) -> Result<Vec<(&'static str, Action)>, ApiError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // `POST /{collection}/filter` only reads: a body carries the filters.
    let filter = segments.len() == 2 && segments[1] == "filter";
    let action = if matches!(*method, Method::GET | Method::HEAD) || filter { Action::Read } else { Action::Write };
    Ok(match segments[0] {
        "api-keys" => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "AUTH_INSUFFICIENT_PERMISSIONS",
                "only the master key may manage API keys",
            ))
        }
        "hooks" => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "AUTH_MASTER_KEY_REQUIRED",
                "hook management requires master key",
            ))
        }
        // An endpoint's secret and headers are credentials, and an endpoint receives every event.
        "webhooks" => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "AUTH_INSUFFICIENT_PERMISSIONS",
                "only the master key may manage webhook endpoints",
            ))
        }
        "refund-transaction" => vec![("transactions", action)],
        "balances-snapshots" => vec![("balances", Action::Write)],
        // A search only reads, and answers records of its collection (of any, for several).
        "search" if segments.get(1) == Some(&"reindex") => vec![("search", action)],
        "search" => match segments.get(1).copied().and_then(|c| RESOURCES.iter().find(|r| **r == c)) {
            Some(collection) => vec![("search", Action::Read), (*collection, Action::Read)],
            None => vec![("search", Action::Read)],
        },
        "multi-search" => ["search", "ledgers", "balances", "transactions", "identities"]
            .into_iter()
            .map(|resource| (resource, Action::Read))
            .collect(),
        // Reading personal data back from its tokens takes more than reading the tokens.
        "identities" if segments.get(2) == Some(&"detokenize") => vec![("identities", Action::Write)],
        // A balance linked to an identity, read with it: both resources.
        "balances" if segments.get(2) == Some(&"identity") => {
            vec![("balances", action), ("identities", Action::Read)]
        }
        // A monitor's triggers carry the balance as it stood after each one.
        "balance-monitors" if segments.get(2) == Some(&"events") => {
            vec![("balance-monitors", action), ("balances", Action::Read)]
        }
        // An event's body is a transaction, or a monitor with its balance.
        "events" => vec![
            ("events", action),
            ("transactions", Action::Read),
            ("balances", Action::Read),
            ("balance-monitors", Action::Read),
        ],
        // `POST /{id}/metadata`: Blnk's `metadata` scope, and read of the entity it answers with.
        id if segments.get(1) == Some(&"metadata") && segments.len() == 2 => match super::metadata::entity_resource(id)
        {
            Some(entity) => vec![("metadata", action), (entity, Action::Read)],
            None => vec![("metadata", action)],
        },
        resource => match RESOURCES.iter().find(|r| **r == resource) {
            Some(resource) => vec![(*resource, action)],
            None => Vec::new(),
        },
    })
}

/// Reads and drops a request's body, so a keep-alive connection is ready for the next request even
/// when this one is answered without looking at its body.
pub async fn drain(request: Request) {
    let _ = read_limited(request.into_body()).await;
}
