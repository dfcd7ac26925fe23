//! Every failure leaves the API as Blnk's error body:
//! `{"error": msg, "error_detail": {"code", "message", "details": {"field"}}}`.

use crate::domain::error::{DomainError, Resource};
use crate::engine::EngineError;
use crate::store::{ErrorKind, StoreError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Ask the client not to reuse the connection (its request body was left unread).
    pub close_connection: bool,
    /// The bulk request an item's refusal belongs to (Blnk puts it beside `error`).
    pub batch_id: Option<String>,
    /// The guard that refused a transaction.
    pub monitor_id: Option<Box<str>>,
    /// A refused list filter: `field` is its parameter, and the body also lists it as Blnk's
    /// `errors: [{param, message}]`.
    pub filter_refused: bool,
    /// More of `error_detail.details` (a running reindex's progress).
    pub details: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            close_connection: false,
            batch_id: None,
            monitor_id: None,
            filter_refused: false,
            details: Default::default(),
        }
    }

    pub fn closing_connection(mut self) -> Self {
        self.close_connection = true;
        self
    }

    pub fn with_batch(mut self, batch_id: String) -> Self {
        self.batch_id = Some(batch_id);
        self
    }

    /// A refused list filter given as `param`: Blnk's `GEN_VALIDATION_ERROR` with its `errors` list.
    pub fn filter_refused(param: String, message: String) -> Self {
        ApiError { filter_refused: true, ..ApiError::validation(Resource::General, &param, message) }
    }

    /// Adds these fields (an object's) to `error_detail.details`.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        if let serde_json::Value::Object(fields) = details {
            self.details.get_or_insert_with(Default::default).extend(fields);
        }
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn validation(resource: Resource, field: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, resource.validation_code(), message).with_field(field)
    }

    pub fn not_found(what: Resource) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, what.not_found_code(), format!("{what} not found"))
    }

    pub fn internal() -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "GEN_INTERNAL", "internal server error")
    }
}

/// Every refusal as Blnk answers it: the domain's code (`DomainError::code`), its status, and the
/// request field at fault.
impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let answer = |status, field: Option<&str>| ApiError {
            field: field.map(str::to_string),
            ..ApiError::new(status, e.code(), e.to_string())
        };
        match &e {
            DomainError::Validation { field, .. } => answer(StatusCode::BAD_REQUEST, Some(field)),
            DomainError::NotFound { what, field } => {
                ApiError { field: Some(field.clone()), ..ApiError::not_found(*what) }
            }
            DomainError::InvalidAmount(_) | DomainError::PrecisionNotInteger(_) => {
                answer(StatusCode::BAD_REQUEST, Some("amount"))
            }
            DomainError::DuplicateReference(_) => answer(StatusCode::BAD_REQUEST, Some("reference")),
            DomainError::InsufficientFunds(_) => answer(StatusCode::BAD_REQUEST, Some("source")),
            DomainError::OverdraftLimitExceeded(_) => answer(StatusCode::BAD_REQUEST, Some("overdraft_limit")),
            DomainError::NotInflight | DomainError::AlreadyCommitted | DomainError::AlreadyVoided => {
                answer(StatusCode::BAD_REQUEST, Some("transaction_id"))
            }
            DomainError::CommitAmountExceeded(_) => answer(StatusCode::BAD_REQUEST, Some("amount")),
            DomainError::InvalidDistribution { field, .. } => answer(StatusCode::BAD_REQUEST, Some(field)),
            DomainError::Conflict(_) => answer(StatusCode::CONFLICT, None),
            DomainError::AlreadyRefunded(_) => answer(StatusCode::CONFLICT, Some("transaction_id")),
            DomainError::NothingToRefund(_) => answer(StatusCode::NOT_FOUND, Some("transaction_id")),
            DomainError::RejectedByMonitor { monitor_id, .. } => {
                ApiError { monitor_id: Some(monitor_id.as_str().into()), ..answer(StatusCode::BAD_REQUEST, None) }
            }
        }
    }
}

/// A read that failed in storage. (A write that failed was logged by the engine, once, with its
/// batch: see `From<EngineError>`.) The details go to the log, never to the client.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        ApiError::storage(&e)
    }
}

impl ApiError {
    fn storage(e: &StoreError) -> Self {
        match e.kind() {
            // Not "it failed": the client must look before it sends the write again.
            ErrorKind::OutcomeUnknown => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "GEN_OUTCOME_UNKNOWN",
                "the database could not be reached to confirm whether this write committed; look it up \
                 (by reference, or the inflight transaction's children) before sending it again",
            ),
            // The database is away (restarting, failing over, every connection busy) and the
            // engine's retries ran out: nothing was written (a write whose COMMIT answer was lost
            // is `OutcomeUnknown` unless the database said it did not commit), so sending it
            // again is safe.
            ErrorKind::Transient => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "GEN_UNAVAILABLE",
                "the database is unavailable for now (restarting or failing over); nothing was written: retry",
            ),
            // An operator's fault, not the client's and not a defect: nothing was written, and the
            // same request succeeds once space is freed.
            ErrorKind::Full => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "GEN_UNAVAILABLE",
                "the database is out of disk space; nothing was written: retry once space is freed",
            ),
            _ => ApiError::internal(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Rejected(e) => e.into(),
            EngineError::Store(e) => ApiError::storage(&e),
            EngineError::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "GEN_UNAVAILABLE", "server is shutting down")
            }
        }
    }
}

/// Every error code Keel answers with (CONTRACT.md's list, plus `GEN_METHOD_NOT_ALLOWED`,
/// `GEN_UNAVAILABLE`, `GEN_REQUEST_TIMEOUT` and `GEN_OUTCOME_UNKNOWN`).
pub const ERROR_CODES: &[&str] = &[
    "GEN_MALFORMED_REQUEST",
    "GEN_VALIDATION_ERROR",
    "GEN_NOT_FOUND",
    "GEN_METHOD_NOT_ALLOWED",
    "GEN_PAYLOAD_TOO_LARGE",
    "GEN_INTERNAL",
    "GEN_UNAVAILABLE",
    "GEN_REQUEST_TIMEOUT",
    "GEN_OUTCOME_UNKNOWN",
    "GEN_CONFLICT",
    "LGR_NOT_FOUND",
    "BAL_NOT_FOUND",
    "BAL_MONITOR_NOT_FOUND",
    "BAL_VALIDATION_ERROR",
    "BAL_INVALID_TIMESTAMP",
    "TXN_NOT_FOUND",
    "TXN_VALIDATION_ERROR",
    "TXN_INVALID_AMOUNT",
    "TXN_PRECISION_NOT_INTEGER",
    "TXN_DUPLICATE_REFERENCE",
    "TXN_INSUFFICIENT_FUNDS",
    "TXN_NOT_INFLIGHT",
    "TXN_ALREADY_COMMITTED",
    "TXN_ALREADY_VOIDED",
    "TXN_COMMIT_AMOUNT_EXCEEDED",
    "TXN_ALREADY_REFUNDED",
    "TXN_INVALID_STATUS_ACTION",
    "TXN_INVALID_DISTRIBUTION",
    "TXN_BULK_EMPTY",
    "TXN_BULK_LIMIT_EXCEEDED",
    "TXN_REJECTED_BY_MONITOR",
    "META_ENTITY_NOT_FOUND",
    "IDT_NOT_FOUND",
    "IDT_VALIDATION_ERROR",
    "META_INVALID_ENTITY_ID",
    "META_UNSUPPORTED_ENTITY",
    "AUTH_MISSING_API_KEY",
    "AUTH_INVALID_API_KEY",
    "AUTH_EXPIRED_API_KEY",
    "AUTH_INSUFFICIENT_PERMISSIONS",
];

fn error_code_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(ERROR_CODES.iter().copied()))
        .build()
}

/// Blnk's error body, as sent and as documented.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A sentence for people.
    pub error: String,
    pub error_detail: ErrorDetail,
    /// A refused bulk item's batch (`POST /transactions/bulk`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Refused list filters, each with the parameter it was given as (Blnk's list).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FilterProblem>,
}

/// A refused list filter.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct FilterProblem {
    /// `amount_gt`, or `filters[2]` in a filter body.
    pub param: String,
    pub message: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    #[schema(schema_with = error_code_schema)]
    pub code: &'static str,
    pub message: String,
    pub details: ErrorDetails,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetails {
    /// The request field at fault, when there is one (`amount`, `condition.operator`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// (keel) The guard that refused the transaction (`TXN_REJECTED_BY_MONITOR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor_id: Option<String>,
    /// More, where a code has it (`SRCH_REINDEX_IN_PROGRESS`: the running reindex's progress).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub more: serde_json::Map<String, serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let errors = match (&self.field, self.filter_refused) {
            (Some(param), true) => vec![FilterProblem { param: param.clone(), message: self.message.clone() }],
            _ => Vec::new(),
        };
        let message = match (&self.field, self.filter_refused) {
            (Some(param), true) => format!("invalid filter parameters: {param}: {}", self.message),
            _ => self.message,
        };
        let body = ErrorBody {
            error: message.clone(),
            error_detail: ErrorDetail {
                code: self.code,
                message,
                details: ErrorDetails {
                    field: self.field,
                    batch_id: self.batch_id.clone(),
                    monitor_id: self.monitor_id.map(String::from),
                    more: self.details.map(|d| *d).unwrap_or_default(),
                },
            },
            batch_id: self.batch_id,
            errors,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Both a draining server and a database away are worth retrying soon.
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        if self.close_connection {
            // The body was refused unread: the connection cannot carry another request, and a
            // keep-alive client must be told so rather than find out by a broken next request.
            response
                .headers_mut()
                .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        response
    }
}
