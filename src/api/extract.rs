//! Request extractors that fail with Blnk's error body instead of axum's plain-text rejections.

use super::error::ApiError;
use crate::domain::error::Resource;
use crate::store::Page;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// Largest request body accepted; a transaction is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Larger bodies are still read (and thrown away) up to this size, so the 413 arrives on a
/// connection the client can keep using; beyond it the connection is closed instead.
pub const DRAIN_LIMIT_BYTES: usize = 16 * 1024 * 1024;
/// A bulk request carries up to 10,000 transactions (Blnk's limit), a few hundred bytes each.
pub const MAX_BULK_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A request body type, and the resource whose validation code its errors carry.
pub trait Payload: DeserializeOwned {
    const RESOURCE: Resource;
    /// Fields of Blnk's request that Keel does not implement yet. A request that sets one is
    /// refused (`400` naming it) rather than served with the field dropped: a Blnk field is
    /// implemented or refused, never ignored. "Sets" follows Blnk's Go server, which cannot tell
    /// a zero value from an absent field: `null`, `false`, `0`, `""`, `[]` and `{}` are absent.
    const NOT_YET: &'static [&'static str] = &[];
    /// The largest body of this type accepted (413 beyond).
    const MAX_BYTES: usize = MAX_BODY_BYTES;
    /// For Keel's own routes, every field the body may have: any other is refused (`400` naming
    /// it), since a misspelt option silently ignored would change what the request does. `None`
    /// for Blnk's bodies, whose unknown fields Keel ignores as Blnk does.
    const ONLY: Option<&'static [&'static str]> = None;
}

/// A JSON body read with a size limit: too large is 413, not JSON is 400 `GEN_MALFORMED_REQUEST`,
/// JSON of the wrong shape is 400 with the offending field named.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: Payload> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > DRAIN_LIMIT_BYTES as u64) {
            return Err(too_large(false, T::MAX_BYTES));
        }
        let bytes = read_limited_to(req.into_body(), T::MAX_BYTES).await?;
        let malformed = |detail: String| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "GEN_MALFORMED_REQUEST",
                format!("request body is not valid JSON: {detail}"),
            )
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
        if !value.is_object() {
            return Err(malformed("expected a JSON object".into()));
        }
        if let Some(field) = nul_inside(&value, "") {
            return Err(ApiError::validation(
                T::RESOURCE,
                &field,
                format!("{field}: text may not contain NUL characters"),
            ));
        }
        parse_payload(value).map(JsonBody)
    }
}

/// A JSON body that may be left out: no body, an empty one or `null` is `T::default()` (Blnk's
/// refund takes an optional body; its TypeScript SDK sends `null` when there are no options).
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: Payload + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > DRAIN_LIMIT_BYTES as u64) {
            return Err(too_large(false, T::MAX_BYTES));
        }
        let bytes = read_limited_to(req.into_body(), T::MAX_BYTES).await?;
        let text = std::str::from_utf8(&bytes).map(str::trim).unwrap_or("-");
        if text.is_empty() || text == "null" {
            return Ok(OptionalJsonBody(T::default()));
        }
        let req = Request::new(axum::body::Body::from(bytes));
        JsonBody::<T>::from_request(req, state).await.map(|JsonBody(body)| OptionalJsonBody(body))
    }
}

/// Checks a JSON object against `T`: first the Blnk fields Keel refuses, then its shape (also for
/// objects inside a body, such as a bulk request's transactions).
pub fn parse_payload<T: Payload>(value: serde_json::Value) -> Result<T, ApiError> {
    if let Some(field) = T::NOT_YET.iter().find(|field| value.get(**field).is_some_and(is_set)) {
        return Err(ApiError::validation(
            T::RESOURCE,
            field,
            format!("{field} is part of Blnk's API but not implemented by Keel yet; leave it out"),
        ));
    }
    if let (Some(only), Some(object)) = (T::ONLY, value.as_object()) {
        if let Some(field) = object.keys().find(|key| !only.contains(&key.as_str())) {
            let message = format!("{field} is not a field of this request (fields: {})", only.join(", "));
            return Err(ApiError::validation(T::RESOURCE, field, message));
        }
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        ApiError::validation(T::RESOURCE, &field, format!("{field}: {}", e.inner()))
    })
}

/// Whether a field carries a value Blnk's server would act on (anything but a zero value).
fn is_set(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        // Zero is any number whose digits before the exponent are all 0 (`0`, `-0.0`, `0e3`).
        Value::Number(n) => {
            n.to_string().split(['e', 'E']).next().is_some_and(|m| m.chars().any(|c| c.is_ascii_digit() && c != '0'))
        }
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

fn too_large(drained: bool, max: usize) -> ApiError {
    let error = ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "GEN_PAYLOAD_TOO_LARGE",
        format!("request body is larger than {max} bytes"),
    );
    if drained {
        error
    } else {
        error.closing_connection()
    }
}

/// Reads a body of at most `MAX_BODY_BYTES`; a larger one is read to its end without being kept
/// (up to `DRAIN_LIMIT_BYTES`) and refused.
pub async fn read_limited(body: axum::body::Body) -> Result<Vec<u8>, ApiError> {
    read_limited_to(body, MAX_BODY_BYTES).await
}

/// `read_limited` with a limit of `max` bytes (at most `DRAIN_LIMIT_BYTES`).
pub async fn read_limited_to(mut body: axum::body::Body, max: usize) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, "GEN_MALFORMED_REQUEST", "request body could not be read")
        })?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total > DRAIN_LIMIT_BYTES {
                return Err(too_large(false, max));
            }
            if total <= max {
                kept.extend_from_slice(&data);
            }
        }
    }
    if total > max {
        return Err(too_large(true, max));
    }
    Ok(kept)
}

/// Where in `value` a string (or key) holds a NUL character, as a field path. PostgreSQL cannot
/// store NUL in text, and no id, name or reference needs one: refusing it at the edge keeps the
/// backends identical.
fn nul_inside(value: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| if at.is_empty() { key.to_string() } else { format!("{at}.{key}") };
    match value {
        Value::String(s) if s.contains('\0') => Some(if at.is_empty() { "body".into() } else { at.to_string() }),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_inside(v, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "\\0")))
            } else {
                nul_inside(v, &join(k))
            }
        }),
        _ => None,
    }
}

/// Refuses path segments holding a NUL character (see `nul_inside`).
fn no_nul(segment: String, name: &str) -> Result<String, ApiError> {
    if segment.contains('\0') {
        return Err(ApiError::validation(Resource::General, name, format!("{name} may not contain NUL characters")));
    }
    Ok(segment)
}

/// The id in a route such as `/balances/{id}`.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::validation(Resource::General, "id", e.body_text()))
            .and_then(|Path(id)| no_nul(id, "id").map(PathId))
    }
}

/// Two path segments, e.g. `/balances/indicator/{indicator}/currency/{currency}`.
pub struct PathPair(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathPair {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::validation(Resource::General, "path", e.body_text()))
            .and_then(|Path((a, b))| Ok(PathPair(no_nul(a, "path")?, no_nul(b, "path")?)))
    }
}

/// A query string's pairs, in order (a bad one is Blnk's 400, not axum's text).
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(pairs)| QueryPairs(pairs))
            .map_err(|e| ApiError::validation(Resource::General, "query", e.body_text()))
    }
}

/// `?limit=&offset=&sort_order=`: limit defaults to 20 and is capped at 1,000; offset defaults
/// to 0; `sort_order` is Blnk's, `desc` (newest first, the default) or `asc`. Blnk's `sort_by`
/// may name `created_at`, the only order Keel's lists have yet.
pub struct Paging(pub Page);

/// What `Paging` reads, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by `Paging` from the query string; this type only describes it
pub struct PagingQuery {
    /// At most this many (default 20, capped at 1000).
    limit: Option<u32>,
    /// Skip this many.
    offset: Option<u64>,
    /// `desc` (newest first, the default) or `asc`.
    sort_order: Option<String>,
    /// Only `created_at` (the default).
    sort_by: Option<String>,
}

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 1000;

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::validation(Resource::General, "query", e.body_text()))?;
        let number = |name: &str| -> Result<Option<u64>, ApiError> {
            params
                .get(name)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        ApiError::validation(Resource::General, name, format!("{name} must be a non-negative integer"))
                    })
                })
                .transpose()
        };
        let limit = number("limit")?.map_or(DEFAULT_LIMIT, |l| l.clamp(1, MAX_LIMIT as u64) as u32);
        let offset = number("offset")?.unwrap_or(0);
        let page = Page::first(limit, offset);
        let page = match params.get("sort_order").map(|o| o.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "desc") => page.newest_first(),
            Some("asc") => page,
            Some(_) => {
                return Err(ApiError::validation(Resource::General, "sort_order", "sort_order must be asc or desc"))
            }
        };
        match params.get("sort_by").map(|by| by.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "created_at") => Ok(Paging(page)),
            Some(_) => Err(ApiError::validation(
                Resource::General,
                "sort_by",
                "sort_by can only be created_at in this version of Keel",
            )),
        }
    }
}
