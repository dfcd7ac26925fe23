//! Dry runs. A money-moving command is planned, locked and applied by the batch's own code
//! (`batch.rs`, `transactions.rs`, `monitors.rs`) inside a database transaction that the caller
//! rolls back (`Store::rehearse`), so a preview cannot drift from what the real request does: it
//! is the real request, thrown away. Nothing it wrote (the row, an indicator balance created on
//! first use, monitor state, outbox events) is ever seen, and its reference stays free.
//!
//! It runs with an empty balance cache of its own, so the engine's cache never holds a balance as
//! a dry run left it (C1 stays true without a special case).

use super::balance_cache::BalanceCache;
use super::batch::{self, Batch, BatchConfig, Indicators};
use super::command::{Command, Outcome};
use super::failure::split;
use crate::domain::error::{DomainError, Resource};
use crate::domain::preview::{BalanceChange, Leg, Preview, Role};
use crate::store::{StoreResult, Writes};
use std::collections::HashMap;

/// Rehearses `command` against the current state. `Err` (inside `Ok`) is a refusal that comes
/// before anything is locked (no such balance or transaction), exactly as the real command
/// answers; a rule that refuses it later is the preview's `result`.
pub(super) fn rehearse(
    w: &mut dyn Writes,
    command: &Command,
    config: BatchConfig,
) -> StoreResult<Result<Preview, DomainError>> {
    // A projection shows the transaction applied, whether or not the real post would queue it
    // first (Blnk: "dry_run takes precedence over skip_queue").
    let command = match command {
        Command::CreateTransaction(new) => {
            let mut applied_now = new.clone();
            applied_now.skip_queue = true;
            Command::CreateTransaction(applied_now)
        }
        // A split's legs are applied at once already (`NewSplit::legs`).
        Command::FinishInflight { .. } | Command::Refund { .. } | Command::CreateSplit(_) => command.clone(),
        _ => {
            let message = "only a transaction, an inflight commit or void, or a refund can be a dry run";
            return Ok(Err(DomainError::validation(Resource::Transaction, "dry_run", message)));
        }
    };
    let (now, now_ms) = batch::now();
    let mut indicators = Indicators::default();
    let plans = vec![batch::plan(w, &command, &mut indicators, &now)?];
    let roles = match &plans[0] {
        Ok(plan) => roles(&command, plan),
        Err(refused) => return Ok(Err(refused.clone())),
    };
    let mut cache = BalanceCache::new(false);
    let commands = std::slice::from_ref(&command);
    let mut batch = Batch::lock(w, commands, &plans, &mut cache, now, now_ms, config)?;
    let plan = plans.into_iter().next().and_then(Result::ok).expect("the plan was accepted above");

    let before: HashMap<String, _> =
        roles.iter().filter_map(|(id, _)| Some((id.clone(), batch.balances.get(id)?.clone()))).collect();
    let counts_before: HashMap<String, _> =
        batch.monitors.values().flatten().map(|m| (m.id.clone(), m.trigger_count)).collect();

    let mut legs = Vec::new();
    let result = split(batch.apply(w, &command, plan))?.map(|outcome| match outcome {
        Outcome::Transaction(t) => t,
        Outcome::Split { parent, legs: recorded } => {
            let Command::CreateSplit(split) = &command else { unreachable!("a split answers a split") };
            legs = recorded.into_iter().flatten().map(|leg| Leg::of(split.side, leg)).collect();
            parent
        }
        other => unreachable!("a money-moving command answers a transaction, not {other:?}"),
    });

    let balances = roles
        .iter()
        .filter_map(|(id, role)| {
            Some(BalanceChange {
                role: *role,
                before: before.get(id)?.clone(),
                after: batch.balances.get(id)?.clone(),
                is_new_indicator: indicators.created.contains(id),
            })
        })
        .collect();
    let monitors_triggered = roles
        .iter()
        .filter_map(|(id, _)| batch.monitors.get(id))
        .flatten()
        .filter(|m| counts_before.get(&m.id).is_some_and(|count| m.trigger_count > *count))
        .cloned()
        .collect();
    Ok(Ok(Preview { result, balances, monitors_triggered, legs }))
}

/// The balances a command moves, by id, sources first.
fn roles(command: &Command, plan: &batch::Plan) -> Vec<(String, Role)> {
    if let Command::CreateSplit(_) = command {
        let mut roles: Vec<(String, Role)> = Vec::new();
        let sides = plan
            .legs
            .iter()
            .map(|(s, _)| (s, Role::Source))
            .chain(plan.legs.iter().map(|(_, d)| (d, Role::Destination)));
        for (id, role) in sides {
            if !roles.iter().any(|(known, _)| known == id) {
                roles.push((id.clone(), role));
            }
        }
        return roles;
    }
    let (source, destination) = match (command, &plan.resolved, plan.balances.as_slice()) {
        (Command::CreateTransaction(_), Some((source, destination)), _) => (source, destination),
        // A refund moves the money back: the original's destination is its source.
        (Command::Refund { .. }, _, [original_source, original_destination]) => (original_destination, original_source),
        (_, _, [source, destination]) => (source, destination),
        _ => unreachable!("a money-moving command plans its two balances"),
    };
    vec![(source.clone(), Role::Source), (destination.clone(), Role::Destination)]
}
