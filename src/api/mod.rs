//! The HTTP layer: routes Blnk's API onto engine commands (writes) and store reads. It translates;
//! the rules live in the domain and the engine.

mod api_keys;
mod assets;
mod auth;
mod balances;
mod bulk;
mod console;
pub mod error;
mod events;
mod extract;
mod filters;
mod history;
mod hooks;
mod identities;
mod ledgers;
mod metadata;
mod monitors;
mod observe;
mod reference;
mod search;
pub mod serve;
mod transactions;
mod webhooks;

use crate::engine::EngineHandle;
use crate::store::{Reads, Store, StoreResult};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use error::ApiError;
use serde::Serialize;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What every handler shares. Axum clones the state for each extractor of each request, so it is
/// one `Arc`: a clone is a reference count, not a copy of the key and the host list.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl AppState {
    /// Passes an endpoint command's answer on, waking the endpoints' supervisor to read the
    /// endpoints again (a refused command changed nothing, and the read finds that out).
    fn changed_endpoints<T>(&self, answer: T) -> T {
        self.endpoints_changed.notify_one();
        answer
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub engine: EngineHandle,
    pub store: Arc<dyn Store>,
    pub api_key: Option<String>,
    /// Longest time to read a request and answer it.
    pub request_timeout: std::time::Duration,
    /// Hosts a monitor's `call_back_url` may name; `None` allows any.
    pub callback_hosts: Option<Vec<String>>,
    /// Renders `/metrics`; `None` when no recorder is installed.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Told when this process created, changed or deleted a webhook endpoint or hook, so its
    /// delivery starts or stops at once (`webhooks::endpoints`).
    pub endpoints_changed: Arc<tokio::sync::Notify>,
    /// The key tokenized identity fields are read back with, if set.
    pub token_key: Option<crate::domain::identity::TokenKey>,
}

/// Every documented route. Only `routes!` registers routes here, and it also documents each one, so
/// `/openapi.json` is the route table.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(observe::metrics_page))
        .routes(routes!(reference::openapi_json))
        .routes(routes!(reference::docs))
        .routes(routes!(assets::docs_asset))
        .routes(routes!(console::page))
        .routes(routes!(console::session))
        .routes(routes!(assets::console_asset))
        .routes(routes!(ledgers::create, ledgers::list))
        .routes(routes!(ledgers::filter))
        .routes(routes!(ledgers::get, ledgers::update))
        .routes(routes!(balances::create, balances::list))
        .routes(routes!(balances::filter))
        .routes(routes!(balances::get))
        .routes(routes!(balances::set_identity))
        .routes(routes!(history::at))
        .routes(routes!(history::history))
        .routes(routes!(history::take_snapshots))
        .routes(routes!(search::start_reindex, search::reindex_progress))
        .routes(routes!(search::one))
        .routes(routes!(search::multi))
        .routes(routes!(balances::by_indicator))
        .routes(routes!(transactions::create, transactions::list))
        .routes(routes!(transactions::filter))
        .routes(routes!(bulk::create))
        .routes(routes!(bulk::commit_inflight))
        .routes(routes!(bulk::void_inflight))
        .routes(routes!(transactions::get))
        .routes(routes!(transactions::by_reference))
        .routes(routes!(transactions::finish_inflight))
        .routes(routes!(transactions::refund))
        .routes(routes!(monitors::create, monitors::list))
        .routes(routes!(monitors::filter))
        .routes(routes!(monitors::get, monitors::update, monitors::delete))
        .routes(routes!(monitors::of_balance))
        .routes(routes!(monitors::events))
        .routes(routes!(events::list))
        .routes(routes!(events::feed))
        .routes(routes!(events::get))
        .routes(routes!(events::redeliver))
        .routes(routes!(events::redeliver_failed))
        .routes(routes!(api_keys::create, api_keys::list))
        .routes(routes!(api_keys::revoke))
        .routes(routes!(metadata::update))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::test))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::delivery))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(identities::create, identities::list))
        .routes(routes!(identities::filter))
        .routes(routes!(identities::get, identities::update, identities::delete))
        .routes(routes!(identities::tokenized_fields))
        .routes(routes!(identities::tokenize_field))
        .routes(routes!(identities::detokenize_field))
        .routes(routes!(identities::tokenize))
        .routes(routes!(identities::detokenize))
        .routes(routes!(hooks::create, hooks::list))
        .routes(routes!(hooks::get, hooks::update, hooks::delete))
}

/// The OpenAPI document of the routes `router` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().split_for_parts().1
}

pub fn router(state: AppState) -> Router {
    let (routes, document) = documented_routes().split_for_parts();
    let _ = reference::DOCUMENT.set(document.to_json().expect("the OpenAPI document serializes"));
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe::time_limit))
        // A panic in a request answers 500 and the process goes on (`crate::tasks`); inside
        // `observe`, so the answer is counted like any other.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            tracing::error!("a request panicked (a bug); it answers 500");
            ApiError::internal().into_response()
        }))
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(state)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Keel",
        description = "A double-entry ledger server with balance monitors, speaking Blnk's HTTP API. \
            Amounts are exact numbers of any size; see the README for the rules.",
    ),
    tags(
        (name = "ledgers"), (name = "balances"), (name = "transactions"), (name = "search"),
        (name = "balance-monitors", description = "Conditions on balances, evaluated in the same commit as the money"),
        (name = "events", description = "(keel) The webhook outbox and its delivery log"),
        (name = "webhooks", description = "(keel) Webhook endpoints: subscriptions with their own event types, \
            secret, headers and delivery state (master key only)"),
        (name = "hooks", description = "Blnk's transaction hooks, served by webhook endpoints (master key only)"),
        (name = "operations", description = "Health and metrics"),
        (name = "reference", description = "This document"),
        (name = "console", description = "(keel) The back-office page and its files"),
        (name = "api-keys", description = "Scoped API keys (master key only)"),
        (name = "metadata", description = "Merge keys into any entity's metadata"),
        (name = "identities", description = "People and organisations balances belong to; tokenization of their \
            personal data"),
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&ApiKeyHeader),
    security(("api_key" = [])),
)]
struct ApiDoc;

/// `X-Blnk-Key`, required on every route that does not say otherwise when a key is configured.
struct ApiKeyHeader;

impl utoipa::Modify for ApiKeyHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Blnk-Key"))));
    }
}

#[utoipa::path(operation_id = "getHealth", get, path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "{\"status\":\"UP\"}", body = Object)))]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "UP" }))
}

async fn not_found(request: Request) -> ApiError {
    auth::drain(request).await;
    ApiError::new(StatusCode::NOT_FOUND, "GEN_NOT_FOUND", "route not found")
}

async fn method_not_allowed(request: Request) -> ApiError {
    auth::drain(request).await;
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "GEN_METHOD_NOT_ALLOWED", "method not allowed on this route")
}

/// Runs a read on a blocking thread (SQLite calls block) against a consistent snapshot, on the
/// primary: it sees every write acknowledged before it.
async fn read<T: Send + 'static>(
    app: &AppState,
    query: impl FnOnce(&dyn Reads) -> StoreResult<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    on_blocking_thread(move || query(store.reader()?.as_ref())).await
}

/// Runs a read that may lag behind the latest commits (a list, a filter, history, search): on a
/// read replica where there is one (`Store::read_lagging`), which runs it again on the primary if
/// the replica fails, hence `Fn`.
async fn read_lagging<T: Send + 'static>(
    app: &AppState,
    query: impl Fn(&dyn Reads) -> StoreResult<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    on_blocking_thread(move || {
        let mut answer = None;
        store.read_lagging(&mut |reader| {
            answer = Some(query(reader)?);
            Ok(())
        })?;
        Ok(answer.expect("a read that succeeded gave its answer"))
    })
    .await
}

/// Runs `read` where blocking is allowed; a panic or cancellation is a 500 (logged).
async fn on_blocking_thread<T: Send + 'static>(
    read: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(read).await {
        Ok(result) => Ok(result?),
        // A request's panic answers 500 (`crate::tasks`); a cancelled read is the runtime stopping.
        Err(error) => {
            tracing::error!(%error, "a read panicked or was cancelled");
            Err(ApiError::internal())
        }
    }
}

fn created(body: impl Serialize) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}
