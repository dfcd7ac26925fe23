//! Storage failures, each with its kind (which decides what the caller may do next), the
//! operation that failed and the database's own error as its source.

use std::borrow::Cow;
use std::sync::Arc;

/// What a failure lets the caller do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Final: the database refused or failed in a way trying again will not change.
    Database,
    /// Stored data does not read back as a domain value.
    Corrupt,
    /// A unique value is already taken.
    Conflict,
    /// Worth trying again as it is: a serialization failure, a deadlock, a lost connection, a
    /// COMMIT found not to have happened, and on PostgreSQL a statement or lock timeout, a cancel,
    /// a server short of memory or connections or read-only. Nothing was written.
    Transient,
    /// A COMMIT failed and the database could not be asked whether it happened: the write may or
    /// may not be stored, so it must not be run again (DESIGN rule 8).
    OutcomeUnknown,
    /// The database is out of space (SQLite's `SQLITE_FULL`, PostgreSQL's `disk_full`): the
    /// statement failed and its transaction rolls back, so nothing was written. Not retried by the
    /// engine: space comes back when an operator frees it, not within a batch's retries.
    Full,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Database => "database error",
            ErrorKind::Corrupt => "stored data is corrupt",
            ErrorKind::Conflict => "a unique value is already taken",
            ErrorKind::Transient => "transient database error",
            ErrorKind::OutcomeUnknown => "outcome unknown",
            ErrorKind::Full => "the database is out of space",
        }
    }
}

type Source = Arc<dyn std::error::Error + Send + Sync>;

/// A storage failure. Cheap to clone (a batch's one failure answers every request in it).
#[derive(Debug, Clone)]
pub struct StoreError {
    kind: ErrorKind,
    /// What was being done: the statement or step that failed; empty if not known yet.
    operation: Cow<'static, str>,
    source: Option<Source>,
}

impl StoreError {
    /// A failure of `operation` with no underlying error (the store decided it).
    pub fn new(kind: ErrorKind, operation: impl Into<Cow<'static, str>>) -> Self {
        StoreError { kind, operation: operation.into(), source: None }
    }

    /// A failure caused by `source`, the database driver's (or the OS's) own error.
    pub fn caused_by(kind: ErrorKind, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError { kind, operation: Cow::Borrowed(""), source: Some(Arc::from(source.into())) }
    }

    /// Names the operation, unless a more precise one was named already.
    pub fn during(mut self, operation: impl Into<Cow<'static, str>>) -> Self {
        if self.operation.is_empty() {
            self.operation = operation.into();
        }
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    pub fn is_outcome_unknown(&self) -> bool {
        self.kind == ErrorKind::OutcomeUnknown
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind.describe())?;
        if !self.operation.is_empty() {
            write!(f, " in {}", self.operation)?;
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
