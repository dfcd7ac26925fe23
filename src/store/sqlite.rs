//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a commit is on disk
//! before the engine answers. One writer connection (the engine's) and a pool of readers; WAL lets
//! readers see the last commit while the writer works on the next one.

pub mod backup;
pub mod page_cache;

use super::codec::{Cursor, RowAccess, Value};
use super::sql::{built_operation, operation, render, Dialect, Sql, WriteSql};
use super::{schema_is_current, Access, ErrorKind, Migrations};
use super::{PoolUsage, Reads, Store, StoreError, StoreResult, Writes};
use foldhash::HashMap;
use parking_lot::FairMutex;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, CachedStatement, Connection, Statement, ToSql, TransactionBehavior};
use std::cell::RefCell;
use std::collections::hash_map::Entry;

/// Plain SQL files, applied in order at start-up; `schema_migrations` records which ran.
const MIGRATIONS: &Migrations = &[
    (1, "ledger_core", include_str!("../../migrations/sqlite/0001_ledger_core.sql")),
    (2, "monitors_and_outbox", include_str!("../../migrations/sqlite/0002_monitors_and_outbox.sql")),
    (3, "api_keys", include_str!("../../migrations/sqlite/0003_api_keys.sql")),
    (4, "money_movement", include_str!("../../migrations/sqlite/0004_money_movement.sql")),
    (5, "monitor_kinds", include_str!("../../migrations/sqlite/0005_monitor_kinds.sql")),
    (6, "ledger_monitors", include_str!("../../migrations/sqlite/0006_ledger_monitors.sql")),
    (7, "checkpoint_chunks", include_str!("../../migrations/sqlite/0007_checkpoint_chunks.sql")),
    (8, "checkpoint_chunks_appended", include_str!("../../migrations/sqlite/0008_checkpoint_chunks_appended.sql")),
    (9, "events_due_by_status", include_str!("../../migrations/sqlite/0009_events_due_by_status.sql")),
    (10, "stream_cursors", include_str!("../../migrations/sqlite/0010_stream_cursors.sql")),
    (11, "webhook_endpoints", include_str!("../../migrations/sqlite/0011_webhook_endpoints.sql")),
    (12, "list_indexes", include_str!("../../migrations/sqlite/0012_list_indexes.sql")),
    (13, "identities", include_str!("../../migrations/sqlite/0013_identities.sql")),
    (14, "balance_snapshots", include_str!("../../migrations/sqlite/0014_balance_snapshots.sql")),
    (15, "search", include_str!("../../migrations/sqlite/0015_search.sql")),
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
        if page_cache::install() == page_cache::Installed::TooLate {
            tracing::debug!("SQLite was in use before the first store opened: its page cache stays as it is");
        }
        let opened = match access {
            Access::Own => Self::open_owned(path),
            Access::Existing => Self::open_existing(path),
        };
        // SQLite says "disk I/O error" when it cannot even create its shared-memory file: the
        // operator's likeliest cause, said plainly.
        opened.map_err(|error| match free_bytes_beside(path) {
            Some(free) if free < FULL_BELOW_BYTES => {
                format!("{error}; the disk holding it is full ({free} bytes free): free space, then start Keel again")
            }
            _ => error,
        })
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
            register_amount_keys(&writer)?;
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
        // Likewise a broker stream's lease: its publisher was a process that is gone.
        writer.execute("UPDATE stream_cursors SET lease_until = 0", []).map_err(|e| failed(e.into()))?;
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
        register_amount_keys(&writer).map_err(|e| failed(e.into()))?;
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

/// Free space below which a start-up failure is put down to a full disk.
const FULL_BELOW_BYTES: u64 = 1024 * 1024;

/// Bytes free to this user on the filesystem holding `path` (its directory's), if it can be asked.
fn free_bytes_beside(path: &str) -> Option<u64> {
    let dir = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty());
    let stats = rustix::fs::statvfs(dir.unwrap_or(std::path::Path::new("."))).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
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
            register_amount_keys(c)?;
            c.pragma_update(None, "query_only", "ON")
        });
    r2d2::Pool::builder().max_size(READER_POOL_SIZE).min_idle(Some(1)).build(manager).map_err(pool_error)
}

/// `keel_key(amount, exponent)` and `keel_difference_key(a, b)` (and `keel_sum`, below): an amount (decimal text, an
/// integer, or a JSON number's text) × 10^-exponent, or the difference of two, as the text key
/// whose order is the numbers' (`Decimal::sort_key`). SQLite stores amounts as text of any size, so
/// filters and sorts on amounts compare these keys, exactly. NULL for anything that is not a number.
fn register_amount_keys(conn: &Connection) -> rusqlite::Result<()> {
    use crate::domain::amount::Decimal;
    use rusqlite::functions::{Context, FunctionFlags};
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let number = |ctx: &Context<'_>, at: usize| -> Option<Decimal> {
        match ctx.get_raw(at) {
            ValueRef::Integer(i) => Some(Decimal::from_minor(i.into(), 0)),
            ValueRef::Text(t) => Decimal::parse(std::str::from_utf8(t).ok()?).ok(),
            _ => None,
        }
    };
    conn.create_scalar_function("keel_key", 2, flags, move |ctx| {
        let exponent: i64 = ctx.get(1)?;
        Ok(number(ctx, 0).map(|n| n.shifted_point(exponent).sort_key()))
    })?;
    conn.create_scalar_function("keel_difference_key", 2, flags, move |ctx| {
        Ok(number(ctx, 0).zip(number(ctx, 1)).map(|(a, b)| a.minus(&b).sort_key()))
    })?;
    conn.create_aggregate_function("keel_sum", 1, flags, ExactSum)
}

/// `keel_sum(amount)`: the exact sum of integer amounts stored as text (SQLite's own `SUM` of text
/// is a float); NULL over no rows, as `SUM`.
struct ExactSum;

impl rusqlite::functions::Aggregate<num_bigint::BigInt, Option<String>> for ExactSum {
    fn init(&self, _: &mut rusqlite::functions::Context<'_>) -> rusqlite::Result<num_bigint::BigInt> {
        Ok(num_bigint::BigInt::default())
    }

    fn step(&self, ctx: &mut rusqlite::functions::Context<'_>, sum: &mut num_bigint::BigInt) -> rusqlite::Result<()> {
        let amount: num_bigint::BigInt = match ctx.get_raw(0) {
            ValueRef::Integer(i) => i.into(),
            ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|t| t.parse().ok()).ok_or_else(|| {
                rusqlite::Error::UserFunctionError("keel_sum: an amount that is not an integer".into())
            })?,
            _ => return Err(rusqlite::Error::UserFunctionError("keel_sum: an amount that is not an integer".into())),
        };
        *sum += amount;
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut rusqlite::functions::Context<'_>,
        sum: Option<num_bigint::BigInt>,
    ) -> rusqlite::Result<Option<String>> {
        Ok(sum.map(|s| s.to_string()))
    }
}

/// Runs a PASSIVE checkpoint every `CHECKPOINT_EVERY` until the returned sender is dropped. PASSIVE
/// never blocks the writer or readers; whatever it cannot copy yet, the next round does.
fn start_checkpointer(conn: Connection) -> StoreResult<std::sync::mpsc::Sender<()>> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    crate::tasks::thread("keel-checkpoint", move || {
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
            if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(%error, "background checkpoint failed; the next round tries again");
            }
        }
    })
    .map_err(|e| StoreError::caused_by(ErrorKind::Database, e).during("starting the checkpoint thread"))?;
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

/// One immediate transaction on the writer: `work`, then COMMIT (or ROLLBACK if `work` failed).
fn write_on(conn: &mut Connection, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut writer = Writer::on(&tx);
    work(&mut writer)?;
    drop(writer);
    tx.commit()?;
    Ok(())
}

impl Store for SqliteStore {
    fn reader(&self) -> StoreResult<Box<dyn Reads + '_>> {
        let conn = self.readers.get().map_err(pool_error)?;
        Ok(Box::new(Reader(conn)))
    }

    fn read_consistent(&self, work: &mut dyn FnMut(&dyn Reads) -> StoreResult<()>) -> StoreResult<()> {
        let mut conn = self.readers.get().map_err(pool_error)?;
        // A read transaction: WAL keeps its snapshot for as long as it lasts.
        let tx = conn.transaction()?;
        work(&Writer::on(&tx))?;
        tx.commit()?;
        Ok(())
    }

    fn write(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        let mut conn = self.writer.lock();
        write_on(&mut conn, work)
    }

    fn write_unflushed(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        let mut conn = self.writer.lock();
        // In WAL mode NORMAL keeps every commit atomic and in order; it only leaves the fsync to
        // the next FULL commit (the engine's) or checkpoint, which then covers this one too.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let written = write_on(&mut conn, work);
        // The writer must never go on committing unflushed: the engine's 2xx would not be durable.
        conn.pragma_update(None, "synchronous", "FULL").expect("synchronous=FULL is restored on the SQLite writer");
        written
    }

    fn rehearse(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        work(&mut Writer::on(&tx))?;
        tx.rollback()?;
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

/// A transaction, with the statements it has run kept at hand until it ends. A batch runs the
/// same few statements thousands of times; taking each from rusqlite's statement cache and giving
/// it back (hashing its whole SQL text both ways) cost a tenth of a bulk transfer.
struct Writer<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    /// By the address of the rendered SQL (`render` returns one `&'static str` per template).
    statements: RefCell<HashMap<usize, CachedStatement<'a>>>,
}

impl<'a> Writer<'a> {
    fn on(tx: &'a rusqlite::Transaction<'a>) -> Writer<'a> {
        Writer { tx, statements: RefCell::default() }
    }

    /// Runs `use_it` with the prepared statement of `template`.
    fn with<R>(
        &self,
        template: &'static str,
        use_it: impl FnOnce(&mut Statement<'_>) -> StoreResult<R>,
    ) -> StoreResult<R> {
        let sql = render(Dialect::Sqlite, template);
        let mut statements = self.statements.borrow_mut();
        let statement = match statements.entry(sql.as_ptr() as usize) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => new.insert(self.tx.prepare_cached(sql)?),
        };
        use_it(statement)
    }
}

impl Sql for Reader {
    const DIALECT: Dialect = Dialect::Sqlite;
    fn rows<T>(&self, sql: &'static str, params: &[Value<'_>], read: Read<T>) -> StoreResult<Vec<T>> {
        let run = || -> StoreResult<Vec<T>> {
            let mut statement = self.0.prepare_cached(render(Dialect::Sqlite, sql))?;
            rows(&mut statement, params, read)
        };
        run().map_err(|e| e.during(operation(sql)))
    }
    fn execute(&self, sql: &'static str, params: &[Value<'_>]) -> StoreResult<u64> {
        let run = || -> StoreResult<u64> {
            let mut statement = self.0.prepare_cached(render(Dialect::Sqlite, sql))?;
            execute(&mut statement, params)
        };
        run().map_err(|e| e.during(operation(sql)))
    }
    fn built_rows<T>(&self, sql: &str, params: &[Value<'_>], read: Read<T>) -> StoreResult<Vec<T>> {
        // Not cached: each filter is its own statement, and would push the hot ones out.
        let mut statement = self.0.prepare(sql).map_err(|e| StoreError::from(e).during(built_operation(sql)))?;
        rows(&mut statement, params, read).map_err(|e| e.during(built_operation(sql)))
    }
}

impl Sql for Writer<'_> {
    const DIALECT: Dialect = Dialect::Sqlite;
    fn rows<T>(&self, sql: &'static str, params: &[Value<'_>], read: Read<T>) -> StoreResult<Vec<T>> {
        self.with(sql, |statement| rows(statement, params, read)).map_err(|e| e.during(operation(sql)))
    }
    fn execute(&self, sql: &'static str, params: &[Value<'_>]) -> StoreResult<u64> {
        self.with(sql, |statement| execute(statement, params)).map_err(|e| e.during(operation(sql)))
    }
    fn built_rows<T>(&self, sql: &str, params: &[Value<'_>], read: Read<T>) -> StoreResult<Vec<T>> {
        let mut statement = self.tx.prepare(sql).map_err(|e| StoreError::from(e).during(built_operation(sql)))?;
        rows(&mut statement, params, read).map_err(|e| e.during(built_operation(sql)))
    }
}

/// The writer's statements are the shared ones, one row each: in-process, a statement costs no
/// round trip, so there is nothing to batch.
impl WriteSql for Writer<'_> {}

type Read<T> = fn(&mut Cursor<'_>) -> StoreResult<T>;

fn rows<T>(stmt: &mut Statement<'_>, params: &[Value<'_>], read: Read<T>) -> StoreResult<Vec<T>> {
    let mut found = Vec::new();
    for params in each_item(params) {
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().map(Bound)))?;
        while let Some(row) = rows.next()? {
            found.push(read(&mut Cursor::new(row))?);
        }
    }
    Ok(found)
}

fn execute(stmt: &mut Statement<'_>, params: &[Value<'_>]) -> StoreResult<u64> {
    let mut changed = 0;
    for params in each_item(params) {
        changed += stmt.execute(rusqlite::params_from_iter(params.iter().map(Bound)))? as u64;
    }
    Ok(changed)
}

/// The parameter lists to run a statement with: one, or, where a list is bound (`{any}`), one per
/// item of the list, with the item in its place.
fn each_item<'a>(params: &'a [Value<'a>]) -> Vec<std::borrow::Cow<'a, [Value<'a>]>> {
    let Some(at) = params.iter().position(|p| matches!(p, Value::TextList(_))) else {
        return vec![std::borrow::Cow::Borrowed(params)];
    };
    let Value::TextList(items) = &params[at] else { unreachable!() };
    items
        .iter()
        .map(|item| {
            let mut one = params.to_vec();
            one[at] = Value::from(item);
            std::borrow::Cow::Owned(one)
        })
        .collect()
}

/// A `Value` as SQLite binds it.
struct Bound<'v, 'a>(&'v Value<'a>);

impl ToSql for Bound<'_, '_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Int(n) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*n)),
            Value::Bool(b) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i64::from(*b))),
            Value::TextList(_) => unreachable!("`each_item` binds a list's items one at a time"),
            Value::Array(_) => unreachable!("set-based writes are PostgreSQL's"),
        })
    }
}

impl RowAccess for rusqlite::Row<'_> {
    fn is_null(&self, index: usize) -> StoreResult<bool> {
        Ok(self.get_ref(index)? == ValueRef::Null)
    }
    fn text(&self, index: usize) -> StoreResult<Option<&str>> {
        match self.get_ref(index)? {
            ValueRef::Null => Ok(None),
            value => Ok(Some(value.as_str()?)),
        }
    }
    fn int(&self, index: usize) -> StoreResult<Option<i64>> {
        Ok(self.get_ref(index)?.as_i64_or_null()?)
    }
    fn bool(&self, index: usize) -> StoreResult<Option<bool>> {
        Ok(self.get_ref(index)?.as_i64_or_null()?.map(|n| n != 0))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let kind = match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                ErrorKind::Conflict
            }
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
            {
                ErrorKind::Transient
            }
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => ErrorKind::Full,
            _ => ErrorKind::Database,
        };
        StoreError::caused_by(kind, e)
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        StoreError::caused_by(ErrorKind::Corrupt, e)
    }
}

fn pool_error(e: r2d2::Error) -> StoreError {
    StoreError::caused_by(ErrorKind::Database, e).during("taking a reader from the pool")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("keel.db").display().to_string();
        let store = SqliteStore::open(&path, Access::Own).expect("a new database opens");
        (dir, store)
    }

    #[test]
    fn an_unflushed_write_leaves_the_writer_flushing_every_commit() {
        let (_dir, store) = store();
        let synchronous = |store: &SqliteStore| -> i64 {
            store.writer.lock().pragma_query_value(None, "synchronous", |r| r.get(0)).expect("a pragma reads")
        };
        assert_eq!(synchronous(&store), 2, "FULL");
        store.write_unflushed(&mut |w| w.claim_due_events(0, 1, 10).map(drop)).expect("it commits");
        assert_eq!(synchronous(&store), 2, "FULL again after an unflushed commit");
        let failed = store.write_unflushed(&mut |_| Err(StoreError::new(ErrorKind::Transient, "refused")));
        assert!(failed.is_err());
        assert_eq!(synchronous(&store), 2, "FULL again after a failed one");
    }

    #[test]
    fn the_dispatchers_claim_reads_only_due_events_whatever_the_backlog() {
        // Through `events_status`, a claim of a few events read and sorted every pending one.
        let (_dir, store) = store();
        let conn = store.writer.lock();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", render(Dialect::Sqlite, super::super::sql::CLAIM_DUE_EVENTS)))
            .and_then(|mut s| s.query_map(params![5, 16], |r| r.get::<_, String>(3))?.collect())
            .expect("a plan");
        assert_eq!(plan, ["SEARCH events USING INDEX events_due (status=? AND next_attempt_at<?)"]);
    }

    #[test]
    fn a_balances_history_reads_only_its_own_range_whatever_the_log() {
        // Through `transactions_status`, each history, `/at` and snapshot query walked every applied
        // transaction of the range, of every balance (0.6 s a history at a million transactions).
        use super::super::sql::{SETTLED_BETWEEN, SETTLED_MINUTES, SETTLED_SUM};
        let (_dir, store) = store();
        let conn = store.writer.lock();
        for template in SETTLED_SUM.iter().chain(&SETTLED_MINUTES).chain([&SETTLED_BETWEEN]) {
            let sql = render(Dialect::Sqlite, template);
            let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("a plan");
            let values: [&dyn rusqlite::ToSql; 4] = [&"bln_1", &"", &"9999", &10];
            let given = rusqlite::params_from_iter(&values[..statement.parameter_count()]);
            let plan: Vec<String> =
                statement.query_map(given, |r| r.get::<_, String>(3)).and_then(|rows| rows.collect()).expect("a plan");
            let searches: Vec<&String> = plan.iter().filter(|step| step.contains(" transactions ")).collect();
            assert!(!searches.is_empty(), "{plan:?}");
            for step in searches {
                let by_balance = step.contains("USING INDEX transactions_source")
                    || step.contains("USING INDEX transactions_destination");
                assert!(by_balance && step.contains("_balance_id=?"), "{step}\n{sql}");
            }
        }
    }
}
