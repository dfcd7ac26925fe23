//! Dry runs. A money-moving command is planned, locked and applied by the batch's own code
//! (`batch.rs`, `transactions.rs`, `bulk.rs`, `monitors.rs`) inside a database transaction that the
//! caller rolls back (`Store::rehearse`), so a preview cannot drift from what the real request
//! does: it is the real request, thrown away. Nothing it wrote (rows, an indicator balance created
//! on first use, monitor state, outbox events) is ever seen, and its references stay free.
//!
//! It runs with an empty balance cache of its own, so the engine's cache never holds a balance as
//! a dry run left it (C1 stays true without a special case).

use super::balance_cache::BalanceCache;
use super::batch::{self, Batch, BatchConfig, Indicators, Plan};
use super::command::{BulkItem, Command, NewBulk, NewTransaction, Outcome};
use super::failure::split;
use crate::domain::balance::Balance;
use crate::domain::error::{DomainError, Resource};
use crate::domain::monitor::Monitor;
use crate::domain::preview::{BalanceChange, BulkPreview, Leg, Preview, Role};
use crate::domain::transaction::Transaction;
use crate::store::{StoreResult, Writes};
use num_bigint::BigInt;
use std::collections::{HashMap, HashSet};

/// Rehearses `command` against the current state: `Outcome::Preview`, or `Outcome::BulkPreview`
/// for a bulk request. `Err` (inside `Ok`) is a refusal that comes before anything is locked (no
/// such balance or transaction), exactly as the real command answers; a rule that refuses it
/// later is the preview's `result`.
pub(super) fn rehearse(
    w: &mut dyn Writes,
    command: &Command,
    config: BatchConfig,
) -> StoreResult<Result<Outcome, DomainError>> {
    // A projection shows the transaction applied, whether or not the real post would queue it
    // first (Blnk: "dry_run takes precedence over skip_queue").
    let command = match command {
        Command::CreateTransaction(new) => Command::CreateTransaction(applied_now(new)),
        Command::CreateBulk(bulk) => {
            let mut now = bulk.clone();
            for item in &mut now.items {
                if let BulkItem::Transaction(new) = item {
                    *new = applied_now(new);
                }
            }
            return Ok(rehearse_bulk(w, &now, at_once(bulk), config)?.map(Outcome::BulkPreview));
        }
        // A split's legs are applied at once already (`NewSplit::legs`).
        Command::FinishInflight { .. } | Command::Refund { .. } | Command::CreateSplit(_) => command.clone(),
        _ => {
            let message =
                "only a transaction, a bulk request, an inflight commit or void, or a refund can be a dry run";
            return Ok(Err(DomainError::validation(Resource::Transaction, "dry_run", message)));
        }
    };
    let (mut batch, plan, indicators) = lock(w, &command, config)?;
    let plan = match plan {
        Ok(plan) => plan,
        Err(refused) => return Ok(Err(refused)),
    };
    let roles = roles(&command, &plan);
    let before = Snapshot::take(&batch, &roles);
    let result = split(batch.apply(w, &command, plan))?;
    let (result, legs) = match result {
        Ok(outcome) => summarize(&command, outcome),
        Err(refused) => (Err(refused), vec![]),
    };
    let (balances, monitors_triggered) = before.changes(&batch, &indicators);
    Ok(Ok(Outcome::Preview(Preview { result, balances, monitors_triggered, legs })))
}

/// The same request with `skip_queue` set.
fn applied_now(new: &NewTransaction) -> NewTransaction {
    let mut now = new.clone();
    now.skip_queue = true;
    now
}

/// Whether a bulk request's items are applied as it is made (`skip_queue`, `atomic` or a split
/// item: the API set every item's flag), or queued and applied right after.
fn at_once(bulk: &NewBulk) -> bool {
    bulk.items.first().is_some_and(|item| item.template().skip_queue)
}

/// Plans `command` and locks what it names, as a batch of one: the batch, the command's plan (or
/// why it was refused before locking), and the indicators the plan created.
fn lock(
    w: &mut dyn Writes,
    command: &Command,
    config: BatchConfig,
) -> StoreResult<(Batch, Result<Plan, DomainError>, Indicators)> {
    let (now, _) = config.clock.now();
    let mut indicators = Indicators::default();
    let plans = vec![batch::plan(w, command, &mut indicators, &now)?];
    let mut cache = BalanceCache::new(false);
    let batch = Batch::lock(w, std::slice::from_ref(command), &plans, &mut cache, config)?;
    let plan = plans.into_iter().next().expect("one plan for one command");
    Ok((batch, plan, indicators))
}

/// What a command answered, as a preview shows it: the transaction, and the legs of a command
/// that wrote several (a split's, or a commit, void or refund of a split's or a batch's).
fn summarize(command: &Command, outcome: Outcome) -> (Result<Transaction, DomainError>, Vec<Leg>) {
    match outcome {
        Outcome::Transaction(t) => (Ok(t), vec![]),
        Outcome::Split { parent, legs } => {
            let Command::CreateSplit(split) = command else { unreachable!("a split answers a split") };
            (Ok(parent), legs.into_iter().flatten().map(|leg| Leg::of(split.side, leg)).collect())
        }
        Outcome::Transactions(mut written) if written.len() == 1 => (Ok(written.remove(0)), vec![]),
        Outcome::Transactions(written) => {
            let mut total = written[0].clone();
            total.precise_amount = written.iter().map(|t| &t.precise_amount).sum();
            let legs = written.into_iter().map(|t| Leg::settling(&t.parent.clone().unwrap_or_default(), t)).collect();
            (Ok(total), legs)
        }
        other => unreachable!("a money-moving command answers transactions, not {other:?}"),
    }
}

/// The balances a command moves, by id: every source first, then every destination.
fn roles(command: &Command, plan: &Plan) -> Vec<(String, Role)> {
    match (command, &plan.resolved) {
        (Command::CreateTransaction(_), Some((source, destination))) => roles_of([(source, destination)]),
        // A refund moves the money back: each original's destination is its source.
        (Command::Refund { .. }, _) => roles_of(plan.legs.iter().map(|(source, destination)| (destination, source))),
        _ => roles_of(plan.legs.iter().map(|(source, destination)| (source, destination))),
    }
}

fn roles_of<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)> + Clone) -> Vec<(String, Role)> {
    let sides = pairs.clone().into_iter().map(|(s, _)| (s, Role::Source));
    let sides = sides.chain(pairs.into_iter().map(|(_, d)| (d, Role::Destination)));
    let mut roles: Vec<(String, Role)> = Vec::new();
    for (id, role) in sides {
        if !roles.iter().any(|(known, _)| known == id) {
            roles.push((id.clone(), role));
        }
    }
    roles
}

/// Some balances (those that exist) and their monitors' trigger counts, before a command.
struct Snapshot {
    balances: Vec<(Role, Balance)>,
    trigger_counts: HashMap<String, i64>,
}

impl Snapshot {
    fn take(batch: &Batch, roles: &[(String, Role)]) -> Snapshot {
        let balances: Vec<(Role, Balance)> =
            roles.iter().filter_map(|(id, role)| Some((*role, batch.balances.get(id)?.clone()))).collect();
        let trigger_counts = balances
            .iter()
            .filter_map(|(_, b)| batch.monitors.get(&b.id))
            .flatten()
            .map(|m| (m.id.clone(), m.trigger_count))
            .collect();
        Snapshot { balances, trigger_counts }
    }

    /// Each balance before and as it stands now, and the monitors of these balances that
    /// triggered since, as they stand now.
    fn changes(self, batch: &Batch, indicators: &Indicators) -> (Vec<BalanceChange>, Vec<Monitor>) {
        let monitors = self
            .balances
            .iter()
            .filter_map(|(_, b)| batch.monitors.get(&b.id))
            .flatten()
            .filter(|m| self.trigger_counts.get(&m.id).is_some_and(|count| m.trigger_count > *count))
            .cloned()
            .collect();
        let changes = self
            .balances
            .into_iter()
            .map(|(role, before)| BalanceChange {
                role,
                after: batch.balances[&before.id].clone(),
                is_new_indicator: indicators.created.contains(&before.id),
                before,
            })
            .collect();
        (changes, monitors)
    }
}

/// A bulk request's dry run: its items recorded in order, each applied now, and each one's own
/// verdict (an item refused moves nothing, and the next is tried on, so one answer names every
/// item that would fail). Beside it, what the request as it would really run leaves: nothing if
/// it is atomic and an item is refused; otherwise the items up to the first one that stops it
/// (any refusal if applied at once; if queued, only one refused as the request is made: a
/// reference taken, a balance missing; the queue rejects an item short of funds and goes on).
fn rehearse_bulk(
    w: &mut dyn Writes,
    bulk: &NewBulk,
    at_once: bool,
    config: BatchConfig,
) -> StoreResult<Result<BulkPreview, DomainError>> {
    let command = Command::CreateBulk(bulk.clone());
    let (mut batch, plan, indicators) = lock(w, &command, config)?;
    let plan = match plan {
        Ok(plan) => plan,
        Err(refused) => return Ok(Err(refused)),
    };
    let id = batch::new_id("bulk");
    let mut parties = plan.legs.into_iter();
    let mut first_seen: Vec<(Role, Balance)> = Vec::new();
    let mut seen = HashSet::new();
    let mut real: HashMap<String, Balance> = HashMap::new();
    let mut stops_at = None;
    let mut items = Vec::with_capacity(bulk.items.len());
    for (i, item) in bulk.items.iter().enumerate() {
        let legs = item.legs();
        let item_parties: Vec<(String, String)> = parties.by_ref().take(legs.len()).collect();
        let roles = roles_of(item_parties.iter().map(|(s, d)| (s, d)));
        for (id, role) in &roles {
            if let Some(balance) = batch.balances.get(id).filter(|_| seen.insert(id.clone())) {
                first_seen.push((*role, balance.clone()));
            }
        }
        let before = Snapshot::take(&batch, &roles);
        let tried = batch.record_item(w, &legs, item_parties, &id)?;
        if let Err((_, as_made)) = &tried {
            if stops_at.is_none() && (bulk.atomic || at_once || *as_made) {
                stops_at = Some(i);
                // The request ends here for real: the automatic transfers of the items before
                // this one are made now, as the real request makes them once it is done (an
                // atomic one that stops makes none: nothing of it moves).
                finish_request(w, &mut batch, &mut real, !bulk.atomic)?;
            }
        }
        if stops_at.is_none() {
            for (id, _) in &roles {
                if let Some(balance) = batch.balances.get(id) {
                    real.insert(id.clone(), balance.clone());
                }
            }
        }
        let (result, legs) = match tried {
            Ok(recorded) => summarize_item(item, recorded),
            Err((refused, _)) => (Err(refused), vec![]),
        };
        let (balances, monitors_triggered) = before.changes(&batch, &indicators);
        items.push(Preview { result, balances, monitors_triggered, legs });
    }
    if stops_at.is_none() {
        finish_request(w, &mut batch, &mut real, true)?;
    }
    // What later items (judged on their own, past where the request stops) would set off is not
    // part of the request.
    batch.actions_due.clear();
    let nothing_moves = bulk.atomic && stops_at.is_some();
    let balances = first_seen
        .into_iter()
        .map(|(role, before)| BalanceChange {
            role,
            after: real.get(&before.id).filter(|_| !nothing_moves).unwrap_or(&before).clone(),
            is_new_indicator: indicators.created.contains(&before.id),
            before,
        })
        .collect();
    Ok(Ok(BulkPreview { items, balances, stops_at }))
}

/// The end of a bulk request as it would really run: its due automatic transfers made (`act`) or
/// dropped, and what the request leaves (`real`) read again, since a transfer may have moved a
/// balance already recorded there.
fn finish_request(
    w: &mut dyn Writes,
    batch: &mut Batch,
    real: &mut HashMap<String, Balance>,
    act: bool,
) -> StoreResult<()> {
    if act {
        batch.run_actions(w)?;
    }
    batch.actions_due.clear();
    for (id, balance) in real.iter_mut() {
        if let Some(now) = batch.balances.get(id) {
            *balance = now.clone();
        }
    }
    Ok(())
}

/// A bulk item's transaction; for a split item, one whose amount is the whole, with its legs.
fn summarize_item(item: &BulkItem, mut recorded: Vec<Transaction>) -> (Result<Transaction, DomainError>, Vec<Leg>) {
    match item {
        BulkItem::Transaction(_) => (Ok(recorded.remove(0)), vec![]),
        BulkItem::Split(split) => {
            let mut whole = recorded[0].clone();
            whole.precise_amount = recorded.iter().map(|t| &t.precise_amount).sum::<BigInt>();
            (whole.source, whole.destination) = (split.template.source.clone(), split.template.destination.clone());
            (Ok(whole), recorded.into_iter().map(|leg| Leg::of(split.side, leg)).collect())
        }
    }
}
