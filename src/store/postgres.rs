//! The PostgreSQL store: several Keel processes may share one database. Each batch locks the rows
//! of the balances it touches (`FOR UPDATE`, in id order, so two processes cannot deadlock), queued
//! transactions and due webhook events are taken with `FOR UPDATE SKIP LOCKED` (never by two
//! processes at once), and serialization failures, deadlocks and lost connections are reported as
//! transient so the engine retries them. Amounts are `NUMERIC`, exchanged as decimal text.

use super::columns::{amount, json_map, json_text, named, precision, scopes, scopes_text};
use super::{schema_is_current, Access, Migrations, INDICATOR_CONFLICT};
use super::{AfterAttempt, Attempt, EventFilter, Page, PoolUsage, Reads, Store, StoreError, StoreResult, Writes};
use crate::domain::api_key::ApiKey;
use crate::domain::balance::Balance;
use crate::domain::event::{Delivery, Event, EventKind};
use crate::domain::ledger::Ledger;
use crate::domain::monitor::{Condition, Field, Monitor, Operator, State, Trigger};
use crate::domain::transaction::{Status, Transaction};
use postgres::types::ToSql;
use postgres::{NoTls, Row, Statement};
use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

const MIGRATIONS: &Migrations = &[
    (1, "ledger_core", include_str!("../../migrations/postgres/0001_ledger_core.sql")),
    (2, "monitors_and_outbox", include_str!("../../migrations/postgres/0002_monitors_and_outbox.sql")),
    (3, "api_keys", include_str!("../../migrations/postgres/0003_api_keys.sql")),
    (4, "batch_markers", include_str!("../../migrations/postgres/0004_batch_markers.sql")),
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

type Pool = r2d2::Pool<Manager>;

/// A pooled connection with the statements prepared on it: every query after the first of its
/// kind skips the prepare round trip.
pub struct Connection {
    client: postgres::Client,
    statements: HashMap<String, Statement>,
}

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

/// The cached statement for `sql`, preparing it through `prepare` the first time.
fn cached(
    statements: &mut HashMap<String, Statement>,
    sql: &str,
    prepare: impl FnOnce() -> Result<Statement, postgres::Error>,
) -> StoreResult<Statement> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = prepare()?;
    statements.insert(sql.to_string(), statement.clone());
    Ok(statement)
}

pub struct PostgresStore {
    pool: Pool,
    description: String,
    /// Dropping it stops the thread that prunes old batch markers (`Access::Own` only).
    _pruner: Option<std::sync::mpsc::Sender<()>>,
}

impl PostgresStore {
    pub fn open(url: &str, pool_size: u32, access: Access) -> Result<Self, String> {
        let mut config = postgres::Config::from_str(url).map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
        config.connect_timeout(Duration::from_secs(5));
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let description = format!(
            "PostgreSQL database {} on {}:{} as {} (pool of {pool_size})",
            config.get_dbname().unwrap_or("(default)"),
            hosts.join(","),
            config.get_ports().first().copied().unwrap_or(5432),
            config.get_user().unwrap_or("(default)"),
        );
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
        drop(conn);
        let pruner = if access == Access::Own { Some(start_pruner(pool.clone())?) } else { None };
        Ok(PostgresStore { pool, description, _pruner: pruner })
    }
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
                    return Err(StoreError::Transient(format!(
                        "the batch did not commit ({error}); it is safe to retry"
                    )))
                }
                Err(probe_error) if std::time::Instant::now() < deadline => {
                    tracing::warn!(error = %probe_error, batch = marker, "cannot ask yet whether the batch committed");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(probe_error) => {
                    return Err(StoreError::OutcomeUnknown(format!(
                        "COMMIT failed ({error}) and the database could not be asked for {}s ({probe_error})",
                        OUTCOME_DEADLINE.as_secs()
                    )))
                }
            }
        }
    }

    /// True if the batch that wrote `marker` committed. The insert waits for that batch's
    /// transaction if it is still running and, if it never committed, takes its place so it never
    /// can; then the row says whose it is. Both statements may be repeated safely.
    fn probe(&self, marker: &str) -> StoreResult<bool> {
        let mut conn = self.pool.get().map_err(|e| StoreError::Transient(e.to_string()))?;
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
    std::thread::Builder::new()
        .name("keel-prune".into())
        .spawn(move || {
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

impl Store for PostgresStore {
    fn reader(&self) -> StoreResult<Box<dyn Reads + '_>> {
        let conn = self.pool.get().map_err(|e| StoreError::Transient(e.to_string()))?;
        Ok(Box::new(Reader(RefCell::new(conn))))
    }

    fn read_consistent(&self, work: &mut dyn FnMut(&dyn Reads) -> StoreResult<()>) -> StoreResult<()> {
        let mut conn = self.pool.get().map_err(|e| StoreError::Transient(e.to_string()))?;
        let Connection { client, statements } = &mut *conn;
        let tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let reader = Writer { tx: RefCell::new(tx), statements: RefCell::new(statements), pending: RefCell::default() };
        work(&reader)?;
        reader.tx.into_inner().commit()?;
        Ok(())
    }

    fn write(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        let marker = uuid::Uuid::new_v4().to_string();
        let committed = {
            let mut conn = self.pool.get().map_err(|e| StoreError::Transient(e.to_string()))?;
            let Connection { client, statements } = &mut *conn;
            let mut writer = Writer {
                tx: RefCell::new(client.transaction()?),
                statements: RefCell::new(statements),
                pending: RefCell::default(),
            };
            writer.run("INSERT INTO batch_markers (batch_id) VALUES ($1::text::uuid)", &[&marker])?;
            work(&mut writer)?;
            writer.send_pending()?;
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
    tx: RefCell<postgres::Transaction<'a>>,
    statements: RefCell<&'a mut HashMap<String, Statement>>,
    /// New transactions and balance totals not yet sent: a batch's writes go as two set-based
    /// statements instead of one round trip each. Sent before any other statement runs (so every
    /// read sees them, and constraints are checked in order) and before the commit.
    pending: RefCell<Pending>,
}

#[derive(Default)]
struct Pending {
    transactions: Vec<Transaction>,
    balances: Vec<Balance>,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The two calls every query here needs, on a pooled connection or inside the batch's transaction.
trait Query {
    fn rows(&self, sql: &str, params: Params) -> StoreResult<Vec<Row>>;
    fn exec(&self, sql: &str, params: Params) -> StoreResult<u64>;
}

impl Reader {
    fn statement(&self, sql: &str) -> StoreResult<Statement> {
        let mut conn = self.0.borrow_mut();
        let Connection { client, statements } = &mut **conn;
        cached(statements, sql, || client.prepare(sql))
    }
}

impl Query for Reader {
    fn rows(&self, sql: &str, params: Params) -> StoreResult<Vec<Row>> {
        let statement = self.statement(sql)?;
        Ok(self.0.borrow_mut().client.query(&statement, params)?)
    }
    fn exec(&self, sql: &str, params: Params) -> StoreResult<u64> {
        let statement = self.statement(sql)?;
        Ok(self.0.borrow_mut().client.execute(&statement, params)?)
    }
}

impl Writer<'_> {
    fn statement(&self, sql: &str) -> StoreResult<Statement> {
        cached(&mut self.statements.borrow_mut(), sql, || self.tx.borrow_mut().prepare(sql))
    }

    fn run(&self, sql: &str, params: Params) -> StoreResult<u64> {
        let statement = self.statement(sql)?;
        Ok(self.tx.borrow_mut().execute(&statement, params)?)
    }

    /// Sends the buffered transactions (in the order they were made, so `seq` follows it) and
    /// balance totals.
    fn send_pending(&self) -> StoreResult<()> {
        let Pending { transactions, balances } = std::mem::take(&mut *self.pending.borrow_mut());
        if !transactions.is_empty() {
            let t = &transactions;
            let column = |f: fn(&Transaction) -> String| t.iter().map(f).collect::<Vec<String>>();
            self.run(
                "INSERT INTO transactions (transaction_id, parent_transaction, precise_amount, precision_exponent,
                     reference, description, currency, source, destination, source_balance_id,
                     destination_balance_id, status, allow_overdraft, inflight, created_at, meta_data)
                 SELECT id, parent, amount::numeric, exponent, reference, description, currency, source,
                     destination, source_balance, destination_balance, status, overdraft, inflight, created_at, meta
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bool[], $14::bool[],
                     $15::text[], $16::text[]) WITH ORDINALITY
                     AS u(id, parent, amount, exponent, reference, description, currency, source, destination,
                          source_balance, destination_balance, status, overdraft, inflight, created_at, meta, n)
                 ORDER BY n",
                &[
                    &column(|t| t.id.clone()),
                    &t.iter().map(|t| t.parent.clone()).collect::<Vec<Option<String>>>(),
                    &column(|t| t.precise_amount.to_string()),
                    &t.iter().map(|t| t.precision.exponent() as i32).collect::<Vec<i32>>(),
                    &column(|t| t.reference.clone()),
                    &column(|t| t.description.clone()),
                    &column(|t| t.currency.clone()),
                    &column(|t| t.source.clone()),
                    &column(|t| t.destination.clone()),
                    &column(|t| t.source_balance_id.clone()),
                    &column(|t| t.destination_balance_id.clone()),
                    &column(|t| t.status.as_str().to_string()),
                    &t.iter().map(|t| t.allow_overdraft).collect::<Vec<bool>>(),
                    &t.iter().map(|t| t.inflight).collect::<Vec<bool>>(),
                    &column(|t| t.created_at.clone()),
                    &column(|t| json_text(&t.meta_data)),
                ],
            )?;
        }
        if !balances.is_empty() {
            let b = &balances;
            let column = |f: fn(&Balance) -> String| b.iter().map(f).collect::<Vec<String>>();
            self.run(
                "UPDATE balances SET credit_balance = u.credit::numeric, debit_balance = u.debit::numeric,
                     inflight_credit_balance = u.inflight_credit::numeric,
                     inflight_debit_balance = u.inflight_debit::numeric, version = u.version
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[])
                     AS u(id, credit, debit, inflight_credit, inflight_debit, version)
                 WHERE balances.balance_id = u.id",
                &[
                    &column(|b| b.id.clone()),
                    &column(|b| b.credit_balance.to_string()),
                    &column(|b| b.debit_balance.to_string()),
                    &column(|b| b.inflight_credit_balance.to_string()),
                    &column(|b| b.inflight_debit_balance.to_string()),
                    &b.iter().map(|b| b.version).collect::<Vec<i64>>(),
                ],
            )?;
        }
        Ok(())
    }
}

impl Query for Writer<'_> {
    fn rows(&self, sql: &str, params: Params) -> StoreResult<Vec<Row>> {
        self.send_pending()?;
        let statement = self.statement(sql)?;
        Ok(self.tx.borrow_mut().query(&statement, params)?)
    }
    fn exec(&self, sql: &str, params: Params) -> StoreResult<u64> {
        self.send_pending()?;
        self.run(sql, params)
    }
}

const LEDGER_COLUMNS: &str = "ledger_id, name, created_at, meta_data";
const BALANCE_COLUMNS: &str = "balance_id, ledger_id, identity_id, indicator, currency, credit_balance::text, \
     debit_balance::text, inflight_credit_balance::text, inflight_debit_balance::text, version, created_at, meta_data";
const TRANSACTION_COLUMNS: &str = "transaction_id, parent_transaction, precise_amount::text, precision_exponent, \
     reference, description, currency, source, destination, source_balance_id, destination_balance_id, status, \
     allow_overdraft, inflight, created_at, meta_data";
const API_KEY_COLUMNS: &str = "key_id, name, owner, scopes, key_hash, created_at, expires_at, revoked_at";
const MONITOR_COLUMNS: &str = "monitor_id, balance_id, field, operator, value, precision_exponent, \
     precise_value::text, description, call_back_url, meta_data, created_at, trigger_mode, state, trigger_count, \
     last_triggered_at";
const EVENT_COLUMNS: &str = "event_id, event_type, body, url, monitor_id, transaction_id, created_at, status, \
     attempts, next_attempt_at, last_error, delivered_at";

fn one<T>(rows: Vec<Row>, map: fn(&Row) -> StoreResult<T>) -> StoreResult<Option<T>> {
    rows.first().map(map).transpose()
}

fn all<T>(rows: Vec<Row>, map: fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(map).collect()
}

fn limits(page: Page) -> (i64, i64) {
    (page.limit as i64, i64::try_from(page.offset).unwrap_or(i64::MAX))
}

/// `Reads` for both the pooled reader and the batch's writer (a blanket impl would collide with
/// SQLite's).
macro_rules! impl_reads {
    ($t:ty) => {
        impl Reads for $t {
    fn ledger(&self, id: &str) -> StoreResult<Option<Ledger>> {
        one(self.rows(&format!("SELECT {LEDGER_COLUMNS} FROM ledgers WHERE ledger_id = $1"), &[&id])?, ledger_from_row)
    }

    fn ledgers(&self, page: Page) -> StoreResult<Vec<Ledger>> {
        let (limit, offset) = limits(page);
        let sql = format!("SELECT {LEDGER_COLUMNS} FROM ledgers ORDER BY seq LIMIT $1 OFFSET $2");
        all(self.rows(&sql, &[&limit, &offset])?, ledger_from_row)
    }

    fn balance(&self, id: &str) -> StoreResult<Option<Balance>> {
        one(self.rows(&format!("SELECT {BALANCE_COLUMNS} FROM balances WHERE balance_id = $1"), &[&id])?, balance_from_row)
    }

    fn balance_by_indicator(&self, indicator: &str, currency: &str) -> StoreResult<Option<Balance>> {
        let sql = format!(
            "SELECT {BALANCE_COLUMNS} FROM balances WHERE indicator = $1 AND currency = $2 AND indicator <> ''"
        );
        one(self.rows(&sql, &[&indicator, &currency])?, balance_from_row)
    }

    fn balances(&self, page: Page) -> StoreResult<Vec<Balance>> {
        let (limit, offset) = limits(page);
        let sql = format!("SELECT {BALANCE_COLUMNS} FROM balances ORDER BY seq LIMIT $1 OFFSET $2");
        all(self.rows(&sql, &[&limit, &offset])?, balance_from_row)
    }

    fn transaction(&self, id: &str) -> StoreResult<Option<Transaction>> {
        let sql = format!("SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE transaction_id = $1");
        one(self.rows(&sql, &[&id])?, transaction_from_row)
    }

    fn existing_references(&self, references: &[String]) -> StoreResult<Vec<String>> {
        let rows = self.rows("SELECT reference FROM transactions WHERE reference = ANY($1)", &[&references])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn transaction_by_reference(&self, reference: &str) -> StoreResult<Option<Transaction>> {
        let sql = format!("SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE reference = $1");
        one(self.rows(&sql, &[&reference])?, transaction_from_row)
    }

    fn transactions(&self, page: Page) -> StoreResult<Vec<Transaction>> {
        let (limit, offset) = limits(page);
        let sql = format!("SELECT {TRANSACTION_COLUMNS} FROM transactions ORDER BY seq LIMIT $1 OFFSET $2");
        all(self.rows(&sql, &[&limit, &offset])?, transaction_from_row)
    }

    fn children(&self, parent: &str) -> StoreResult<Vec<Transaction>> {
        let sql = format!("SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE parent_transaction = $1 ORDER BY seq");
        all(self.rows(&sql, &[&parent])?, transaction_from_row)
    }

    fn monitor(&self, id: &str) -> StoreResult<Option<Monitor>> {
        let sql = format!("SELECT {MONITOR_COLUMNS} FROM balance_monitors WHERE monitor_id = $1");
        one(self.rows(&sql, &[&id])?, monitor_from_row)
    }

    fn monitors(&self, page: Page) -> StoreResult<Vec<Monitor>> {
        let (limit, offset) = limits(page);
        let sql = format!("SELECT {MONITOR_COLUMNS} FROM balance_monitors ORDER BY seq LIMIT $1 OFFSET $2");
        all(self.rows(&sql, &[&limit, &offset])?, monitor_from_row)
    }

    fn monitors_of_balance(&self, balance_id: &str) -> StoreResult<Vec<Monitor>> {
        let sql = format!("SELECT {MONITOR_COLUMNS} FROM balance_monitors WHERE balance_id = $1 ORDER BY seq");
        all(self.rows(&sql, &[&balance_id])?, monitor_from_row)
    }

    fn monitors_of_balances(&self, balance_ids: &[String]) -> StoreResult<Vec<Monitor>> {

        let sql = format!("SELECT {MONITOR_COLUMNS} FROM balance_monitors WHERE balance_id = ANY($1) ORDER BY seq");

        all(self.rows(&sql, &[&balance_ids])?, monitor_from_row)

    }


    fn event(&self, id: &str) -> StoreResult<Option<Event>> {
        one(self.rows(&format!("SELECT {EVENT_COLUMNS}, seq FROM events WHERE event_id = $1"), &[&id])?, event_from_row)
    }

    fn events(&self, filter: &EventFilter, page: Page) -> StoreResult<Vec<Event>> {
        let (limit, offset) = limits(page);
        let status = filter.delivery.map(Delivery::as_str);
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, seq FROM events WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR monitor_id = $2)
             ORDER BY seq DESC LIMIT $3 OFFSET $4"
        );
        all(self.rows(&sql, &[&status, &filter.monitor_id, &limit, &offset])?, event_from_row)
    }

    fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {

        one(self.rows(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"), &[&key_hash])?, api_key_from_row)

    }


    fn api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {

        one(self.rows(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_id = $1"), &[&id])?, api_key_from_row)

    }


    fn api_keys(&self, page: Page) -> StoreResult<Vec<ApiKey>> {

        let (limit, offset) = limits(page);

        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY seq LIMIT $1 OFFSET $2");

        all(self.rows(&sql, &[&limit, &offset])?, api_key_from_row)

    }


    fn pending_events(&self) -> StoreResult<u64> {

        let rows = self.rows("SELECT count(*) FROM events WHERE status = 'pending'", &[])?;

        Ok(rows.first().map(|r| r.try_get::<_, i64>(0)).transpose()?.unwrap_or(0) as u64)

    }


    fn attempts(&self, event_id: &str) -> StoreResult<Vec<Attempt>> {
        let rows = self.rows(
            "SELECT event_id, attempt, attempted_at, status_code, error, duration_ms FROM event_attempts
             WHERE event_id = $1 ORDER BY seq",
            &[&event_id],
        )?;
        all(rows, |r| {
            Ok(Attempt {
                event_id: r.try_get(0)?,
                attempt: r.try_get::<_, i32>(1)? as u32,
                attempted_at: r.try_get(2)?,
                status_code: r.try_get::<_, Option<i32>>(3)?.map(|c| c as u16),
                error: r.try_get(4)?,
                duration_ms: r.try_get(5)?,
            })
        })
    }
}
    };
}

impl_reads!(Reader);
impl_reads!(Writer<'_>);

impl Writes for Writer<'_> {
    fn lock_balances(&mut self, sorted_ids: &[String]) -> StoreResult<Vec<Balance>> {
        // ORDER BY runs below the row locks, so rows are locked in id order.
        let sql =
            format!("SELECT {BALANCE_COLUMNS} FROM balances WHERE balance_id = ANY($1) ORDER BY balance_id FOR UPDATE");
        all(self.rows(&sql, &[&sorted_ids])?, balance_from_row)
    }

    fn insert_ledger(&mut self, l: &Ledger) -> StoreResult<()> {
        self.exec(
            "INSERT INTO ledgers (ledger_id, name, created_at, meta_data) VALUES ($1, $2, $3, $4)",
            &[&l.id, &l.name, &l.created_at, &json_text(&l.meta_data)],
        )?;
        Ok(())
    }

    fn update_ledger(&mut self, l: &Ledger) -> StoreResult<()> {
        self.exec(
            "UPDATE ledgers SET name = $2, meta_data = $3 WHERE ledger_id = $1",
            &[&l.id, &l.name, &json_text(&l.meta_data)],
        )?;
        Ok(())
    }

    fn insert_balance(&mut self, b: &Balance) -> StoreResult<()> {
        self.insert_balance_row(b, "").map(drop)
    }

    fn insert_indicator(&mut self, b: &Balance) -> StoreResult<bool> {
        // Waits for another process inserting the same indicator, then does nothing if it committed.
        Ok(self.insert_balance_row(b, INDICATOR_CONFLICT)? == 1)
    }

    fn delete_balance(&mut self, id: &str) -> StoreResult<()> {
        self.exec("DELETE FROM balances WHERE balance_id = $1", &[&id])?;
        Ok(())
    }

    fn save_balance_totals(&mut self, b: &Balance) -> StoreResult<()> {
        self.pending.borrow_mut().balances.push(b.clone());
        Ok(())
    }

    fn insert_transaction(&mut self, t: &Transaction) -> StoreResult<()> {
        self.pending.borrow_mut().transactions.push(t.clone());
        Ok(())
    }

    fn set_transaction_status(&mut self, id: &str, status: Status) -> StoreResult<()> {
        self.exec("UPDATE transactions SET status = $2 WHERE transaction_id = $1", &[&id, &status.as_str()])?;
        Ok(())
    }

    fn queued_transactions(&mut self, limit: u32) -> StoreResult<Vec<Transaction>> {
        // SKIP LOCKED: another process applying queued transactions takes different ones.
        let sql = format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE status = 'QUEUED' ORDER BY seq LIMIT $1
             FOR UPDATE SKIP LOCKED"
        );
        all(self.rows(&sql, &[&(limit as i64)])?, transaction_from_row)
    }

    fn insert_monitor(&mut self, m: &Monitor) -> StoreResult<()> {
        self.exec(
            "INSERT INTO balance_monitors (monitor_id, balance_id, field, operator, value, precision_exponent,
                 precise_value, description, call_back_url, meta_data, created_at, trigger_mode, state, trigger_count,
                 last_triggered_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7::text::numeric, $8, $9, $10, $11, $12, $13, $14, $15)",
            &monitor_params(m).iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect::<Vec<_>>(),
        )?;
        Ok(())
    }

    fn update_monitor(&mut self, m: &Monitor) -> StoreResult<()> {
        self.exec(
            "UPDATE balance_monitors SET balance_id = $2, field = $3, operator = $4, value = $5,
                 precision_exponent = $6, precise_value = $7::text::numeric, description = $8, call_back_url = $9,
                 meta_data = $10, created_at = $11, trigger_mode = $12, state = $13, trigger_count = $14,
                 last_triggered_at = $15
             WHERE monitor_id = $1",
            &monitor_params(m).iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect::<Vec<_>>(),
        )?;
        Ok(())
    }

    fn save_monitor_state(&mut self, m: &Monitor) -> StoreResult<()> {
        self.exec(
            "UPDATE balance_monitors SET state = $2, trigger_count = $3, last_triggered_at = $4 WHERE monitor_id = $1",
            &[&m.id, &m.state.as_str(), &m.trigger_count, &m.last_triggered_at],
        )?;
        Ok(())
    }

    fn delete_monitor(&mut self, id: &str) -> StoreResult<()> {
        self.exec("DELETE FROM balance_monitors WHERE monitor_id = $1", &[&id])?;
        Ok(())
    }

    fn insert_event(&mut self, e: &Event) -> StoreResult<()> {
        self.exec(
            "INSERT INTO events (event_id, event_type, body, url, monitor_id, transaction_id, created_at, status,
                 attempts, next_attempt_at, last_error, delivered_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &e.id,
                &e.kind.as_str(),
                &e.body,
                &e.url,
                &e.monitor_id,
                &e.transaction_id,
                &e.created_at,
                &e.delivery.as_str(),
                &(e.attempts as i32),
                &e.next_attempt_at,
                &e.last_error,
                &e.delivered_at,
            ],
        )?;
        Ok(())
    }

    fn claim_due_events(&mut self, now_ms: i64, lease_until_ms: i64, limit: u32) -> StoreResult<Vec<Event>> {
        // SKIP LOCKED plus the lease: no two processes deliver one event at the same time.
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, seq FROM events WHERE status = 'pending' AND next_attempt_at <= $1
             ORDER BY next_attempt_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED"
        );
        let due = all(self.rows(&sql, &[&now_ms, &(limit as i64)])?, event_from_row)?;
        let ids: Vec<&str> = due.iter().map(|e| e.id.as_str()).collect();
        self.exec("UPDATE events SET next_attempt_at = $2 WHERE event_id = ANY($1)", &[&ids, &lease_until_ms])?;
        Ok(due)
    }

    fn record_attempt(&mut self, a: &Attempt, after: &AfterAttempt) -> StoreResult<()> {
        self.exec(
            "INSERT INTO event_attempts (event_id, attempt, attempted_at, status_code, error, duration_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &a.event_id,
                &(a.attempt as i32),
                &a.attempted_at,
                &a.status_code.map(|c| c as i32),
                &a.error,
                &a.duration_ms,
            ],
        )?;
        let (status, next, delivered_at) = match after {
            AfterAttempt::Delivered { at } => (Delivery::Delivered, 0i64, Some(at.as_str())),
            AfterAttempt::RetryAt(when) => (Delivery::Pending, *when, None),
            AfterAttempt::Failed => (Delivery::Failed, 0, None),
        };
        self.exec(
            "UPDATE events SET status = $2, attempts = $3, next_attempt_at = $4, last_error = $5, delivered_at = $6
             WHERE event_id = $1",
            &[&a.event_id, &status.as_str(), &(a.attempt as i32), &next, &a.error, &delivered_at],
        )?;
        Ok(())
    }

    fn insert_api_key(&mut self, k: &ApiKey) -> StoreResult<()> {
        self.exec(
            &format!("INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
            &[
                &k.id,
                &k.name,
                &k.owner,
                &scopes_text(&k.scopes),
                &k.key_hash,
                &k.created_at,
                &k.expires_at,
                &k.revoked_at,
            ],
        )?;
        Ok(())
    }

    fn revoke_api_key(&mut self, id: &str, at: &str) -> StoreResult<()> {
        self.exec("UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1", &[&id, &at])?;
        Ok(())
    }

    fn redeliver_failed(&mut self, now_ms: i64) -> StoreResult<u64> {
        self.exec(
            "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = $1 WHERE status = 'failed'",
            &[&now_ms],
        )
    }

    fn redeliver_event(&mut self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let changed = self.exec(
            "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = $2, delivered_at = NULL
             WHERE event_id = $1",
            &[&id, &now_ms],
        )?;
        Ok(changed > 0)
    }
}

impl Writer<'_> {
    /// Inserts a balance row; `on_conflict` is appended to the statement. Returns the rows inserted.
    fn insert_balance_row(&self, b: &Balance, on_conflict: &str) -> StoreResult<u64> {
        let sql = format!(
            "INSERT INTO balances (balance_id, ledger_id, identity_id, indicator, currency, credit_balance,
                 debit_balance, inflight_credit_balance, inflight_debit_balance, version, created_at, meta_data)
             VALUES ($1, $2, $3, $4, $5, $6::text::numeric, $7::text::numeric, $8::text::numeric,
                 $9::text::numeric, $10, $11, $12) {on_conflict}"
        );
        self.exec(
            &sql,
            &[
                &b.id,
                &b.ledger_id,
                &b.identity_id,
                &b.indicator,
                &b.currency,
                &b.credit_balance.to_string(),
                &b.debit_balance.to_string(),
                &b.inflight_credit_balance.to_string(),
                &b.inflight_debit_balance.to_string(),
                &b.version,
                &b.created_at,
                &json_text(&b.meta_data),
            ],
        )
    }
}

fn monitor_params(m: &Monitor) -> Vec<Box<dyn ToSql + Sync + '_>> {
    vec![
        Box::new(&m.id),
        Box::new(&m.balance_id),
        Box::new(m.condition.field.as_str()),
        Box::new(m.condition.operator.as_str()),
        Box::new(&m.condition.value),
        Box::new(m.condition.precision.exponent() as i32),
        Box::new(m.condition.precise_value.to_string()),
        Box::new(&m.description),
        Box::new(&m.call_back_url),
        Box::new(json_text(&m.meta_data)),
        Box::new(&m.created_at),
        Box::new(m.trigger.as_str()),
        Box::new(m.state.as_str()),
        Box::new(m.trigger_count),
        Box::new(&m.last_triggered_at),
    ]
}

fn ledger_from_row(r: &Row) -> StoreResult<Ledger> {
    Ok(Ledger {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        created_at: r.try_get(2)?,
        meta_data: json_map(r.try_get(3)?)?,
    })
}

fn balance_from_row(r: &Row) -> StoreResult<Balance> {
    Ok(Balance {
        id: r.try_get(0)?,
        ledger_id: r.try_get(1)?,
        identity_id: r.try_get(2)?,
        indicator: r.try_get(3)?,
        currency: r.try_get(4)?,
        credit_balance: amount(r.try_get(5)?)?,
        debit_balance: amount(r.try_get(6)?)?,
        inflight_credit_balance: amount(r.try_get(7)?)?,
        inflight_debit_balance: amount(r.try_get(8)?)?,
        version: r.try_get(9)?,
        created_at: r.try_get(10)?,
        meta_data: json_map(r.try_get(11)?)?,
    })
}

fn transaction_from_row(r: &Row) -> StoreResult<Transaction> {
    Ok(Transaction {
        id: r.try_get(0)?,
        parent: r.try_get(1)?,
        precise_amount: amount(r.try_get(2)?)?,
        precision: precision(r.try_get::<_, i32>(3)?.into())?,
        reference: r.try_get(4)?,
        description: r.try_get(5)?,
        currency: r.try_get(6)?,
        source: r.try_get(7)?,
        destination: r.try_get(8)?,
        source_balance_id: r.try_get(9)?,
        destination_balance_id: r.try_get(10)?,
        status: named(r.try_get(11)?, "status", Status::parse)?,
        allow_overdraft: r.try_get(12)?,
        inflight: r.try_get(13)?,
        created_at: r.try_get(14)?,
        meta_data: json_map(r.try_get(15)?)?,
    })
}

fn monitor_from_row(r: &Row) -> StoreResult<Monitor> {
    Ok(Monitor {
        id: r.try_get(0)?,
        balance_id: r.try_get(1)?,
        condition: Condition {
            field: named(r.try_get(2)?, "field", Field::parse)?,
            operator: named(r.try_get(3)?, "operator", Operator::parse)?,
            value: r.try_get(4)?,
            precision: precision(r.try_get::<_, i32>(5)?.into())?,
            precise_value: amount(r.try_get(6)?)?,
        },
        description: r.try_get(7)?,
        call_back_url: r.try_get(8)?,
        meta_data: json_map(r.try_get(9)?)?,
        created_at: r.try_get(10)?,
        trigger: named(r.try_get(11)?, "trigger", Trigger::parse)?,
        state: named(r.try_get(12)?, "state", State::parse)?,
        trigger_count: r.try_get(13)?,
        last_triggered_at: r.try_get(14)?,
    })
}

fn api_key_from_row(r: &Row) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        owner: r.try_get(2)?,
        scopes: scopes(r.try_get(3)?)?,
        key_hash: r.try_get(4)?,
        created_at: r.try_get(5)?,
        expires_at: r.try_get(6)?,
        revoked_at: r.try_get(7)?,
    })
}

fn event_from_row(r: &Row) -> StoreResult<Event> {
    Ok(Event {
        id: r.try_get(0)?,
        kind: named(r.try_get(1)?, "event type", EventKind::parse)?,
        body: r.try_get(2)?,
        url: r.try_get(3)?,
        monitor_id: r.try_get(4)?,
        transaction_id: r.try_get(5)?,
        created_at: r.try_get(6)?,
        delivery: named(r.try_get(7)?, "delivery status", Delivery::parse)?,
        attempts: r.try_get::<_, i32>(8)? as u32,
        next_attempt_at: r.try_get(9)?,
        last_error: r.try_get(10)?,
        delivered_at: r.try_get(11)?,
        // `seq` is taken when the row is written, under the locks of the balances the event is
        // about, so for each balance it follows commit order.
        sequence: r.try_get(12)?,
    })
}

/// Which failures are worth retrying as they are, which are conflicts, and which are final.
fn classify(e: &postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(e.to_string()),
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW =>
        {
            StoreError::Transient(e.to_string())
        }
        Some(_) => StoreError::Database(e.to_string()),
        // No SQLSTATE: the connection itself failed (closed, reset, timed out).
        None => StoreError::Transient(e.to_string()),
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        classify(&e)
    }
}
