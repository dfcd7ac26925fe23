//! `POST /transactions/bulk`: Blnk's bulk request. Every item is checked as `POST /transactions`
//! checks a body (errors name `transactions[i].field`), then the whole request goes to the engine
//! as one command (`engine/bulk.rs`), so in one batch and one commit.

use super::error::ApiError;
use super::extract::{parse_payload, JsonBody, Payload, MAX_BULK_BODY_BYTES};
use super::transactions::{asked, nothing_asked, preview_json};
use super::transactions::{transaction_or_split, CreateTransactionBody, QUEUED_NOTE};
use super::AppState;
use crate::domain::amount::Decimal;
use crate::domain::error::{DomainError, Resource};
use crate::domain::preview::Preview;
use crate::engine::{BulkItem, Command, EngineError, InflightAction, NewBulk, Outcome};
use crate::wire::number::NumberText;
use crate::wire::preview::{Asked, BalanceProjectionJson, BulkPreviewJson};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// Blnk's most items in one bulk request.
pub const MAX_ITEMS: usize = 10_000;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct BulkBody {
    /// Each as `POST /transactions` takes it, splits (`sources`/`destinations`) included; `dry_run`
    /// is the request's, not an item's.
    #[schema(value_type = Vec<Object>)]
    transactions: Option<Vec<Value>>,
    /// Every item is held (`INFLIGHT`), whatever the item says.
    inflight: Option<bool>,
    /// All or nothing. Without it, items are recorded in order up to the first one refused.
    atomic: Option<bool>,
    /// Answer `202` with the batch id; how it ended is a `bulk_transaction.*` webhook.
    run_async: Option<bool>,
    /// Every item applied before answering (otherwise each is `QUEUED`, unless `atomic` or a
    /// split item makes the request apply at once).
    skip_queue: Option<bool>,
    /// Answer `200` with what the request would do, item by item, and write nothing.
    dry_run: Option<bool>,
}

impl Payload for BulkBody {
    const RESOURCE: Resource = Resource::Transaction;
    const MAX_BYTES: usize = MAX_BULK_BODY_BYTES;
}

#[utoipa::path(operation_id = "createBulkTransactions",
    post,
    path = "/transactions/bulk",
    tag = "transactions",
    request_body = BulkBody,
    responses(
        (status = 201, description = "`{batch_id, status: applied | inflight, transaction_count}`", body = Object),
        (status = 200, description = "dry_run: each item's preview and the request's effect; nothing is \
            written", body = crate::wire::preview::BulkPreviewJson),
        (status = 202, description = "run_async: `{message, batch_id, status: processing}`; the \
            bulk_transaction.applied / .inflight / .failed webhook says how it ended", body = Object),
        (status = 400, description = "TXN_BULK_EMPTY, TXN_BULK_LIMIT_EXCEEDED, TXN_VALIDATION_ERROR \
            (naming transactions[i].field), or an item's refusal with `batch_id`", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "BAL_NOT_FOUND: an item's source or \
            destination", body = crate::api::error::ErrorBody),
        (status = 413, description = "GEN_PAYLOAD_TOO_LARGE (over 8 MiB)", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn create(State(app): State<AppState>, JsonBody(body): JsonBody<BulkBody>) -> Result<Response, ApiError> {
    let values = body.transactions.unwrap_or_default();
    if values.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "TXN_BULK_EMPTY", "transactions cannot be empty")
            .with_field("transactions"));
    }
    if values.len() > MAX_ITEMS {
        let message = format!("too many transactions; max is {MAX_ITEMS}");
        return Err(
            ApiError::new(StatusCode::BAD_REQUEST, "TXN_BULK_LIMIT_EXCEEDED", message).with_field("transactions")
        );
    }
    let (inflight, atomic, run_async, dry_run) = (
        body.inflight.unwrap_or(false),
        body.atomic.unwrap_or(false),
        body.run_async.unwrap_or(false),
        body.dry_run.unwrap_or(false),
    );
    let mut items = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let mut item = transaction_or_split(parse_item(i, value, dry_run)?).map_err(|e| in_item(i, e))?;
        // Blnk: the request's inflight and skip_queue win over the item's; each item carries its
        // place in the batch.
        let template = match &mut item {
            BulkItem::Transaction(t) => t,
            BulkItem::Split(split) => &mut split.template,
        };
        template.inflight = inflight;
        template.skip_queue = body.skip_queue.unwrap_or(false);
        template.meta_data.insert("sequence".into(), json!(i + 1));
        items.push(item);
    }
    let bulk = NewBulk::new(items, atomic, run_async);
    if dry_run {
        return dry_run_reply(&app, bulk).await;
    }
    let count = bulk.items.len();
    let Outcome::Bulk { id, recorded, refused } = app.engine.submit(Command::CreateBulk(bulk)).await? else {
        unreachable!("a bulk request answers a batch")
    };
    if run_async {
        let answer = json!({"message": "Bulk transaction processing started", "batch_id": id, "status": "processing"});
        return Ok((StatusCode::ACCEPTED, Json(answer)).into_response());
    }
    if let Some((i, why)) = refused {
        let mut error = in_item(i, ApiError::from(why));
        error.message = format!("{}. {} ({} recorded).", error.message, consequence(atomic), recorded.len());
        return Err(error.with_batch(id));
    }
    let status = if inflight { "inflight" } else { "applied" };
    let answer = json!({"batch_id": id, "status": status, "transaction_count": count});
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// What a refused item means for the rest of its request.
fn consequence(atomic: bool) -> &'static str {
    match atomic {
        true => "No transaction in this batch was recorded",
        false => "Previous transactions were not rolled back",
    }
}

/// A bulk request's dry run: every item's preview, projected in order against the balances as
/// the items before it that would apply leave them (Keel applies a batch's items in order, queued
/// or not: so `cumulative` is always true), and the request's effect on each balance.
async fn dry_run_reply(app: &AppState, bulk: NewBulk) -> Result<Response, ApiError> {
    let (atomic, run_async, at_once) =
        (bulk.atomic, bulk.run_async, bulk.items.first().is_some_and(|item| item.template().skip_queue));
    let asked: Vec<Asked> = bulk.items.iter().map(|item| asked(item.template())).collect();
    let Outcome::BulkPreview(preview) = app.engine.submit(Command::DryRun(Box::new(Command::CreateBulk(bulk)))).await?
    else {
        unreachable!("a bulk dry run answers a bulk preview")
    };
    let mut notes = vec![];
    if !at_once {
        notes.push(format!(
            "{QUEUED_NOTE}; an item the queue finds short of funds is REJECTED and the items after it still go"
        ));
    }
    if run_async {
        notes.push("run_async is ignored in a dry run; the projection is returned at once".to_string());
    }
    if let Some(i) = preview.stops_at {
        notes.push(format!("a real request is refused at transactions[{i}]: {}", consequence(atomic)));
    }
    let results = preview
        .items
        .into_iter()
        .zip(asked)
        .map(|(item, asked)| preview_json(item, None, asked, vec![]))
        .collect::<Vec<_>>();
    let balances = preview.balances.into_iter().map(BalanceProjectionJson::from).collect();
    Ok(Json(BulkPreviewJson::new(results, balances, atomic, notes)).into_response())
}

/// One item, checked as `POST /transactions` checks a body; `dry_run` is the request's to say.
fn parse_item(i: usize, value: Value, dry_run: bool) -> Result<CreateTransactionBody, ApiError> {
    if !value.is_object() {
        return Err(ApiError::validation(Resource::Transaction, &format!("transactions[{i}]"), "must be an object"));
    }
    if value.get("dry_run") == Some(&json!(true)) && !dry_run {
        let message = format!("transactions[{i}].dry_run: a bulk request is a dry run as a whole: set dry_run on it");
        return Err(ApiError::validation(Resource::Transaction, &format!("transactions[{i}].dry_run"), message));
    }
    parse_payload(value).map_err(|e| in_item(i, e))
}

/// An item's error, naming it: `transactions[3].amount`.
fn in_item(i: usize, mut error: ApiError) -> ApiError {
    let field = error.field.take().filter(|f| !f.is_empty());
    error.field = Some(match field {
        Some(field) => format!("transactions[{i}].{field}"),
        None => format!("transactions[{i}]"),
    });
    error.message = format!("transactions[{i}]: {}", error.message);
    error
}

/// Blnk's most items in one bulk commit or void.
pub const MAX_INFLIGHT_ITEMS: usize = 100;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct BulkCommitBody {
    transactions: Option<Vec<BulkCommitItem>>,
    /// Keel commits synchronously whatever this says (as `PUT /transactions/inflight/{id}`).
    #[allow(dead_code)]
    skip_queue: Option<bool>,
    /// Answer `200` with what each commit would do, and write nothing.
    dry_run: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct BulkCommitItem {
    transaction_id: Option<String>,
    /// Major units; absent or 0 commits all that is left.
    #[schema(schema_with = crate::wire::number::number_or_string_schema)]
    amount: Option<NumberText>,
    #[schema(schema_with = crate::wire::number::number_or_string_schema)]
    precise_amount: Option<NumberText>,
}

impl Payload for BulkCommitBody {
    const RESOURCE: Resource = Resource::Transaction;
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct BulkVoidBody {
    transaction_ids: Option<Vec<String>>,
    /// Keel voids synchronously whatever this says.
    #[allow(dead_code)]
    skip_queue: Option<bool>,
    /// Answer `200` with what each void would do, and write nothing.
    dry_run: Option<bool>,
}

impl Payload for BulkVoidBody {
    const RESOURCE: Resource = Resource::Transaction;
}

#[utoipa::path(operation_id = "bulkCommitInflight",
    post,
    path = "/transactions/inflight/bulk/commit",
    tag = "transactions",
    request_body = BulkCommitBody,
    responses(
        (status = 200, description = "`{succeeded, failed, results: [{transaction_id, status: succeeded \
            | failed, code?, message?}]}`, in the request's order; with dry_run, each commit's preview \
            (`BulkPreviewJson`, not cumulative) and nothing is written", body = Object),
        (status = 400, description = "TXN_BULK_EMPTY, TXN_BULK_LIMIT_EXCEEDED (over 100), \
            TXN_VALIDATION_ERROR", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn commit_inflight(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<BulkCommitBody>,
) -> Result<Json<Value>, ApiError> {
    let items = inflight_items(body.transactions.unwrap_or_default())?;
    let mut actions = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let id = item.transaction_id.filter(|id| !id.is_empty()).ok_or_else(|| {
            ApiError::validation(
                Resource::Transaction,
                &format!("transactions[{i}].transaction_id"),
                "transaction_id is required",
            )
        })?;
        // Blnk: a zero amount commits all that is left, and precise_amount wins over amount.
        let given = |n: Option<NumberText>| {
            n.filter(|n| Decimal::parse(&n.0).map_or(true, |d| d.is_positive() || d.is_negative())).map(|n| n.0)
        };
        let precise_amount = given(item.precise_amount);
        let amount = if precise_amount.is_some() { None } else { given(item.amount) };
        actions.push((id, InflightAction::Commit { amount, precise_amount }));
    }
    Ok(match body.dry_run == Some(true) {
        true => Json(preview_all(&app, actions, "commit").await?),
        false => Json(finish_all(&app, actions).await),
    })
}

#[utoipa::path(operation_id = "bulkVoidInflight",
    post,
    path = "/transactions/inflight/bulk/void",
    tag = "transactions",
    request_body = BulkVoidBody,
    responses(
        (status = 200, description = "`{succeeded, failed, results: [{transaction_id, status, code?, \
            message?}]}`, in the request's order; with dry_run, each void's preview (`BulkPreviewJson`, \
            not cumulative) and nothing is written", body = Object),
        (status = 400, description = "TXN_BULK_EMPTY, TXN_BULK_LIMIT_EXCEEDED (over \
            100)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn void_inflight(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<BulkVoidBody>,
) -> Result<Json<Value>, ApiError> {
    let ids = inflight_items(body.transaction_ids.unwrap_or_default())?;
    let actions = ids.into_iter().map(|id| (id, InflightAction::Void)).collect();
    Ok(match body.dry_run == Some(true) {
        true => Json(preview_all(&app, actions, "void").await?),
        false => Json(finish_all(&app, actions).await),
    })
}

fn inflight_items<T>(items: Vec<T>) -> Result<Vec<T>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "TXN_BULK_EMPTY", "transactions cannot be empty"));
    }
    if items.len() > MAX_INFLIGHT_ITEMS {
        let message = format!("too many transactions; max is {MAX_INFLIGHT_ITEMS}");
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "TXN_BULK_LIMIT_EXCEEDED", message));
    }
    Ok(items)
}

/// Each commit or void on its own, as Blnk runs them (one failing never stops another); sent to the
/// engine together, so they share its batches. Results in the request's order, with Blnk's codes.
async fn finish_all(app: &AppState, actions: Vec<(String, InflightAction)>) -> Value {
    let mut running = tokio::task::JoinSet::new();
    for (i, (id, action)) in actions.iter().cloned().enumerate() {
        let engine = app.engine.clone();
        running.spawn(async move { (i, engine.submit(Command::FinishInflight { id, action }).await) });
    }
    let mut answers: Vec<Option<Result<Outcome, EngineError>>> = (0..actions.len()).map(|_| None).collect();
    while let Some(joined) = running.join_next().await {
        if let Ok((i, answer)) = joined {
            answers[i] = Some(answer);
        }
    }
    let mut succeeded = 0;
    let results: Vec<Value> = actions
        .iter()
        .zip(answers)
        .map(|((id, _), answer)| match answer {
            Some(Ok(_)) => {
                succeeded += 1;
                json!({"transaction_id": id, "status": "succeeded"})
            }
            Some(Err(EngineError::Rejected(why))) => {
                let (code, message) = (inflight_code(&why), why.to_string());
                json!({"transaction_id": id, "status": "failed", "code": code, "message": message})
            }
            _ => {
                let message = "the database failed; look the transaction up before sending it again";
                json!({"transaction_id": id, "status": "failed", "code": "INTERNAL_ERROR", "message": message})
            }
        })
        .collect();
    json!({"succeeded": succeeded, "failed": results.len() - succeeded, "results": results})
}

/// A dry run of each commit or void on its own, against the balances as they stand (as Blnk
/// projects them: the real request runs them independently, in no set order). An id that names
/// nothing is that item's rejection; a storage failure is the request's.
async fn preview_all(
    app: &AppState,
    actions: Vec<(String, InflightAction)>,
    operation: &'static str,
) -> Result<Value, ApiError> {
    let mut notes = vec!["each item is projected on its own against the balances as they stand: the real \
        request runs them independently, in no set order"
        .to_string()];
    let (mut seen, mut told) = (std::collections::HashSet::new(), std::collections::HashSet::new());
    let repeated: Vec<&str> =
        actions.iter().map(|(id, _)| id.as_str()).filter(|id| !seen.insert(*id) && told.insert(*id)).collect();
    if !repeated.is_empty() {
        notes.push(format!(
            "transaction id appears more than once in this batch ({}); the occurrences settle the same hold, so \
             only one of them can succeed",
            repeated.join(", ")
        ));
    }
    let mut results = Vec::with_capacity(actions.len());
    for (id, action) in actions {
        let command = Command::DryRun(Box::new(Command::FinishInflight { id, action }));
        let preview = match app.engine.submit(command).await {
            Ok(Outcome::Preview(preview)) => preview,
            Ok(other) => unreachable!("a dry run answers a preview, not {other:?}"),
            Err(EngineError::Rejected(refused)) => Preview::refused(refused),
            Err(error) => return Err(error.into()),
        };
        results.push(preview_json(preview, Some(operation), nothing_asked(), vec![]));
    }
    Ok(json!(BulkPreviewJson::independent(results, notes)))
}

/// Blnk's per-item codes for a bulk commit or void.
fn inflight_code(why: &DomainError) -> &'static str {
    match why {
        DomainError::NotFound { .. } => "NOT_FOUND",
        DomainError::AlreadyVoided => "ALREADY_VOIDED",
        DomainError::AlreadyCommitted => "ALREADY_COMMITTED",
        DomainError::NotInflight => "NOT_INFLIGHT",
        DomainError::CommitAmountExceeded(_) | DomainError::InvalidAmount(_) | DomainError::PrecisionNotInteger(_) => {
            "INVALID_AMOUNT"
        }
        _ => "INTERNAL_ERROR",
    }
}
