//! Search: Blnk's `POST /search/{collection}` and `POST /multi-search` (Typesense's request and
//! answer shapes, `domain::search` for what is served), and the reindex routes
//! (`POST`/`GET /search/reindex`), over Keel's own index (`crate::search`).

use super::error::ApiError;
use super::extract::{JsonBody, OptionalJsonBody, Payload};
use super::{read_lagging, AppState};
use crate::domain::error::Resource;
use crate::domain::filter::{Collection, Problem};
use crate::domain::search;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

/// A search body, read field by field by `domain::search::read`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct SearchBody(Map<String, Value>);

impl Payload for SearchBody {
    const RESOURCE: Resource = Resource::General;
}

/// `POST /search/reindex`'s optional body.
#[derive(serde::Deserialize, utoipa::ToSchema, Default)]
pub struct ReindexBody {
    /// Records per round of the indexer while it reindexes (default 1000, at most 10,000).
    batch_size: Option<i64>,
}

impl Payload for ReindexBody {
    const RESOURCE: Resource = Resource::General;
}

fn refused(problem: Problem) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "SRCH_QUERY_INVALID", problem.message).with_field(problem.param)
}

/// One search's answer, Typesense's shape; a refusal names the parameter after `prefix`.
async fn answer(app: &AppState, name: &str, body: &Map<String, Value>, prefix: &str) -> Result<Value, ApiError> {
    let refused = |p: Problem| refused(Problem { param: format!("{prefix}{}", p.param), ..p });
    let collection = search::collection(name).ok_or_else(|| {
        refused(Problem {
            param: "collection".into(),
            message: "collection must be ledgers, transactions, balances, or identities".into(),
        })
    })?;
    let search = search::read(collection, body).map_err(refused)?;
    let started = std::time::Instant::now();
    let query = search.query.clone();
    let known_size = collection_size(collection, None);
    let (documents, found, out_of) = read_lagging(app, move |r| {
        let (documents, total): (Vec<Value>, Option<u64>) = match collection {
            Collection::Ledgers => documents(r.find_ledgers(&query)?, crate::wire::search::ledger),
            Collection::Balances => documents(r.find_balances(&query)?, crate::wire::search::balance),
            Collection::Transactions => documents(r.find_transactions(&query)?, crate::wire::search::transaction),
            Collection::Identities | Collection::Monitors => {
                documents(r.find_identities(&query)?, crate::wire::search::identity)
            }
        };
        let size = match known_size {
            Some(size) => size,
            None => collection_size(collection, Some(r.collection_size(collection)?)).unwrap_or_default(),
        };
        Ok((documents, total.unwrap_or_default(), size))
    })
    .await?;
    let hits: Vec<Value> = documents.into_iter().map(|document| json!({ "document": document })).collect();
    Ok(json!({
        "facet_counts": [],
        "found": found,
        "hits": hits,
        "out_of": out_of,
        "page": search.page,
        "request_params": { "collection_name": name, "per_page": search.per_page, "q": body.get("q") },
        "search_cutoff": false,
        "search_time_ms": started.elapsed().as_millis() as u64,
    }))
}

/// How long a collection's size (`out_of`) is reused: counting a million rows costs PostgreSQL
/// tens of milliseconds, more than a selective search itself.
const SIZE_KEPT: std::time::Duration = std::time::Duration::from_secs(5);

/// `collection`'s size as last counted, if counted within `SIZE_KEPT`; or, given a fresh count,
/// that count, kept.
fn collection_size(collection: Collection, counted: Option<u64>) -> Option<u64> {
    use parking_lot::Mutex;
    use std::time::Instant;
    static SIZES: Mutex<Vec<(&'static str, Instant, u64)>> = Mutex::new(Vec::new());
    let name = crate::store::table_of(collection);
    let mut sizes = SIZES.lock();
    if let Some(fresh) = counted {
        sizes.retain(|(n, _, _)| *n != name);
        sizes.push((name, Instant::now(), fresh));
        return Some(fresh);
    }
    sizes.iter().find(|(n, at, _)| *n == name && at.elapsed() < SIZE_KEPT).map(|(_, _, size)| *size)
}

fn documents<T>(found: crate::store::Found<T>, document: fn(T) -> Value) -> (Vec<Value>, Option<u64>) {
    (found.items.into_iter().map(document).collect(), found.total)
}

#[utoipa::path(operation_id = "search",
    post,
    path = "/search/{collection}",
    tag = "search",
    params(("collection" = String, Path, description = "ledgers, balances, transactions or identities")),
    request_body(content = SearchBody, description = "Typesense's: `q` (required; `*` for every record), \
        `query_by`, `filter_by`, `sort_by` (one field), `page`, `per_page` (at most 250); see the README's Search"),
    responses(
        (status = 200, description = "`{facet_counts, found, hits: [{document}], out_of, page, request_params, \
            search_cutoff, search_time_ms}`: documents show instants as Unix seconds and balances' amounts and \
            `precise_amount` as strings", body = Object),
        (status = 400, description = "SRCH_QUERY_INVALID (`details.field` names the parameter), \
            GEN_MALFORMED_REQUEST", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody))
)]
pub async fn one(
    State(app): State<AppState>,
    Path(collection): Path<String>,
    JsonBody(SearchBody(body)): JsonBody<SearchBody>,
) -> Result<Json<Value>, ApiError> {
    answer(&app, &collection, &body, "").await.map(Json)
}

#[utoipa::path(operation_id = "multiSearch",
    post,
    path = "/multi-search",
    tag = "search",
    request_body(content = SearchBody, description = "`{\"searches\": [{collection, q, query_by, …}]}`"),
    responses(
        (status = 200, description = "`{results: [...]}`: one answer per search, in order", body = Object),
        (status = 400, description = "SRCH_QUERY_INVALID (`details.field`: `searches[i].param`), \
            GEN_MALFORMED_REQUEST", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody))
)]
pub async fn multi(
    State(app): State<AppState>,
    JsonBody(SearchBody(body)): JsonBody<SearchBody>,
) -> Result<Json<Value>, ApiError> {
    let invalid = |param: String, message: &str| refused(Problem { param, message: message.to_string() });
    if let Some(other) = body.keys().find(|k| *k != "searches") {
        return Err(invalid(other.clone(), "multi-search takes only searches"));
    }
    let Some(Value::Array(searches)) = body.get("searches").filter(|s| s.as_array().is_some_and(|a| !a.is_empty()))
    else {
        return Err(invalid("searches".into(), "searches must be a non-empty array"));
    };
    if searches.len() > 50 {
        return Err(invalid("searches".into(), "multi-search takes at most 50 searches"));
    }
    let mut results = Vec::with_capacity(searches.len());
    for (i, one) in searches.iter().enumerate() {
        let Some(mut one) = one.as_object().cloned() else {
            return Err(invalid(format!("searches[{i}]"), "each search is an object"));
        };
        let collection = match one.remove("collection") {
            Some(Value::String(c)) => c,
            _ => return Err(invalid(format!("searches[{i}].collection"), "each search names its collection")),
        };
        results.push(answer(&app, &collection, &one, &format!("searches[{i}].")).await?);
    }
    Ok(Json(json!({ "results": results })))
}

#[utoipa::path(operation_id = "startReindex",
    post,
    path = "/search/reindex",
    tag = "search",
    request_body(content = Option<ReindexBody>, description = "optional `{batch_size}`"),
    responses(
        (status = 200, description = "`{message, progress}` and the progress's fields beside them (`status`, \
            `phase`, `total_records`, `processed_records`, `started_at`): the index is emptied and rebuilt in \
            the background", body = Object),
        (status = 400, description = "SRCH_QUERY_INVALID: batch_size", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 409, description = "SRCH_REINDEX_IN_PROGRESS (`details`: its progress)",
            body = crate::api::error::ErrorBody))
)]
pub async fn start_reindex(
    State(app): State<AppState>,
    OptionalJsonBody(body): OptionalJsonBody<ReindexBody>,
) -> Result<Json<Value>, ApiError> {
    if let Some(size) = body.batch_size.filter(|n| *n != 0) {
        if !(1..=10_000).contains(&size) {
            return Err(refused(Problem {
                param: "batch_size".into(),
                message: "batch_size must be 1 to 10000".into(),
            }));
        }
        crate::search::set_batch(size as u32);
    }
    let store = app.store.clone();
    let started = crate::tasks::blocking("reindex", move || crate::search::start_reindex(store.as_ref()))
        .await
        .ok_or_else(ApiError::internal)?;
    match started {
        Ok(progress) => {
            let mut answer = progress.clone();
            answer["message"] = json!("Reindex operation started");
            answer["progress"] = progress;
            Ok(Json(answer))
        }
        Err(progress) if progress["status"] == "failed" => Err(ApiError::internal()),
        Err(progress) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "SRCH_REINDEX_IN_PROGRESS",
            "A reindex operation is already in progress",
        )
        .with_details(progress)),
    }
}

#[utoipa::path(operation_id = "getReindexProgress",
    get,
    path = "/search/reindex",
    tag = "search",
    responses(
        (status = 200, description = "`{status, phase, total_records, processed_records, started_at, completed_at}`",
            body = Object),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "SRCH_REINDEX_NOT_STARTED: no reindex since this process started",
            body = crate::api::error::ErrorBody))
)]
pub async fn reindex_progress() -> Result<Json<Value>, ApiError> {
    crate::search::reindex_progress().map(Json).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "SRCH_REINDEX_NOT_STARTED", "No reindex operation has been started")
    })
}
