//! What the benchmarks build their workloads from.
#![allow(dead_code)] // each benchmark uses a different subset

use keel::domain::amount::Precision;
use keel::domain::monitor::{Action, Condition, LedgerScope, Trigger};
use keel::engine::{Command, NewMonitor, NewTransaction};
use num_bigint::BigInt;

/// The kinds of quiet monitor the benchmarks can set (`mixed`: the other five in turn).
pub const MONITOR_KINDS: [&str; 6] = ["plain", "edge", "guard", "velocity", "velocity-guard", "mixed"];

/// A transfer of `amount` minor units, applied at once, without overdraft.
pub fn transfer(source: &str, destination: &str, amount: u64, reference: String) -> NewTransaction {
    NewTransaction {
        precise_amount: BigInt::from(amount),
        precision: Precision::ONE,
        reference,
        description: String::new(),
        currency: "USD".into(),
        source: source.into(),
        destination: destination.into(),
        allow_overdraft: false,
        overdraft_limit: BigInt::ZERO,
        effective_date: None,
        scheduled_for: None,
        inflight_expiry_date: None,
        inflight_commit_date: None,
        inflight: false,
        skip_queue: true,
        meta_data: Default::default(),
    }
}

/// The `i`th ledger-wide monitor of `kind` on `ledger`, quiet as `quiet_monitor`'s: evaluated on
/// every transfer of every balance of the ledger.
pub fn quiet_rule(ledger: &str, kind: &str, i: usize, threshold: &str) -> Command {
    let Command::CreateMonitor(mut rule) = quiet_monitor("", kind, i, threshold) else { unreachable!() };
    rule.scope = Some(LedgerScope { ledger_id: ledger.into(), currency: None, balance_meta_data: Default::default() });
    Command::CreateMonitor(rule)
}

/// The `i`th monitor of `kind` on `balance`, whose `threshold` (minor units) no transfer of a run
/// reaches: evaluated on every transfer of its balance, it never fires and never refuses.
pub fn quiet_monitor(balance: &str, kind: &str, i: usize, threshold: &str) -> Command {
    let kinds = &MONITOR_KINDS[..5];
    let kind = if kind == "mixed" { kinds[i % kinds.len()] } else { kind };
    let mut condition = match kind {
        "velocity" | "velocity-guard" => Condition::new("debit_volume", ">", threshold, None)
            .and_then(|c| c.with_window("24h"))
            .expect("a valid velocity condition"),
        _ => Condition::new("debit_balance", ">", threshold, None).expect("a valid condition"),
    };
    let mut trigger = Trigger::Every;
    if kind == "edge" {
        condition = condition.with_reset("1000").expect("a re-arm level below the threshold");
        trigger = Trigger::Edge;
    }
    Command::CreateMonitor(NewMonitor {
        balance_id: balance.into(),
        scope: None,
        condition,
        description: String::new(),
        call_back_url: String::new(),
        meta_data: Default::default(),
        trigger,
        action: if kind.ends_with("guard") { Action::Reject } else { Action::Notify },
        transfer: None,
    })
}
