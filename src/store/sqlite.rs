//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a commit is on disk
//! before the engine answers. One writer connection (the engine's) and a pool of readers; WAL lets
//! readers see the last commit while the writer works on the next one.

use super::columns::{amount, json_map, json_text, named, precision, scopes, scopes_text};
use super::{schema_is_current, Access, Migrations, INDICATOR_CONFLICT};
use super::{AfterAttempt, Attempt, EventFilter, Page, PoolUsage, Reads, Store, StoreError, StoreResult, Writes};
use crate::domain::api_key::ApiKey;
use crate::domain::balance::Balance;
use crate::domain::event::{Delivery, Event, EventKind};
use crate::domain::ledger::Ledger;
use crate::domain::monitor::{Condition, Field, Monitor, Operator, State, Trigger};
use crate::domain::transaction::{Status, Transaction};
use num_bigint::BigInt;
use parking_lot::FairMutex;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

/// Plain SQL files, applied in order at start-up; `schema_migrations` records which ran.
const MIGRATIONS: &Migrations = &[
    (1, "ledger_core", include_str!("../../migrations/sqlite/0001_ledger_core.sql")),
    (2, "monitors_and_outbox", include_str!("../../migrations/sqlite/0002_monitors_and_outbox.sql")),
    (3, "api_keys", include_str!("../../migrations/sqlite/0003_api_keys.sql")),
];

const READER_POOL_SIZE: u32 = 8;
/// The writer's page cache. Readers keep SQLite's default: there are eight of them.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// WAL pages after which a commit checkpoints by itself: a safety net, should the background
/// checkpointer fall behind (SQLite's default is 1,000).
const CHECKPOINT_FALLBACK_PAGES: i64 = 20_000;

pub struct SqliteStore {
    path: String,
    /// Fair, so the webhook dispatcher's short writes get the connection between the engine's
    /// back-to-back batches instead of starving under sustained load.
    writer: FairMutex<Connection>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    /// Dropping it stops the checkpointer thread (`Access::Own` only).
    _checkpointer: Option<std::sync::mpsc::Sender<()>>,
    /// The database file, locked for as long as this store lives (`Access::Own` only). Declared
    /// last so it is dropped last: closing a descriptor of the file releases the POSIX locks
    /// SQLite's own connections hold on it in this process, so it must outlive them.
    _owner_lock: Option<std::fs::File>,
}

impl SqliteStore {
    pub fn open(path: &str, access: Access) -> Result<Self, String> {
        match access {
            Access::Own => Self::open_owned(path),
            Access::Existing => Self::open_existing(path),
        }
    }

    /// The server's (and `keel migrate`'s) store: the file created if missing, locked, migrated.
    fn open_owned(path: &str) -> Result<Self, String> {
        let failed = |e: StoreError| format!("cannot open SQLite database {path}: {e}");
        let lock = lock_for_owner(path)?;
        let mut writer = Connection::open(path).map_err(|e| failed(e.into()))?;
        let has_tables: bool = writer
            .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table')", [], |r| r.get(0))
            .map_err(|e| failed(e.into()))?;
        if has_tables && schema_version(&writer).map_err(failed)?.is_none() {
            // Another program's database: Keel's tables do not belong in it.
            return Err(format!("{path} is not a Keel database (it has tables but no schema_migrations table)"));
        }
        (|| -> StoreResult<()> {
            // WAL: readers never block the writer. FULL: the WAL is fsynced at every commit, so a
            // 2xx is durable across power loss, not only across a process crash.
            writer.pragma_update(None, "journal_mode", "WAL")?;
            writer.pragma_update(None, "synchronous", "FULL")?;
            writer.pragma_update(None, "foreign_keys", "ON")?;
            // SQLite's default page cache (2 MiB) is smaller than 10,000 balance rows: a batch then
            // reads back from the file pages it wrote moments ago.
            writer.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
            writer.busy_timeout(std::time::Duration::from_secs(5))?;
            // Checkpoints (copying the WAL into the database file, with an fsync of its own) run on
            // a thread of their own rather than inside a commit, so the engine never waits for one.
            writer.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_FALLBACK_PAGES)?;
            Ok(())
        })()
        .map_err(failed)?;
        migrate(&mut writer).map_err(|e| format!("cannot migrate SQLite database {path}: {e}"))?;
        schema_is_current(schema_version(&writer).map_err(failed)?, MIGRATIONS, path)?;
        // This process owns the file (it holds the lock), so no delivery can be in flight
        // elsewhere: events leased by a process that died are due again now, not when their lease
        // would have run out.
        writer
            .execute("UPDATE events SET next_attempt_at = 0 WHERE status = 'pending'", [])
            .map_err(|e| failed(e.into()))?;
        let readers = reader_pool(path).map_err(failed)?;
        let checkpointer =
            Connection::open(path).map_err(StoreError::from).and_then(start_checkpointer).map_err(failed)?;
        Ok(SqliteStore {
            path: path.to_string(),
            writer: FairMutex::new(writer),
            readers,
            _checkpointer: Some(checkpointer),
            _owner_lock: Some(lock),
        })
    }

    /// A store for `keel check` and `keel webhooks redeliver`: an existing Keel database, opened
    /// without creating, migrating, locking or changing a setting of it.
    fn open_existing(path: &str) -> Result<Self, String> {
        if !std::path::Path::new(path).is_file() {
            return Err(format!("there is no Keel database at {path}: no such file"));
        }
        let failed = |e: StoreError| format!("cannot open SQLite database {path}: {e}");
        // Without SQLITE_OPEN_CREATE: a file that vanished in between is an error, not a new database.
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let writer = Connection::open_with_flags(path, flags).map_err(|e| failed(e.into()))?;
        writer.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| failed(e.into()))?;
        writer.pragma_update(None, "foreign_keys", "ON").map_err(|e| failed(e.into()))?;
        schema_is_current(schema_version(&writer).map_err(failed)?, MIGRATIONS, path)?;
        let readers = reader_pool(path).map_err(failed)?;
        Ok(SqliteStore {
            path: path.to_string(),
            writer: FairMutex::new(writer),
            readers,
            _checkpointer: None,
            _owner_lock: None,
        })
    }
}

/// Takes the database file's lock for this process, creating the file if it is missing; refuses
/// if another process holds it. An OS lock on the file itself (`flock`), not a lock file beside
/// it: it follows the file whatever name or link it is opened by, cannot be left stale by a
/// crash (the kernel releases it with the process), and cannot be deleted by hand.
fn lock_for_owner(path: &str) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("cannot open SQLite database {path}: {e}"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another Keel process is using the SQLite database {path} (it holds the file's lock). \
             A SQLite file has one writer: stop that process first (or wait for it to exit), or use \
             PostgreSQL to run several Keel processes"
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock SQLite database {path}: {e}")),
    }
}

/// The highest migration applied; `None` if the file has no Keel schema.
fn schema_version(conn: &Connection) -> StoreResult<Option<i64>> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(None);
    }
    Ok(conn.query_row("SELECT coalesce(max(version), 0) FROM schema_migrations", [], |r| r.get(0))?)
}

/// Readers: query-only connections, so nothing read through them can write.
fn reader_pool(path: &str) -> StoreResult<r2d2::Pool<SqliteConnectionManager>> {
    let manager = SqliteConnectionManager::file(path)
        .with_flags(rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(|c| {
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            c.pragma_update(None, "query_only", "ON")
        });
    r2d2::Pool::builder()
        .max_size(READER_POOL_SIZE)
        .min_idle(Some(1))
        .build(manager)
        .map_err(|e| StoreError::Database(e.to_string()))
}

/// Runs a PASSIVE checkpoint every `CHECKPOINT_EVERY` until the returned sender is dropped. PASSIVE
/// never blocks the writer or readers; whatever it cannot copy yet, the next round does.
fn start_checkpointer(conn: Connection) -> StoreResult<std::sync::mpsc::Sender<()>> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("keel-checkpoint".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(%error, "background checkpoint failed; the next round tries again");
                }
            }
        })
        .map_err(|e| StoreError::Database(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(stop)
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

    fn read_consistent(&self, work: &mut dyn FnMut(&dyn Reads) -> StoreResult<()>) -> StoreResult<()> {
        let mut conn = self.readers.get().map_err(|e| StoreError::Database(e.to_string()))?;
        // A read transaction: WAL keeps its snapshot for as long as it lasts.
        let tx = conn.transaction()?;
        work(&Writer(&tx))?;
        tx.commit()?;
        Ok(())
    }

    fn write(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut writer = Writer(&tx);
        work(&mut writer)?;
        tx.commit()?;
        Ok(())
    }

    fn pool_usage(&self) -> PoolUsage {
        // The writer connection is always open, and busy only inside a batch.
        let readers = self.readers.state();
        PoolUsage { connections: readers.connections + 1, idle: readers.idle_connections }
    }

    fn sole_writer(&self) -> bool {
        // The server owns its file: it holds the file's lock (`lock_for_owner`).
        self._owner_lock.is_some()
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
/// A macro, not only a `const`, so the hot `INSERT` can be one `concat!`ed literal: formatting its
/// text again for every transaction was a measurable share of the engine's time.
macro_rules! transaction_columns {
    () => {
        "transaction_id, parent_transaction, precise_amount, precision_exponent, \
         reference, description, currency, source, destination, source_balance_id, destination_balance_id, \
         status, allow_overdraft, inflight, created_at, meta_data"
    };
}
const TRANSACTION_COLUMNS: &str = transaction_columns!();

const API_KEY_COLUMNS: &str = "key_id, name, owner, scopes, key_hash, created_at, expires_at, revoked_at";
const MONITOR_COLUMNS: &str = "monitor_id, balance_id, field, operator, value, precision_exponent, precise_value, \
     description, call_back_url, meta_data, created_at, trigger_mode, state, trigger_count, last_triggered_at";
const EVENT_COLUMNS: &str = "event_id, event_type, body, url, monitor_id, transaction_id, created_at, status, \
     attempts, next_attempt_at, last_error, delivered_at";

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

    fn existing_references(&self, references: &[String]) -> StoreResult<Vec<String>> {
        // In-process index lookups: cheaper than building a statement per batch size.
        let mut stmt = self.conn().prepare_cached("SELECT 1 FROM transactions WHERE reference = ?1")?;
        let mut taken = Vec::new();
        for reference in references {
            if stmt.exists([reference])? {
                taken.push(reference.clone());
            }
        }
        Ok(taken)
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

    fn monitor(&self, id: &str) -> StoreResult<Option<Monitor>> {
        let sql = format!("SELECT {MONITOR_COLUMNS} FROM balance_monitors WHERE monitor_id = ?1");
        query_one(self.conn(), &sql, &[id], monitor_from_row)
    }

    fn monitors(&self, page: Page) -> StoreResult<Vec<Monitor>> {
        let sql = format!("SELECT {MONITOR_COLUMNS} FROM balance_monitors ORDER BY rowid LIMIT ?1 OFFSET ?2");
        query_page(self.conn(), &sql, page, monitor_from_row)
    }

    fn monitors_of_balance(&self, balance_id: &str) -> StoreResult<Vec<Monitor>> {
        let sql = format!("SELECT {MONITOR_COLUMNS} FROM balance_monitors WHERE balance_id = ?1 ORDER BY rowid");
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([balance_id], |r| Ok(monitor_from_row(r)))?;
        rows.map(|r| r?).collect()
    }

    fn monitors_of_balances(&self, balance_ids: &[String]) -> StoreResult<Vec<Monitor>> {
        // Indexed lookups in-process cost less than building an IN list.
        let mut all = Vec::new();
        for id in balance_ids {
            all.extend(self.monitors_of_balance(id)?);
        }
        Ok(all)
    }

    fn event(&self, id: &str) -> StoreResult<Option<Event>> {
        query_one(
            self.conn(),
            &format!("SELECT {EVENT_COLUMNS}, rowid FROM events WHERE event_id = ?1"),
            &[id],
            event_from_row,
        )
    }

    fn events(&self, filter: &EventFilter, page: Page) -> StoreResult<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, rowid FROM events WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR monitor_id = ?2)
             ORDER BY rowid DESC LIMIT ?3 OFFSET ?4"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
        let status = filter.delivery.map(Delivery::as_str);
        let rows = stmt.query_map(params![status, filter.monitor_id, page.limit, offset], |r| Ok(event_from_row(r)))?;
        rows.map(|r| r?).collect()
    }

    fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        query_one(
            self.conn(),
            &format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1"),
            &[key_hash],
            api_key_from_row,
        )
    }

    fn api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
        query_one(
            self.conn(),
            &format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_id = ?1"),
            &[id],
            api_key_from_row,
        )
    }

    fn api_keys(&self, page: Page) -> StoreResult<Vec<ApiKey>> {
        query_page(
            self.conn(),
            &format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY rowid LIMIT ?1 OFFSET ?2"),
            page,
            api_key_from_row,
        )
    }

    fn pending_events(&self) -> StoreResult<u64> {
        let count: i64 = self
            .conn()
            .prepare_cached("SELECT count(*) FROM events WHERE status = 'pending'")?
            .query_row([], |r| r.get(0))?;
        Ok(count as u64)
    }

    fn attempts(&self, event_id: &str) -> StoreResult<Vec<Attempt>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT event_id, attempt, attempted_at, status_code, error, duration_ms FROM event_attempts
             WHERE event_id = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([event_id], |r| {
            Ok(Attempt {
                event_id: r.get(0)?,
                attempt: r.get(1)?,
                attempted_at: r.get(2)?,
                status_code: r.get(3)?,
                error: r.get(4)?,
                duration_ms: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        self.insert_balance_row(b, "").map(drop)
    }

    fn insert_indicator(&mut self, b: &Balance) -> StoreResult<bool> {
        Ok(self.insert_balance_row(b, INDICATOR_CONFLICT)? == 1)
    }

    fn delete_balance(&mut self, id: &str) -> StoreResult<()> {
        self.0.prepare_cached("DELETE FROM balances WHERE balance_id = ?1")?.execute([id])?;
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
            .prepare_cached(concat!(
                "INSERT INTO transactions (",
                transaction_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
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

    fn insert_monitor(&mut self, m: &Monitor) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO balance_monitors ({MONITOR_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        );
        execute_with_monitor(&mut self.0.prepare_cached(&sql)?, m)
    }

    fn update_monitor(&mut self, m: &Monitor) -> StoreResult<()> {
        let mut stmt = self.0.prepare_cached(
            "UPDATE balance_monitors SET balance_id = ?2, field = ?3, operator = ?4, value = ?5,
             precision_exponent = ?6, precise_value = ?7, description = ?8, call_back_url = ?9, meta_data = ?10,
             created_at = ?11, trigger_mode = ?12, state = ?13, trigger_count = ?14, last_triggered_at = ?15
             WHERE monitor_id = ?1",
        )?;
        execute_with_monitor(&mut stmt, m)
    }

    fn save_monitor_state(&mut self, m: &Monitor) -> StoreResult<()> {
        self.0
            .prepare_cached(
                "UPDATE balance_monitors SET state = ?2, trigger_count = ?3, last_triggered_at = ?4 WHERE monitor_id = ?1",
            )?
            .execute(params![m.id, m.state.as_str(), m.trigger_count, m.last_triggered_at])?;
        Ok(())
    }

    fn delete_monitor(&mut self, id: &str) -> StoreResult<()> {
        self.0.prepare_cached("DELETE FROM balance_monitors WHERE monitor_id = ?1")?.execute([id])?;
        Ok(())
    }

    fn insert_event(&mut self, e: &Event) -> StoreResult<()> {
        let sql =
            format!("INSERT INTO events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
        self.0.prepare_cached(&sql)?.execute(params![
            e.id,
            e.kind.as_str(),
            e.body,
            e.url,
            e.monitor_id,
            e.transaction_id,
            e.created_at,
            e.delivery.as_str(),
            e.attempts,
            e.next_attempt_at,
            e.last_error,
            e.delivered_at,
        ])?;
        Ok(())
    }

    fn claim_due_events(&mut self, now_ms: i64, lease_until_ms: i64, limit: u32) -> StoreResult<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, rowid FROM events WHERE status = 'pending' AND next_attempt_at <= ?1
             ORDER BY next_attempt_at, rowid LIMIT ?2"
        );
        let due: Vec<Event> = {
            let mut stmt = self.0.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![now_ms, limit], |r| Ok(event_from_row(r)))?;
            rows.map(|r| r?).collect::<StoreResult<_>>()?
        };
        let mut lease = self.0.prepare_cached("UPDATE events SET next_attempt_at = ?2 WHERE event_id = ?1")?;
        for event in &due {
            lease.execute(params![event.id, lease_until_ms])?;
        }
        Ok(due)
    }

    fn record_attempt(&mut self, a: &Attempt, after: &AfterAttempt) -> StoreResult<()> {
        self.0
            .prepare_cached(
                "INSERT INTO event_attempts (event_id, attempt, attempted_at, status_code, error, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![a.event_id, a.attempt, a.attempted_at, a.status_code, a.error, a.duration_ms])?;
        let (status, next, delivered_at) = match after {
            AfterAttempt::Delivered { at } => (Delivery::Delivered, 0, Some(at.as_str())),
            AfterAttempt::RetryAt(when) => (Delivery::Pending, *when, None),
            AfterAttempt::Failed => (Delivery::Failed, 0, None),
        };
        self.0
            .prepare_cached(
                "UPDATE events SET status = ?2, attempts = ?3, next_attempt_at = ?4, last_error = ?5,
                 delivered_at = ?6 WHERE event_id = ?1",
            )?
            .execute(params![a.event_id, status.as_str(), a.attempt, next, a.error, delivered_at])?;
        Ok(())
    }

    fn insert_api_key(&mut self, k: &ApiKey) -> StoreResult<()> {
        self.0
            .prepare_cached(&format!(
                "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?
            .execute(params![
                k.id,
                k.name,
                k.owner,
                scopes_text(&k.scopes),
                k.key_hash,
                k.created_at,
                k.expires_at,
                k.revoked_at
            ])?;
        Ok(())
    }

    fn revoke_api_key(&mut self, id: &str, at: &str) -> StoreResult<()> {
        self.0.prepare_cached("UPDATE api_keys SET revoked_at = ?2 WHERE key_id = ?1")?.execute(params![id, at])?;
        Ok(())
    }

    fn redeliver_failed(&mut self, now_ms: i64) -> StoreResult<u64> {
        let changed = self
            .0
            .prepare_cached(
                "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = ?1 WHERE status = 'failed'",
            )?
            .execute([now_ms])?;
        Ok(changed as u64)
    }

    fn redeliver_event(&mut self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let changed = self
            .0
            .prepare_cached(
                "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = ?2, delivered_at = NULL
                 WHERE event_id = ?1",
            )?
            .execute(params![id, now_ms])?;
        Ok(changed > 0)
    }
}

impl Writer<'_> {
    /// Inserts a balance row; `on_conflict` is appended to the statement. Returns the rows inserted.
    fn insert_balance_row(&self, b: &Balance, on_conflict: &str) -> StoreResult<usize> {
        let sql = format!(
            "INSERT INTO balances ({BALANCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) {on_conflict}"
        );
        Ok(self.0.prepare_cached(&sql)?.execute(params![
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
        ])?)
    }
}

fn execute_with_monitor(stmt: &mut rusqlite::CachedStatement<'_>, m: &Monitor) -> StoreResult<()> {
    stmt.execute(params![
        m.id,
        m.balance_id,
        m.condition.field.as_str(),
        m.condition.operator.as_str(),
        m.condition.value,
        m.condition.precision.exponent(),
        m.condition.precise_value.to_string(),
        m.description,
        m.call_back_url,
        json_text(&m.meta_data),
        m.created_at,
        m.trigger.as_str(),
        m.state.as_str(),
        m.trigger_count,
        m.last_triggered_at,
    ])?;
    Ok(())
}

fn monitor_from_row(r: &Row) -> StoreResult<Monitor> {
    let text = |i: usize| -> StoreResult<&str> { Ok(r.get_ref(i)?.as_str()?) };
    Ok(Monitor {
        id: r.get(0)?,
        balance_id: r.get(1)?,
        condition: Condition {
            field: named(text(2)?, "field", Field::parse)?,
            operator: named(text(3)?, "operator", Operator::parse)?,
            value: r.get(4)?,
            precision: precision(r.get(5)?)?,
            precise_value: big(r, 6)?,
        },
        description: r.get(7)?,
        call_back_url: r.get(8)?,
        meta_data: json_map(r.get_ref(9)?.as_str()?)?,
        created_at: r.get(10)?,
        trigger: named(text(11)?, "trigger", Trigger::parse)?,
        state: named(text(12)?, "state", State::parse)?,
        trigger_count: r.get(13)?,
        last_triggered_at: r.get(14)?,
    })
}

fn api_key_from_row(r: &Row) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        owner: r.get(2)?,
        scopes: scopes(r.get_ref(3)?.as_str()?)?,
        key_hash: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

fn event_from_row(r: &Row) -> StoreResult<Event> {
    Ok(Event {
        id: r.get(0)?,
        kind: named(r.get_ref(1)?.as_str()?, "event type", EventKind::parse)?,
        body: r.get(2)?,
        url: r.get(3)?,
        monitor_id: r.get(4)?,
        transaction_id: r.get(5)?,
        created_at: r.get(6)?,
        delivery: named(r.get_ref(7)?.as_str()?, "delivery status", Delivery::parse)?,
        attempts: r.get(8)?,
        next_attempt_at: r.get(9)?,
        last_error: r.get(10)?,
        delivered_at: r.get(11)?,
        // The rowid: one writer appends, so it follows commit order.
        sequence: r.get(12)?,
    })
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
    Ok(Transaction {
        id: r.get(0)?,
        parent: r.get(1)?,
        precise_amount: big(r, 2)?,
        precision: precision(r.get(3)?)?,
        reference: r.get(4)?,
        description: r.get(5)?,
        currency: r.get(6)?,
        source: r.get(7)?,
        destination: r.get(8)?,
        source_balance_id: r.get(9)?,
        destination_balance_id: r.get(10)?,
        status: named(r.get_ref(11)?.as_str()?, "status", Status::parse)?,
        allow_overdraft: r.get(12)?,
        inflight: r.get(13)?,
        created_at: r.get(14)?,
        meta_data: json_map(r.get_ref(15)?.as_str()?)?,
    })
}

fn big(r: &Row, column: usize) -> StoreResult<BigInt> {
    amount(r.get_ref(column)?.as_str()?)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                StoreError::Conflict(e.to_string())
            }
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
            {
                StoreError::Transient(e.to_string())
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
