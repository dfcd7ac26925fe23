//! `X-Blnk-Key` authentication. With no key configured every request passes; `/health`,
//! `/openapi.json` and `/docs` always do.

use super::error::ApiError;
use super::extract::read_limited;
use super::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

pub const HEADER: &str = "x-blnk-key";

pub async fn require_key(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = app.api_key.as_deref() else {
        return next.run(request).await;
    };
    // Health and the API's own description are public.
    if matches!(request.uri().path(), "/health" | "/openapi.json" | "/docs") {
        return next.run(request).await;
    }
    let error = match request.headers().get(HEADER) {
        None => ApiError::new(StatusCode::UNAUTHORIZED, "AUTH_MISSING_API_KEY", "API key is required"),
        // Constant time: the comparison must not reveal how much of a guess was right.
        Some(given) if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) => return next.run(request).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "AUTH_INVALID_API_KEY", "API key is invalid"),
    };
    drain(request).await;
    error.into_response()
}

/// Reads and drops a request's body, so a keep-alive connection is ready for the next request even
/// when this one is answered without looking at its body.
pub async fn drain(request: Request) {
    let _ = read_limited(request.into_body()).await;
}
