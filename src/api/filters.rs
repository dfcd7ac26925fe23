//! Blnk's filters on the lists: `GET /transactions?status_eq=APPLIED&amount_gte=1000` and
//! `POST /transactions/filter` with a JSON body, both read into a `filter::Query`. A list answers an
//! array, or `{"data": [...], "total_count": n}` when `include_count` is asked for.
//!
//! Every query parameter of a list is a paging option or a filter; anything else is a `400` naming
//! it, as is an unknown field or operator: a filter left out would answer more than was asked.

use super::error::ApiError;
use super::extract::{Payload, QueryPairs, DEFAULT_LIMIT, MAX_LIMIT};
use crate::domain::error::Resource;
use crate::domain::filter::{self, Collection, Problem, Query, Raw, MAX_FILTERS};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// A list's query string, read as a filtered query of the collection `C`.
pub struct ListQuery<C>(pub Query, pub std::marker::PhantomData<C>);

/// Which collection a list route serves.
pub trait Listed {
    const COLLECTION: Collection;
}

macro_rules! collection {
    ($name:ident, $collection:ident) => {
        #[doc = concat!("The `", stringify!($collection), "` list.")]
        pub struct $name;
        impl Listed for $name {
            const COLLECTION: Collection = Collection::$collection;
        }
    };
}
collection!(LedgerList, Ledgers);
collection!(BalanceList, Balances);
collection!(TransactionList, Transactions);
collection!(MonitorList, Monitors);

impl<C: Listed, S: Send + Sync> FromRequestParts<S> for ListQuery<C> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let QueryPairs(pairs) = QueryPairs::from_request_parts(parts, state).await?;
        from_query(C::COLLECTION, &pairs).map(|query| ListQuery(query, std::marker::PhantomData))
    }
}

/// What `ListQuery` reads, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by `ListQuery` from the query string; this type only describes it
pub struct ListQueryDoc {
    /// At most this many (default 20, capped at 1000).
    limit: Option<u32>,
    /// Skip this many.
    offset: Option<u64>,
    /// `desc` (newest first, the default) or `asc`.
    sort_order: Option<String>,
    /// Any filterable field (default `created_at`, the order items were created in).
    sort_by: Option<String>,
    /// `true`: answer `{"data": [...], "total_count": n}`.
    include_count: Option<bool>,
    /// How filters combine: `and` (the default) or `or`.
    logical_operator: Option<String>,
    /// Filters, `field_operator=value` (Blnk's): operators `eq`, `ne`, `gt`, `gte`, `lt`, `lte`,
    /// `in` (comma-separated), `between` (`low|high`), `like`, `ilike`, `isnull`, `isnotnull`; fields
    /// as in the README ("Filters"), and `meta_data.<key>`. For example `status_eq=APPLIED`.
    #[param(rename = "{field}_{operator}")]
    filters: Option<String>,
}

/// Reads a list's query string.
pub fn from_query(collection: Collection, pairs: &[(String, String)]) -> Result<Query, ApiError> {
    let mut query = Query::all(collection, DEFAULT_LIMIT, 0);
    let mut sort_by = None;
    for (name, value) in pairs {
        let problem = |message: String| refused(Problem { param: name.clone(), message });
        match name.as_str() {
            "limit" => query.limit = number(name, value)?.clamp(1, MAX_LIMIT as u64) as u32,
            "offset" => query.offset = number(name, value)?,
            "sort_order" => query.newest_first = newest_first(value).map_err(problem)?,
            "sort_by" => sort_by = Some(value.clone()),
            "include_count" => query.count = flag(value).map_err(problem)?,
            "logical_operator" => query.any = any(value).map_err(problem)?,
            _ => {
                let Some((field, op)) = filter::split_param(name) else {
                    return Err(problem(format!(
                        "unknown query parameter (a filter is field_operator=value; fields of {}: {})",
                        collection.name(),
                        collection.field_names().join(", ")
                    )));
                };
                if query.conditions.len() == MAX_FILTERS {
                    return Err(problem(format!("exceeded maximum number of filters ({MAX_FILTERS})")));
                }
                let condition = filter::condition(collection, name, field, op, Raw::Query(value)).map_err(refused)?;
                query.conditions.push(condition);
            }
        }
    }
    if let Some(by) = sort_by {
        query.sort_by(&by).map_err(|message| refused(Problem { param: "sort_by".into(), message }))?;
    }
    Ok(query)
}

/// `POST /{collection}/filter`'s body, as Blnk's SDKs send it.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct FilterBody {
    /// The conditions.
    #[serde(default)]
    filters: Vec<FilterItem>,
    /// `and` (the default) or `or`.
    logical_operator: Option<String>,
    /// At most this many (default 20, capped at 1000).
    limit: Option<u64>,
    offset: Option<u64>,
    /// Any filterable field (default `created_at`).
    sort_by: Option<String>,
    /// `desc` (the default) or `asc`.
    sort_order: Option<String>,
    /// `true`: answer `{"data": [...], "total_count": n}`.
    #[serde(default)]
    include_count: bool,
}

/// One condition of a filter body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterItem {
    /// A field of the collection, or `meta_data.<key>`.
    field: String,
    /// `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `in`, `between`, `like`, `ilike`, `isnull`, `isnotnull`.
    operator: String,
    /// The value (all operators but `in`, `between`, `isnull`, `isnotnull`).
    #[schema(value_type = Option<Object>)]
    value: Option<serde_json::Value>,
    /// The values of `in` (1 to 100) and `between` (low and high).
    #[schema(value_type = Option<Vec<Object>>)]
    values: Option<Vec<serde_json::Value>>,
}

impl Payload for FilterBody {
    const RESOURCE: Resource = Resource::General;
    const ONLY: Option<&'static [&'static str]> =
        Some(&["filters", "logical_operator", "limit", "offset", "sort_by", "sort_order", "include_count"]);
}

/// Reads a filter body.
pub fn from_body(collection: Collection, body: FilterBody) -> Result<Query, ApiError> {
    let limit = match body.limit {
        None | Some(0) => DEFAULT_LIMIT,
        Some(n) => n.min(MAX_LIMIT as u64) as u32,
    };
    let mut query = Query::all(collection, limit, body.offset.unwrap_or(0));
    query.count = body.include_count;
    fn param(name: &str) -> impl Fn(String) -> ApiError + '_ {
        move |message| refused(Problem { param: name.to_string(), message })
    }
    if let Some(order) = &body.sort_order {
        query.newest_first = newest_first(order).map_err(param("sort_order"))?;
    }
    if let Some(operator) = &body.logical_operator {
        query.any = any(operator).map_err(param("logical_operator"))?;
    }
    if body.filters.len() > MAX_FILTERS {
        return Err(param("filters")(format!("exceeded maximum number of filters ({MAX_FILTERS})")));
    }
    for (i, item) in body.filters.into_iter().enumerate() {
        let name = format!("filters[{i}]");
        let op = filter::Op::parse(item.operator.trim())
            .ok_or_else(|| param(&name)(format!("invalid operator '{}' for field '{}'", item.operator, item.field)))?;
        let scalar = |v: serde_json::Value| scalar_text(v).map_err(param(&name));
        let value = item.value.filter(|v| !v.is_null()).map(scalar).transpose()?;
        let values = item.values.map(|vs| vs.into_iter().map(scalar).collect::<Result<Vec<_>, _>>()).transpose()?;
        let raw = Raw::Json { value, values };
        query.conditions.push(filter::condition(collection, &name, item.field.trim(), op, raw).map_err(refused)?);
    }
    if let Some(by) = &body.sort_by {
        query.sort_by(by).map_err(param("sort_by"))?;
    }
    Ok(query)
}

/// A JSON scalar as the text a query parameter would carry (a number exactly as written).
fn scalar_text(value: serde_json::Value) -> Result<String, String> {
    match value {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("a filter value is a string, a number or a boolean, not {other}")),
    }
}

fn number(name: &str, value: &str) -> Result<u64, ApiError> {
    value
        .parse::<u64>()
        .map_err(|_| ApiError::validation(Resource::General, name, format!("{name} must be a non-negative integer")))
}

fn newest_first(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "desc" => Ok(true),
        "asc" => Ok(false),
        _ => Err("sort_order must be asc or desc".into()),
    }
}

fn flag(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "" | "false" | "0" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

fn any(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "and" => Ok(false),
        "or" => Ok(true),
        _ => Err("invalid logical_operator: must be 'and' or 'or'".into()),
    }
}

/// A refused filter: Blnk's `GEN_VALIDATION_ERROR` naming the parameter, with Blnk's `errors` list.
fn refused(problem: Problem) -> ApiError {
    ApiError::filter_refused(problem.param, problem.message)
}

/// A list's answer: the page, or the page and how many match in all.
pub enum Listing<T> {
    Page(Vec<T>),
    Counted { data: Vec<T>, total_count: u64 },
}

#[derive(Serialize)]
struct CountedBody<T> {
    data: Vec<T>,
    total_count: u64,
}

/// Runs `query` through `find` (a `Reads` method) and answers each item as `json`.
pub async fn answer<R: Send + 'static, T>(
    app: &super::AppState,
    query: Query,
    find: fn(&dyn crate::store::Reads, &Query) -> crate::store::StoreResult<crate::store::Found<R>>,
    json: impl Fn(R) -> T,
) -> Result<Listing<T>, ApiError> {
    let found = super::read_lagging(app, move |r| find(r, &query)).await?;
    Ok(Listing::of(found, json))
}

impl<T> Listing<T> {
    /// What a store's `Found` becomes, each item turned into its JSON.
    pub fn of<R>(found: crate::store::Found<R>, json: impl Fn(R) -> T) -> Listing<T> {
        let items: Vec<T> = found.items.into_iter().map(json).collect();
        match found.total {
            Some(total_count) => Listing::Counted { data: items, total_count },
            None => Listing::Page(items),
        }
    }
}

impl<T: Serialize> IntoResponse for Listing<T> {
    fn into_response(self) -> Response {
        match self {
            Listing::Page(items) => Json(items).into_response(),
            Listing::Counted { data, total_count } => Json(CountedBody { data, total_count }).into_response(),
        }
    }
}
