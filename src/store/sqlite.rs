//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a commit is on disk
//! before the engine answers. One writer connection (the engine's) and a pool of readers; WAL lets
//! readers see the last commit while the writer works on the next one.

use super::{Page, Reads, Store, StoreError, StoreResult, Writes};
use crate::domain::amount::Precision;
use crate::domain::balance::Balance;
use crate::domain::ledger::Ledger;
use crate::domain::transaction::{Status, Transaction};
use num_bigint::BigInt;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde_json::{Map, Value};
use std::sync::Mutex;

/// Plain SQL files, applied in order at start-up; `schema_migrations` records which ran.
const MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "ledger_core", include_str!("../../migrations/sqlite/0001_ledger_core.sql"))];

const READER_POOL_SIZE: u32 = 8;

pub struct SqliteStore {
    path: String,
    writer: Mutex<Connection>,
    readers: r2d2::Pool<SqliteConnectionManager>,
}

impl SqliteStore {
    pub fn open(path: &str) -> StoreResult<Self> {
        let mut writer = Connection::open(path)?;
        // WAL: readers never block the writer. FULL: the WAL is fsynced at every commit, so a 2xx is
        // durable across power loss, not only across a process crash.
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "FULL")?;
        writer.pragma_update(None, "foreign_keys", "ON")?;
        writer.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut writer)?;
        let manager = SqliteConnectionManager::file(path).with_init(|c| {
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            c.pragma_update(None, "query_only", "ON")
        });
        let readers = r2d2::Pool::builder()
            .max_size(READER_POOL_SIZE)
            .min_idle(Some(1))
            .build(manager)
            .map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(SqliteStore { path: path.to_string(), writer: Mutex::new(writer), readers })
    }
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    )?;
    for (version, name, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied: bool =
            tx.query_row("SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)", [version], |r| {
                r.get(0)
            })?;
        if !applied {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at)
                 VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                params![version, name],
            )?;
            tracing::info!(version, name, "applied migration");
        }
        tx.commit()?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn reader(&self) -> StoreResult<Box<dyn Reads + '_>> {
        let conn = self.readers.get().map_err(|e| StoreError::Database(e.to_string()))?;
        Ok(Box::new(Reader(conn)))
    }

    fn write(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        let mut conn = self
            .writer
            .lock()
            .map_err(|_| StoreError::Database("writer connection poisoned by an earlier panic".into()))?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut writer = Writer(&tx);
        work(&mut writer)?;
        tx.commit()?;
        Ok(())
    }

    fn describe(&self) -> String {
        let absolute =
            std::fs::canonicalize(&self.path).map(|p| p.display().to_string()).unwrap_or_else(|_| self.path.clone());
        format!("SQLite file {absolute} (WAL, synchronous=FULL)")
    }
}

struct Reader(r2d2::PooledConnection<SqliteConnectionManager>);
struct Writer<'a>(&'a rusqlite::Transaction<'a>);

/// Both readers and the writer answer `Reads` from a plain connection: the writer's sees its own
/// uncommitted batch, a reader's sees the last commit.
trait HasConnection {
    fn conn(&self) -> &Connection;
}
impl HasConnection for Reader {
    fn conn(&self) -> &Connection {
        &self.0
    }
}
impl HasConnection for Writer<'_> {
    fn conn(&self) -> &Connection {
        self.0
    }
}

const LEDGER_COLUMNS: &str = "ledger_id, name, created_at, meta_data";
const BALANCE_COLUMNS: &str = "balance_id, ledger_id, identity_id, indicator, currency, credit_balance, \
     debit_balance, inflight_credit_balance, inflight_debit_balance, version, created_at, meta_data";
const TRANSACTION_COLUMNS: &str = "transaction_id, parent_transaction, precise_amount, precision_exponent, \
     reference, description, currency, source, destination, source_balance_id, destination_balance_id, \
     status, allow_overdraft, inflight, created_at, meta_data";

impl<T: HasConnection> Reads for T {
    fn ledger(&self, id: &str) -> StoreResult<Option<Ledger>> {
        query_one(
            self.conn(),
            &format!("SELECT {LEDGER_COLUMNS} FROM ledgers WHERE ledger_id = ?1"),
            &[id],
            ledger_from_row,
        )
    }

    fn ledgers(&self, page: Page) -> StoreResult<Vec<Ledger>> {
        query_page(
            self.conn(),
            &format!("SELECT {LEDGER_COLUMNS} FROM ledgers ORDER BY rowid LIMIT ?1 OFFSET ?2"),
            page,
            ledger_from_row,
        )
    }

    fn balance(&self, id: &str) -> StoreResult<Option<Balance>> {
        query_one(
            self.conn(),
            &format!("SELECT {BALANCE_COLUMNS} FROM balances WHERE balance_id = ?1"),
            &[id],
            balance_from_row,
        )
    }

    fn balance_by_indicator(&self, indicator: &str, currency: &str) -> StoreResult<Option<Balance>> {
        query_one(
            self.conn(),
            &format!(
                "SELECT {BALANCE_COLUMNS} FROM balances WHERE indicator = ?1 AND currency = ?2 AND indicator <> ''"
            ),
            &[indicator, currency],
            balance_from_row,
        )
    }

    fn balances(&self, page: Page) -> StoreResult<Vec<Balance>> {
        query_page(
            self.conn(),
            &format!("SELECT {BALANCE_COLUMNS} FROM balances ORDER BY rowid LIMIT ?1 OFFSET ?2"),
            page,
            balance_from_row,
        )
    }

    fn transaction(&self, id: &str) -> StoreResult<Option<Transaction>> {
        query_one(
            self.conn(),
            &format!("SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE transaction_id = ?1"),
            &[id],
            transaction_from_row,
        )
    }

    fn transaction_by_reference(&self, reference: &str) -> StoreResult<Option<Transaction>> {
        query_one(
            self.conn(),
            &format!("SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE reference = ?1"),
            &[reference],
            transaction_from_row,
        )
    }

    fn transactions(&self, page: Page) -> StoreResult<Vec<Transaction>> {
        query_page(
            self.conn(),
            &format!("SELECT {TRANSACTION_COLUMNS} FROM transactions ORDER BY rowid LIMIT ?1 OFFSET ?2"),
            page,
            transaction_from_row,
        )
    }

    fn children(&self, parent: &str) -> StoreResult<Vec<Transaction>> {
        let sql =
            format!("SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE parent_transaction = ?1 ORDER BY rowid");
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([parent], |r| Ok(transaction_from_row(r)))?;
        rows.map(|r| r?).collect()
    }
}

impl Writes for Writer<'_> {
    fn lock_balances(&mut self, sorted_ids: &[String]) -> StoreResult<Vec<Balance>> {
        // The writer holds SQLite's one write lock for the whole batch, so reading is locking.
        let mut found = Vec::with_capacity(sorted_ids.len());
        for id in sorted_ids {
            if let Some(balance) = self.balance(id)? {
                found.push(balance);
            }
        }
        Ok(found)
    }

    fn insert_ledger(&mut self, l: &Ledger) -> StoreResult<()> {
        self.0
            .prepare_cached("INSERT INTO ledgers (ledger_id, name, created_at, meta_data) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![l.id, l.name, l.created_at, json_text(&l.meta_data)])?;
        Ok(())
    }

    fn update_ledger(&mut self, l: &Ledger) -> StoreResult<()> {
        self.0
            .prepare_cached("UPDATE ledgers SET name = ?2, meta_data = ?3 WHERE ledger_id = ?1")?
            .execute(params![l.id, l.name, json_text(&l.meta_data)])?;
        Ok(())
    }

    fn insert_balance(&mut self, b: &Balance) -> StoreResult<()> {
        self.0
            .prepare_cached(&format!(
                "INSERT INTO balances ({BALANCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?
            .execute(params![
                b.id,
                b.ledger_id,
                b.identity_id,
                b.indicator,
                b.currency,
                b.credit_balance.to_string(),
                b.debit_balance.to_string(),
                b.inflight_credit_balance.to_string(),
                b.inflight_debit_balance.to_string(),
                b.version,
                b.created_at,
                json_text(&b.meta_data),
            ])?;
        Ok(())
    }

    fn save_balance_totals(&mut self, b: &Balance) -> StoreResult<()> {
        self.0
            .prepare_cached(
                "UPDATE balances SET credit_balance = ?2, debit_balance = ?3, inflight_credit_balance = ?4,
                 inflight_debit_balance = ?5, version = ?6 WHERE balance_id = ?1",
            )?
            .execute(params![
                b.id,
                b.credit_balance.to_string(),
                b.debit_balance.to_string(),
                b.inflight_credit_balance.to_string(),
                b.inflight_debit_balance.to_string(),
                b.version,
            ])?;
        Ok(())
    }

    fn insert_transaction(&mut self, t: &Transaction) -> StoreResult<()> {
        self.0
            .prepare_cached(&format!(
                "INSERT INTO transactions ({TRANSACTION_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))?
            .execute(params![
                t.id,
                t.parent,
                t.precise_amount.to_string(),
                t.precision.exponent(),
                t.reference,
                t.description,
                t.currency,
                t.source,
                t.destination,
                t.source_balance_id,
                t.destination_balance_id,
                t.status.as_str(),
                t.allow_overdraft,
                t.inflight,
                t.created_at,
                json_text(&t.meta_data),
            ])?;
        Ok(())
    }

    fn set_transaction_status(&mut self, id: &str, status: Status) -> StoreResult<()> {
        self.0
            .prepare_cached("UPDATE transactions SET status = ?2 WHERE transaction_id = ?1")?
            .execute(params![id, status.as_str()])?;
        Ok(())
    }

    fn queued_transactions(&mut self, limit: u32) -> StoreResult<Vec<Transaction>> {
        let sql =
            format!("SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE status = 'QUEUED' ORDER BY rowid LIMIT ?1");
        let mut stmt = self.0.prepare_cached(&sql)?;
        let rows = stmt.query_map([limit], |r| Ok(transaction_from_row(r)))?;
        rows.map(|r| r?).collect()
    }
}

fn query_one<T>(
    conn: &Connection,
    sql: &str,
    args: &[&str],
    map: fn(&Row) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let found = stmt.query_row(rusqlite::params_from_iter(args), |r| Ok(map(r))).optional()?;
    found.transpose()
}

fn query_page<T>(conn: &Connection, sql: &str, page: Page, map: fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![page.limit, offset], |r| Ok(map(r)))?;
    rows.map(|r| r?).collect()
}

fn ledger_from_row(r: &Row) -> StoreResult<Ledger> {
    Ok(Ledger { id: r.get(0)?, name: r.get(1)?, created_at: r.get(2)?, meta_data: json_map(r.get_ref(3)?.as_str()?)? })
}

fn balance_from_row(r: &Row) -> StoreResult<Balance> {
    Ok(Balance {
        id: r.get(0)?,
        ledger_id: r.get(1)?,
        identity_id: r.get(2)?,
        indicator: r.get(3)?,
        currency: r.get(4)?,
        credit_balance: big(r, 5)?,
        debit_balance: big(r, 6)?,
        inflight_credit_balance: big(r, 7)?,
        inflight_debit_balance: big(r, 8)?,
        version: r.get(9)?,
        created_at: r.get(10)?,
        meta_data: json_map(r.get_ref(11)?.as_str()?)?,
    })
}

fn transaction_from_row(r: &Row) -> StoreResult<Transaction> {
    let status: String = r.get(11)?;
    Ok(Transaction {
        id: r.get(0)?,
        parent: r.get(1)?,
        precise_amount: big(r, 2)?,
        precision: Precision::from_exponent(r.get(3)?)
            .map_err(|_| StoreError::Corrupt("precision out of range".into()))?,
        reference: r.get(4)?,
        description: r.get(5)?,
        currency: r.get(6)?,
        source: r.get(7)?,
        destination: r.get(8)?,
        source_balance_id: r.get(9)?,
        destination_balance_id: r.get(10)?,
        status: Status::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("unknown status {status}")))?,
        allow_overdraft: r.get(12)?,
        inflight: r.get(13)?,
        created_at: r.get(14)?,
        meta_data: json_map(r.get_ref(15)?.as_str()?)?,
    })
}

fn big(r: &Row, column: usize) -> StoreResult<BigInt> {
    let text = r.get_ref(column)?.as_str()?;
    text.parse().map_err(|_| StoreError::Corrupt(format!("amount {text:?} is not an integer")))
}

fn json_map(text: &str) -> StoreResult<Map<String, Value>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("meta_data: {e}")))
}

fn json_text(map: &Map<String, Value>) -> String {
    serde_json::to_string(map).expect("a JSON map always serializes")
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                StoreError::Conflict(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
