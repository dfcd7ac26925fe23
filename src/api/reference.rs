//! The API's own description: `GET /openapi.json` (OpenAPI 3.1, generated from the handlers'
//! annotations: the same `routes!` calls register a route and document it, so the two cannot
//! drift) and `GET /docs`, an interactive reference page over it.

use std::sync::OnceLock;

/// Set once when the router is built (from the very registrations the router serves).
pub static DOCUMENT: OnceLock<String> = OnceLock::new();

#[utoipa::path(operation_id = "getOpenApiDocument", get, path = "/openapi.json", tag = "reference", security(()),
    responses((status = 200, description = "this document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = DOCUMENT.get().cloned().unwrap_or_else(|| "{}".into());
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[utoipa::path(operation_id = "getReferencePage", get, path = "/docs", tag = "reference", security(()),
    responses(
        (status = 200, description = "an interactive reference page (Swagger UI, served by Keel: it works offline) \
            over /openapi.json", content_type = "text/html")))]
pub async fn docs() -> axum::response::Html<&'static str> {
    axum::response::Html(super::assets::REFERENCE_PAGE)
}
