//! Every request: a request id (the client's `X-Request-Id` when it sends a sane one, else a new
//! UUID) on every log line written while serving it and echoed in the response; one access-log
//! line; and the request counted by route and status. Also the `/metrics` page.

use super::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        // A request id only has to be unique in practice, not unguessable: a fast non-cryptographic
        // generator, not a system call per request.
        .unwrap_or_else(|| uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid().to_string())
}

/// The matched route (`/balances/{id}`) as a `'static` label, so counting a request allocates no
/// label. Routes come from the fixed route table, so the set interned is bounded.
fn route_label(request: &Request) -> &'static str {
    static ROUTES: std::sync::RwLock<Vec<&'static str>> = std::sync::RwLock::new(Vec::new());
    let Some(path) = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str) else {
        return "unmatched";
    };
    let known = |routes: &[&'static str]| routes.iter().copied().find(|r| *r == path);
    if let Some(route) = known(&ROUTES.read().unwrap_or_else(|poisoned| poisoned.into_inner())) {
        return route;
    }
    let mut routes = ROUTES.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    known(&routes).unwrap_or_else(|| {
        let route: &'static str = Box::leak(path.to_string().into_boxed_str());
        routes.push(route);
        route
    })
}

pub async fn observe(request: Request, next: Next) -> Response {
    let id = request_id(&request);
    // Matched routes (`/balances/{id}`), never raw paths: ids would make unbounded label sets.
    let route = route_label(&request);
    let method = request.method().clone();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.in_scope(|| tracing::info!(status, duration_ms = elapsed.as_secs_f64() * 1000.0, "served"));
    let method = method_label(&method);
    let labels = [("route", route.into()), ("method", method), ("status", status.to_string().into())];
    metrics::counter!(crate::telemetry::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(crate::telemetry::HTTP_DURATION, &labels[..2]).record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The method as a label: the standard ones by name, anything else a client invents as `OTHER`
/// (a label never takes its value from unvalidated input, or the label set would be unbounded).
fn method_label(method: &Method) -> metrics::SharedString {
    let name = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    };
    name.into()
}

/// Bounds the time to read a request and answer it: a client that dribbles its body (or a request
/// stuck behind a saturated engine) gets `408 GEN_REQUEST_TIMEOUT` and a closed connection.
pub async fn time_limit(State(app): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(app.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => super::error::ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "GEN_REQUEST_TIMEOUT",
            format!("the request was not read and answered within {} ms", app.request_timeout.as_millis()),
        )
        .closing_connection()
        .into_response(),
    }
}

/// `GET /metrics`: Prometheus text format (the one non-JSON answer; scrapers, not SDKs, read it).
#[utoipa::path(operation_id = "getMetrics", get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format (see the README for every \
            metric)", content_type = "text/plain"),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody)))]
pub async fn metrics_page(State(app): State<AppState>) -> Response {
    let usage = app.store.pool_usage();
    let gauge =
        |state: &'static str, n: u32| metrics::gauge!(crate::telemetry::DB_CONNECTIONS, "state" => state).set(n as f64);
    gauge("idle", usage.idle);
    gauge("in_use", usage.connections.saturating_sub(usage.idle));
    let body = app.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
