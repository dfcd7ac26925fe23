//! One batch, inside one database transaction:
//! 1. plan: resolve every command's balances (creating indicator balances on first use; a monitor
//!    command names the balances its monitor watches, so it takes their locks too);
//! 2. lock: take every touched balance and its monitors from the engine's `BalanceCache` where it
//!    keeps one; load the rest once, in id order (a fixed order cannot deadlock), then their
//!    monitors; and, in one query, find which of the batch's references are already taken;
//! 3. apply: run the commands in arrival order against the in-memory balances, writing each
//!    transaction row as it is accepted (so later commands in the batch see earlier ones);
//!    After every movement, the monitors of both balances are evaluated against the balances as
//!    they stand right then (`monitoring.rs`), and the resulting events go to the outbox;
//! 4. flush: remove the indicators this batch created that no accepted transaction names, then
//!    write each changed balance and the state (never the definition) of each changed monitor once.
//!
//! A command refused by a rule returns its `DomainError` and has changed nothing: every check runs
//! before the first mutation. Storage errors abort the whole batch (the caller rolls back).

use super::balance_cache::{BalanceCache, Entry};
use super::command::{Command, InflightAction, NewTransaction, Outcome};
use crate::domain::api_key::{hash_secret, ApiKey};
use crate::domain::balance::Balance;
use crate::domain::error::{DomainError, Resource};
use crate::domain::event::EventKind;
use crate::domain::ledger::{Ledger, GENERAL_LEDGER_ID};
use crate::domain::monitor::Monitor;
use crate::domain::transaction::{apply_movement, first_movement, resolve_amount, Movement, Status, Transaction};
use crate::store::{StoreError, StoreResult, Writes};
use num_bigint::BigInt;
use std::collections::{BTreeSet, HashMap};

pub type CommandResult = Result<Outcome, DomainError>;

/// What the batch needs to know beyond its commands.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// A server-wide webhook URL is set: transaction lifecycle events are recorded, and monitor
    /// events without a `call_back_url` have somewhere to go.
    pub webhook_url_configured: bool,
}

pub struct BatchOutput {
    pub results: Vec<CommandResult>,
    /// Events written that are waiting for delivery.
    pub events_to_deliver: usize,
    /// Monitor evaluations and triggers in this batch (counted once it commits).
    pub monitor_evaluations: u64,
    pub monitor_triggers: u64,
    /// Every balance the batch touched with its monitors, as they stand after it (for the cache).
    pub touched: Vec<Entry>,
    /// Balances whose monitors a command changed: a cached entry of theirs is stale unless this
    /// batch loaded the balance and returns it in `touched`.
    pub monitors_evicted: BTreeSet<String>,
}

pub fn apply_batch(
    w: &mut dyn Writes,
    commands: &[Command],
    config: BatchConfig,
    cache: &mut BalanceCache,
) -> StoreResult<BatchOutput> {
    let clock = std::time::SystemTime::now();
    let now = humantime::format_rfc3339_micros(clock).to_string();
    let now_ms = clock.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let mut plans = Vec::with_capacity(commands.len());
    let mut indicators = Indicators::default();
    for command in commands {
        plans.push(plan(w, command, &mut indicators, &now)?);
    }
    let touched: BTreeSet<String> =
        plans.iter().filter_map(|p| p.as_ref().ok()).flat_map(|p| p.balances.iter().cloned()).collect();
    let touched: Vec<String> = touched.into_iter().collect();
    let mut balances: HashMap<String, Balance> = HashMap::with_capacity(touched.len());
    let mut monitors: HashMap<String, Vec<Monitor>> = HashMap::with_capacity(touched.len());
    let mut uncached = Vec::new();
    for id in &touched {
        match cache.take(id) {
            Some(entry) => {
                #[cfg(debug_assertions)]
                assert_cached_entry_is_current(w, &entry)?;
                balances.insert(id.clone(), entry.balance);
                monitors.insert(id.clone(), entry.monitors);
            }
            None => {
                uncached.push(id.clone());
                monitors.insert(id.clone(), Vec::new());
            }
        };
    }
    // Lock the balances first: their monitors are read under those locks, so a monitor's state
    // cannot be changed by another writer between this batch's read and its write. (`uncached`
    // keeps `touched`'s id order.)
    for balance in w.lock_balances(&uncached)? {
        balances.insert(balance.id.clone(), balance);
    }
    for monitor in w.monitors_of_balances(&uncached)? {
        monitors.get_mut(&monitor.balance_id).expect("monitors are of the balances asked for").push(monitor);
    }
    let references: Vec<String> = commands
        .iter()
        .filter_map(|c| match c {
            Command::CreateTransaction(new) => Some(new.reference.clone()),
            _ => None,
        })
        .collect();
    let taken_references = w.existing_references(&references)?.into_iter().collect();
    let mut batch = Batch {
        taken_references,
        balances,
        changed: BTreeSet::new(),
        monitors,
        changed_monitors: BTreeSet::new(),
        monitors_evicted: BTreeSet::new(),
        monitor_order_unknown: BTreeSet::new(),
        now,
        now_ms,
        config,
        events_to_deliver: 0,
        monitor_evaluations: 0,
        monitor_triggers: 0,
    };
    let mut results = Vec::with_capacity(commands.len());
    for (command, plan) in commands.iter().zip(plans) {
        let result = match plan {
            Ok(plan) => batch.apply(w, command, plan)?,
            Err(refused) => Err(refused),
        };
        results.push(result);
    }
    // An indicator created for this batch that no accepted transaction names goes again: a
    // refused request changes nothing.
    let named: BTreeSet<&str> = results
        .iter()
        .filter_map(|r| match r {
            Ok(Outcome::Transaction(t)) => Some([t.source_balance_id.as_str(), t.destination_balance_id.as_str()]),
            _ => None,
        })
        .flatten()
        .collect();
    for id in indicators.created.iter().filter(|id| !named.contains(id.as_str())) {
        assert!(!batch.changed.contains(id), "an indicator no transaction names has not moved: {id}");
        w.delete_balance(id)?;
        batch.balances.remove(id);
    }
    for id in &batch.changed {
        w.save_balance_totals(&batch.balances[id])?;
    }
    for monitor in batch.monitors.values().flatten() {
        if batch.changed_monitors.contains(&monitor.id) {
            w.save_monitor_state(monitor)?;
        }
    }
    // Only balances that exist go back to the cache: ids a client made up take no memory.
    let Batch { mut monitors, balances, monitors_evicted, monitor_order_unknown, .. } = batch;
    let touched = balances
        .into_values()
        .filter(|balance| !monitor_order_unknown.contains(&balance.id))
        .map(|balance| Entry { monitors: monitors.remove(&balance.id).unwrap_or_default(), balance })
        .collect();
    Ok(BatchOutput {
        results,
        events_to_deliver: batch.events_to_deliver,
        monitor_evaluations: batch.monitor_evaluations,
        monitor_triggers: batch.monitor_triggers,
        touched,
        monitors_evicted,
    })
}

/// Invariant C1 (`balance_cache.rs`): a cached entry equals what storage holds. Checked on every
/// cache hit in debug builds, so every test run compares the cache with storage; release builds
/// trust it and save the reads.
#[cfg(debug_assertions)]
fn assert_cached_entry_is_current(w: &mut dyn Writes, entry: &Entry) -> StoreResult<()> {
    let id = &entry.balance.id;
    assert_eq!(w.balance(id)?.as_ref(), Some(&entry.balance), "C1: the cached balance {id} equals its row");
    assert_eq!(w.monitors_of_balance(id)?, entry.monitors, "C1: the cached monitors of {id} equal storage's");
    Ok(())
}

/// What a command needs before it can be applied.
struct Plan {
    /// Every balance the command may move, by id.
    balances: Vec<String>,
    /// For new transactions: the balances `source` and `destination` resolved to.
    resolved: Option<(String, String)>,
}

/// The indicator balances a batch resolved, and which of them it created.
#[derive(Default)]
struct Indicators {
    /// (indicator, currency) → balance id.
    by_name: HashMap<(String, String), String>,
    /// Created by this batch (so not yet visible to anyone else), in creation order.
    created: Vec<String>,
}

fn plan(
    w: &mut dyn Writes,
    command: &Command,
    indicators: &mut Indicators,
    now: &str,
) -> StoreResult<Result<Plan, DomainError>> {
    let no_balances = Ok(Plan { balances: vec![], resolved: None });
    Ok(match command {
        Command::CreateLedger { .. }
        | Command::UpdateLedger { .. }
        | Command::CreateBalance { .. }
        | Command::RedeliverEvent { .. }
        | Command::CreateApiKey { .. }
        | Command::RevokeApiKey { .. } => no_balances,
        Command::CreateTransaction(new) => {
            let source = resolve_party(w, &new.source, &new.currency, indicators, now)?;
            let destination = resolve_party(w, &new.destination, &new.currency, indicators, now)?;
            if source == destination {
                Err(DomainError::validation(
                    Resource::Transaction,
                    "destination",
                    "source and destination must be different balances",
                ))
            } else {
                Ok(Plan { balances: vec![source.clone(), destination.clone()], resolved: Some((source, destination)) })
            }
        }
        Command::ApplyQueued(t) => {
            Ok(Plan { balances: vec![t.source_balance_id.clone(), t.destination_balance_id.clone()], resolved: None })
        }
        // A monitor command locks the balances its monitor watches, before and after: it then
        // waits for, and is waited for by, every batch evaluating that monitor on any process.
        Command::CreateMonitor(new) => Ok(Plan { balances: vec![new.balance_id.clone()], resolved: None }),
        Command::UpdateMonitor { id, monitor } => {
            let mut balances = vec![monitor.balance_id.clone()];
            balances.extend(w.monitor(id)?.map(|current| current.balance_id));
            Ok(Plan { balances, resolved: None })
        }
        Command::DeleteMonitor { id } => Ok(Plan {
            balances: w.monitor(id)?.map(|current| current.balance_id).into_iter().collect(),
            resolved: None,
        }),
        Command::FinishInflight { id, .. } | Command::Refund { id } => match w.transaction(id)? {
            Some(t) => Ok(Plan { balances: vec![t.source_balance_id, t.destination_balance_id], resolved: None }),
            None => Err(DomainError::not_found(Resource::Transaction, "transaction_id")),
        },
    })
}

/// A transaction's `source` or `destination`: a balance id, or an indicator (`@World`) whose
/// balance in this currency is created in the general ledger the first time it is used. Should
/// another process create it at the same moment, the insert waits for theirs and this batch uses
/// it. If every transaction naming a new indicator is refused, `apply_batch` removes it again.
fn resolve_party(
    w: &mut dyn Writes,
    party: &str,
    currency: &str,
    indicators: &mut Indicators,
    now: &str,
) -> StoreResult<String> {
    if !party.starts_with('@') {
        // A balance id: whether it exists and holds the currency is checked once it is locked.
        return Ok(party.to_string());
    }
    let key = (party.to_string(), currency.to_string());
    if let Some(id) = indicators.by_name.get(&key) {
        return Ok(id.clone());
    }
    let id = match w.balance_by_indicator(party, currency)? {
        Some(existing) => existing.id,
        None => {
            let mut indicator = Balance::new(new_id("bln"), GENERAL_LEDGER_ID.into(), currency.into(), now.into());
            indicator.indicator = party.into();
            if w.insert_indicator(&indicator)? {
                indicators.created.push(indicator.id.clone());
                indicator.id
            } else {
                // Another process created it first; its row is committed, so this read sees it.
                match w.balance_by_indicator(party, currency)? {
                    Some(theirs) => theirs.id,
                    None => {
                        return Err(StoreError::Transient(format!("indicator {party} in {currency} is being created")))
                    }
                }
            }
        }
    };
    indicators.by_name.insert(key, id.clone());
    Ok(id)
}

pub(super) struct Batch {
    /// References of new transactions already in storage or taken earlier in this batch.
    pub(super) taken_references: std::collections::HashSet<String>,
    pub(super) balances: HashMap<String, Balance>,
    /// Balances whose totals changed in this batch.
    pub(super) changed: BTreeSet<String>,
    /// The monitors of every balance this batch touches (an entry, maybe empty, per balance).
    pub(super) monitors: HashMap<String, Vec<Monitor>>,
    pub(super) changed_monitors: BTreeSet<String>,
    /// Balances whose monitors a command changed (see `BalanceCache::commit`).
    pub(super) monitors_evicted: BTreeSet<String>,
    /// Loaded balances whose list got a monitor moved in from another balance: the list is right
    /// for this batch, but its order may differ from storage's, so it is not cached (C1).
    pub(super) monitor_order_unknown: BTreeSet<String>,
    pub(super) now: String,
    pub(super) now_ms: i64,
    pub(super) config: BatchConfig,
    pub(super) events_to_deliver: usize,
    pub(super) monitor_evaluations: u64,
    pub(super) monitor_triggers: u64,
}

impl Batch {
    fn apply(&mut self, w: &mut dyn Writes, command: &Command, plan: Plan) -> StoreResult<CommandResult> {
        match command {
            Command::CreateLedger { name, meta_data } => {
                let ledger = Ledger {
                    id: new_id("ldg"),
                    name: name.clone(),
                    created_at: self.now.clone(),
                    meta_data: meta_data.clone(),
                };
                w.insert_ledger(&ledger)?;
                Ok(Ok(Outcome::Ledger(ledger)))
            }
            Command::UpdateLedger { id, name, meta_data } => {
                let Some(mut ledger) = w.ledger(id)? else {
                    return Ok(Err(DomainError::not_found(Resource::Ledger, "ledger_id")));
                };
                ledger.name = name.clone();
                if let Some(meta_data) = meta_data {
                    ledger.meta_data = meta_data.clone();
                }
                w.update_ledger(&ledger)?;
                Ok(Ok(Outcome::Ledger(ledger)))
            }
            Command::CreateBalance { ledger_id, currency, identity_id, meta_data } => {
                if w.ledger(ledger_id)?.is_none() {
                    return Ok(Err(DomainError::not_found(Resource::Ledger, "ledger_id")));
                }
                let mut balance = Balance::new(new_id("bln"), ledger_id.clone(), currency.clone(), self.now.clone());
                balance.identity_id = identity_id.clone();
                balance.meta_data = meta_data.clone();
                w.insert_balance(&balance)?;
                Ok(Ok(Outcome::Balance(balance)))
            }
            Command::CreateTransaction(new) => {
                let (source, destination) = plan.resolved.expect("a transaction's plan resolves its parties");
                self.create_transaction(w, new, source, destination)
            }
            Command::ApplyQueued(queued) => self.apply_queued(w, queued),
            Command::FinishInflight { id, action } => self.finish_inflight(w, id, action),
            Command::Refund { id } => self.refund(w, id),
            Command::CreateMonitor(new) => self.create_monitor(w, new),
            Command::UpdateMonitor { id, monitor } => self.update_monitor(w, id, monitor),
            Command::DeleteMonitor { id } => self.delete_monitor(w, id),
            Command::RedeliverEvent { id } => self.redeliver_event(w, id),
            Command::CreateApiKey { name, owner, scopes, expires_at } => {
                // 256 random bits from two v4 UUIDs (the OS's generator), hex-encoded.
                let secret = format!("keel_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
                let key = ApiKey {
                    id: new_id("key"),
                    name: name.clone(),
                    owner: owner.clone(),
                    scopes: scopes.clone(),
                    key_hash: hash_secret(&secret),
                    created_at: self.now.clone(),
                    expires_at: expires_at.clone(),
                    revoked_at: None,
                };
                w.insert_api_key(&key)?;
                Ok(Ok(Outcome::ApiKey { key, secret: Some(secret) }))
            }
            Command::RevokeApiKey { id } => {
                let Some(mut key) = w.api_key(id)? else {
                    return Ok(Err(DomainError::not_found(Resource::General, "api_key_id")));
                };
                if key.revoked_at.is_none() {
                    key.revoked_at = Some(self.now.clone());
                    w.revoke_api_key(id, &self.now)?;
                }
                Ok(Ok(Outcome::ApiKey { key, secret: None }))
            }
        }
    }

    fn create_transaction(
        &mut self,
        w: &mut dyn Writes,
        new: &NewTransaction,
        source: String,
        destination: String,
    ) -> StoreResult<CommandResult> {
        for (id, given, field) in [(&source, &new.source, "source"), (&destination, &new.destination, "destination")] {
            match self.balances.get(id) {
                None => {
                    let message = format!("{field} balance {given} not found");
                    return Ok(Err(DomainError::validation(Resource::Transaction, field, message)));
                }
                Some(b) if b.currency != new.currency => {
                    let message = format!("{field} balance {given} holds {}, not {}", b.currency, new.currency);
                    return Ok(Err(DomainError::validation(Resource::Transaction, "currency", message)));
                }
                Some(_) => {}
            }
        }
        if self.taken_references.contains(&new.reference) {
            return Ok(Err(DomainError::DuplicateReference(new.reference.clone())));
        }
        let mut transaction = Transaction {
            id: new_id("txn"),
            parent: None,
            precise_amount: new.precise_amount.clone(),
            precision: new.precision,
            reference: new.reference.clone(),
            description: new.description.clone(),
            currency: new.currency.clone(),
            source: new.source.clone(),
            destination: new.destination.clone(),
            source_balance_id: source,
            destination_balance_id: destination,
            status: Status::Queued,
            allow_overdraft: new.allow_overdraft,
            inflight: new.inflight,
            created_at: self.now.clone(),
            meta_data: new.meta_data.clone(),
        };
        if new.skip_queue {
            let (movement, status) = first_movement(new.inflight);
            if let Err(refused) = self.move_money(&transaction, movement, &transaction.precise_amount) {
                return Ok(Err(refused));
            }
            transaction.status = status;
            self.after_movement(w, &transaction)?;
        }
        w.insert_transaction(&transaction)?;
        self.taken_references.insert(transaction.reference.clone());
        self.transaction_event(w, &transaction)?;
        Ok(Ok(Outcome::Transaction(transaction)))
    }

    fn apply_queued(&mut self, w: &mut dyn Writes, queued: &Transaction) -> StoreResult<CommandResult> {
        let mut transaction = queued.clone();
        let (movement, status) = first_movement(queued.inflight);
        transaction.status = match self.move_money(queued, movement, &queued.precise_amount) {
            Ok(()) => status,
            Err(refused) => {
                tracing::info!(transaction_id = %queued.id, reason = %refused, "queued transaction rejected");
                Status::Rejected
            }
        };
        w.set_transaction_status(&transaction.id, transaction.status)?;
        if transaction.status != Status::Rejected {
            self.after_movement(w, &transaction)?;
        }
        self.transaction_event(w, &transaction)?;
        Ok(Ok(Outcome::Transaction(transaction)))
    }

    fn finish_inflight(&mut self, w: &mut dyn Writes, id: &str, action: &InflightAction) -> StoreResult<CommandResult> {
        let Some(parent) = w.transaction(id)? else {
            return Ok(Err(DomainError::not_found(Resource::Transaction, "transaction_id")));
        };
        match parent.status {
            Status::Inflight => {}
            Status::Commit => return Ok(Err(DomainError::AlreadyCommitted)),
            Status::Void => return Ok(Err(DomainError::AlreadyVoided)),
            _ => return Ok(Err(DomainError::NotInflight)),
        }
        let committed: BigInt =
            w.children(&parent.id)?.iter().filter(|c| c.status == Status::Applied).map(|c| &c.precise_amount).sum();
        let remaining = &parent.precise_amount - committed;
        // Invariant I1: an INFLIGHT transaction always has something left to commit or void.
        assert!(remaining > BigInt::ZERO, "invariant I1 violated: inflight {} has nothing left", parent.id);
        let (amount, movement, child_status, parent_status) = match action {
            InflightAction::Commit { amount, precise_amount } => {
                let amount = if amount.is_none() && precise_amount.is_none() {
                    remaining.clone()
                } else {
                    match resolve_amount(amount.as_deref(), precise_amount.as_deref(), parent.precision) {
                        Ok(amount) => amount,
                        Err(refused) => return Ok(Err(refused)),
                    }
                };
                if amount > remaining {
                    return Ok(Err(DomainError::CommitAmountExceeded(parent.precision.to_major(&remaining))));
                }
                let parent_status = if amount == remaining { Status::Commit } else { Status::Inflight };
                (amount, Movement::CommitHold, Status::Applied, parent_status)
            }
            InflightAction::Void => (remaining, Movement::ReleaseHold, Status::Void, Status::Void),
        };
        let child = self.child_of(&parent, amount, child_status, false);
        self.move_money(&parent, movement, &child.precise_amount)
            .expect("committing or releasing a hold never needs funds");
        w.insert_transaction(&child)?;
        if parent_status != parent.status {
            w.set_transaction_status(&parent.id, parent_status)?;
        }
        self.after_movement(w, &child)?;
        self.transaction_event(w, &child)?;
        Ok(Ok(Outcome::Transaction(child)))
    }

    fn refund(&mut self, w: &mut dyn Writes, id: &str) -> StoreResult<CommandResult> {
        let Some(original) = w.transaction(id)? else {
            return Ok(Err(DomainError::not_found(Resource::Transaction, "transaction_id")));
        };
        if original.status != Status::Applied {
            return Ok(Err(DomainError::validation(
                Resource::Transaction,
                "transaction_id",
                format!("only APPLIED transactions can be refunded; this one is {}", original.status.as_str()),
            )));
        }
        // An APPLIED transaction's only children are its refunds.
        if !w.children(&original.id)?.is_empty() {
            return Ok(Err(DomainError::validation(
                Resource::Transaction,
                "transaction_id",
                "transaction has already been refunded",
            )));
        }
        let refund = self.child_of(&original, original.precise_amount.clone(), Status::Applied, true);
        if let Err(refused) = self.move_money(&refund, Movement::Transfer, &refund.precise_amount) {
            return Ok(Err(refused));
        }
        w.insert_transaction(&refund)?;
        self.after_movement(w, &refund)?;
        self.transaction_event(w, &refund)?;
        Ok(Ok(Outcome::Transaction(refund)))
    }

    /// A commit, void or refund of `parent`. A refund swaps source and destination.
    fn child_of(&self, parent: &Transaction, amount: BigInt, status: Status, reversed: bool) -> Transaction {
        let mut child = parent.clone();
        child.id = new_id("txn");
        child.parent = Some(parent.id.clone());
        child.precise_amount = amount;
        child.reference = new_id("ref");
        child.status = status;
        child.inflight = false;
        child.created_at = self.now.clone();
        if reversed {
            std::mem::swap(&mut child.source, &mut child.destination);
            std::mem::swap(&mut child.source_balance_id, &mut child.destination_balance_id);
        }
        child
    }

    /// Moves `amount` between `t`'s balances (as loaded in step 2), all or nothing.
    fn move_money(&mut self, t: &Transaction, movement: Movement, amount: &BigInt) -> Result<(), DomainError> {
        let (source, destination) = (&t.source_balance_id, &t.destination_balance_id);
        // Invariant T1: a transaction moves money between two different balances (`plan` refuses
        // one whose source and destination resolve to the same balance).
        assert_ne!(source, destination, "T1: transaction {} moves money between two balances", t.id);
        let [Some(source), Some(destination)] = self.balances.get_disjoint_mut([source, destination]) else {
            panic!("a planned balance was loaded: transaction {}", t.id);
        };
        let result = apply_movement(movement, source, destination, amount, t.allow_overdraft);
        if result.is_ok() {
            self.changed.insert(t.source_balance_id.clone());
            self.changed.insert(t.destination_balance_id.clone());
        }
        result
    }
}

/// A new id: a UUIDv7, which starts with the time, so consecutive rows land beside each other in
/// every index keyed by id instead of on a random page each (fewer pages written per commit).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7())
}

/// The lifecycle event a transaction's status calls for.
pub(super) fn lifecycle_event(status: Status) -> EventKind {
    match status {
        Status::Queued => EventKind::TransactionQueued,
        Status::Applied | Status::Commit => EventKind::TransactionApplied,
        Status::Inflight => EventKind::TransactionInflight,
        Status::Void => EventKind::TransactionVoid,
        Status::Rejected => EventKind::TransactionRejected,
    }
}
