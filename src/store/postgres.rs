//! The PostgreSQL store: several Keel processes may share one database. Each batch locks the rows
//! of the balances it touches (`FOR UPDATE`, in id order, so two processes cannot deadlock), queued
//! transactions and due webhook events are taken with `FOR UPDATE SKIP LOCKED` (never by two
//! processes at once), and serialization failures, deadlocks and lost connections are reported as
//! transient so the engine retries them. Amounts are `NUMERIC`, exchanged as decimal text.

use super::codec::{Cursor, Kind, RowAccess, Value};
use super::schema::Record;
use super::sql::{built_operation, operation, render, totals, Dialect, Sql, WriteSql};
use super::{schema_is_current, Access, ErrorKind, Migrations};
use super::{PoolUsage, Reads, Store, StoreError, StoreResult, Writes};
use crate::domain::balance::Balance;
use crate::domain::event::Event;
use crate::domain::transaction::Transaction;
use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{NoTls, Row, Statement};
use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

mod replicas;
mod tx;

use replicas::{Origin, Replicas};
use tx::Tx;

const MIGRATIONS: &Migrations = &[
    (1, "ledger_core", include_str!("../../migrations/postgres/0001_ledger_core.sql")),
    (2, "monitors_and_outbox", include_str!("../../migrations/postgres/0002_monitors_and_outbox.sql")),
    (3, "api_keys", include_str!("../../migrations/postgres/0003_api_keys.sql")),
    (4, "batch_markers", include_str!("../../migrations/postgres/0004_batch_markers.sql")),
    (5, "money_movement", include_str!("../../migrations/postgres/0005_money_movement.sql")),
    (6, "monitor_kinds", include_str!("../../migrations/postgres/0006_monitor_kinds.sql")),
    (7, "ledger_monitors", include_str!("../../migrations/postgres/0007_ledger_monitors.sql")),
    (8, "checkpoint_chunks", include_str!("../../migrations/postgres/0008_checkpoint_chunks.sql")),
    (9, "stream_cursors", include_str!("../../migrations/postgres/0009_stream_cursors.sql")),
    (10, "webhook_endpoints", include_str!("../../migrations/postgres/0010_webhook_endpoints.sql")),
    (11, "list_indexes", include_str!("../../migrations/postgres/0011_list_indexes.sql")),
    (12, "identities", include_str!("../../migrations/postgres/0012_identities.sql")),
    (13, "balance_snapshots", include_str!("../../migrations/postgres/0013_balance_snapshots.sql")),
    (14, "search", include_str!("../../migrations/postgres/0014_search.sql")),
];

/// How long a write whose COMMIT answer was lost keeps asking the database whether it committed
/// before it gives up and reports the outcome unknown (the database is unreachable all that time).
const OUTCOME_DEADLINE: Duration = Duration::from_secs(120);
/// A session that sits inside a transaction this long without sending anything is ended by the
/// database. Keel's own transactions never pause: this bounds how long a transaction whose client
/// vanished (its COMMIT lost on the way) holds its locks, and so how long a probe waits for it.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "30s";
/// Batch markers are kept this long, then pruned (every `PRUNE_EVERY`, by each process).
const MARKER_RETENTION: &str = "1 day";
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Any fixed number: every Keel process takes this advisory lock to migrate, one at a time.
const MIGRATION_LOCK: i64 = 0x6b65_656c; // "keel"

/// Any fixed number: a batch takes this advisory lock, until it commits, right before it writes its
/// events, so events commit in the order of their `seq` and the event feed never sees a later one
/// before an earlier one (a `seq` is drawn at the insert, not at the commit). Only the insert and
/// the COMMIT run under it.
const EVENTS_LOCK: i64 = 0x6b65_656c_6576; // "keelev"

type Pool = r2d2::Pool<Manager>;

/// A pooled connection with the statements prepared on it: every query after the first of its
/// kind skips the prepare round trip.
pub struct Connection {
    client: postgres::Client,
    statements: HashMap<String, Prepared>,
}

/// A statement prepared on a connection, how often it ran since, and after how many uses it is
/// prepared again.
struct Prepared {
    statement: Statement,
    uses: u32,
    lifetime: u32,
}

/// A cached statement is prepared afresh after 16 uses, then 64, 256, 1024 and every 1024 after,
/// so that its plan follows the tables' growth: PostgreSQL may keep the generic plan it chose while
/// a table was small (a scan of the whole table where an index now serves: a fresh database under
/// load, a reference check made with `= ANY($1)`), and preparing again restarts that choice. The
/// lifetime grows as the tables' growth, relative to their size, slows; at most one round trip in
/// 16, then in a thousand.
const FIRST_LIFETIME: u32 = 16;
const LONGEST_LIFETIME: u32 = 1024;

/// Opens connections for the pool and tells it which ones broke (a database restart breaks all).
pub struct Manager {
    config: postgres::Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Connection, postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        client.batch_execute(&format!("SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'"))?;
        Ok(Connection { client, statements: HashMap::new() })
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.client.is_closed()
    }
}

/// The cached statement for `sql`, preparing it through `prepare` the first time and again at the
/// end of each lifetime (`Prepared`).
fn cached(
    statements: &mut HashMap<String, Prepared>,
    sql: &str,
    prepare: impl FnOnce(&str) -> Result<Statement, postgres::Error>,
) -> StoreResult<Statement> {
    let lifetime = match statements.get_mut(sql) {
        Some(prepared) if prepared.uses < prepared.lifetime => {
            prepared.uses += 1;
            return Ok(prepared.statement.clone());
        }
        Some(prepared) => (prepared.lifetime * 4).min(LONGEST_LIFETIME),
        None => FIRST_LIFETIME,
    };
    let statement = prepare(sql)?;
    statements.insert(sql.to_string(), Prepared { statement: statement.clone(), uses: 1, lifetime });
    Ok(statement)
}

pub struct PostgresStore {
    pool: Pool,
    /// Where `read_lagging` reads, when they answer.
    replicas: Replicas,
    description: String,
    /// Dropping it stops the thread that prunes old batch markers (`Access::Own` only).
    _pruner: Option<std::sync::mpsc::Sender<()>>,
}

impl PostgresStore {
    /// `Store::write` and `Store::write_unflushed`.
    fn write_with(&self, flush: Flush, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        let marker = uuid::Uuid::new_v4().to_string();
        let committed = {
            let mut conn = self.pool.get().map_err(pool_error)?;
            // The marker (a UUID Keel made: nothing to escape) in BEGIN's round trip.
            let unflushed = if flush == Flush::Later { "SET LOCAL synchronous_commit = off;" } else { "" };
            let opening =
                format!("START TRANSACTION; {unflushed} INSERT INTO batch_markers (batch_id) VALUES ('{marker}')");
            let mut writer = Writer::begin(&mut conn, &opening)?;
            work(&mut writer)?;
            writer.send_pending()?;
            writer.send_events()?;
            // Any error before this point left the transaction open, so nothing committed and the
            // caller may run the batch again. An error from COMMIT itself says nothing for sure: a
            // backend terminated after writing its commit record, or a connection lost on the
            // way back, fails a COMMIT that happened.
            writer.tx.into_inner().commit()
        };
        match committed {
            Ok(()) => Ok(()),
            Err(error) => self.resolve_commit(&marker, &error),
        }
    }

    /// The store at `url` (libpq's multi-host form with `target_session_attrs=read-write` follows a
    /// failover), with the read replicas at `replica_urls`.
    pub fn open(url: &str, pool_size: u32, access: Access, replica_urls: &[String]) -> Result<Self, String> {
        let mut config = postgres::Config::from_str(url).map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
        config.connect_timeout(Duration::from_secs(5));
        let description = format!("PostgreSQL {} (pool of {pool_size})", describe(&config));
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(2))
            .connection_timeout(Duration::from_secs(5))
            .build(Manager { config })
            .map_err(|e| format!("cannot connect to {description}: {e}"))?;
        let mut conn = pool.get().map_err(|e| format!("cannot connect to {description}: {e}"))?;
        if access == Access::Own {
            migrate(&mut conn.client).map_err(|e| format!("cannot migrate {description}: {e}"))?;
        }
        let found = schema_version(&mut conn.client).map_err(|e| format!("cannot read {description}: {e}"))?;
        schema_is_current(found, MIGRATIONS, &description)?;
        let replicas = match replica_urls {
            [] => Replicas::none(),
            urls => {
                let origin = Origin::of(&mut conn.client).map_err(|e| format!("cannot read {description}: {e}"))?;
                Replicas::open(urls, pool_size, &origin)?
            }
        };
        drop(conn);
        let pruner = if access == Access::Own { Some(start_pruner(pool.clone())?) } else { None };
        let description = match replica_urls.len() {
            0 => description,
            n => format!("{description}, lists and history read from {n} replica(s)"),
        };
        Ok(PostgresStore { pool, replicas, description, _pruner: pruner })
    }
}

/// `database D on HOST:PORT[,HOST:PORT…] as USER`, for logs and errors.
fn describe(config: &postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match h {
                postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    format!(
        "database {} on {} as {}",
        config.get_dbname().unwrap_or("(default)"),
        hosts.join(","),
        config.get_user().unwrap_or("(default)")
    )
}

impl PostgresStore {
    /// After a COMMIT failed: finds out, from another connection, whether the transaction that
    /// wrote `marker` committed (`Ok`) or not (`Transient`: safe to run again), trying until
    /// `OUTCOME_DEADLINE` (then `OutcomeUnknown`: the caller must not run it again).
    fn resolve_commit(&self, marker: &str, error: &postgres::Error) -> StoreResult<()> {
        tracing::warn!(%error, batch = marker, "COMMIT failed; asking the database whether it committed");
        let deadline = std::time::Instant::now() + OUTCOME_DEADLINE;
        let mut delay = Duration::from_millis(10);
        loop {
            match self.probe(marker) {
                Ok(true) => {
                    tracing::info!(batch = marker, "the batch had committed: its answer was lost, not its writes");
                    return Ok(());
                }
                Ok(false) => {
                    return Err(StoreError::caused_by(ErrorKind::Transient, error.to_string())
                        .during("COMMIT (the batch did not commit; it is safe to retry)"))
                }
                Err(probe_error) if std::time::Instant::now() < deadline => {
                    tracing::warn!(error = %probe_error, batch = marker, "cannot ask yet whether the batch committed");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(probe_error) => {
                    let operation = format!(
                        "COMMIT (it failed with {error}, and the database could not be asked for {}s whether it \
                         happened)",
                        OUTCOME_DEADLINE.as_secs()
                    );
                    return Err(StoreError::caused_by(ErrorKind::OutcomeUnknown, probe_error).during(operation));
                }
            }
        }
    }

    /// True if the batch that wrote `marker` committed. The insert waits for that batch's
    /// transaction if it is still running and, if it never committed, takes its place so it never
    /// can; then the row says whose it is. Both statements may be repeated safely.
    fn probe(&self, marker: &str) -> StoreResult<bool> {
        let mut conn = self.pool.get().map_err(pool_error)?;
        conn.client.execute(
            "INSERT INTO batch_markers (batch_id, by_probe) VALUES ($1::text::uuid, true) ON CONFLICT DO NOTHING",
            &[&marker],
        )?;
        let row =
            conn.client.query_one("SELECT by_probe FROM batch_markers WHERE batch_id = $1::text::uuid", &[&marker])?;
        Ok(!row.try_get::<_, bool>(0)?)
    }
}

/// The highest migration applied; `None` if the database has no Keel schema.
fn schema_version(client: &mut postgres::Client) -> StoreResult<Option<i64>> {
    let row = client.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?;
    if !row.try_get::<_, bool>(0)? {
        return Ok(None);
    }
    let row = client.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])?;
    Ok(Some(row.try_get(0)?))
}

/// Deletes batch markers older than `MARKER_RETENTION` every `PRUNE_EVERY` until the returned sender
/// is dropped. Each process prunes; the deletes are idempotent.
fn start_pruner(pool: Pool) -> Result<std::sync::mpsc::Sender<()>, String> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    crate::tasks::thread("keel-prune", move || {
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(PRUNE_EVERY) {
            let sql = format!("DELETE FROM batch_markers WHERE written_at < now() - interval '{MARKER_RETENTION}'");
            let pruned = pool
                .get()
                .map_err(|e| e.to_string())
                .and_then(|mut c| c.client.execute(sql.as_str(), &[]).map_err(|e| e.to_string()));
            if let Err(error) = pruned {
                tracing::warn!(%error, "pruning old batch markers failed; the next round tries again");
            }
        }
    })
    .map_err(|e| format!("cannot start the marker pruning thread: {e}"))?;
    Ok(stop)
}

fn migrate(client: &mut postgres::Client) -> StoreResult<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )?;
    for (version, name, sql) in MIGRATIONS {
        let applied = tx.query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version])?.is_some();
        if !applied {
            tx.batch_execute(sql)?;
            tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[version, name])?;
            tracing::info!(version, name, "applied migration");
        }
    }
    tx.commit()?;
    Ok(())
}

/// Whether a write's commit is flushed (on disk, and on synchronous standbys) before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flush {
    BeforeReturning,
    Later,
}

impl Store for PostgresStore {
    fn reader(&self) -> StoreResult<Box<dyn Reads + '_>> {
        let conn = self.pool.get().map_err(pool_error)?;
        Ok(Box::new(Reader(RefCell::new(conn))))
    }

    fn read_consistent(&self, work: &mut dyn FnMut(&dyn Reads) -> StoreResult<()>) -> StoreResult<()> {
        let mut conn = self.pool.get().map_err(pool_error)?;
        let reader = Writer::begin(&mut conn, "START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        work(&reader)?;
        reader.tx.into_inner().commit()?;
        Ok(())
    }

    fn read_lagging(&self, work: &mut dyn FnMut(&dyn Reads) -> StoreResult<()>) -> StoreResult<()> {
        if let Some((conn, replica)) = self.replicas.connection(&self.pool) {
            match work(&Reader(RefCell::new(conn))) {
                Ok(()) => return Ok(()),
                // A read only: running it again on the primary is safe.
                Err(error) => self.replicas.failed(replica, &error.to_string()),
            }
        }
        work(self.reader()?.as_ref())
    }

    fn write(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        self.write_with(Flush::BeforeReturning, work)
    }

    fn write_unflushed(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        self.write_with(Flush::Later, work)
    }

    fn rehearse(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        let mut conn = self.pool.get().map_err(pool_error)?;
        let mut writer = Writer::begin(&mut conn, "START TRANSACTION")?;
        work(&mut writer)?;
        // Nothing buffered is sent: it is thrown away with the transaction.
        writer.tx.into_inner().rollback()?;
        Ok(())
    }

    fn sole_writer(&self) -> bool {
        // Several `keel serve` processes may share one database.
        false
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn pool_usage(&self) -> PoolUsage {
        let state = self.pool.state();
        PoolUsage { connections: state.connections, idle: state.idle_connections }
    }
}

struct Reader(RefCell<r2d2::PooledConnection<Manager>>);

struct Writer<'a> {
    tx: RefCell<Tx<'a>>,
    statements: RefCell<&'a mut HashMap<String, Prepared>>,
    /// New transactions and balance totals not yet sent: a batch's writes go as two
    /// set-based statements instead of one round trip each. Sent before any other statement runs (so every
    /// read sees them, and constraints are checked in order) and before the commit.
    pending: RefCell<Pending>,
    /// The batch's events, written last (`send_events`).
    events: RefCell<Vec<Event>>,
}

#[derive(Default)]
struct Pending {
    transactions: Vec<Transaction>,
    balances: Vec<Balance>,
}

type Read<T> = fn(&mut Cursor<'_>) -> StoreResult<T>;

impl Sql for Reader {
    const DIALECT: Dialect = Dialect::Postgres;
    fn rows<T>(&self, sql: &'static str, params: &[Value<'_>], read: Read<T>) -> StoreResult<Vec<T>> {
        let mut conn = self.0.borrow_mut();
        let Connection { client, statements } = &mut **conn;
        let mut run = || -> StoreResult<Vec<T>> {
            let statement = cached(statements, render(Dialect::Postgres, sql), |sql| client.prepare(sql))?;
            read_all(client.query(&statement, &bound(params))?, read)
        };
        run().map_err(|e| e.during(operation(sql)))
    }
    fn execute(&self, sql: &'static str, params: &[Value<'_>]) -> StoreResult<u64> {
        let mut conn = self.0.borrow_mut();
        let Connection { client, statements } = &mut **conn;
        let mut run = || -> StoreResult<u64> {
            let statement = cached(statements, render(Dialect::Postgres, sql), |sql| client.prepare(sql))?;
            Ok(client.execute(&statement, &bound(params))?)
        };
        run().map_err(|e| e.during(operation(sql)))
    }
    fn built_rows<T>(&self, sql: &str, params: &[Value<'_>], read: Read<T>) -> StoreResult<Vec<T>> {
        // Not kept: each filter is its own statement.
        let rows = self.0.borrow_mut().client.query(sql, &bound(params));
        rows.map_err(StoreError::from).and_then(|rows| read_all(rows, read)).map_err(|e| e.during(built_operation(sql)))
    }
}

impl Sql for Writer<'_> {
    const DIALECT: Dialect = Dialect::Postgres;
    fn rows<T>(&self, sql: &'static str, params: &[Value<'_>], read: Read<T>) -> StoreResult<Vec<T>> {
        let run = || -> StoreResult<Vec<T>> {
            self.send_pending()?;
            let statement = self.statement(render(Dialect::Postgres, sql))?;
            read_all(self.tx.borrow_mut().query(&statement, &bound(params))?, read)
        };
        run().map_err(|e| e.during(operation(sql)))
    }
    fn execute(&self, sql: &'static str, params: &[Value<'_>]) -> StoreResult<u64> {
        let run = || -> StoreResult<u64> {
            self.send_pending()?;
            self.run(render(Dialect::Postgres, sql), &bound(params))
        };
        run().map_err(|e| e.during(operation(sql)))
    }
    fn built_rows<T>(&self, sql: &str, params: &[Value<'_>], read: Read<T>) -> StoreResult<Vec<T>> {
        let run = || -> StoreResult<Vec<T>> {
            self.send_pending()?;
            read_all(self.tx.borrow_mut().query(sql, &bound(params))?, read)
        };
        run().map_err(|e| e.during(built_operation(sql)))
    }
}

impl WriteSql for Writer<'_> {
    fn write_transaction(&self, t: &Transaction) -> StoreResult<()> {
        self.pending.borrow_mut().transactions.push(t.clone());
        Ok(())
    }

    fn write_totals(&self, b: &Balance) -> StoreResult<()> {
        self.pending.borrow_mut().balances.push(b.clone());
        Ok(())
    }

    fn write_event(&self, event: &Event) -> StoreResult<()> {
        self.events.borrow_mut().push(event.clone());
        Ok(())
    }
}

fn read_all<T>(rows: Vec<Row>, read: Read<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(|row| read(&mut Cursor::new(row))).collect()
}

fn bound<'v>(params: &'v [Value<'_>]) -> Vec<&'v (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl<'a> Writer<'a> {
    /// A transaction on `conn` opened with `opening` (`Tx::begin`), with its prepared statements.
    fn begin(conn: &'a mut Connection, opening: &str) -> StoreResult<Writer<'a>> {
        let Connection { client, statements } = conn;
        Ok(Writer {
            tx: RefCell::new(Tx::begin(client, opening)?),
            statements: RefCell::new(statements),
            pending: RefCell::default(),
            events: RefCell::default(),
        })
    }

    fn statement(&self, sql: &str) -> StoreResult<Statement> {
        cached(&mut self.statements.borrow_mut(), sql, |sql| self.tx.borrow_mut().prepare(sql))
    }

    fn run(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let statement = self.statement(sql)?;
        Ok(self.tx.borrow_mut().execute(&statement, params)?)
    }

    /// Sends the buffered transactions (in the order they were made, so `seq` follows it) and
    /// balance totals (with their latest checkpoints), each as one statement over arrays, one
    /// array per column.
    /// Writes the batch's events under `EVENTS_LOCK`, held until the COMMIT that follows. No
    /// statement of a batch reads an event it wrote, so they wait until the end.
    fn send_events(&self) -> StoreResult<()> {
        let events = std::mem::take(&mut *self.events.borrow_mut());
        if events.is_empty() {
            return Ok(());
        }
        static INSERT: LazyLock<String> = LazyLock::new(unnest_insert::<Event>);
        self.run("SELECT pg_advisory_xact_lock($1)", &[&EVENTS_LOCK])
            .map_err(|e| e.during("waiting for the events' turn to commit"))?;
        let rows: Vec<Vec<Value>> = events.iter().map(Record::values).collect();
        self.run(&INSERT, &bound(&by_column(rows))).map_err(|e| e.during("inserting the batch's events"))?;
        Ok(())
    }

    fn send_pending(&self) -> StoreResult<()> {
        let Pending { transactions, balances } = std::mem::take(&mut *self.pending.borrow_mut());
        if !transactions.is_empty() {
            static INSERT: LazyLock<String> = LazyLock::new(unnest_insert::<Transaction>);
            let rows: Vec<Vec<Value>> = transactions.iter().map(Record::values).collect();
            self.run(&INSERT, &bound(&by_column(rows))).map_err(|e| e.during("inserting the batch's transactions"))?;
            // Queued for the search indexer in the same commit (`sql::to_index`), in one statement.
            let ids: Vec<&str> =
                transactions.iter().filter(|t| super::sql::has_search_text(t)).map(|t| t.id.as_str()).collect();
            if !ids.is_empty() {
                self.run(
                    "INSERT INTO search_dirty (collection, entity_id) SELECT 'transactions', unnest($1::text[])",
                    &[&ids],
                )
                .map_err(|e| e.during("queueing the batch's transactions for search"))?;
            }
        }
        if !balances.is_empty() {
            let rows: Vec<Vec<Value>> = balances.iter().map(|b| totals(b).to_vec()).collect();
            self.run(
                "UPDATE balances SET credit_balance = u.credit::numeric, debit_balance = u.debit::numeric,
                     inflight_credit_balance = u.inflight_credit::numeric,
                     inflight_debit_balance = u.inflight_debit::numeric, version = u.version,
                     recent_checkpoints = u.checkpoints
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::text[])
                     AS u(id, credit, debit, inflight_credit, inflight_debit, version, checkpoints)
                 WHERE balances.balance_id = u.id",
                &bound(&by_column(rows)),
            )
            .map_err(|e| e.during("saving the batch's balance totals"))?;
        }
        Ok(())
    }
}

/// Rows of values turned into one list per column, each bound as an array.
fn by_column(rows: Vec<Vec<Value<'_>>>) -> Vec<Value<'_>> {
    let width = rows.first().map_or(0, Vec::len);
    let mut columns: Vec<Vec<Value>> = (0..width).map(|_| Vec::with_capacity(rows.len())).collect();
    for row in rows {
        assert_eq!(row.len(), width, "every row of a set-based write has the same columns");
        for (column, value) in columns.iter_mut().zip(row) {
            column.push(value);
        }
    }
    columns.into_iter().map(Value::Array).collect()
}

/// `INSERT … SELECT … FROM unnest(…)` of a record's written columns, in the arrays' order.
fn unnest_insert<R: Record>() -> String {
    let columns: Vec<_> = R::COLUMNS.iter().filter(|c| c.is_written()).collect();
    let names = columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
    let arrays = columns
        .iter()
        .enumerate()
        .map(|(i, c)| match c.kind {
            Kind::Int => format!("${}::int8[]", i + 1),
            Kind::Bool => format!("${}::bool[]", i + 1),
            _ => format!("${}::text[]", i + 1),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let select = columns
        .iter()
        .map(|c| if c.kind == Kind::Amount { format!("{}::numeric", c.name) } else { c.name.to_string() })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {table} ({names}) SELECT {select} FROM unnest({arrays}) WITH ORDINALITY AS u({names}, n) \
         ORDER BY n",
        table = R::TABLE
    )
}

impl ToSql for Value<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Text(text) => text.as_ref().to_sql(ty, out),
            // The database decides the width from the column or the cast; out of range is an error.
            Value::Int(n) if *ty == Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
            Value::Int(n) if *ty == Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
            Value::Int(n) => n.to_sql(ty, out),
            Value::Bool(b) => b.to_sql(ty, out),
            Value::TextList(items) => items.to_sql(ty, out),
            Value::Array(items) => items.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, by the driver's own impls.
        true
    }

    postgres::types::to_sql_checked!();
}

impl RowAccess for Row {
    fn is_null(&self, index: usize) -> StoreResult<bool> {
        Ok(match *self.columns()[index].type_() {
            Type::BOOL => self.bool(index)?.is_none(),
            Type::INT2 | Type::INT4 | Type::INT8 => self.int(index)?.is_none(),
            _ => self.text(index)?.is_none(),
        })
    }
    fn text(&self, index: usize) -> StoreResult<Option<&str>> {
        Ok(self.try_get(index)?)
    }
    fn int(&self, index: usize) -> StoreResult<Option<i64>> {
        Ok(match *self.columns()[index].type_() {
            Type::INT2 => self.try_get::<_, Option<i16>>(index)?.map(i64::from),
            Type::INT4 => self.try_get::<_, Option<i32>>(index)?.map(i64::from),
            _ => self.try_get(index)?,
        })
    }
    fn bool(&self, index: usize) -> StoreResult<Option<bool>> {
        Ok(self.try_get(index)?)
    }
}

/// Which failures are worth retrying as they are, which are conflicts, and which are final.
impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        let kind = match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => ErrorKind::Conflict,
            Some(c) if *c == SqlState::DISK_FULL => ErrorKind::Full,
            // Not the statement's fault but the server's state or an operator's setting: a
            // statement or lock timeout, a cancel, a server short of memory or connections, one in
            // recovery or read-only (a failover under way). Worth trying again; nothing was written.
            Some(c)
                if *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::ADMIN_SHUTDOWN
                    || *c == SqlState::CRASH_SHUTDOWN
                    || *c == SqlState::CANNOT_CONNECT_NOW
                    || *c == SqlState::QUERY_CANCELED
                    || *c == SqlState::LOCK_NOT_AVAILABLE
                    || *c == SqlState::INSUFFICIENT_RESOURCES
                    || *c == SqlState::OUT_OF_MEMORY
                    || *c == SqlState::TOO_MANY_CONNECTIONS
                    || *c == SqlState::READ_ONLY_SQL_TRANSACTION =>
            {
                ErrorKind::Transient
            }
            Some(_) => ErrorKind::Database,
            // No SQLSTATE: the connection itself failed (closed, reset, timed out).
            None => ErrorKind::Transient,
        };
        StoreError::caused_by(kind, e)
    }
}

/// No connection to be had (the database is restarting, or every one is busy): worth retrying.
fn pool_error(e: r2d2::Error) -> StoreError {
    StoreError::caused_by(ErrorKind::Transient, e).during("taking a connection from the pool")
}
