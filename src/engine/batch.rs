//! The batch mechanics, in one place. One batch runs inside one database transaction:
//! 1. plan: resolve every command's balances (creating indicator balances on first use; a monitor
//!    command names the balances its monitor watches, so it takes their locks too);
//! 2. lock: take every touched balance and its monitors from the engine's `BalanceCache` where it
//!    keeps one; load the rest once, in id order (a fixed order cannot deadlock), then their
//!    monitors; then the balances their automatic transfers move (`actions.rs`); in one query,
//!    find which of the batch's references are already taken; and move every velocity window to
//!    the batch's instant (`windows.rs`);
//! 3. apply: run the commands in arrival order against the in-memory balances, each by the rules
//!    of its resource (`ledgers.rs`, `transactions.rs`, `monitors.rs`, `api_keys.rs`), writing
//!    each row as it is accepted (so later commands in the batch see earlier ones). Every movement
//!    passes the guards of both balances first; after it, their monitors are evaluated against the
//!    balances as they stand right then, and the resulting events go to the outbox; once a command
//!    is done, the automatic transfers it set off are made;
//! 4. flush: remove the indicators this batch created that no accepted transaction names, then
//!    write each changed balance (with a checkpoint, if a velocity window watches it), and the state
//!    (never the definition) of each changed monitor once.
//!
//! Commit and answer are the caller's (`mod.rs`). A command refused by a rule returns its
//! `DomainError` and has changed nothing: every check runs before the first mutation. Storage
//! errors abort the whole batch (the caller rolls back).
//!
//! Postconditions, asserted on every batch: E1, one result per command, in order; E2, every
//! balance whose totals changed was loaded and locked by this batch; E3, an indicator no accepted
//! transaction names has not moved.

use super::balance_cache::{BalanceCache, Entry};
use super::clock::Clock;
use super::command::{Command, NewBulk, NewSplit, NewTransaction, Outcome};
use super::failure::{split, Failure, Ruled};
use crate::domain::balance::Balance;
use crate::domain::error::{DomainError, Resource};
use crate::domain::ledger::GENERAL_LEDGER_ID;
use crate::domain::monitor::{Monitor, RuleState};
use crate::domain::split::SplitSide;
use crate::store::{ErrorKind, StoreError, StoreResult, Writes};
// The engine's maps are keyed by balance ids and references, thousands per batch on the one
// engine thread: foldhash hashes them several times faster than std's SipHash, and its keys are
// still seeded per process, so a client cannot choose ids that collide.
use crate::domain::identity::TokenKey;
use foldhash::{HashMap, HashMapExt, HashSet};
use std::collections::BTreeSet;

pub type CommandResult = Result<Outcome, DomainError>;

/// What the batch needs to know beyond its commands.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// A server-wide webhook URL is set: transaction lifecycle events are recorded, and monitor
    /// events without a `call_back_url` have somewhere to go.
    pub webhook_url_configured: bool,
    /// `--event-feed`: the events a server-wide URL would receive are recorded without one too
    /// (as `no_target`), for `GET /events/feed`.
    pub record_every_event: bool,
    /// Some webhook endpoint (`/webhooks`) exists, here or in another process: every event is
    /// recorded for the endpoints to read from the outbox.
    pub endpoints_exist: bool,
    /// The instant each batch is stamped with.
    pub clock: Clock,
    /// The key identities' fields are tokenized with (`--tokenization-secret`), if set.
    pub token_key: Option<&'static TokenKey>,
}

impl BatchConfig {
    /// The server-wide events (`transaction.*`, `ledger.created`, `balance.created`, bulk) are
    /// recorded: someone takes them, by webhook or from the feed.
    pub fn records_server_events(&self) -> bool {
        self.webhook_url_configured || self.record_every_event || self.endpoints_exist
    }
}

pub struct BatchOutput {
    pub results: Vec<CommandResult>,
    /// Events written that are waiting for delivery.
    pub events_to_deliver: usize,
    /// Events written, whatever their delivery (the event feed's long polls wake on them).
    pub events_written: usize,
    /// Monitor evaluations and triggers in this batch (counted once it commits).
    pub monitor_evaluations: u64,
    pub monitor_triggers: u64,
    /// Every balance the batch touched with its monitors, as they stand after it (for the cache).
    pub touched: Vec<Entry>,
    /// Balances whose monitors a command changed: a cached entry of theirs is stale unless this
    /// batch loaded the balance and returns it in `touched`.
    pub monitors_evicted: BTreeSet<String>,
    /// The ledger-wide rules commands changed, in order: the cached entries of balances this batch
    /// did not load hold instances of them as they were.
    pub rules_changed: Vec<RuleChange>,
}

/// A change to a ledger-wide rule, as the engine's cache must follow it.
#[derive(Debug, Clone)]
pub enum RuleChange {
    /// A new rule without a window: a fresh instance of it on each balance it covers is what
    /// storage would give (nothing is stored for it yet).
    Created(Box<Monitor>),
    Deleted(String),
    /// Anything else (an update, a rule with a window): the cache cannot tell what storage holds.
    Other,
}

/// Plans, locks, applies and flushes `commands` inside the caller's database transaction.
pub fn apply_batch(
    w: &mut dyn Writes,
    commands: &[Command],
    config: BatchConfig,
    cache: &mut BalanceCache,
) -> StoreResult<BatchOutput> {
    // Indicator balances the plans create are stamped now; the batch's own changes once it holds
    // its balances (`Batch::lock`).
    let (now, _) = config.clock.now();
    let mut indicators = Indicators::default();
    let plans = commands.iter().map(|c| plan(w, c, &mut indicators, &now)).collect::<StoreResult<Vec<_>>>()?;
    let mut batch = Batch::lock(w, commands, &plans, cache, config)?;
    let mut results = Vec::with_capacity(commands.len());
    for (command, plan) in commands.iter().zip(plans) {
        results.push(match plan {
            Ok(plan) => split(batch.apply(w, command, plan))?,
            Err(refused) => Err(refused),
        });
    }
    assert_eq!(results.len(), commands.len(), "E1: one result per command, in order");
    batch.flush(w, &results, &indicators)?;
    Ok(batch.finish(results))
}

/// Invariant C1 (`balance_cache.rs`): a cached entry equals what storage holds. Checked on every
/// cache hit in debug builds, so every test run compares the cache with storage; release builds
/// trust it and save the reads.
#[cfg(debug_assertions)]
fn assert_cached_entry_is_current(w: &mut dyn Writes, entry: &Entry, now_ms: i64) -> StoreResult<()> {
    let id = &entry.balance.id;
    assert_eq!(w.balance(id)?.as_ref(), Some(&entry.balance), "C1: the cached balance {id} equals its row");
    let mut stored = w.monitors_of_balance(id)?;
    let instances = rule_instances(w, &[&entry.balance], now_ms)?;
    assert!(instances.iter().all(|(_, fresh)| !fresh), "C1: a cached rule instance's window is stored");
    stored.extend(instances.into_iter().map(|(instance, _)| instance));
    assert_eq!(stored, entry.monitors, "C1: the cached monitors of {id} equal storage's");
    Ok(())
}

/// The instances of the ledger-wide rules that cover these balances (G3), each with its balance's
/// stored state, in the balances' order and then the rules'. `true` beside an instance: its window
/// starts now, so its state is to be stored (a later batch must measure from the same start).
pub(super) fn rule_instances(
    w: &mut dyn Writes,
    balances: &[&Balance],
    now_ms: i64,
) -> StoreResult<Vec<(Monitor, bool)>> {
    let ledgers: BTreeSet<String> = balances.iter().map(|b| b.ledger_id.clone()).collect();
    if ledgers.is_empty() {
        return Ok(Vec::new());
    }
    let rules = w.share_rules_of_ledgers(&ledgers.into_iter().collect::<Vec<_>>())?;
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    // Only balances some rule acted on have states: the others (most, under a quiet rule) cost no read.
    let ids: Vec<String> = balances.iter().filter(|b| b.has_rule_states).map(|b| b.id.clone()).collect();
    let states: HashMap<(String, String), RuleState> = match ids.is_empty() {
        true => HashMap::new(),
        false => w.rule_states(&ids)?.into_iter().map(|s| ((s.balance_id.clone(), s.monitor_id.clone()), s)).collect(),
    };
    let mut instances = Vec::new();
    for balance in balances {
        for rule in rules.iter().filter(|r| r.scope.as_ref().is_some_and(|s| s.covers(balance))) {
            let state = states.get(&(balance.id.clone(), rule.id.clone()));
            let fresh = rule.condition.window.is_some() && state.is_none_or(|s| s.velocity.is_none());
            instances.push((rule.instance_on(balance, state, now_ms), fresh));
        }
    }
    Ok(instances)
}

/// Takes `ids` (and their monitors) from the cache where it keeps them, and loads the rest from
/// storage under their locks, in id order (`load_monitors` adds their monitors). An id with no
/// balance gets an empty list of monitors, so it is not asked for again. Returns the ids loaded
/// from storage.
fn take_and_lock<'a>(
    w: &mut dyn Writes,
    ids: impl IntoIterator<Item = &'a String>,
    cache: &mut BalanceCache,
    balances: &mut HashMap<String, Balance>,
    monitors: &mut HashMap<String, Vec<Monitor>>,
    // Only the debug check of a cached entry reads the clock.
    #[cfg_attr(not(debug_assertions), allow(unused_variables))] clock: Clock,
) -> StoreResult<Vec<String>> {
    let mut uncached = Vec::new();
    for id in ids {
        match cache.take(id) {
            Some(entry) => {
                #[cfg(debug_assertions)]
                assert_cached_entry_is_current(w, &entry, clock.now().1)?;
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
    // keeps `ids`' order.)
    for balance in w.lock_balances(&uncached)? {
        balances.insert(balance.id.clone(), balance);
    }
    Ok(uncached)
}

/// The monitors of the balances `take_and_lock` loaded from storage: their own, then the
/// instances of the rules that cover them. Returns the rule instances whose state is to be stored
/// (a window starting now).
fn load_monitors(
    w: &mut dyn Writes,
    uncached: &[String],
    balances: &HashMap<String, Balance>,
    monitors: &mut HashMap<String, Vec<Monitor>>,
    now_ms: i64,
) -> StoreResult<Vec<(String, String)>> {
    for monitor in w.monitors_of_balances(uncached)? {
        monitors.get_mut(&monitor.balance_id).expect("monitors are of the balances asked for").push(monitor);
    }
    let loaded: Vec<&Balance> = uncached.iter().filter_map(|id| balances.get(id)).collect();
    let mut fresh = Vec::new();
    for (instance, starts_now) in rule_instances(w, &loaded, now_ms)? {
        if starts_now {
            fresh.push((instance.id.clone(), instance.balance_id.clone()));
        }
        monitors.get_mut(&instance.balance_id).expect("rules cover the balances asked for").push(instance);
    }
    Ok(fresh)
}

/// How many automatic transfers may follow one another from one movement (an action's transfer
/// may trigger a monitor with an action of its own).
pub(super) const MAX_ACTION_CHAIN: usize = 3;

/// What a command needs before it can be applied.
pub(super) struct Plan {
    /// Every balance the command may move, by id.
    pub(super) balances: Vec<String>,
    /// For new transactions: the balances `source` and `destination` resolved to.
    pub(super) resolved: Option<(String, String)>,
    /// For splits and bulk requests: the balances each leg's `source` and `destination` resolved
    /// to, in leg order; for a commit, void or refund, those of each transaction it names (one, or
    /// a split's legs or a bulk request's items).
    pub(super) legs: Vec<(String, String)>,
}

/// The indicator balances a batch resolved, and which of them it created.
#[derive(Default)]
pub(super) struct Indicators {
    /// (indicator, currency) → balance id.
    by_name: HashMap<(String, String), String>,
    /// Created by this batch (so not yet visible to anyone else), in creation order.
    pub(super) created: Vec<String>,
}

pub(super) fn plan(
    w: &mut dyn Writes,
    command: &Command,
    indicators: &mut Indicators,
    now: &str,
) -> StoreResult<Result<Plan, DomainError>> {
    let no_balances = Ok(Plan { balances: vec![], resolved: None, legs: vec![] });
    Ok(match command {
        Command::CreateLedger { .. }
        | Command::UpdateLedger { .. }
        | Command::CreateBalance { .. }
        | Command::RedeliverEvent { .. }
        | Command::CreateApiKey { .. }
        | Command::RevokeApiKey { .. }
        | Command::CreateEndpoint(_)
        | Command::UpdateEndpoint { .. }
        | Command::DeleteEndpoint { .. }
        | Command::RedeliverToEndpoint { .. }
        | Command::CreateIdentity(_)
        | Command::UpdateIdentity(_)
        | Command::DeleteIdentity { .. }
        | Command::TokenizeIdentity { .. }
        | Command::RunQueue => no_balances,
        // Written under the balance's lock, into the copy the batch holds (C1).
        Command::SetBalanceIdentity { balance_id, .. } => {
            Ok(Plan { balances: vec![balance_id.clone()], resolved: None, legs: vec![] })
        }
        // Locked: a transaction commits before the snapshot is read, or after (then adjusting it, H1).
        Command::TakeSnapshots { balance_ids: ids } => Ok(Plan { balances: ids.clone(), resolved: None, legs: vec![] }),
        Command::DryRun(_) => unreachable!("a dry run is rehearsed on its own (`Core::execute`), never batched"),
        // A balance's metadata is written under its lock, into the copy the batch holds (C1).
        Command::UpdateMetadata { id, .. } if id.starts_with("bln_") => {
            Ok(Plan { balances: vec![id.clone()], resolved: None, legs: vec![] })
        }
        Command::UpdateMetadata { .. } => no_balances,
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
                Ok(Plan {
                    balances: vec![source.clone(), destination.clone()],
                    resolved: Some((source, destination)),
                    legs: vec![],
                })
            }
        }
        Command::CreateSplit(split) => plan_split(w, split, indicators, now)?,
        Command::CreateBulk(bulk) => plan_bulk(w, bulk, indicators, now)?,
        Command::ApplyQueued(t) => Ok(Plan {
            balances: vec![t.source_balance_id.clone(), t.destination_balance_id.clone()],
            resolved: None,
            legs: vec![],
        }),
        Command::CreateMonitor(_) | Command::UpdateMonitor { .. } | Command::DeleteMonitor { .. } => {
            Ok(Plan { balances: monitor_balances(w, command)?, resolved: None, legs: vec![] })
        }
        // One transaction's two balances, or every balance a split's legs or a bulk request's items
        // name: their commits, voids and refunds move between the same two, whoever adds them.
        Command::FinishInflight { id, .. } | Command::Refund { id, .. } => {
            let named = match w.transaction(id)? {
                Some(t) => vec![t],
                None => w.members(id)?,
            };
            let legs: Vec<(String, String)> =
                named.into_iter().map(|t| (t.source_balance_id, t.destination_balance_id)).collect();
            match legs.is_empty() {
                true => Err(DomainError::not_found(Resource::Transaction, "transaction_id")),
                false => Ok(Plan { balances: balances_of(&legs), resolved: None, legs }),
            }
        }
    })
}

/// The balances a monitor command locks: those its monitor watches, before and after (it then
/// waits for, and is waited for by, every batch evaluating that monitor on any process), and an
/// automatic transfer's other balance (it must exist, in the same currency). A ledger-wide rule
/// watches no one balance: its row lock stands in for theirs (`Writes::update_rule`).
fn monitor_balances(w: &mut dyn Writes, command: &Command) -> StoreResult<Vec<String>> {
    let mut balances = Vec::new();
    match command {
        Command::CreateMonitor(new) => {
            balances.push(new.balance_id.clone());
            balances.extend(new.transfer.as_ref().map(|t| t.counterparty.clone()));
        }
        Command::UpdateMonitor { id, monitor } => {
            balances.push(monitor.balance_id.clone());
            balances.extend(monitor.transfer.as_ref().map(|t| t.counterparty.clone()));
            balances.extend(w.monitor(id)?.map(|current| current.balance_id));
        }
        Command::DeleteMonitor { id } => balances.extend(w.monitor(id)?.map(|current| current.balance_id)),
        _ => unreachable!("only monitor commands"),
    }
    balances.retain(|b| !b.is_empty());
    Ok(balances)
}

/// Every balance some legs name, sorted, once each.
fn balances_of(legs: &[(String, String)]) -> Vec<String> {
    let mut balances: Vec<String> = legs.iter().flat_map(|(s, d)| [s.clone(), d.clone()]).collect();
    balances.sort();
    balances.dedup();
    balances
}

/// A bulk request's legs (an item's, or each leg of a split item), in order. A leg whose two
/// parties are one balance refuses the whole request, naming its item's `destination`.
fn plan_bulk(
    w: &mut dyn Writes,
    bulk: &NewBulk,
    indicators: &mut Indicators,
    now: &str,
) -> StoreResult<Result<Plan, DomainError>> {
    let items: Vec<_> = bulk.items.iter().map(|item| item.legs()).collect();
    Ok(plan_legs(w, items.iter().flat_map(|legs| legs.iter()), indicators, now)?.map_err(|leg| {
        let i = item_of_leg(&bulk.items, leg);
        let message = format!("transactions[{i}]: source and destination must be different balances");
        DomainError::validation(Resource::Transaction, &format!("transactions[{i}].destination"), message)
    }))
}

/// The index of the bulk item whose legs include leg `leg` of the whole request.
pub(super) fn item_of_leg(items: &[super::command::BulkItem], leg: usize) -> usize {
    let mut first = 0;
    for (i, item) in items.iter().enumerate() {
        first += item.legs().len();
        if leg < first {
            return i;
        }
    }
    unreachable!("leg {leg} belongs to an item")
}

/// A split's legs: each leg's parties resolved, and every balance they name.
fn plan_split(
    w: &mut dyn Writes,
    split: &NewSplit,
    indicators: &mut Indicators,
    now: &str,
) -> StoreResult<Result<Plan, DomainError>> {
    let legs: Vec<NewTransaction> = split.legs().into_iter().map(|(_, leg)| leg).collect();
    Ok(plan_legs(w, legs.iter(), indicators, now)?.map_err(|_| {
        DomainError::validation(
            Resource::Transaction,
            if split.side == SplitSide::Sources { "sources" } else { "destinations" },
            "a share names the balance on the other side: source and destination must differ",
        )
    }))
}

/// Several transactions in one command (a split's legs, a bulk request's items): each one's
/// parties resolved, and every balance they name. The same balance on both sides of one is
/// refused: the error is the first such leg's index, for the caller to name.
fn plan_legs<'a>(
    w: &mut dyn Writes,
    items: impl Iterator<Item = &'a NewTransaction>,
    indicators: &mut Indicators,
    now: &str,
) -> StoreResult<Result<Plan, usize>> {
    let mut legs = Vec::new();
    for item in items {
        let source = resolve_party(w, &item.source, &item.currency, indicators, now)?;
        let destination = resolve_party(w, &item.destination, &item.currency, indicators, now)?;
        legs.push((source, destination));
    }
    if let Some(i) = legs.iter().position(|(source, destination)| source == destination) {
        return Ok(Err(i));
    }
    Ok(Ok(Plan { balances: balances_of(&legs), resolved: None, legs }))
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
                        return Err(StoreError::new(
                            ErrorKind::Transient,
                            format!("creating indicator {party} in {currency}, which another writer is creating"),
                        ))
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
    pub(super) taken_references: HashSet<String>,
    pub(super) balances: HashMap<String, Balance>,
    /// Balances whose totals changed in this batch.
    pub(super) changed: BTreeSet<String>,
    /// The monitors of every balance this batch touches (an entry, maybe empty, per balance).
    pub(super) monitors: HashMap<String, Vec<Monitor>>,
    /// Monitors whose state changed, as (monitor id, balance id): a rule's instances differ by
    /// balance.
    pub(super) changed_monitors: BTreeSet<(String, String)>,
    /// Ledger-wide rules commands changed: any balance's cached instances may be stale.
    pub(super) rules_changed: Vec<RuleChange>,
    /// Balances whose monitors a command changed (see `BalanceCache::commit`).
    pub(super) monitors_evicted: BTreeSet<String>,
    /// Loaded balances whose list got a monitor moved in from another balance: the list is right
    /// for this batch, but its order may differ from storage's, so it is not cached (C1).
    pub(super) monitor_order_unknown: BTreeSet<String>,
    pub(super) now: String,
    pub(super) now_ms: i64,
    pub(super) config: BatchConfig,
    pub(super) events_to_deliver: usize,
    pub(super) events_written: usize,
    pub(super) monitor_evaluations: u64,
    pub(super) monitor_triggers: u64,
    /// Automatic transfers due (monitors with `action: "transfer"` that triggered), run once the
    /// command that triggered them is done.
    pub(super) actions_due: Vec<ActionDue>,
    /// While an automatic transfer is being made: how deep in its chain (0 otherwise).
    pub(super) action_depth: usize,
}

/// An automatic transfer to make: the monitor that triggered (as it stood then), the transaction
/// that triggered it, and how far down a chain of actions it is (1 for the first).
pub(super) struct ActionDue {
    pub(super) monitor: Monitor,
    pub(super) triggered_by: String,
    pub(super) depth: usize,
}

impl Batch {
    /// Step 2: loads (from the cache, or from storage under their locks) every balance the plans
    /// name, their monitors, and which of the batch's references are taken.
    pub(super) fn lock(
        w: &mut dyn Writes,
        commands: &[Command],
        plans: &[Result<Plan, DomainError>],
        cache: &mut BalanceCache,
        config: BatchConfig,
    ) -> StoreResult<Batch> {
        let touched: BTreeSet<&String> =
            plans.iter().filter_map(|p| p.as_ref().ok()).flat_map(|p| p.balances.iter()).collect();
        let mut balances: HashMap<String, Balance> = HashMap::with_capacity(touched.len());
        let mut monitors: HashMap<String, Vec<Monitor>> = HashMap::with_capacity(touched.len());
        let uncached = take_and_lock(w, touched, cache, &mut balances, &mut monitors, config.clock)?;
        // Stamped once its balances are locked: a batch that waited for another's locks (another
        // engine worker's or process's, on PostgreSQL) is stamped after that one committed, so
        // `created_at` follows the commit order of the batches that share a balance. And never
        // before a balance's latest checkpoint (M1), which another process may have stamped by a
        // clock ahead of this one's: a velocity window's start never moves back (G2).
        if let Some(latest) = balances.values().filter_map(|b| b.checkpoints.last()).map(|c| c.at_ms).max() {
            config.clock.not_before_ms(latest);
        }
        let (now, now_ms) = config.clock.now();
        let mut changed_monitors: BTreeSet<(String, String)> =
            load_monitors(w, &uncached, &balances, &mut monitors, now_ms)?.into_iter().collect();
        // The balances automatic transfers of these balances' monitors move (and theirs, along a
        // chain as long as one may run): locked now, so an action never meets a balance this batch
        // does not hold. On PostgreSQL these locks come after the first set, out of id order; two
        // batches that meet the other way round are a deadlock the database breaks, and the batch
        // it fails runs again (transient).
        for _ in 0..MAX_ACTION_CHAIN {
            let counterparties: BTreeSet<String> = monitors
                .values()
                .flatten()
                .filter_map(|m| m.transfer.as_ref().map(|t| t.counterparty.clone()))
                .filter(|id| !balances.contains_key(id) && !monitors.contains_key(id))
                .collect();
            if counterparties.is_empty() {
                break;
            }
            let uncached = take_and_lock(w, &counterparties, cache, &mut balances, &mut monitors, config.clock)?;
            changed_monitors.extend(load_monitors(w, &uncached, &balances, &mut monitors, now_ms)?);
        }
        let references: Vec<String> = commands
            .iter()
            .flat_map(|c| match c {
                Command::CreateTransaction(new) => vec![new.reference.clone()],
                Command::CreateSplit(split) => split.legs().into_iter().map(|(_, leg)| leg.reference).collect(),
                Command::CreateBulk(bulk) => bulk
                    .items
                    .iter()
                    .flat_map(|item| item.legs().iter().map(|leg| leg.reference.clone()).collect::<Vec<_>>())
                    .collect(),
                _ => vec![],
            })
            .collect();
        let mut batch = Batch {
            taken_references: w.existing_references(&references)?.into_iter().collect(),
            balances,
            changed: BTreeSet::new(),
            monitors,
            changed_monitors,
            rules_changed: Vec::new(),
            monitors_evicted: BTreeSet::new(),
            monitor_order_unknown: BTreeSet::new(),
            now,
            now_ms,
            config,
            events_to_deliver: 0,
            events_written: 0,
            monitor_evaluations: 0,
            monitor_triggers: 0,
            actions_due: Vec::new(),
            action_depth: 0,
        };
        batch.roll_windows(w)?;
        Ok(batch)
    }

    /// Step 3, for one command: the rules of its resource, then the automatic transfers its
    /// movements triggered (those of a refused command's accepted part too: a non-atomic bulk
    /// request's items before the refused one stand).
    pub(super) fn apply(&mut self, w: &mut dyn Writes, command: &Command, plan: Plan) -> Ruled<Outcome> {
        let outcome = self.apply_rules(w, command, plan);
        if !matches!(outcome, Err(Failure::Store(_))) {
            self.run_actions(w)?;
        }
        outcome
    }

    fn apply_rules(&mut self, w: &mut dyn Writes, command: &Command, plan: Plan) -> Ruled<Outcome> {
        match command {
            Command::CreateLedger { name, meta_data } => self.create_ledger(w, name, meta_data),
            Command::UpdateLedger { id, name, meta_data } => self.update_ledger(w, id, name, meta_data.as_ref()),
            Command::CreateBalance { ledger_id, currency, identity_id, meta_data, indicator } => {
                self.create_balance(w, ledger_id, currency, identity_id, meta_data, indicator)
            }
            Command::CreateTransaction(new) => {
                let (source, destination) = plan.resolved.expect("a transaction's plan resolves its parties");
                self.create_transaction(w, new, source, destination)
            }
            Command::ApplyQueued(queued) => self.apply_queued(w, queued),
            Command::CreateSplit(split) => self.create_split(w, split, plan.legs),
            Command::CreateBulk(bulk) => self.create_bulk(w, bulk, plan.legs),
            Command::FinishInflight { id, action } => self.finish_inflight(w, id, action),
            Command::Refund { id, description, meta_data } => self.refund(w, id, description, meta_data),
            Command::CreateMonitor(new) => self.create_monitor(w, new),
            Command::UpdateMonitor { id, monitor } => self.update_monitor(w, id, monitor),
            Command::DeleteMonitor { id } => self.delete_monitor(w, id),
            Command::RedeliverEvent { id } => self.redeliver_event(w, id),
            Command::UpdateMetadata { id, meta_data } => self.update_metadata(w, id, meta_data),
            Command::CreateApiKey { name, owner, scopes, expires_at } => {
                self.create_api_key(w, name, owner, scopes, expires_at.as_ref())
            }
            Command::RevokeApiKey { id } => self.revoke_api_key(w, id),
            Command::CreateEndpoint(new) => self.create_endpoint(w, new),
            Command::UpdateEndpoint { id, patch } => self.update_endpoint(w, id, patch),
            Command::DeleteEndpoint { id } => self.delete_endpoint(w, id),
            Command::RedeliverToEndpoint { endpoint_id, event_id } => {
                self.redeliver_to_endpoint(w, endpoint_id, event_id)
            }
            Command::CreateIdentity(identity) => self.create_identity(w, identity),
            Command::UpdateIdentity(identity) => self.update_identity(w, identity),
            Command::DeleteIdentity { id } => self.delete_identity(w, id),
            Command::TokenizeIdentity { id, fields } => self.tokenize_identity(w, id, fields),
            Command::SetBalanceIdentity { balance_id, identity_id } => {
                self.set_balance_identity(w, balance_id, identity_id)
            }
            Command::RunQueue => Ok(Outcome::QueueNudged),
            Command::TakeSnapshots { balance_ids } => self.take_snapshots(w, balance_ids),
            Command::DryRun(_) => unreachable!("a dry run is rehearsed on its own, never batched"),
        }
    }

    /// Step 4: an indicator created for this batch that no accepted transaction names goes again
    /// (a refused request changes nothing); then every changed balance and monitor state is
    /// written once.
    fn flush(&mut self, w: &mut dyn Writes, results: &[CommandResult], indicators: &Indicators) -> StoreResult<()> {
        let named: BTreeSet<&str> = results
            .iter()
            .flat_map(|r| match r {
                Ok(Outcome::Transaction(t)) => vec![t],
                Ok(Outcome::Split { legs, .. }) => legs.iter().flatten().collect(),
                Ok(Outcome::Bulk { recorded, .. } | Outcome::Transactions(recorded)) => recorded.iter().collect(),
                _ => vec![],
            })
            .flat_map(|t| [t.source_balance_id.as_str(), t.destination_balance_id.as_str()])
            .collect();
        for id in &indicators.created {
            if named.contains(id.as_str()) {
                let created = self.balances.get(id).cloned().expect("an indicator this batch created was loaded");
                let mut as_created = created;
                // The event shows the balance as it was made; the movements have their own events.
                (as_created.credit_balance, as_created.debit_balance) = (0.into(), 0.into());
                (as_created.inflight_credit_balance, as_created.inflight_debit_balance) = (0.into(), 0.into());
                as_created.version = 0;
                self.balance_created(w, &as_created)?;
                continue;
            }
            assert!(!self.changed.contains(id), "E3: an indicator no transaction names has not moved: {id}");
            w.delete_balance(id)?;
            self.balances.remove(id);
        }
        // Checkpoints first: the latest ride on the balance's row, written with its totals.
        self.checkpoint_windows(w)?;
        for id in &self.changed {
            let balance = self.balances.get(id);
            let balance = balance.unwrap_or_else(|| panic!("E2: a changed balance was loaded and locked: {id}"));
            w.save_balance_totals(balance)?;
        }
        let mut rule_states = Vec::new();
        // From the few that changed, not through every loaded monitor (a hundred thousand quiet
        // ones cost nothing here).
        for (monitor_id, balance_id) in &self.changed_monitors {
            let list = self.monitors.get(balance_id).map(Vec::as_slice).unwrap_or_default();
            let Some(monitor) = list.iter().find(|m| &m.id == monitor_id && &m.balance_id == balance_id) else {
                continue;
            };
            match monitor.scope {
                None => w.save_monitor_state(monitor)?,
                // Not an indicator this batch created and removed again (a window started on it).
                Some(_) if self.balances.contains_key(&monitor.balance_id) => rule_states.push(monitor.rule_state()),
                Some(_) => {}
            }
        }
        for state in rule_states {
            self.save_rule_state(w, &state)?;
        }
        Ok(())
    }

    /// Stores a balance's state of a rule, and notes on the balance (once) that it has one.
    pub(super) fn save_rule_state(&mut self, w: &mut dyn Writes, state: &RuleState) -> StoreResult<()> {
        w.save_rule_state(state)?;
        let balance = self.balances.get_mut(&state.balance_id).expect("a rule's state is of a loaded balance");
        if !balance.has_rule_states {
            balance.has_rule_states = true;
            w.mark_rule_states(&state.balance_id)?;
        }
        Ok(())
    }

    /// What the engine keeps once the batch commits. Only balances that exist go back to the
    /// cache: ids a client made up take no memory.
    fn finish(self, results: Vec<CommandResult>) -> BatchOutput {
        let Batch { mut monitors, balances, monitors_evicted, monitor_order_unknown, rules_changed, .. } = self;
        let touched = balances
            .into_values()
            .filter(|balance| !monitor_order_unknown.contains(&balance.id))
            .map(|balance| Entry { monitors: monitors.remove(&balance.id).unwrap_or_default(), balance })
            .collect();
        BatchOutput {
            results,
            events_to_deliver: self.events_to_deliver,
            events_written: self.events_written,
            monitor_evaluations: self.monitor_evaluations,
            monitor_triggers: self.monitor_triggers,
            touched,
            monitors_evicted,
            rules_changed,
        }
    }
}

/// A new id: a UUIDv7, which starts with the time, so consecutive rows land beside each other in
/// every index keyed by id instead of on a random page each (fewer pages written per commit).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7())
}
