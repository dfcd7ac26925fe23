//! Storage behind one trait. `Reads` are the queries every reader and the engine use; `Writes` adds
//! what only the engine may do, inside one database transaction per batch (`Store::write`).
//! Implementations: `sqlite` (embedded default). A PostgreSQL one implements the same traits.

pub mod sqlite;

use crate::domain::balance::Balance;
use crate::domain::ledger::Ledger;
use crate::domain::transaction::{Status, Transaction};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("a unique value is already taken: {0}")]
    Conflict(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A window of a list, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: u32,
    pub offset: u64,
}

pub trait Reads {
    fn ledger(&self, id: &str) -> StoreResult<Option<Ledger>>;
    fn ledgers(&self, page: Page) -> StoreResult<Vec<Ledger>>;
    fn balance(&self, id: &str) -> StoreResult<Option<Balance>>;
    fn balance_by_indicator(&self, indicator: &str, currency: &str) -> StoreResult<Option<Balance>>;
    fn balances(&self, page: Page) -> StoreResult<Vec<Balance>>;
    fn transaction(&self, id: &str) -> StoreResult<Option<Transaction>>;
    fn transaction_by_reference(&self, reference: &str) -> StoreResult<Option<Transaction>>;
    /// Every transaction in the order it was recorded: the log a balance can be replayed from.
    fn transactions(&self, page: Page) -> StoreResult<Vec<Transaction>>;
    /// The commits, voids and refunds made against `parent`, in order.
    fn children(&self, parent: &str) -> StoreResult<Vec<Transaction>>;
}

pub trait Writes: Reads {
    /// Loads (and, where the backend has row locks, locks) these balances. Callers pass ids sorted,
    /// so two writers always lock in the same order and cannot deadlock.
    fn lock_balances(&mut self, sorted_ids: &[String]) -> StoreResult<Vec<Balance>>;
    fn insert_ledger(&mut self, ledger: &Ledger) -> StoreResult<()>;
    fn update_ledger(&mut self, ledger: &Ledger) -> StoreResult<()>;
    fn insert_balance(&mut self, balance: &Balance) -> StoreResult<()>;
    /// Writes the four totals and the version.
    fn save_balance_totals(&mut self, balance: &Balance) -> StoreResult<()>;
    fn insert_transaction(&mut self, transaction: &Transaction) -> StoreResult<()>;
    fn set_transaction_status(&mut self, id: &str, status: Status) -> StoreResult<()>;
    /// The oldest `QUEUED` transactions, in arrival order.
    fn queued_transactions(&mut self, limit: u32) -> StoreResult<Vec<Transaction>>;
}

pub trait Store: Send + Sync + 'static {
    /// A consistent reader: it never sees half of a batch and never blocks the writer.
    fn reader(&self) -> StoreResult<Box<dyn Reads + '_>>;

    /// Runs `work` inside one database transaction and commits it durably if `work` returns `Ok`;
    /// rolls everything back otherwise.
    fn write(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()>;

    /// Where the data lives, for logs (never includes a password).
    fn describe(&self) -> String;
}

/// Opens the store a `--database` URL names.
pub fn open(url: &str) -> Result<std::sync::Arc<dyn Store>, String> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        return sqlite::SqliteStore::open(path)
            .map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn Store>)
            .map_err(|e| format!("cannot open SQLite database {path}: {e}"));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err("PostgreSQL is not supported by this build yet; use sqlite://FILE".into());
    }
    Err(format!("unsupported database URL {url:?}: expected sqlite://FILE"))
}
