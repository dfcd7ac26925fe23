//! Why a command was refused. These are values the API turns into Blnk's error bodies; none of them
//! is a bug, and none leaves a write behind.

/// Which resource a validation error is about (it picks the Blnk error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    General,
    Ledger,
    Balance,
    Transaction,
    Monitor,
    Event,
    /// A webhook endpoint (`/webhooks`).
    Webhook,
    /// A Blnk hook (`/hooks`), stored as a webhook endpoint.
    Hook,
    /// `POST /{id}/metadata`, whose entity may be any of the above.
    Metadata,
    /// An identity (`/identities`).
    Identity,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{message}")]
    Validation { resource: Resource, field: String, message: String },
    #[error("{0}")]
    InvalidAmount(String),
    #[error("{0}")]
    PrecisionNotInteger(String),
    #[error("{what} not found")]
    NotFound { what: Resource, field: String },
    #[error("reference {0} has already been used")]
    DuplicateReference(String),
    #[error("insufficient funds in source balance {0}")]
    InsufficientFunds(String),
    #[error("transaction exceeds overdraft limit of source balance {0}")]
    OverdraftLimitExceeded(String),
    #[error("transaction is not in inflight status")]
    NotInflight,
    #[error("transaction has already been committed")]
    AlreadyCommitted,
    #[error("transaction has already been voided")]
    AlreadyVoided,
    #[error("cannot commit more than the {0} left inflight")]
    CommitAmountExceeded(String),
    /// A split's `sources` or `destinations` cannot be divided as written (Blnk:
    /// `TXN_INVALID_DISTRIBUTION`).
    #[error("{message}")]
    InvalidDistribution { field: String, message: String },
    /// The thing to create exists already (Blnk: 409 `GEN_CONFLICT`).
    #[error("{0}")]
    Conflict(String),
    /// A second refund of a transaction, or a refund of a refund (Blnk 0.15.4: 409).
    #[error("{0}")]
    AlreadyRefunded(String),
    /// The transaction (or split, or bulk batch) exists but nothing of it can be refunded: it is
    /// queued, scheduled, rejected, a hold not yet settled, or the void of one (Blnk: 404
    /// `TXN_NOT_FOUND`, "no transaction to refund").
    #[error("{0}")]
    NothingToRefund(String),
    /// A guard (a monitor with `action: "reject"`) refused the transaction: it would have made the
    /// monitor's condition hold (Keel: `TXN_REJECTED_BY_MONITOR`).
    #[error("{message}")]
    RejectedByMonitor { monitor_id: String, message: String },
}

impl DomainError {
    /// Blnk's error code for it: the API's answer and an event's `error.code` say the same.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Validation { resource, .. } => resource.validation_code(),
            DomainError::NotFound { what, .. } => what.not_found_code(),
            DomainError::InvalidAmount(_) => "TXN_INVALID_AMOUNT",
            DomainError::PrecisionNotInteger(_) => "TXN_PRECISION_NOT_INTEGER",
            DomainError::DuplicateReference(_) => "TXN_DUPLICATE_REFERENCE",
            DomainError::InsufficientFunds(_) => "TXN_INSUFFICIENT_FUNDS",
            // Blnk has no code of its own for it: its message falls through to the validation code.
            DomainError::OverdraftLimitExceeded(_) => "TXN_VALIDATION_ERROR",
            DomainError::NotInflight => "TXN_NOT_INFLIGHT",
            DomainError::AlreadyCommitted => "TXN_ALREADY_COMMITTED",
            DomainError::AlreadyVoided => "TXN_ALREADY_VOIDED",
            DomainError::CommitAmountExceeded(_) => "TXN_COMMIT_AMOUNT_EXCEEDED",
            DomainError::InvalidDistribution { .. } => "TXN_INVALID_DISTRIBUTION",
            DomainError::Conflict(_) => "GEN_CONFLICT",
            DomainError::AlreadyRefunded(_) => "TXN_ALREADY_REFUNDED",
            DomainError::NothingToRefund(_) => "TXN_NOT_FOUND",
            DomainError::RejectedByMonitor { .. } => "TXN_REJECTED_BY_MONITOR",
        }
    }

    pub fn validation(resource: Resource, field: &str, message: impl Into<String>) -> Self {
        DomainError::Validation { resource, field: field.to_string(), message: message.into() }
    }

    pub fn not_found(what: Resource, field: &str) -> Self {
        DomainError::NotFound { what, field: field.to_string() }
    }
}

impl Resource {
    /// The code of a request about this resource that fails validation.
    pub fn validation_code(self) -> &'static str {
        match self {
            Resource::General | Resource::Ledger | Resource::Event | Resource::Webhook => "GEN_VALIDATION_ERROR",
            Resource::Balance | Resource::Monitor => "BAL_VALIDATION_ERROR",
            Resource::Transaction => "TXN_VALIDATION_ERROR",
            Resource::Metadata => "META_INVALID_ENTITY_ID",
            Resource::Hook => "HOOK_INVALID",
            Resource::Identity => "IDT_VALIDATION_ERROR",
        }
    }

    /// The code of a request for one of these that does not exist.
    pub fn not_found_code(self) -> &'static str {
        match self {
            Resource::Ledger => "LGR_NOT_FOUND",
            Resource::Balance => "BAL_NOT_FOUND",
            Resource::Transaction => "TXN_NOT_FOUND",
            Resource::Monitor => "BAL_MONITOR_NOT_FOUND",
            Resource::General | Resource::Event | Resource::Webhook => "GEN_NOT_FOUND",
            Resource::Metadata => "META_ENTITY_NOT_FOUND",
            Resource::Hook => "HOOK_NOT_FOUND",
            Resource::Identity => "IDT_NOT_FOUND",
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::General => "resource",
            Resource::Ledger => "ledger",
            Resource::Balance => "balance",
            Resource::Transaction => "transaction",
            Resource::Monitor => "monitor",
            Resource::Event => "event",
            Resource::Webhook => "webhook",
            Resource::Identity => "identity",
            Resource::Hook => "hook",
            Resource::Metadata => "entity",
        })
    }
}
