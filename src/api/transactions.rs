//! `/transactions`: record (queued or applied at once), get, find by reference, list, commit or
//! void inflight, refund.

use super::error::ApiError;
use super::extract::{JsonBody, OptionalJsonBody, PathId, Payload};
use super::filters::{self, FilterBody, ListQuery, Listed, Listing, TransactionList};
use super::{created, read, AppState};
use crate::domain::amount::Precision;
use crate::domain::currency;
use crate::domain::error::{DomainError, Resource};
use crate::domain::preview::Preview;
use crate::domain::split::{distribute, Share, SplitSide};
use crate::domain::transaction::{parse_overdraft_limit, parse_precision, resolve_amount};
use crate::engine::{BulkItem, Command, InflightAction, NewSplit, NewTransaction, Outcome};
use crate::wire::number::NumberText;
use crate::wire::preview::{Asked, RejectionJson};
use crate::wire::transaction::SplitJson;
use crate::wire::{PreviewJson, TransactionJson};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use num_bigint::BigInt;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateTransactionBody {
    #[schema(schema_with = crate::wire::number::number_or_string_schema)]
    amount: Option<NumberText>,
    #[schema(schema_with = crate::wire::number::number_or_string_schema)]
    precise_amount: Option<NumberText>,
    #[schema(schema_with = crate::wire::number::number_or_string_schema)]
    precision: Option<NumberText>,
    reference: Option<String>,
    currency: Option<String>,
    source: Option<String>,
    destination: Option<String>,
    description: Option<String>,
    allow_overdraft: Option<bool>,
    /// Major units: the source may go this far below zero (with or without `allow_overdraft`).
    #[schema(schema_with = crate::wire::number::number_or_string_schema)]
    overdraft_limit: Option<NumberText>,
    /// RFC 3339 (any offset; stored in UTC): when the money is deemed to have moved.
    effective_date: Option<String>,
    /// RFC 3339: hold the transaction (`SCHEDULED`) and apply it then.
    scheduled_for: Option<String>,
    /// RFC 3339, with `inflight`: void what is left of the hold then...
    inflight_expiry_date: Option<String>,
    /// ...or commit all that is left then.
    inflight_commit_date: Option<String>,
    inflight: Option<bool>,
    skip_queue: Option<bool>,
    #[schema(value_type = Option<Object>)]
    meta_data: Option<Map<String, Value>>,
    /// Answer `200` with what the transaction would do, and write nothing.
    dry_run: Option<bool>,
    /// Split the amount among several sources (then no `source`)...
    sources: Option<Vec<ShareBody>>,
    /// ...or several destinations (then no `destination`); not both.
    destinations: Option<Vec<ShareBody>>,
    /// Blnk's all-or-nothing for a split's legs. Keel's splits are always applied in one commit or
    /// not at all, and a single transaction is trivially so: accepted either way.
    #[allow(dead_code)]
    atomic: Option<bool>,
    /// In Blnk's request type but unused by Blnk's server; ignored here too.
    #[allow(dead_code)]
    balance_id: Option<String>,
}

/// One share of a split, as Blnk writes it.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ShareBody {
    /// A balance id or an indicator.
    identifier: Option<String>,
    /// `"10%"` of the whole, a fixed amount in major units (`"100"`), or `"left"`.
    distribution: Option<String>,
    /// A fixed amount in minor units (`"1006"`), instead of `distribution`.
    precise_distribution: Option<String>,
}

impl Payload for CreateTransactionBody {
    const RESOURCE: Resource = Resource::Transaction;
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct InflightBody {
    status: Option<String>,
    #[schema(schema_with = crate::wire::number::number_or_string_schema)]
    amount: Option<NumberText>,
    #[schema(schema_with = crate::wire::number::number_or_string_schema)]
    precise_amount: Option<NumberText>,
    /// Keel commits and voids synchronously whatever this says (see the README).
    #[allow(dead_code)]
    skip_queue: Option<bool>,
    /// Answer `200` with what the commit or void would do, and write nothing.
    dry_run: Option<bool>,
}

impl Payload for InflightBody {
    const RESOURCE: Resource = Resource::Transaction;
}

/// `POST /refund-transaction/{id}`'s optional body.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct RefundBody {
    /// Keel refunds synchronously whatever this says (see the README).
    #[allow(dead_code)]
    skip_queue: Option<bool>,
    /// Answer `200` with what the refund would do, and write nothing.
    dry_run: Option<bool>,
    /// Replaces the description the refund inherits from the original (empty keeps it).
    description: Option<String>,
    /// Merged over the metadata the refund inherits from the original.
    #[schema(value_type = Option<Object>)]
    meta_data: Option<Map<String, Value>>,
}

impl Payload for RefundBody {
    const RESOURCE: Resource = Resource::Transaction;
}

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ApiError::validation(Resource::Transaction, field, format!("{field} is required"))),
    }
}

/// An RFC 3339 instant with any offset (`2026-01-31T23:00:00+01:00`), as RFC 3339 in UTC with
/// microseconds, the form every Keel timestamp has.
fn timestamp(text: &str, field: &str) -> Result<String, ApiError> {
    use time::format_description::well_known::Rfc3339;
    let invalid = || {
        ApiError::validation(
            Resource::Transaction,
            field,
            format!("{field} must be RFC 3339, e.g. 2026-01-31T09:30:00Z"),
        )
    };
    let at = time::OffsetDateTime::parse(text, &Rfc3339).map_err(|_| invalid())?;
    let utc = at.to_offset(time::UtcOffset::UTC);
    let system: std::time::SystemTime = utc.into();
    Ok(humantime::format_rfc3339_micros(system).to_string())
}

/// An optional instant; `""` is absent (Blnk's Go zero value).
fn optional_time(text: Option<String>, field: &str) -> Result<Option<String>, ApiError> {
    text.filter(|t| !t.is_empty()).map(|t| timestamp(&t, field)).transpose()
}

fn text(n: &Option<NumberText>) -> Option<&str> {
    n.as_ref().map(|n| n.0.as_str())
}

#[utoipa::path(operation_id = "createTransaction",
    post,
    path = "/transactions",
    tag = "transactions",
    request_body = CreateTransactionBody,
    responses(
        (status = 201, description = "the transaction: QUEUED, or with skip_queue APPLIED / \
            INFLIGHT; a split answers its parent with `sources` or `destinations`, each share with \
            its leg's transaction_id", body = crate::wire::TransactionJson),
        (status = 200, description = "dry_run: what it would do; nothing is \
            written", body = crate::wire::PreviewJson),
        (status = 400, description = "GEN_MALFORMED_REQUEST, TXN_VALIDATION_ERROR, TXN_INVALID_AMOUNT, \
            TXN_PRECISION_NOT_INTEGER, TXN_DUPLICATE_REFERENCE, TXN_INSUFFICIENT_FUNDS, \
            TXN_INVALID_DISTRIBUTION", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "BAL_NOT_FOUND: no such source or \
            destination", body = crate::api::error::ErrorBody),
        (status = 413, description = "GEN_PAYLOAD_TOO_LARGE", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn create(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<CreateTransactionBody>,
) -> Result<Response, ApiError> {
    let dry_run = body.dry_run == Some(true);
    let new = transaction_or_split(body)?;
    let asked = asked(new.template());
    match new {
        BulkItem::Split(split) => {
            let (side, shares) = (split.side, split.shares.clone());
            let command = Command::CreateSplit(split);
            if dry_run {
                return dry_run_reply(&app, command, None, asked, vec![]).await;
            }
            match app.engine.submit(command).await? {
                Outcome::Split { parent, legs } => Ok(created(SplitJson::new(parent, side, &shares, legs))),
                other => unreachable!("a split answers its legs, not {other:?}"),
            }
        }
        BulkItem::Transaction(new) if dry_run => {
            let notes = if new.skip_queue { vec![] } else { vec![QUEUED_NOTE.to_string()] };
            dry_run_reply(&app, Command::CreateTransaction(new), None, asked, notes).await
        }
        BulkItem::Transaction(new) => {
            transaction_reply(app.engine.submit(Command::CreateTransaction(new)).await?, true)
        }
    }
}

/// What a new transaction (or a split, by its template) asks to move.
pub(super) fn asked(new: &NewTransaction) -> Asked {
    Asked {
        reference: Some(new.reference.clone()),
        currency: new.currency.clone(),
        precise_amount: new.precise_amount.clone(),
        precision: new.precision,
    }
}

/// What a dry run of a transaction a real post would queue says about it.
pub(super) const QUEUED_NOTE: &str = "skip_queue is false: a real post answers QUEUED and the engine applies it right \
    after, in arrival order; this projection shows it applied now";

/// A `POST /transactions` body (also a bulk request's item): a transaction, or a split of one
/// among its `sources` or `destinations`, with every share's amount worked out.
pub(super) fn transaction_or_split(mut body: CreateTransactionBody) -> Result<BulkItem, ApiError> {
    let Some((side, shares)) = split_of(body.sources.take(), body.destinations.take())? else {
        return Ok(BulkItem::Transaction(new_transaction(body, None)?));
    };
    let template = new_transaction(body, Some(side))?;
    let field = if side == SplitSide::Sources { "sources" } else { "destinations" };
    let amounts = distribute(&template.precise_amount, template.precision, &shares, field)?;
    Ok(BulkItem::Split(NewSplit { template, side, shares, amounts }))
}

/// A transaction from its request body; `split` says which side (if any) its shares replace.
pub(super) fn new_transaction(
    body: CreateTransactionBody,
    split: Option<SplitSide>,
) -> Result<NewTransaction, ApiError> {
    let precision = parse_precision(text(&body.precision))?;
    let precise_amount = resolve_amount(text(&body.amount), text(&body.precise_amount), precision)?;
    let party = |value: Option<String>, field: &str, split_here: bool| match split_here {
        false => required(value, field),
        true if value.as_deref().is_some_and(|v| !v.is_empty()) => Err(ApiError::validation(
            Resource::Transaction,
            field,
            format!("{field} and {field}s cannot both be given"),
        )),
        true => Ok(String::new()),
    };
    let side = split;
    Ok(NewTransaction {
        precise_amount,
        precision,
        reference: required(body.reference, "reference")?,
        currency: currency::parse(Resource::Transaction, body.currency.as_deref())?,
        source: party(body.source, "source", side == Some(SplitSide::Sources))?,
        destination: party(body.destination, "destination", side == Some(SplitSide::Destinations))?,
        description: body.description.unwrap_or_default(),
        allow_overdraft: body.allow_overdraft.unwrap_or(false),
        overdraft_limit: parse_overdraft_limit(text(&body.overdraft_limit), precision)?,
        effective_date: body.effective_date.as_deref().map(|d| timestamp(d, "effective_date")).transpose()?,
        scheduled_for: optional_time(body.scheduled_for, "scheduled_for")?,
        inflight_expiry_date: optional_time(body.inflight_expiry_date, "inflight_expiry_date")?,
        inflight_commit_date: optional_time(body.inflight_commit_date, "inflight_commit_date")?,
        inflight: body.inflight.unwrap_or(false),
        skip_queue: body.skip_queue.unwrap_or(false),
        meta_data: body.meta_data.unwrap_or_default(),
    })
}

/// Which side a request splits, with its shares; Blnk 0.15.4 refuses both at once.
fn split_of(
    sources: Option<Vec<ShareBody>>,
    destinations: Option<Vec<ShareBody>>,
) -> Result<Option<(SplitSide, Vec<Share>)>, ApiError> {
    let shares = |list: Vec<ShareBody>| -> Vec<Share> {
        list.into_iter()
            .map(|s| Share {
                identifier: s.identifier.unwrap_or_default(),
                distribution: s.distribution.unwrap_or_default(),
                precise_distribution: s.precise_distribution.unwrap_or_default(),
            })
            .collect()
    };
    match (sources.filter(|s| !s.is_empty()), destinations.filter(|d| !d.is_empty())) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            Resource::Transaction,
            "destinations",
            "a transaction can split either sources or destinations, not both",
        )),
        (Some(sources), None) => Ok(Some((SplitSide::Sources, shares(sources)))),
        (None, Some(destinations)) => Ok(Some((SplitSide::Destinations, shares(destinations)))),
        (None, None) => Ok(None),
    }
}

/// Answers a dry run of `command`: `200` with the preview, also when a rule refuses it (the
/// `rejection` carries the code the real request would answer). A balance or transaction that
/// does not exist is the real request's error instead, as in Blnk.
async fn dry_run_reply(
    app: &AppState,
    command: Command,
    operation: Option<&'static str>,
    asked: Asked,
    notes: Vec<String>,
) -> Result<Response, ApiError> {
    let Outcome::Preview(preview) = app.engine.submit(Command::DryRun(Box::new(command))).await? else {
        unreachable!("a dry run answers a preview")
    };
    if let Err(refused) = &preview.result {
        if preview.balances.len() < 2 || matches!(refused, DomainError::NotFound { .. }) {
            return Err(refused.clone().into());
        }
    }
    Ok(Json(preview_json(preview, operation, asked, notes)).into_response())
}

/// A preview as Blnk writes it; a refused one's `rejection` carries the code and message the
/// real request would answer.
pub(super) fn preview_json(
    preview: Preview,
    operation: Option<&'static str>,
    asked: Asked,
    notes: Vec<String>,
) -> PreviewJson {
    let rejection = preview.result.as_ref().err().map(|refused| {
        let reason = match refused {
            DomainError::InsufficientFunds(_) => "insufficient_funds",
            DomainError::OverdraftLimitExceeded(_) => "overdraft_limit",
            DomainError::RejectedByMonitor { .. } => "monitor_guard",
            _ => "other",
        };
        let error = ApiError::from(refused.clone());
        RejectionJson {
            code: error.code,
            reason,
            message: error.message,
            monitor_id: error.monitor_id.map(String::from),
        }
    });
    PreviewJson::new(preview, rejection, operation, asked, notes)
}

/// What a dry run of a commit, void or refund asked to move: nothing it can name before the
/// engine finds the transaction (a refused preview then shows 0, as Blnk's does).
pub(super) fn nothing_asked() -> Asked {
    Asked { reference: None, currency: String::new(), precise_amount: BigInt::ZERO, precision: Precision::ONE }
}

/// `PUT /transactions/inflight/{id}` with `{"status": "commit" | "void", "amount"?, "precise_amount"?}`.
#[utoipa::path(operation_id = "updateInflightTransaction",
    put,
    path = "/transactions/inflight/{id}",
    tag = "transactions",
    request_body = InflightBody,
    params(("id" = String, Path, description = "the inflight transaction; or a split's or a bulk request's id, \
        to commit or void whole every leg or item still inflight")),
    responses(
        (status = 200, description = "the commit (APPLIED) or void (VOID) child transaction (of several, \
            the first); with dry_run, the preview (nothing is written)", body = crate::wire::TransactionJson),
        (status = 400, description = "TXN_VALIDATION_ERROR, TXN_INVALID_STATUS_ACTION, TXN_INVALID_AMOUNT, \
            TXN_NOT_INFLIGHT, \
            TXN_ALREADY_COMMITTED, TXN_ALREADY_VOIDED, \
            TXN_COMMIT_AMOUNT_EXCEEDED", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "TXN_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 413, description = "GEN_PAYLOAD_TOO_LARGE", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn finish_inflight(
    State(app): State<AppState>,
    PathId(id): PathId,
    JsonBody(body): JsonBody<InflightBody>,
) -> Result<Response, ApiError> {
    let (action, operation) = match body.status.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("commit") => (
            InflightAction::Commit {
                amount: body.amount.map(|n| n.0),
                precise_amount: body.precise_amount.map(|n| n.0),
            },
            "commit",
        ),
        Some("void") => (InflightAction::Void, "void"),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "TXN_INVALID_STATUS_ACTION",
                "status not supported. use either commit or void",
            )
            .with_field("status"))
        }
    };
    let command = Command::FinishInflight { id, action };
    if body.dry_run == Some(true) {
        return dry_run_reply(&app, command, Some(operation), nothing_asked(), vec![]).await;
    }
    transaction_reply(app.engine.submit(command).await?, false)
}

#[utoipa::path(operation_id = "refundTransaction",
    post,
    path = "/refund-transaction/{id}",
    tag = "transactions",
    params(("id" = String, Path, description = "what to reverse: an APPLIED transaction; an inflight one \
        (its commits, and its void held back the other way); a split's or a bulk request's id (every leg or \
        item)")),
    request_body(content = Option<RefundBody>, description = "optional: no body, `null` or an object"),
    responses(
        (status = 201, description = "the refund: APPLIED (INFLIGHT for a void held back), source and \
            destination swapped; of several, the first", body = crate::wire::TransactionJson),
        (status = 200, description = "dry_run: what it would do; nothing is \
            written", body = crate::wire::PreviewJson),
        (status = 400, description = "TXN_VALIDATION_ERROR, TXN_INSUFFICIENT_FUNDS, \
            TXN_DUPLICATE_REFERENCE", body = crate::api::error::ErrorBody),
        (status = 409, description = "TXN_ALREADY_REFUNDED: refunded before, or itself a \
            refund", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "TXN_NOT_FOUND: no such transaction, or nothing of it to refund \
            (queued, scheduled, rejected, a hold not settled, a void)", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn refund(
    State(app): State<AppState>,
    PathId(id): PathId,
    OptionalJsonBody(body): OptionalJsonBody<RefundBody>,
) -> Result<Response, ApiError> {
    let command = Command::Refund {
        id,
        description: body.description.unwrap_or_default(),
        meta_data: body.meta_data.unwrap_or_default(),
    };
    if body.dry_run == Some(true) {
        return dry_run_reply(&app, command, None, nothing_asked(), vec![]).await;
    }
    transaction_reply(app.engine.submit(command).await?, true)
}

/// A transaction command's answer; of several written (a split's or a batch's commits, voids or
/// refunds), the first, as Blnk answers.
fn transaction_reply(outcome: Outcome, is_create: bool) -> Result<Response, ApiError> {
    let transaction = match outcome {
        Outcome::Transaction(t) => t,
        Outcome::Transactions(written) => written.into_iter().next().expect("a commit, void or refund writes one"),
        other => unreachable!("transaction commands answer a transaction, not {other:?}"),
    };
    Ok(match is_create {
        true => created(TransactionJson::from(transaction)),
        false => Json(TransactionJson::from(transaction)).into_response(),
    })
}

#[utoipa::path(operation_id = "getTransaction",
    get,
    path = "/transactions/{id}",
    tag = "transactions",
    params(("id" = String, Path, description = "transaction id")),
    responses(
        (status = 200, description = "the transaction", body = crate::wire::TransactionJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "TXN_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn get(State(app): State<AppState>, PathId(id): PathId) -> Result<Json<TransactionJson>, ApiError> {
    let found = read(&app, move |r| r.transaction(&id)).await?;
    found.map(|t| Json(t.into())).ok_or_else(|| ApiError::not_found(Resource::Transaction))
}

#[utoipa::path(operation_id = "getTransactionByReference",
    get,
    path = "/transactions/reference/{reference}",
    tag = "transactions",
    params(("reference" = String, Path, description = "the client's reference")),
    responses(
        (status = 200, description = "the transaction", body = crate::wire::TransactionJson),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "TXN_NOT_FOUND", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn by_reference(
    State(app): State<AppState>,
    PathId(reference): PathId,
) -> Result<Json<TransactionJson>, ApiError> {
    let found = read(&app, move |r| r.transaction_by_reference(&reference)).await?;
    found.map(|t| Json(t.into())).ok_or_else(|| ApiError::not_found(Resource::Transaction))
}

#[utoipa::path(operation_id = "listTransactions",
    get,
    path = "/transactions",
    tag = "transactions",
    params(crate::api::filters::ListQueryDoc),
    responses(
        (status = 200, description = "transactions, newest first (as Blnk), filtered; `{data, total_count}` with \
            include_count=true", body = Vec<crate::wire::TransactionJson>),
        (status = 400, description = "GEN_VALIDATION_ERROR (a paging option, or a filter: `errors` names \
            it)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn list(
    State(app): State<AppState>,
    ListQuery(query, _): ListQuery<TransactionList>,
) -> Result<Listing<TransactionJson>, ApiError> {
    filters::answer(&app, query, |r, q| r.find_transactions(q), TransactionJson::from).await
}

#[utoipa::path(operation_id = "filterTransactions",
    post,
    path = "/transactions/filter",
    tag = "transactions",
    request_body = crate::api::filters::FilterBody,
    responses(
        (status = 200, description = "the transactions matching the filters (an array; `{data, total_count}` with \
            include_count)", body = Vec<crate::wire::TransactionJson>),
        (status = 400, description = "GEN_MALFORMED_REQUEST, GEN_VALIDATION_ERROR (`errors` names the \
            filter)", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 500, description = "GEN_INTERNAL", body = crate::api::error::ErrorBody))
)]
pub async fn filter(
    State(app): State<AppState>,
    JsonBody(body): JsonBody<FilterBody>,
) -> Result<Listing<TransactionJson>, ApiError> {
    let query = filters::from_body(TransactionList::COLLECTION, body)?;
    filters::answer(&app, query, |r, q| r.find_transactions(q), TransactionJson::from).await
}
