//! Property test over HTTP: random sequences of transfers (queued or not, inflight or not, with or
//! without overdraft), commits, voids and refunds. After every step the server's answer matches a
//! plain reference model, the balances equal the model's, and the ledger invariants hold
//! (per-currency sums of zero, balance = credit − debit, the log replays to the balances).

mod common;

use common::invariants::assert_ledger_invariants;
use common::{check_property, unique, wait_for, Server};
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Parties: 0 is @World, 1..=3 are wallets.
const PARTIES: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Transfer { from: usize, to: usize, amount: i64, inflight: bool, overdraft: bool, queued: bool },
    Commit { pick: usize, amount: Option<i64> },
    Void { pick: usize },
    Refund { pick: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..PARTIES, 0..PARTIES, 1i64..150, any::<bool>(), prop::bool::weighted(0.15), prop::bool::weighted(0.2))
            .prop_map(|(from, to, amount, inflight, overdraft, queued)| {
                let to = if to == from { (to + 1) % PARTIES } else { to };
                Op::Transfer { from, to, amount, inflight, overdraft, queued }
            }),
        2 => (any::<usize>(), prop::option::of(1i64..100)).prop_map(|(pick, amount)| Op::Commit { pick, amount }),
        1 => any::<usize>().prop_map(|pick| Op::Void { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Refund { pick }),
    ]
}

#[derive(Default, Clone, Copy, Debug, PartialEq)]
struct Totals {
    credit: i64,
    debit: i64,
    inflight_credit: i64,
    inflight_debit: i64,
}

/// What the model remembers of a transaction it can act on later.
#[derive(Debug, Clone)]
struct Known {
    id: String,
    from: usize,
    to: usize,
    amount: i64,
    overdraft: bool,
    /// For inflight ones: what is left to commit, and how it ended.
    remaining: i64,
    state: &'static str,
    refunded: bool,
}

struct Model {
    totals: [Totals; PARTIES],
    inflight: Vec<Known>,
    applied: Vec<Known>,
}

impl Model {
    fn available(&self, party: usize) -> i64 {
        let t = self.totals[party];
        t.credit - t.debit - t.inflight_debit
    }
    fn can_send(&self, party: usize, amount: i64, overdraft: bool) -> bool {
        party == 0 || overdraft || self.available(party) >= amount
    }
}

// tidy: long because one match arm per operation keeps the model and the server side by side
async fn run_case(server: &Server, ops: Vec<Op>) {
    let (currency, ids) = common::parties(server, PARTIES - 1).await;
    let mut m = Model { totals: [Totals::default(); PARTIES], inflight: vec![], applied: vec![] };

    for op in ops {
        match op {
            Op::Transfer { from, to, amount, inflight, overdraft, queued } => {
                let body = json!({
                    "precise_amount": amount, "currency": currency, "source": ids[from], "destination": ids[to],
                    "reference": unique("p"), "inflight": inflight, "allow_overdraft": overdraft, "skip_queue": !queued,
                });
                let (status, mut answer) = server.post("/transactions", body).await;
                let ok = m.can_send(from, amount, overdraft);
                if queued {
                    assert_eq!(status, StatusCode::CREATED, "{answer}");
                    let path = format!("/transactions/{}", answer["transaction_id"].as_str().unwrap());
                    answer = wait_for(server, &path, |t| t["status"] != "QUEUED").await;
                    let expected = match (ok, inflight) {
                        (false, _) => "REJECTED",
                        (true, true) => "INFLIGHT",
                        (true, false) => "APPLIED",
                    };
                    assert_eq!(answer["status"], expected, "{answer}");
                } else if ok {
                    assert_eq!(status, StatusCode::CREATED, "{answer}");
                } else {
                    assert_eq!(
                        (status, answer["error_detail"]["code"].as_str()),
                        (StatusCode::BAD_REQUEST, Some("TXN_INSUFFICIENT_FUNDS"))
                    );
                }
                if ok {
                    let id = answer["transaction_id"].as_str().unwrap().to_string();
                    let known = Known {
                        id,
                        from,
                        to,
                        amount,
                        overdraft,
                        remaining: amount,
                        state: "INFLIGHT",
                        refunded: false,
                    };
                    if inflight {
                        m.totals[from].inflight_debit += amount;
                        m.totals[to].inflight_credit += amount;
                        m.inflight.push(known);
                    } else {
                        m.totals[from].debit += amount;
                        m.totals[to].credit += amount;
                        m.applied.push(known);
                    }
                }
            }
            Op::Commit { pick, .. } | Op::Void { pick } if !m.inflight.is_empty() => {
                let is_commit = matches!(op, Op::Commit { .. });
                let amount = if let Op::Commit { amount, .. } = op { amount } else { None };
                let k = pick % m.inflight.len();
                let t = m.inflight[k].clone();
                let mut body = json!({ "status": if is_commit { "commit" } else { "void" } });
                if let Some(a) = amount {
                    body["precise_amount"] = json!(a);
                }
                let (status, answer) = server.put(&format!("/transactions/inflight/{}", t.id), body).await;
                let expected_error = match t.state {
                    "COMMIT" => Some("TXN_ALREADY_COMMITTED"),
                    "VOID" => Some("TXN_ALREADY_VOIDED"),
                    _ if is_commit && amount.is_some_and(|a| a > t.remaining) => Some("TXN_COMMIT_AMOUNT_EXCEEDED"),
                    _ => None,
                };
                if let Some(code) = expected_error {
                    assert_eq!(
                        (status, answer["error_detail"]["code"].as_str()),
                        (StatusCode::BAD_REQUEST, Some(code)),
                        "{answer}"
                    );
                    continue;
                }
                assert_eq!(status, StatusCode::OK, "{answer}");
                let moved = if is_commit { amount.unwrap_or(t.remaining) } else { t.remaining };
                assert_eq!(answer["precise_amount"], json!(moved));
                m.totals[t.from].inflight_debit -= moved;
                m.totals[t.to].inflight_credit -= moved;
                let entry = &mut m.inflight[k];
                entry.remaining -= moved;
                if is_commit {
                    m.totals[t.from].debit += moved;
                    m.totals[t.to].credit += moved;
                    if entry.remaining == 0 {
                        entry.state = "COMMIT";
                    }
                    let id = answer["transaction_id"].as_str().unwrap().to_string();
                    m.applied.push(Known { id, amount: moved, remaining: 0, state: "APPLIED", refunded: false, ..t });
                } else {
                    entry.state = "VOID";
                }
            }
            Op::Refund { pick } if !m.applied.is_empty() => {
                let k = pick % m.applied.len();
                let t = m.applied[k].clone();
                let (status, answer) = server.post(&format!("/refund-transaction/{}", t.id), json!({})).await;
                if t.refunded {
                    // Refunded before, or itself a refund (which counts as refunded from birth).
                    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
                } else if !m.can_send(t.to, t.amount, t.overdraft) {
                    assert_eq!(answer["error_detail"]["code"], "TXN_INSUFFICIENT_FUNDS", "{answer}");
                } else {
                    assert_eq!(status, StatusCode::CREATED, "{answer}");
                    m.applied[k].refunded = true;
                    m.totals[t.to].debit += t.amount;
                    m.totals[t.from].credit += t.amount;
                    let id = answer["transaction_id"].as_str().unwrap().to_string();
                    m.applied.push(Known { id, from: t.to, to: t.from, refunded: true, ..t });
                }
            }
            _ => continue, // nothing to commit, void or refund yet
        }
        for (party, id) in ids.iter().enumerate().skip(1) {
            let (_, b) = server.get(&format!("/balances/{id}")).await;
            let actual = Totals {
                credit: b["credit_balance"].as_i64().unwrap(),
                debit: b["debit_balance"].as_i64().unwrap(),
                inflight_credit: b["inflight_credit_balance"].as_i64().unwrap(),
                inflight_debit: b["inflight_debit_balance"].as_i64().unwrap(),
            };
            assert_eq!(actual, m.totals[party], "party {party} differs from the model");
        }
        assert_ledger_invariants(server, &currency).await;
    }
    let statuses: HashMap<&str, &str> = m.inflight.iter().map(|k| (k.id.as_str(), k.state)).collect();
    for (id, state) in statuses {
        let (_, t) = server.get(&format!("/transactions/{id}")).await;
        assert_eq!(t["status"], Value::from(state), "{t}");
    }
}

#[test]
fn random_operation_sequences_match_the_model_and_keep_the_invariants() {
    // In this process: a property of the engine and the API, not of the socket.
    let server = Server::in_process(None);
    check_property(24, prop::collection::vec(op(), 1..30), |ops| Box::pin(run_case(&server, ops)));
}
