//! The HTTP layer: routes Blnk's API onto engine commands (writes) and store reads. It translates;
//! the rules live in the domain and the engine.

mod auth;
mod balances;
pub mod error;
mod events;
mod extract;
mod ledgers;
mod monitors;
mod observe;
mod transactions;

use crate::engine::EngineHandle;
use crate::store::{Reads, Store, StoreResult};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use error::ApiError;
use serde::Serialize;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub store: Arc<dyn Store>,
    pub api_key: Option<String>,
    /// Renders `/metrics`; `None` when no recorder is installed.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(observe::metrics_page))
        .route("/ledgers", post(ledgers::create).get(ledgers::list))
        .route("/ledgers/{id}", get(ledgers::get).put(ledgers::update))
        .route("/balances", post(balances::create).get(balances::list))
        .route("/balances/{id}", get(balances::get))
        .route("/balances/indicator/{indicator}/currency/{currency}", get(balances::by_indicator))
        .route("/transactions", post(transactions::create).get(transactions::list))
        .route("/transactions/{id}", get(transactions::get))
        .route("/transactions/reference/{reference}", get(transactions::by_reference))
        .route("/transactions/inflight/{id}", put(transactions::finish_inflight))
        .route("/refund-transaction/{id}", post(transactions::refund))
        .route("/balance-monitors", post(monitors::create).get(monitors::list))
        .route("/balance-monitors/{id}", get(monitors::get).put(monitors::update).delete(monitors::delete))
        .route("/balance-monitors/balances/{id}", get(monitors::of_balance))
        .route("/balance-monitors/{id}/events", get(monitors::events))
        .route("/events", get(events::list))
        .route("/events/{id}", get(events::get))
        .route("/events/{id}/redeliver", post(events::redeliver))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(state)
}

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

/// Runs a read on a blocking thread (SQLite calls block) against a consistent snapshot.
async fn read<T: Send + 'static>(
    app: &AppState,
    query: impl FnOnce(&dyn Reads) -> StoreResult<T> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let reader = store.reader()?;
        query(reader.as_ref())
    })
    .await;
    match joined {
        Ok(result) => Ok(result?),
        Err(panic) => {
            tracing::error!(error = %panic, "a read panicked");
            Err(ApiError::internal())
        }
    }
}

fn created(body: impl Serialize) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}
