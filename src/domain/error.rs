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
    /// `POST /{id}/metadata`, whose entity may be any of the above.
    Metadata,
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
    pub fn validation(resource: Resource, field: &str, message: impl Into<String>) -> Self {
        DomainError::Validation { resource, field: field.to_string(), message: message.into() }
    }

    pub fn not_found(what: Resource, field: &str) -> Self {
        DomainError::NotFound { what, field: field.to_string() }
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
            Resource::Metadata => "entity",
        })
    }
}
