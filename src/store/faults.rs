//! A store wrapper that injects storage faults on command, for the deterministic simulator
//! (`tests/simulation.rs`): the test decides from its seed which fault the next write meets, so
//! a failing run replays exactly from its seed. Production never builds a `FaultyStore`.
//!
//! Each fault is one an operator's day brings: a statement that fails (a full disk, a constraint,
//! a lost connection), a COMMIT that fails and is known not to have happened, a COMMIT that
//! happened but whose answer is lost (the process dies between commit and answer, or the network
//! drops the reply), and a slow commit.

use super::{
    AfterAttempt, Attempt, EndpointFilter, ErrorKind, EventFilter, Found, Page, PoolUsage, Reads, Searchable, Store,
    StoreError, StoreResult, Writes,
};
use crate::domain::api_key::ApiKey;
use crate::domain::balance::Balance;
use crate::domain::endpoint::{Endpoint, EndpointDelivery};
use crate::domain::event::{Delivery, Event};
use crate::domain::filter::{Collection, Query};
use crate::domain::identity::Identity;
use crate::domain::ledger::Ledger;
use crate::domain::monitor::{Monitor, RuleState};
use crate::domain::snapshot::{BalanceSnapshot, Minute};
use crate::domain::transaction::{Status, Transaction};
use crate::domain::velocity::CheckpointLog;
use num_bigint::BigInt;
use parking_lot::Mutex;
use serde_json::Map;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// What the next write meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Its statement number `at` (0 is the first read or write of the batch) fails with `kind`;
    /// the write rolls back.
    FailStatement { at: u32, kind: ErrorKind },
    /// Everything runs, then COMMIT fails and is known not to have happened: rolled back,
    /// reported `Transient`.
    FailCommit,
    /// COMMIT happens, but its answer is lost: reported `OutcomeUnknown`.
    LoseCommitAnswer,
    /// COMMIT happens after a pause.
    SlowCommit(Duration),
}

/// Wraps a real store; every write takes the next fault armed, if any.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    /// Faults for the writes to come, in order: the first for the next write, and so on.
    armed: Mutex<VecDeque<Fault>>,
    /// Faults that fired, by kind of fault, for the simulator's report.
    fired: Mutex<Vec<Fault>>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore { inner, armed: Mutex::new(VecDeque::new()), fired: Mutex::new(Vec::new()) }
    }

    /// Arms `fault` for the first write that has none armed yet.
    pub fn arm(&self, fault: Fault) {
        self.armed.lock().push_back(fault);
    }

    /// Disarms every fault not met yet.
    pub fn disarm(&self) {
        self.armed.lock().clear();
    }

    /// Every fault that fired so far.
    pub fn fired(&self) -> Vec<Fault> {
        self.fired.lock().clone()
    }

    fn injected(kind: ErrorKind, what: &'static str) -> StoreError {
        StoreError::new(kind, what)
    }
}

impl Store for FaultyStore {
    fn reader(&self) -> StoreResult<Box<dyn Reads + '_>> {
        self.inner.reader()
    }

    fn read_consistent(&self, work: &mut dyn FnMut(&dyn Reads) -> StoreResult<()>) -> StoreResult<()> {
        self.inner.read_consistent(work)
    }

    /// Faults are armed for writes; a rehearsal commits nothing, so none is spent on it.
    fn rehearse(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        self.inner.rehearse(work)
    }

    fn write(&self, work: &mut dyn FnMut(&mut dyn Writes) -> StoreResult<()>) -> StoreResult<()> {
        let fault = self.armed.lock().pop_front();
        let fired = |f: Fault| self.fired.lock().push(f);
        match fault {
            None => self.inner.write(work),
            Some(f @ Fault::FailStatement { at, kind }) => {
                let mut reached = false;
                let result = self.inner.write(&mut |w| {
                    let mut faulty = FaultyWrites { inner: w, left: std::cell::Cell::new(Some(at)), kind };
                    let result = work(&mut faulty);
                    reached = faulty.left.get().is_none();
                    result
                });
                if reached {
                    fired(f);
                } else {
                    // The batch had fewer statements: the fault is the next write's.
                    self.armed.lock().push_front(f);
                }
                result
            }
            Some(f @ Fault::FailCommit) => {
                let result = self.inner.write(&mut |w| {
                    work(w)?;
                    Err(Self::injected(ErrorKind::Transient, "COMMIT (injected: it failed and did not happen)"))
                });
                fired(f);
                result
            }
            Some(f @ Fault::LoseCommitAnswer) => {
                self.inner.write(work)?;
                fired(f);
                Err(Self::injected(ErrorKind::OutcomeUnknown, "COMMIT (injected: it happened, its answer was lost)"))
            }
            Some(f @ Fault::SlowCommit(pause)) => {
                let result = self.inner.write(&mut |w| {
                    work(w)?;
                    std::thread::sleep(pause);
                    Ok(())
                });
                fired(f);
                result
            }
        }
    }

    fn sole_writer(&self) -> bool {
        self.inner.sole_writer()
    }

    fn describe(&self) -> String {
        format!("{} (with injected faults)", self.inner.describe())
    }

    fn pool_usage(&self) -> PoolUsage {
        self.inner.pool_usage()
    }
}

/// The batch's writer, failing its statement number `left` (counting down, reads included).
struct FaultyWrites<'a> {
    inner: &'a mut dyn Writes,
    left: std::cell::Cell<Option<u32>>,
    kind: ErrorKind,
}

impl FaultyWrites<'_> {
    fn statement(&self) -> StoreResult<()> {
        match self.left.get() {
            Some(0) => {
                self.left.set(None);
                Err(FaultyStore::injected(self.kind, "a statement (injected failure)"))
            }
            Some(n) => {
                self.left.set(Some(n - 1));
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// Each method counts as one statement, then runs on the real writer.
macro_rules! delegate {
    (reads: $($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        impl Reads for FaultyWrites<'_> {
            $(fn $name(&self, $($arg: $ty),*) -> StoreResult<$ret> {
                self.statement()?;
                self.inner.$name($($arg),*)
            })*
        }
    };
    (writes: $($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        impl Writes for FaultyWrites<'_> {
            $(fn $name(&mut self, $($arg: $ty),*) -> StoreResult<$ret> {
                self.statement()?;
                self.inner.$name($($arg),*)
            })*
        }
    };
}

delegate! { reads:
    ledger(id: &str) -> Option<Ledger>;
    ledgers(page: Page) -> Vec<Ledger>;
    balance(id: &str) -> Option<Balance>;
    balance_by_indicator(indicator: &str, currency: &str) -> Option<Balance>;
    balances(page: Page) -> Vec<Balance>;
    find_ledgers(query: &Query) -> Found<Ledger>;
    find_balances(query: &Query) -> Found<Balance>;
    find_transactions(query: &Query) -> Found<Transaction>;
    find_identities(query: &Query) -> Found<Identity>;
    find_monitors(query: &Query) -> Found<Monitor>;
    transactions_of_balance(balance_id: &str) -> Vec<Transaction>;
    queued_of_balance(balance_id: &str) -> Vec<Transaction>;
    settled_sum(balance_id: &str, from: &str, until: &str, debits: bool) -> BigInt;
    settled_minutes(balance_id: &str, from: &str, until: &str, debits: bool) -> Vec<Minute>;
    latest_snapshot(balance_id: &str, before: Option<&str>) -> Option<BalanceSnapshot>;
    snapshots(page: Page) -> Vec<BalanceSnapshot>;
    balance_ids_after(after: &str, limit: u32) -> Vec<String>;
    settled_between(balance_id: &str, from: &str, to: &str, limit: u32) -> Vec<Transaction>;
    identity(id: &str) -> Option<Identity>;
    identity_has_balances(id: &str) -> bool;
    transaction(id: &str) -> Option<Transaction>;
    transaction_by_reference(reference: &str) -> Option<Transaction>;
    existing_references(references: &[String]) -> Vec<String>;
    transactions(page: Page) -> Vec<Transaction>;
    children(parent: &str) -> Vec<Transaction>;
    members(group: &str) -> Vec<Transaction>;
    monitor(id: &str) -> Option<Monitor>;
    monitors(page: Page) -> Vec<Monitor>;
    monitors_of_balance(balance_id: &str) -> Vec<Monitor>;
    monitors_of_balances(balance_ids: &[String]) -> Vec<Monitor>;
    rules_of_ledger(ledger_id: &str) -> Vec<Monitor>;
    rule_states(balance_ids: &[String]) -> Vec<RuleState>;
    event(id: &str) -> Option<Event>;
    events(filter: &EventFilter, page: Page) -> Vec<Event>;
    attempts(event_id: &str) -> Vec<Attempt>;
    events_after(after_sequence: i64, limit: u32) -> Vec<Event>;
    pending_events() -> u64;
    count_events(filter: &EventFilter) -> u64;
    scheduled_due(now: &str) -> bool;
    latest_transaction_stamp() -> Option<String>;
    queued_transaction_ids(limit: u32, now: &str) -> Vec<String>;
    holds_due(now: &str, expired: bool, limit: u32) -> Vec<String>;
    api_key_by_hash(key_hash: &str) -> Option<ApiKey>;
    api_key(id: &str) -> Option<ApiKey>;
    api_keys(owner: Option<&str>, page: Page) -> Vec<ApiKey>;
    endpoint(id: &str) -> Option<Endpoint>;
    endpoints(filter: &EndpointFilter, page: Page) -> Vec<Endpoint>;
    endpoint_deliveries(endpoint_id: &str, status: Option<Delivery>, page: Page) -> Vec<EndpointDelivery>;
    endpoint_delivery(endpoint_id: &str, event_id: &str) -> Option<EndpointDelivery>;
    endpoint_retry_due(id: &str, now: i64) -> bool;
    endpoint_attempts(endpoint_id: &str, event_id: &str) -> Vec<Attempt>;
    last_event_sequence() -> i64;
    searchable(collection: Collection, ids: &[String]) -> Vec<(i64, Searchable)>;
    search_queue(limit: u32) -> Vec<(i64, String, String)>;
    search_queued() -> bool;
    collection_size(collection: Collection) -> u64;
}

delegate! { writes:
    lock_balances(sorted_ids: &[String]) -> Vec<Balance>;
    insert_ledger(ledger: &Ledger) -> ();
    update_ledger(ledger: &Ledger) -> ();
    insert_balance(balance: &Balance) -> ();
    set_balance_identity(balance_id: &str, identity_id: &str) -> ();
    insert_identity(identity: &Identity) -> ();
    update_identity(identity: &Identity) -> ();
    delete_identity(id: &str) -> ();
    insert_indicator(balance: &Balance) -> bool;
    delete_balance(id: &str) -> ();
    save_balance_totals(balance: &Balance) -> ();
    insert_transaction(transaction: &Transaction) -> ();
    set_transaction_status(id: &str, status: Status) -> ();
    insert_snapshot(snapshot: &BalanceSnapshot) -> ();
    set_transaction_meta_data(id: &str, meta_data: &Map<String, serde_json::Value>) -> ();
    set_balance_meta_data(id: &str, meta_data: &Map<String, serde_json::Value>) -> ();
    queued_transactions(limit: u32, now: &str, except: &[String]) -> Vec<Transaction>;
    queued_transaction(id: &str, now: &str) -> Option<Transaction>;
    insert_monitor(monitor: &Monitor) -> ();
    update_monitor(monitor: &Monitor) -> ();
    save_monitor_state(monitor: &Monitor) -> ();
    delete_monitor(id: &str) -> ();
    share_rules_of_ledgers(ledger_ids: &[String]) -> Vec<Monitor>;
    insert_rule(rule: &Monitor) -> ();
    update_rule(rule: &Monitor, keep_windows: bool) -> ();
    delete_rule(id: &str) -> ();
    save_rule_state(state: &RuleState) -> ();
    mark_rule_states(balance_id: &str) -> ();
    save_checkpoint_chunk(balance_id: &str, chunk: &CheckpointLog) -> ();
    checkpoint_chunk_after(balance_id: &str, version: i64) -> Option<CheckpointLog>;
    prune_checkpoint_chunks(balance_id: &str, through_version: i64) -> ();
    insert_event(event: &Event) -> ();
    claim_due_events(now_ms: i64, lease_until_ms: i64, limit: u32) -> Vec<Event>;
    record_attempt(attempt: &Attempt, after: &AfterAttempt) -> ();
    redeliver_event(id: &str, now_ms: i64) -> bool;
    lease_stream(stream: &str, owner: &str, now_ms: i64, until_ms: i64) -> Option<i64>;
    advance_stream(stream: &str, owner: &str, sequence: i64) -> bool;
    insert_api_key(key: &ApiKey) -> ();
    revoke_api_key(id: &str, at: &str) -> ();
    redeliver_failed(now_ms: i64) -> u64;
    insert_endpoint(endpoint: &Endpoint) -> ();
    update_endpoint(endpoint: &Endpoint) -> ();
    delete_endpoint(id: &str) -> ();
    set_stream_cursor(stream: &str, sequence: i64) -> ();
    insert_endpoint_delivery(delivery: &EndpointDelivery) -> ();
    record_endpoint_run(id: &str, at: &str, success: bool) -> ();
    claim_endpoint_retries(endpoint_id: &str, now_ms: i64, lease_until_ms: i64, limit: u32) -> Vec<EndpointDelivery>;
    record_endpoint_attempt(attempt: &Attempt, after: &AfterAttempt) -> ();
    redeliver_to_endpoint(endpoint_id: &str, event: &Event, now_ms: i64) -> ();
    index_terms(collection: Collection, position: i64, terms: &[String]) -> ();
    drop_search_queue(positions: &[i64]) -> ();
    reset_search_index() -> ();
}
