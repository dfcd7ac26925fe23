//! A balance's past: `GET /balances/{id}/at` (Blnk's: the balance at an instant),
//! `GET /balances/{id}/history` (Keel's: the balance over a range, point by point, with the
//! transaction that moved it at each) and `POST /balances-snapshots` (Blnk's: take snapshots now).
//! Both reads count the settled totals of the balance's `APPLIED` transactions by their effective
//! instant (`effective_date`, else `created_at`), from the latest snapshot before the instant
//! (`domain::snapshot`) and the transactions since.

use super::error::ApiError;
use super::extract::{PathId, QueryPairs};
use super::{read_lagging, AppState};
use crate::domain::error::Resource;
use crate::wire::number::integer;
use axum::extract::State;
use axum::Json;
use num_bigint::BigInt;
use serde_json::{json, Value};
use std::time::SystemTime;

/// Most points one history answers (`limit`).
const MAX_POINTS: u32 = 10_000;

/// An instant from the query (RFC 3339): the exclusive bound that stands for "up to and including
/// it" in rows' terms, and as clients read it.
fn instant(text: Option<String>, field: &str) -> Result<Option<(String, String)>, ApiError> {
    use time::format_description::well_known::Rfc3339;
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else { return Ok(None) };
    let at = time::OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|_| {
        let message = format!("invalid {field} format. Please use ISO 8601 format (e.g., 2024-01-01T15:04:05Z)");
        ApiError::new(axum::http::StatusCode::BAD_REQUEST, "BAL_INVALID_TIMESTAMP", message).with_field(field)
    })?;
    Ok(Some(stamps(SystemTime::from(at))))
}

/// (one microsecond after it, as rows write instants; as answers show it, seconds).
fn stamps(at: SystemTime) -> (String, String) {
    let bound = crate::domain::snapshot::just_after(at);
    (humantime::format_rfc3339_micros(bound).to_string(), humantime::format_rfc3339_seconds(at).to_string())
}

fn totals(credit: &BigInt, debit: &BigInt) -> Value {
    json!({ "balance": integer(&(credit - debit)), "credit_balance": integer(credit), "debit_balance": integer(debit) })
}

/// `GET /balances/{id}/at`'s options.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read from the query string by `at`; this type only describes it
pub struct AtOptions {
    /// RFC 3339 (default: now).
    timestamp: Option<String>,
    /// Blnk's: compute from every transaction rather than from the latest snapshot before the
    /// instant and the transactions since (the same answer, exactly; slower on a long log).
    from_source: Option<bool>,
}

#[utoipa::path(operation_id = "getBalanceAt",
    get,
    path = "/balances/{id}/at",
    tag = "balances",
    params(("id" = String, Path, description = "balance id"), AtOptions),
    responses(
        (status = 200, description = "`{\"balance\": {balance, debit_balance, credit_balance, currency, balance_id}, \
            \"timestamp\", \"from_source\"}`: the settled totals of the transactions effective by then",
            body = Object),
        (status = 400, description = "BAL_INVALID_TIMESTAMP", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "BAL_NOT_FOUND", body = crate::api::error::ErrorBody))
)]
pub async fn at(
    State(app): State<AppState>,
    PathId(id): PathId,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (mut timestamp, mut from_source) = (None, false);
    for (name, value) in pairs {
        match name.as_str() {
            "timestamp" if !value.trim().is_empty() => timestamp = Some(value),
            "timestamp" => {}
            "from_source" => from_source = matches!(value.trim(), "true" | "1"),
            other => {
                return Err(ApiError::validation(Resource::Balance, other, format!("{other} is not an option here")))
            }
        }
    }
    let (until, shown) = instant(timestamp, "timestamp")?.unwrap_or_else(|| stamps(SystemTime::now()));
    let found = read_lagging(&app, move |r| {
        let Some(balance) = r.balance(&id)? else { return Ok(None) };
        let (credit, debit) = settled_until(r, &id, &until, !from_source)?;
        Ok(Some((balance, credit, debit)))
    })
    .await?;
    let (balance, credit, debit) = found.ok_or_else(|| ApiError::not_found(Resource::Balance))?;
    let mut answer = totals(&credit, &debit);
    answer["currency"] = json!(balance.currency);
    answer["balance_id"] = json!(balance.id);
    Ok(Json(json!({ "balance": answer, "timestamp": shown, "from_source": from_source })))
}

/// The settled (credit, debit) of a balance's transactions effective before `until`: from its
/// latest snapshot before then and the transactions since (`with_snapshots`), or from all of them.
fn settled_until(
    r: &dyn crate::store::Reads,
    id: &str,
    until: &str,
    with_snapshots: bool,
) -> crate::store::StoreResult<(BigInt, BigInt)> {
    let start = if with_snapshots { r.latest_snapshot(id, Some(until))? } else { None };
    let (from, credit, debit) = match start {
        Some(s) => (s.at, s.credit_balance, s.debit_balance),
        None => (String::new(), BigInt::default(), BigInt::default()),
    };
    let credit = credit + r.settled_sum(id, &from, until, false)?;
    let debit = debit + r.settled_sum(id, &from, until, true)?;
    Ok((credit, debit))
}

/// `GET /balances/{id}/history`'s options.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read from the query string by `history`; this type only describes it
pub struct HistoryOptions {
    /// RFC 3339; the range starts just after it (default: the balance's creation).
    from: Option<String>,
    /// RFC 3339; the range ends at it, included (default: now).
    to: Option<String>,
    /// At most this many points (default 1000, at most 10,000); `has_more` says if the range has more.
    limit: Option<u32>,
}

#[utoipa::path(operation_id = "getBalanceHistory",
    get,
    path = "/balances/{id}/history",
    tag = "balances",
    params(("id" = String, Path, description = "balance id"), HistoryOptions),
    responses(
        (status = 200, description = "(keel) `{balance_id, currency, from, to, start, points: [{at, transaction_id, \
            reference, change, balance, credit_balance, debit_balance}], has_more}`: the balance at `from`, then \
            after each transaction that moved it in the range, in effective order", body = Object),
        (status = 400, description = "BAL_INVALID_TIMESTAMP, \
            BAL_VALIDATION_ERROR", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody),
        (status = 404, description = "BAL_NOT_FOUND", body = crate::api::error::ErrorBody))
)]
pub async fn history(
    State(app): State<AppState>,
    PathId(id): PathId,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let (mut from, mut to, mut limit) = (None, None, 1000);
    for (name, value) in pairs {
        match name.as_str() {
            "from" => from = Some(value),
            "to" => to = Some(value),
            "limit" => {
                limit = value.parse::<u32>().ok().filter(|n| (1..=MAX_POINTS).contains(n)).ok_or_else(|| {
                    ApiError::validation(Resource::Balance, "limit", format!("limit must be 1 to {MAX_POINTS}"))
                })?
            }
            other => {
                return Err(ApiError::validation(Resource::Balance, other, format!("{other} is not an option here")))
            }
        }
    }
    let (from, to) = (instant(from, "from")?, instant(to, "to")?.unwrap_or_else(|| stamps(SystemTime::now())));
    let found = read_lagging(&app, move |r| {
        let Some(balance) = r.balance(&id)? else { return Ok(None) };
        // Before its creation a balance had nothing: the default range starts there.
        let from = from.clone().unwrap_or_else(|| (String::new(), balance.created_at.clone()));
        let (credit, debit) = settled_until(r, &id, &from.0, true)?;
        let moved = r.settled_between(&id, &from.0, &to.0, limit + 1)?;
        Ok(Some((balance, from.1, credit, debit, moved)))
    })
    .await?;
    let (balance, from_shown, mut credit, mut debit, mut moved) =
        found.ok_or_else(|| ApiError::not_found(Resource::Balance))?;
    let has_more = moved.len() > limit as usize;
    moved.truncate(limit as usize);
    let start = totals(&credit, &debit);
    let points: Vec<Value> = moved
        .into_iter()
        .map(|t| {
            let debits = t.source_balance_id == balance.id;
            let change = if debits { -&t.precise_amount } else { t.precise_amount.clone() };
            if debits {
                debit += &t.precise_amount;
            } else {
                credit += &t.precise_amount;
            }
            let mut point = totals(&credit, &debit);
            point["at"] = json!(t.effective_date.as_ref().unwrap_or(&t.created_at));
            point["transaction_id"] = json!(t.id);
            point["reference"] = json!(t.reference);
            point["change"] = json!(integer(&change));
            point
        })
        .collect();
    Ok(Json(json!({
        "balance_id": balance.id, "currency": balance.currency, "from": from_shown, "to": to.1,
        "start": start, "points": points, "has_more": has_more,
    })))
}

/// `POST /balances-snapshots`' options.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read from the query string by `take_snapshots`; this type only describes it
pub struct SnapshotOptions {
    /// Balances per step (default 1000; more than 10,000 is taken as 10,000).
    batch_size: Option<i64>,
}

#[utoipa::path(operation_id = "takeBalanceSnapshots",
    post,
    path = "/balances-snapshots",
    tag = "balances",
    params(SnapshotOptions),
    responses(
        (status = 200, description = "`{\"message\"}`: snapshots are being taken in the background (Keel also \
            takes them once a day by itself); a run already going on carries on", body = Object),
        (status = 400, description = "GEN_VALIDATION_ERROR: batch_size", body = crate::api::error::ErrorBody),
        (status = 401, description = "AUTH_MISSING_API_KEY / \
            AUTH_INVALID_API_KEY", body = crate::api::error::ErrorBody))
)]
pub async fn take_snapshots(
    State(app): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let mut batch_size = crate::snapshots::DEFAULT_BATCH;
    for (name, value) in pairs {
        match name.as_str() {
            "batch_size" => {
                let size = value.trim().parse::<i64>().ok().filter(|n| *n > 0);
                let size = size
                    .ok_or_else(|| ApiError::validation(Resource::General, "batch_size", "invalid batch_size value"))?;
                batch_size = size.min(crate::snapshots::MAX_BATCH as i64) as u32;
            }
            other => {
                return Err(ApiError::validation(Resource::General, other, format!("{other} is not an option here")))
            }
        }
    }
    crate::snapshots::start(app.store.clone(), app.engine.clone(), batch_size);
    Ok(Json(json!({ "message": "Snapshotting in progress. should be completed shortly" })))
}
