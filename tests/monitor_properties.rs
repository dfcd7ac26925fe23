//! Property test: for random transactions (transfers, holds, commits, voids, refused overdrafts)
//! and random monitors (created, updated, deleted along the way, both trigger modes, all fields and
//! operators), the events Keel records equal those of a plain reference evaluation done step by step.

mod common;

use common::{check_property, unique, Server};
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Parties: 0 is @World, 1..=3 are wallets (only wallets carry monitors).
const PARTIES: usize = 4;
const FIELDS: [&str; 6] = [
    "balance",
    "credit_balance",
    "debit_balance",
    "inflight_balance",
    "inflight_credit_balance",
    "inflight_debit_balance",
];
const OPERATORS: [&str; 6] = [">", "<", "=", "!=", ">=", "<="];

#[derive(Debug, Clone)]
struct Spec {
    wallet: usize,
    field: usize,
    operator: usize,
    /// Threshold in minor units; sent as `value = threshold / 10` with `precision: 10`.
    threshold: i64,
    crossing: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Transfer { from: usize, to: usize, amount: i64, inflight: bool },
    Settle { pick: usize, commit: bool },
    CreateMonitor(Spec),
    UpdateMonitor { pick: usize, spec: Spec },
    DeleteMonitor { pick: usize },
}

fn spec() -> impl Strategy<Value = Spec> {
    (1..PARTIES, 0..6usize, 0..6usize, -100i64..300, any::<bool>()).prop_map(
        |(wallet, field, operator, threshold, crossing)| Spec { wallet, field, operator, threshold, crossing },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PARTIES, 1..PARTIES, 1i64..120, prop::bool::weighted(0.3))
            .prop_map(|(from, to, amount, inflight)| {
                let to = if to == from { (to % (PARTIES - 1)) + 1 } else { to };
                Op::Transfer { from, to, amount, inflight }
            }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, commit)| Op::Settle { pick, commit }),
        3 => spec().prop_map(Op::CreateMonitor),
        1 => (any::<usize>(), spec()).prop_map(|(pick, spec)| Op::UpdateMonitor { pick, spec }),
        1 => any::<usize>().prop_map(|pick| Op::DeleteMonitor { pick }),
    ]
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    credit: i64,
    debit: i64,
    inflight_credit: i64,
    inflight_debit: i64,
}

impl Totals {
    fn field(&self, field: usize) -> i64 {
        match field {
            0 => self.credit - self.debit,
            1 => self.credit,
            2 => self.debit,
            3 => self.inflight_credit - self.inflight_debit,
            4 => self.inflight_credit,
            _ => self.inflight_debit,
        }
    }
}

struct ModelMonitor {
    id: String,
    spec: Spec,
    /// Whether the condition held at the last evaluation.
    armed_off: bool,
    expected: Vec<String>,
    deleted: bool,
}

impl ModelMonitor {
    fn evaluate(&mut self, totals: &Totals, transaction: &str) {
        let v = totals.field(self.spec.field);
        let t = self.spec.threshold;
        let holds = match OPERATORS[self.spec.operator] {
            ">" => v > t,
            "<" => v < t,
            "=" => v == t,
            "!=" => v != t,
            ">=" => v >= t,
            _ => v <= t,
        };
        if holds && (!self.spec.crossing || !self.armed_off) {
            self.expected.push(transaction.to_string());
        }
        self.armed_off = holds;
    }
}

fn body(spec: &Spec, wallets: &[String]) -> Value {
    // threshold / 10 as exact decimal text, e.g. -7 → "-0.7".
    let value = format!(
        "{}{}.{}",
        if spec.threshold < 0 { "-" } else { "" },
        spec.threshold.abs() / 10,
        spec.threshold.abs() % 10
    );
    json!({"balance_id": wallets[spec.wallet],
        "condition": {"field": FIELDS[spec.field], "operator": OPERATORS[spec.operator],
        "value": value, "precision": 10}, "trigger": if spec.crossing { "crossing" } else { "every" }})
}

// tidy: long because one match arm per operation keeps the model and the server side by side
async fn run_case(server: &Server, ops: Vec<Op>) {
    let (currency, ids) = common::parties(server, PARTIES - 1).await;
    let mut totals = [Totals::default(); PARTIES];
    let mut monitors: Vec<ModelMonitor> = Vec::new();
    let mut holds: Vec<(String, usize, usize, i64, bool)> = Vec::new(); // id, from, to, amount, open

    for op in ops {
        let moved: Option<(String, usize, usize)> = match op {
            Op::Transfer { from, to, amount, inflight } => {
                let (status, t) = server
                    .post(
                        "/transactions",
                        json!({"precise_amount": amount, "currency": currency, "source": ids[from],
                        "destination": ids[to], "reference": unique("mp"), "skip_queue": true, "inflight": inflight}),
                    )
                    .await;
                let available = totals[from].credit - totals[from].debit - totals[from].inflight_debit;
                if from != 0 && available < amount {
                    assert_eq!(status, StatusCode::BAD_REQUEST, "{t}");
                    None // refused: no movement, no monitor event
                } else {
                    assert_eq!(status, StatusCode::CREATED, "{t}");
                    let id = t["transaction_id"].as_str().unwrap().to_string();
                    if inflight {
                        totals[from].inflight_debit += amount;
                        totals[to].inflight_credit += amount;
                        holds.push((id.clone(), from, to, amount, true));
                    } else {
                        totals[from].debit += amount;
                        totals[to].credit += amount;
                    }
                    Some((id, from, to))
                }
            }
            Op::Settle { pick, commit } => {
                let open: Vec<usize> = (0..holds.len()).filter(|&i| holds[i].4).collect();
                if open.is_empty() {
                    continue;
                }
                let k = open[pick % open.len()];
                let (hold_id, from, to, amount, _) = holds[k].clone();
                let status = if commit { "commit" } else { "void" };
                let (code, child) =
                    server.put(&format!("/transactions/inflight/{hold_id}"), json!({"status": status})).await;
                assert_eq!(code, StatusCode::OK, "{child}");
                holds[k].4 = false;
                totals[from].inflight_debit -= amount;
                totals[to].inflight_credit -= amount;
                if commit {
                    totals[from].debit += amount;
                    totals[to].credit += amount;
                }
                Some((child["transaction_id"].as_str().unwrap().to_string(), from, to))
            }
            Op::CreateMonitor(spec) => {
                let created = server.create("/balance-monitors", body(&spec, &ids)).await;
                let id = created["monitor_id"].as_str().unwrap().to_string();
                monitors.push(ModelMonitor { id, spec, armed_off: false, expected: vec![], deleted: false });
                None
            }
            Op::UpdateMonitor { pick, spec } => {
                let live: Vec<usize> = (0..monitors.len()).filter(|&i| !monitors[i].deleted).collect();
                if live.is_empty() {
                    continue;
                }
                let m = &mut monitors[live[pick % live.len()]];
                let (status, answer) = server.put(&format!("/balance-monitors/{}", m.id), body(&spec, &ids)).await;
                assert_eq!(status, StatusCode::OK, "{answer}");
                m.spec = spec;
                m.armed_off = false; // an update re-arms the monitor
                None
            }
            Op::DeleteMonitor { pick } => {
                let live: Vec<usize> = (0..monitors.len()).filter(|&i| !monitors[i].deleted).collect();
                if live.is_empty() {
                    continue;
                }
                let m = &mut monitors[live[pick % live.len()]];
                check_monitor(server, m).await;
                let (status, _) = server.request("DELETE", &format!("/balance-monitors/{}", m.id), None).await;
                assert_eq!(status, StatusCode::OK);
                m.deleted = true;
                None
            }
        };
        if let Some((transaction, from, to)) = moved {
            for party in [from, to] {
                for m in monitors.iter_mut().filter(|m| !m.deleted && m.spec.wallet == party) {
                    m.evaluate(&totals[party], &transaction);
                }
            }
        }
    }
    for m in monitors.iter().filter(|m| !m.deleted) {
        check_monitor(server, m).await;
    }
}

async fn check_monitor(server: &Server, m: &ModelMonitor) {
    let (status, events) = server.get(&format!("/balance-monitors/{}/events?limit=1000", m.id)).await;
    assert_eq!(status, StatusCode::OK);
    let mut fired: Vec<String> =
        events.as_array().unwrap().iter().map(|e| e["transaction_id"].as_str().unwrap().to_string()).collect();
    fired.reverse();
    assert_eq!(fired, m.expected, "monitor {} {:?}", m.id, m.spec);
    let (_, monitor) = server.get(&format!("/balance-monitors/{}", m.id)).await;
    assert_eq!(monitor["trigger_count"], json!(m.expected.len()), "{monitor}");
}

#[test]
fn monitor_events_equal_a_step_by_step_reference_evaluation() {
    // In this process: a property of the engine and the API, not of the socket.
    let server = Server::in_process(None);
    check_property(24, prop::collection::vec(op(), 1..40), |ops| Box::pin(run_case(&server, ops)));
}
