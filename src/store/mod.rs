//! Storage behind one trait. `Reads` are the queries every reader and the engine use; `Writes` adds
//! what only the engine may do, inside one database transaction per batch (`Store::write`).
//! Implementations: `sqlite` (embedded default, one process) and `postgres` (several processes).
//!
//! Layout: `schema` describes every table's columns once; `codec` turns domain values into column
//! values and back; `sql` holds every query, written once and rendered per dialect, and
//! implements `Reads` and `Writes` for both backends; `sqlite` and `postgres` keep only what truly
//! differs (connections, binding, locks, set-based batch writes, durability of a commit).

mod codec;
mod error;
pub mod faults;
mod filters;
pub mod postgres;
mod schema;
mod sql;
pub mod sqlite;

pub use error::{ErrorKind, StoreError, StoreResult};
pub use sql::table_of;

use crate::domain::api_key::ApiKey;
use crate::domain::balance::Balance;
use crate::domain::endpoint::{Endpoint, EndpointDelivery, HookType};
pub use crate::domain::event::{AfterAttempt, Attempt};
use crate::domain::event::{Delivery, Event};
use crate::domain::filter::{Collection, Query};
use crate::domain::identity::Identity;
use crate::domain::ledger::Ledger;
use crate::domain::monitor::{Monitor, RuleState};
use crate::domain::snapshot::{BalanceSnapshot, Minute};
use crate::domain::transaction::{Status, Transaction};
use crate::domain::velocity::CheckpointLog;
use num_bigint::BigInt;
use serde_json::Map;

/// A window of a list.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: u32,
    pub offset: u64,
    /// Where the list starts: with the oldest item or the newest.
    pub order: Order,
}

impl Page {
    /// The first `limit` items, oldest first (the log order `keel check` replays in).
    pub fn first(limit: u32, offset: u64) -> Page {
        Page { limit, offset, order: Order::OldestFirst }
    }

    /// The same window counted from the newest item (Blnk's order for its lists).
    pub fn newest_first(self) -> Page {
        Page { order: Order::NewestFirst, ..self }
    }
}

/// The order of a list, by when each item was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

/// A page of what a filtered query found, and how many it found in all when asked.
#[derive(Debug, Clone, Default)]
pub struct Found<T> {
    pub items: Vec<T>,
    pub total: Option<u64>,
}

/// A record the search indexer writes terms for, with its position (`seq`, SQLite's rowid).
#[derive(Debug, Clone)]
pub enum Searchable {
    Ledger(Ledger),
    Balance(Balance),
    Transaction(Transaction),
    Identity(Identity),
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub delivery: Option<Delivery>,
    pub monitor_id: Option<String>,
}

/// The cursor (`stream_cursors`) of a webhook endpoint's progress through the outbox.
pub fn endpoint_stream(endpoint_id: &str) -> String {
    format!("webhook:{endpoint_id}")
}

/// Which webhook endpoints to list.
#[derive(Debug, Clone, Default)]
pub struct EndpointFilter {
    /// Only ids starting `<prefix>_` (`/webhooks`' or `/hooks`').
    pub id_prefix: Option<&'static str>,
    /// Only Blnk hooks of this type.
    pub hook_type: Option<HookType>,
}

pub trait Reads {
    fn ledger(&self, id: &str) -> StoreResult<Option<Ledger>>;
    /// Ledgers in `page.order`.
    fn ledgers(&self, page: Page) -> StoreResult<Vec<Ledger>>;
    fn balance(&self, id: &str) -> StoreResult<Option<Balance>>;
    fn balance_by_indicator(&self, indicator: &str, currency: &str) -> StoreResult<Option<Balance>>;
    /// Balances in `page.order`.
    fn balances(&self, page: Page) -> StoreResult<Vec<Balance>>;
    /// Ledgers matching a query (`query.collection` is `Ledgers`).
    fn find_ledgers(&self, query: &Query) -> StoreResult<Found<Ledger>>;
    /// Balances matching a query (`query.collection` is `Balances`).
    fn find_balances(&self, query: &Query) -> StoreResult<Found<Balance>>;
    /// Transactions matching a query (`query.collection` is `Transactions`).
    fn find_transactions(&self, query: &Query) -> StoreResult<Found<Transaction>>;
    /// Identities matching a query (`query.collection` is `Identities`).
    fn find_identities(&self, query: &Query) -> StoreResult<Found<Identity>>;
    fn identity(&self, id: &str) -> StoreResult<Option<Identity>>;
    /// Whether any balance belongs to identity `id`.
    fn identity_has_balances(&self, id: &str) -> StoreResult<bool>;
    fn transaction(&self, id: &str) -> StoreResult<Option<Transaction>>;
    fn transaction_by_reference(&self, reference: &str) -> StoreResult<Option<Transaction>>;
    /// Which of these references are already taken: one query for a whole batch.
    fn existing_references(&self, references: &[String]) -> StoreResult<Vec<String>>;
    /// Every transaction in `page.order`; oldest first, the log a balance can be replayed from.
    fn transactions(&self, page: Page) -> StoreResult<Vec<Transaction>>;
    /// Every transaction that moved (or holds, or queues) money of `balance_id`, in log order.
    fn transactions_of_balance(&self, balance_id: &str) -> StoreResult<Vec<Transaction>>;
    /// The sum of the `APPLIED` transactions that took money from `balance_id` (`debits`) or brought
    /// it money, whose effective instant (`effective_date`, else `created_at`) is at or after `from`
    /// and before `until` (RFC 3339 in UTC, microseconds; `""` is the beginning).
    fn settled_sum(&self, balance_id: &str, from: &str, until: &str, debits: bool) -> StoreResult<BigInt>;
    /// The same, per UTC minute of the effective instant (`YYYY-MM-DDTHH:MM`) with how many, in no
    /// particular order.
    fn settled_minutes(&self, balance_id: &str, from: &str, until: &str, debits: bool) -> StoreResult<Vec<Minute>>;
    /// The balance's latest snapshot, or its latest before `before`.
    fn latest_snapshot(&self, balance_id: &str, before: Option<&str>) -> StoreResult<Option<BalanceSnapshot>>;
    /// Every snapshot, by balance then instant (`keel check`).
    fn snapshots(&self, page: Page) -> StoreResult<Vec<BalanceSnapshot>>;
    /// Up to `limit` balance ids after `after`, in id order (`""`: from the first).
    fn balance_ids_after(&self, after: &str, limit: u32) -> StoreResult<Vec<String>>;
    /// Up to `limit` `APPLIED` transactions of `balance_id` (either side) whose effective instant is
    /// at or after `from` and before `to`, in effective order (then arrival).
    fn settled_between(&self, balance_id: &str, from: &str, to: &str, limit: u32) -> StoreResult<Vec<Transaction>>;
    /// The `QUEUED` transactions of `balance_id`, either side.
    fn queued_of_balance(&self, balance_id: &str) -> StoreResult<Vec<Transaction>>;
    /// The commits, voids and refunds made against `parent`, in order.
    fn children(&self, parent: &str) -> StoreResult<Vec<Transaction>>;
    /// The transactions of a group, in order: the legs of a split, or the items of a bulk
    /// request (and its split items' legs), by the id the request was answered with.
    fn members(&self, group: &str) -> StoreResult<Vec<Transaction>>;
    fn monitor(&self, id: &str) -> StoreResult<Option<Monitor>>;
    /// Monitors in `page.order`.
    fn monitors(&self, page: Page) -> StoreResult<Vec<Monitor>>;
    /// Monitors of both kinds matching a query (`query.collection` is `Monitors`).
    fn find_monitors(&self, query: &Query) -> StoreResult<Found<Monitor>>;
    fn monitors_of_balance(&self, balance_id: &str) -> StoreResult<Vec<Monitor>>;
    /// The monitors of all these balances, in creation order: one query for a whole batch.
    fn monitors_of_balances(&self, balance_ids: &[String]) -> StoreResult<Vec<Monitor>>;
    /// The ledger-wide monitors (rules) of a ledger, in creation order, without state.
    fn rules_of_ledger(&self, ledger_id: &str) -> StoreResult<Vec<Monitor>>;
    /// The stored states of rules on these balances (a balance without one has a fresh instance).
    fn rule_states(&self, balance_ids: &[String]) -> StoreResult<Vec<RuleState>>;
    fn event(&self, id: &str) -> StoreResult<Option<Event>>;
    /// Events matching `filter`, in `page.order`.
    fn events(&self, filter: &EventFilter, page: Page) -> StoreResult<Vec<Event>>;
    fn attempts(&self, event_id: &str) -> StoreResult<Vec<Attempt>>;
    /// Up to `limit` events after outbox position `after_sequence`, in commit order (the event
    /// feed). An event never appears behind one already read: on PostgreSQL, batches that write
    /// events commit them one at a time (`pg_advisory_xact_lock` before the insert).
    fn events_after(&self, after_sequence: i64, limit: u32) -> StoreResult<Vec<Event>>;
    /// How many events wait for delivery (the outbox depth).
    fn pending_events(&self) -> StoreResult<u64>;
    /// How many events `events` would list with no paging (the console's counts).
    fn count_events(&self, filter: &EventFilter) -> StoreResult<u64>;
    /// Some `SCHEDULED` transaction is due by `now`.
    fn scheduled_due(&self, now: &str) -> StoreResult<bool>;
    /// The latest `created_at` of any transaction (the engine's clock never stamps before it, M1).
    fn latest_transaction_stamp(&self) -> StoreResult<Option<String>>;
    /// The ids of the oldest `QUEUED` transactions, and `SCHEDULED` ones due by `now`, in arrival
    /// order: what the queue would take, read without decoding a row (so one that does not read
    /// back can be named).
    fn queued_transaction_ids(&self, limit: u32, now: &str) -> StoreResult<Vec<String>>;
    /// Ids of `INFLIGHT` transactions whose `inflight_expiry_date` (`expired`) or
    /// `inflight_commit_date` (not `expired`) has come by `now`, oldest first, at most `limit`.
    fn holds_due(&self, now: &str, expired: bool, limit: u32) -> StoreResult<Vec<String>>;
    fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>>;
    fn api_key(&self, id: &str) -> StoreResult<Option<ApiKey>>;
    /// Keys in `page.order`; only `owner`'s when given.
    fn api_keys(&self, owner: Option<&str>, page: Page) -> StoreResult<Vec<ApiKey>>;
    fn endpoint(&self, id: &str) -> StoreResult<Option<Endpoint>>;
    /// Webhook endpoints matching `filter`, in creation order (`page.order`).
    fn endpoints(&self, filter: &EndpointFilter, page: Page) -> StoreResult<Vec<Endpoint>>;
    /// An endpoint's deliveries that needed more than one attempt, newest first; one status's only
    /// when given.
    fn endpoint_deliveries(&self, id: &str, status: Option<Delivery>, page: Page)
        -> StoreResult<Vec<EndpointDelivery>>;
    fn endpoint_delivery(&self, endpoint_id: &str, event_id: &str) -> StoreResult<Option<EndpointDelivery>>;
    /// Whether endpoint `id` has a pending delivery due at `now` (Unix milliseconds): a read, so an
    /// endpoint with nothing to retry never waits for the writer to find out.
    fn endpoint_retry_due(&self, id: &str, now: i64) -> StoreResult<bool>;
    /// The attempts made to deliver one event to one endpoint, oldest first.
    fn endpoint_attempts(&self, endpoint_id: &str, event_id: &str) -> StoreResult<Vec<Attempt>>;
    /// The outbox position of the newest event (0 when there is none): where a new endpoint starts.
    fn last_event_sequence(&self) -> StoreResult<i64>;
    /// These records of `collection` (a searchable one) that exist, each with its position.
    fn searchable(&self, collection: Collection, ids: &[String]) -> StoreResult<Vec<(i64, Searchable)>>;
    /// Up to `limit` records queued for the search indexer, oldest first: (queue position,
    /// collection, id). On PostgreSQL they stay locked to this transaction, and another's are skipped.
    fn search_queue(&self, limit: u32) -> StoreResult<Vec<(i64, String, String)>>;
    /// Whether any record is queued for the search indexer.
    fn search_queued(&self) -> StoreResult<bool>;
    /// How many records `collection` holds.
    fn collection_size(&self, collection: Collection) -> StoreResult<u64>;
}

pub trait Writes: Reads {
    /// Loads (and, where the backend has row locks, locks) these balances. Callers pass ids sorted,
    /// so two writers always lock in the same order and cannot deadlock.
    fn lock_balances(&mut self, sorted_ids: &[String]) -> StoreResult<Vec<Balance>>;
    fn insert_ledger(&mut self, ledger: &Ledger) -> StoreResult<()>;
    fn update_ledger(&mut self, ledger: &Ledger) -> StoreResult<()>;
    fn insert_balance(&mut self, balance: &Balance) -> StoreResult<()>;
    /// Sets the identity a balance belongs to (under the balance's lock).
    fn set_balance_identity(&mut self, balance_id: &str, identity_id: &str) -> StoreResult<()>;
    fn insert_identity(&mut self, identity: &Identity) -> StoreResult<()>;
    /// Writes every column of an existing identity.
    fn update_identity(&mut self, identity: &Identity) -> StoreResult<()>;
    fn delete_identity(&mut self, id: &str) -> StoreResult<()>;
    /// Inserts an indicator balance unless one exists for its indicator and currency (another
    /// writer may be creating it at this moment: the insert waits for it). True if inserted.
    fn insert_indicator(&mut self, balance: &Balance) -> StoreResult<bool>;
    /// Removes a balance this batch inserted and nothing uses (an indicator whose only users
    /// were refused).
    fn delete_balance(&mut self, id: &str) -> StoreResult<()>;
    /// Writes the four totals and the version.
    fn save_balance_totals(&mut self, balance: &Balance) -> StoreResult<()>;
    /// Inserts a transaction; one `APPLIED` with an effective instant before some snapshots of its
    /// balances is added to them (invariant H1, `domain::snapshot`).
    fn insert_transaction(&mut self, transaction: &Transaction) -> StoreResult<()>;
    /// Sets a transaction's status; made `APPLIED`, it is added to its balances' snapshots taken
    /// after its effective instant (H1).
    fn set_transaction_status(&mut self, id: &str, status: Status) -> StoreResult<()>;
    /// Records a snapshot (nothing if the balance has one at that instant already).
    fn insert_snapshot(&mut self, snapshot: &BalanceSnapshot) -> StoreResult<()>;
    /// Replaces a transaction's `meta_data` (the engine merged it).
    fn set_transaction_meta_data(&mut self, id: &str, meta_data: &Map<String, serde_json::Value>) -> StoreResult<()>;
    /// Replaces a balance's `meta_data` (the engine merged it, under the balance's lock).
    fn set_balance_meta_data(&mut self, id: &str, meta_data: &Map<String, serde_json::Value>) -> StoreResult<()>;
    /// The oldest `QUEUED` transactions, and `SCHEDULED` ones due by `now`, in arrival order, but
    /// for those in `except` (set aside by the engine: they may not read back).
    fn queued_transactions(&mut self, limit: u32, now: &str, except: &[String]) -> StoreResult<Vec<Transaction>>;
    /// Transaction `id` if it is still waiting for the queue (`QUEUED`, or `SCHEDULED` and due by
    /// `now`) and no other process holds it.
    fn queued_transaction(&mut self, id: &str, now: &str) -> StoreResult<Option<Transaction>>;
    fn insert_monitor(&mut self, monitor: &Monitor) -> StoreResult<()>;
    /// Writes every column, the definition and the state: for monitor commands only, which hold
    /// the locks of the monitor's balances.
    fn update_monitor(&mut self, monitor: &Monitor) -> StoreResult<()>;
    /// Writes only the state an evaluation changes (`state`, `trigger_count`, `last_triggered_at`),
    /// never the definition: a transaction batch owns the state alone (DESIGN rule 9).
    fn save_monitor_state(&mut self, monitor: &Monitor) -> StoreResult<()>;
    fn delete_monitor(&mut self, id: &str) -> StoreResult<()>;
    /// The rules of these ledgers, in creation order, held shared until the batch ends (where the
    /// backend has row locks): a rule's update or delete waits for every batch evaluating it.
    fn share_rules_of_ledgers(&mut self, ledger_ids: &[String]) -> StoreResult<Vec<Monitor>>;
    /// Inserts a ledger-wide monitor's definition (`scope` is `Some`).
    fn insert_rule(&mut self, rule: &Monitor) -> StoreResult<()>;
    /// Replaces a rule's definition and re-arms it on every balance (keeping trigger counts, and
    /// the windows' starts if `keep_windows`).
    fn update_rule(&mut self, rule: &Monitor, keep_windows: bool) -> StoreResult<()>;
    fn delete_rule(&mut self, id: &str) -> StoreResult<()>;
    /// Writes one balance's state of a rule (an instance a batch evaluated).
    fn save_rule_state(&mut self, state: &RuleState) -> StoreResult<()>;
    /// Notes on the balance's row that some rule stored a state for it (`Balance::has_rule_states`).
    fn mark_rule_states(&mut self, balance_id: &str) -> StoreResult<()>;
    /// Stores a full log of a balance's checkpoints as a chunk (`domain::velocity`).
    fn save_checkpoint_chunk(&mut self, balance_id: &str, chunk: &CheckpointLog) -> StoreResult<()>;
    /// The first stored chunk of a balance's checkpoints holding one newer than `version`: where a
    /// window whose base has that version rolls on to.
    fn checkpoint_chunk_after(&mut self, balance_id: &str, version: i64) -> StoreResult<Option<CheckpointLog>>;
    /// Deletes a balance's chunks whose checkpoints are all at or before `through_version` (no
    /// window reaches them).
    fn prune_checkpoint_chunks(&mut self, balance_id: &str, through_version: i64) -> StoreResult<()>;
    fn insert_event(&mut self, event: &Event) -> StoreResult<()>;
    /// Takes up to `limit` pending events due at `now_ms`, oldest first, and leases them until
    /// `lease_until_ms`: a process that dies mid-delivery leaves them to be retried after the lease.
    fn claim_due_events(&mut self, now_ms: i64, lease_until_ms: i64, limit: u32) -> StoreResult<Vec<Event>>;
    fn record_attempt(&mut self, attempt: &Attempt, after: &AfterAttempt) -> StoreResult<()>;
    /// Makes an event pending again, due now, with a fresh allowance of attempts. False if unknown.
    fn redeliver_event(&mut self, id: &str, now_ms: i64) -> StoreResult<bool>;
    /// Takes or renews `owner`'s lease on broker stream `stream` until `until_ms` if it is free,
    /// expired at `now_ms`, or already `owner`'s, and returns the stream's cursor (the `sequence`
    /// of the last event its broker confirmed; 0 for a new stream); `None` while another holds it.
    fn lease_stream(&mut self, stream: &str, owner: &str, now_ms: i64, until_ms: i64) -> StoreResult<Option<i64>>;
    /// Moves `stream`'s cursor forward to `sequence` if `owner` still holds its lease; false if not.
    fn advance_stream(&mut self, stream: &str, owner: &str, sequence: i64) -> StoreResult<bool>;
    fn insert_api_key(&mut self, key: &ApiKey) -> StoreResult<()>;
    fn revoke_api_key(&mut self, id: &str, at: &str) -> StoreResult<()>;
    /// Makes every failed event pending again; returns how many.
    fn redeliver_failed(&mut self, now_ms: i64) -> StoreResult<u64>;
    fn insert_endpoint(&mut self, endpoint: &Endpoint) -> StoreResult<()>;
    fn update_endpoint(&mut self, endpoint: &Endpoint) -> StoreResult<()>;
    /// Deletes an endpoint with its cursor and delivery rows (attempts stay in the events' logs).
    fn delete_endpoint(&mut self, id: &str) -> StoreResult<()>;
    /// Sets `stream`'s cursor to `sequence` (creating it), whoever holds its lease: a holder that
    /// then tries to move it to an earlier position finds its lease lost and reads it again.
    fn set_stream_cursor(&mut self, stream: &str, sequence: i64) -> StoreResult<()>;
    /// Records an event whose first attempt at an endpoint failed; nothing if it is recorded
    /// already (the same event failed there before a crash).
    fn insert_endpoint_delivery(&mut self, delivery: &EndpointDelivery) -> StoreResult<()>;
    /// Takes up to `n` of endpoint `id`'s pending deliveries due at `now` (Unix milliseconds),
    /// oldest first, and leases them until `until`.
    /// Notes when an endpoint's last round of deliveries ended and whether its last attempt succeeded.
    fn record_endpoint_run(&mut self, id: &str, at: &str, success: bool) -> StoreResult<()>;
    fn claim_endpoint_retries(&mut self, id: &str, now: i64, until: i64, n: u32) -> StoreResult<Vec<EndpointDelivery>>;
    /// Records an attempt at an endpoint (`attempt.endpoint_id`) and what it leads to.
    fn record_endpoint_attempt(&mut self, attempt: &Attempt, after: &AfterAttempt) -> StoreResult<()>;
    /// Writes the search terms of the record at `position` of `collection` (replacing its old ones).
    fn index_terms(&mut self, collection: Collection, position: i64, terms: &[String]) -> StoreResult<()>;
    /// Takes these entries off the search queue.
    fn drop_search_queue(&mut self, positions: &[i64]) -> StoreResult<()>;
    /// Empties the search index and queues every ledger, balance, transaction and identity (a
    /// reindex).
    fn reset_search_index(&mut self) -> StoreResult<()>;
    /// Makes one event's delivery to one endpoint pending again, due now, with a fresh allowance
    /// of attempts (recording it if it was delivered at the first attempt).
    fn redeliver_to_endpoint(&mut self, endpoint_id: &str, event: &Event, now_ms: i64) -> StoreResult<()>;
}

pub trait Store: Send + Sync + 'static {
    /// A consistent reader: it never sees half of a batch and never blocks the writer.
    fn reader(&self) -> StoreResult<Box<dyn Reads + '_>>;

    /// Runs `work` on a reader for reads that may lag behind the latest commits (lists, filters,
    /// history, search): a read replica's where the store has one that answers, else `reader()`'s.
    /// A read that must see the caller's own write (one record by id or reference) uses `reader`.
    fn read_lagging(&self, work: &mut dyn FnMut(&dyn Reads) -> StoreResult<()>) -> StoreResult<()> {
        work(self.reader()?.as_ref())
    }

    /// Runs `work` against one consistent snapshot of the whole database (long reads such as
    /// `keel check`, which must not see a batch that commits halfway through them).
    fn read_consistent(&self, work: &mut dyn FnMut(&dyn Reads) -> StoreResult<()>) -> StoreResult<()>;

    /// Runs `work` inside one database transaction and commits it durably if `work` returns `Ok`;
    /// rolls everything back otherwise. `Ok` means committed; `Transient` and every other error
    /// but `OutcomeUnknown` mean nothing was written. A COMMIT whose answer is lost is resolved
    /// here (PostgreSQL: from the batch's marker), never reported as a failure that happened.
    fn write(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()>;

    /// Runs `work` as `write` does, but its commit need not survive a crash or a power loss
    /// (SQLite: `synchronous=NORMAL` for this commit; PostgreSQL: `synchronous_commit = off`). It is
    /// atomic and ordered with every other commit, only not flushed before it returns, so it costs
    /// no fsync. For the webhook dispatcher's own bookkeeping (leases, attempts), whose loss only
    /// means an event is delivered once more; never for anything a client is told is stored.
    fn write_unflushed(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        self.write(work)
    }

    /// Runs `work` inside one database transaction, as `write` does (same locks, same reads of its
    /// own writes), and always rolls it back: what `work` wrote is never seen by anyone (dry runs).
    fn rehearse(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()>;

    /// True when this process is the only writer (SQLite: one process per file), so the engine may
    /// keep copies of what it wrote; false where other processes write too.
    fn sole_writer(&self) -> bool;

    /// Where the data lives, for logs (never includes a password).
    fn describe(&self) -> String;

    /// Connections open and idle in the pool, for metrics.
    fn pool_usage(&self) -> PoolUsage;
}

#[derive(Debug, Clone, Copy)]
pub struct PoolUsage {
    pub connections: u32,
    pub idle: u32,
}

/// How a command uses the database it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `keel serve` and `keel migrate`: creates the database if it is missing (SQLite) and
    /// migrates it. On SQLite it also takes the file's lock for as long as the store lives, so a
    /// second owner refuses to start instead of writing behind the first (DESIGN rule 7).
    Own,
    /// `keel check` and `keel webhooks redeliver`: an existing Keel database at this build's schema
    /// version, opened as it is: never created, never migrated, never locked, so it may run beside
    /// a server. What such a command writes (only `redeliver` writes: the delivery status of
    /// failed events) is nothing the server keeps a copy of.
    Existing,
}

/// Opens the store a `--database` URL names; `pool_size` bounds PostgreSQL connections (per
/// server); `replicas` are PostgreSQL read replicas (`--database-replica`).
pub fn open(
    url: &str,
    pool_size: u32,
    access: Access,
    replicas: &[String],
) -> Result<std::sync::Arc<dyn Store>, String> {
    // An empty `KEEL_DATABASE_REPLICA` names none.
    let replicas: Vec<String> = replicas.iter().filter(|url| !url.trim().is_empty()).cloned().collect();
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        if !replicas.is_empty() {
            return Err("read replicas (--database-replica) are for a PostgreSQL database, not SQLite".into());
        }
        let path = sqlite_path(path, url)?;
        return sqlite::SqliteStore::open(path, access).map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn Store>);
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return postgres::PostgresStore::open(url, pool_size, access, &replicas)
            .map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn Store>);
    }
    Err(format!("unsupported database URL {url:?}: expected sqlite://FILE or postgres://USER@HOST:PORT/DB"))
}

/// `keel backup`: a consistent copy of the SQLite database `url` names, written to `target` (a file
/// that must not exist), beside a server that goes on writing (`sqlite::backup`). PostgreSQL has
/// its own tools, which know its WAL and its standbys.
pub fn back_up(url: &str, target: &std::path::Path) -> Result<sqlite::backup::Backup, String> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        return sqlite::backup::back_up(sqlite_path(path, url)?, target);
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err("keel backup copies a SQLite database; back up PostgreSQL with its own tools: \
                    pg_basebackup with WAL archiving (to any moment), or pg_dump --format=custom"
            .into());
    }
    Err(format!("unsupported database URL {url:?}: expected sqlite://FILE or postgres://USER@HOST:PORT/DB"))
}

/// `keel restore`: the SQLite database `url` names put back to the backup `from`, the ledger it
/// held kept beside it; refused while a server uses it (`sqlite::backup`).
pub fn restore(url: &str, from: &std::path::Path) -> Result<sqlite::backup::Restored, String> {
    match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        Some(path) => sqlite::backup::restore(sqlite_path(path, url)?, from),
        None => Err("keel restore puts back a SQLite database; restore PostgreSQL with its own tools \
                     (pg_basebackup's copy and its WAL archive, or pg_restore)"
            .into()),
    }
}

/// The file a `sqlite://` URL names. Every connection Keel opens (a writer, readers, the
/// checkpointer) must reach the same database, so a URL naming no file, or SQLite's in-memory
/// databases (one separate, empty database per connection), would start a server whose reads find
/// no tables: refused instead.
fn sqlite_path<'a>(path: &'a str, url: &str) -> Result<&'a str, String> {
    if path.is_empty() {
        return Err(format!("the SQLite URL {url:?} names no file: use sqlite://PATH, for example sqlite://keel.db"));
    }
    if path == ":memory:" || path.contains(":memory:") || path.contains("mode=memory") {
        return Err(format!(
            "{url:?} is an in-memory SQLite database, which Keel does not support: each of its connections \
             would see a different, empty database. Name a file, for example sqlite://keel.db"
        ));
    }
    if path.starts_with("file:") || path.contains('?') {
        return Err(format!("{url:?}: SQLite URI options are not supported; use sqlite://PATH"));
    }
    Ok(path)
}

/// A backend's migrations: plain SQL files, applied in order, each recorded by its version.
type Migrations = [(i64, &'static str, &'static str)];

/// Says whether a database at schema `found` (the highest migration applied; `None`: no Keel
/// schema at all) can be opened as it is by a build with `migrations`: not if it has no Keel
/// schema or lacks migrations this build needs; a newer one is used with a warning.
fn schema_is_current(found: Option<i64>, migrations: &Migrations, what: &str) -> Result<(), String> {
    let latest = migrations.last().map_or(0, |(version, _, _)| *version);
    match found {
        None => Err(format!("{what} is not a Keel database (it has no schema_migrations table)")),
        Some(v) if v < latest => {
            Err(format!("{what} is at schema version {v} and this Keel needs {latest}: run `keel migrate` first"))
        }
        Some(v) if v > latest => {
            // Migrations only add (tables, columns with defaults, indexes), so an older build still
            // reads and writes correctly: a rollback, or an old process restarting during a rolling
            // upgrade, keeps working.
            tracing::warn!(
                "{what} is at schema version {v}, from a newer Keel (this one knows up to {latest}); \
                 carrying on, as every migration so far only adds"
            );
            Ok(())
        }
        Some(_) => Ok(()),
    }
}
