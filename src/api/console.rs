//! `/console`: the back-office page (README, "Console"). Its script reads and writes through the
//! same API as any client, with the key it was signed in with; this module serves the page and
//! tells the script what that key may do, so it can offer only the buttons that would work.

use super::auth::Caller;
use crate::domain::api_key::{Action, RESOURCES};
use axum::response::Html;
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

#[utoipa::path(operation_id = "getConsole", get, path = "/console", tag = "console", security(()),
    responses((status = 200, description = "(keel) the console, a page whose script uses this API",
        content_type = "text/html")))]
pub async fn page() -> impl axum::response::IntoResponse {
    use axum::http::header;
    // The browser itself keeps the console to this server: scripts, styles, data and connections
    // from here only (inline styles for the chart's legend), and no page of another site may frame
    // it (clickjacking a write button).
    let policy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
        connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
    (
        [
            (header::CONTENT_SECURITY_POLICY, policy),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(super::assets::CONSOLE_PAGE),
    )
}

/// `GET /console/session`: who the key is and what it may do, as the authentication middleware
/// found it (it has already refused a missing or invalid key).
#[utoipa::path(operation_id = "getConsoleSession", get, path = "/console/session", tag = "console",
    responses(
        (status = 200, description = "(keel) `{key: none|master|scoped, name, scopes, allows: {resource: {read, \
            write}}}`: what the key sent may do", body = Object),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody)))]
pub async fn session(caller: Option<Extension<Caller>>) -> Result<Json<Value>, super::ApiError> {
    let everything =
        |kind: &str| json!({ "key": kind, "name": null, "scopes": ["*:*"], "allows": allows(|_, _| true) });
    Ok(Json(match caller {
        Some(Extension(Caller::Open)) => everything("none"),
        Some(Extension(Caller::Master)) => everything("master"),
        Some(Extension(Caller::Scoped(key))) => json!({
            "key": "scoped",
            "name": key.name,
            "scopes": key.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "allows": allows(|resource, action| key.allows(resource, action)),
        }),
        // Authentication runs before every route that is not public, and this one is not.
        None => return Err(super::ApiError::internal()),
    }))
}

/// `{resource: {read, write}}` for every resource a scope can name.
fn allows(may: impl Fn(&str, Action) -> bool) -> Value {
    let mut map = Map::new();
    for resource in RESOURCES {
        map.insert(
            resource.to_string(),
            json!({ "read": may(resource, Action::Read), "write": may(resource, Action::Write) }),
        );
    }
    Value::Object(map)
}
