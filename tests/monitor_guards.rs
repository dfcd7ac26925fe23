//! Guards (issue 18): a monitor with `action: "reject"` refuses, at write time and in the same
//! commit, any transaction that would make its condition hold: `400 TXN_REJECTED_BY_MONITOR`
//! naming the monitor, nothing moved, the reference still free, a dry run saying so, an atomic
//! bulk request refused whole, a commit refused with its hold intact, a queued transaction
//! rejected, a void never refused. And the limit holds under 32 concurrent clients, and (on
//! PostgreSQL) across two processes.

mod common;

use common::database::postgres_url;
use common::invariants::{assert_ledger_invariants, big};
use common::{unique, wait_for, Server, TestDatabase};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

struct Setup {
    server: Server,
    currency: String,
    alice: String,
    bob: String,
}

/// Alice holds 1,000 minor units; Bob none.
async fn setup_on(server: Server) -> Setup {
    let (currency, ids) = common::parties(&server, 2).await;
    let (alice, bob) = (ids[1].clone(), ids[2].clone());
    let (status, body) = server.transfer("@World", &alice, 1_000, &currency).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Setup { server, currency, alice, bob }
}

impl Setup {
    async fn guard(&self, balance: &str, field: &str, operator: &str, value: i64) -> String {
        let body = json!({"balance_id": balance, "action": "reject",
            "condition": {"field": field, "operator": operator, "value": value}});
        let guard = self.server.create("/balance-monitors", body).await;
        assert_eq!(guard["action"], "reject", "{guard}");
        guard["monitor_id"].as_str().unwrap().to_string()
    }

    fn transfer(&self, source: &str, destination: &str, amount: i64, extra: Value) -> Value {
        let mut body = json!({"precise_amount": amount, "currency": self.currency, "source": source,
            "destination": destination, "reference": unique("g"), "skip_queue": true});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    }

    async fn balance(&self, id: &str) -> Value {
        let (status, b) = self.server.get(&format!("/balances/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        b
    }
}

/// A refusal by `guard`: Keel's own code, the monitor named in the details and the message.
fn assert_refused_by(answer: (StatusCode, Value), guard: &str) -> Value {
    let (status, body) = answer;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error_detail"]["code"], "TXN_REJECTED_BY_MONITOR", "{body}");
    assert_eq!(body["error_detail"]["details"]["monitor_id"], guard, "{body}");
    assert!(body["error"].as_str().unwrap().contains(guard), "{body}");
    body
}

#[tokio::test]
async fn a_guard_refuses_what_would_make_it_hold_and_nothing_moves() {
    let s = setup_on(Server::in_process(None)).await;
    let floor = s.guard(&s.alice, "balance", "<", 200).await;
    let before = (s.balance(&s.alice).await, s.balance(&s.bob).await);
    let refused = s.transfer(&s.alice, &s.bob, 900, json!({}));
    let body = assert_refused_by(s.server.post("/transactions", refused.clone()).await, &floor);
    assert!(body["error"].as_str().unwrap().contains("would be 100"), "{body}");
    assert_eq!((s.balance(&s.alice).await, s.balance(&s.bob).await), before, "nothing moved");
    // The reference is still free: the same request with an amount the guard allows goes through.
    let mut allowed = refused;
    allowed["precise_amount"] = json!(800);
    assert_eq!(s.server.post("/transactions", allowed).await.0, StatusCode::CREATED);
    assert_eq!(s.balance(&s.alice).await["balance"], json!(200));
    // At the floor exactly: one more unit is refused; money in is always let through.
    assert_refused_by(s.server.post("/transactions", s.transfer(&s.alice, &s.bob, 1, json!({}))).await, &floor);
    assert_eq!(
        s.server.post("/transactions", s.transfer("@World", &s.alice, 5, json!({}))).await.0,
        StatusCode::CREATED
    );
    // A guard created when its condition already holds lets the balance recover, not sink.
    let higher = s.guard(&s.alice, "balance", "<", 500).await;
    assert_eq!(
        s.server.post("/transactions", s.transfer("@World", &s.alice, 100, json!({}))).await.0,
        StatusCode::CREATED
    );
    assert_refused_by(s.server.post("/transactions", s.transfer(&s.alice, &s.bob, 1, json!({}))).await, &higher);
    // A guard on the destination refuses money in: a cap.
    let cap = s.guard(&s.bob, "credit_balance", ">", 1_000).await;
    assert_refused_by(s.server.post("/transactions", s.transfer("@World", &s.bob, 201, json!({}))).await, &cap);
    assert_eq!(
        s.server.post("/transactions", s.transfer("@World", &s.bob, 200, json!({}))).await.0,
        StatusCode::CREATED
    );
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn a_dry_run_reports_the_guard_and_a_deleted_guard_refuses_nothing() {
    let s = setup_on(Server::in_process(None)).await;
    let floor = s.guard(&s.alice, "balance", "<", 0).await;
    let mut dry = s.transfer(&s.alice, &s.bob, 1_001, json!({"allow_overdraft": true}));
    dry["dry_run"] = json!(true);
    let (status, preview) = s.server.post("/transactions", dry.clone()).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["would_apply"], false, "{preview}");
    assert_eq!(preview["rejection"]["code"], "TXN_REJECTED_BY_MONITOR");
    assert_eq!(preview["rejection"]["reason"], "monitor_guard");
    assert_eq!(preview["rejection"]["monitor_id"], floor.as_str());
    // The real request answers what the preview said.
    dry["dry_run"] = json!(false);
    assert_refused_by(s.server.post("/transactions", dry.clone()).await, &floor);
    // Overdraft permission does not pass a guard; deleting the guard does.
    let (status, _) = s.server.request("DELETE", &format!("/balance-monitors/{floor}"), None).await;
    assert_eq!(status, StatusCode::OK);
    dry["reference"] = json!(unique("g"));
    assert_eq!(s.server.post("/transactions", dry).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn an_atomic_bulk_request_with_a_guarded_item_moves_nothing_and_its_neighbours_are_unaffected() {
    let s = setup_on(Server::in_process(None)).await;
    let limit = s.guard(&s.alice, "debit_balance", ">", 500).await;
    let before = s.balance(&s.alice).await;
    let items = json!([s.transfer(&s.alice, &s.bob, 300, json!({})), s.transfer(&s.alice, &s.bob, 300, json!({}))]);
    let bulk = json!({"atomic": true, "skip_queue": true, "transactions": items});
    let neighbour = s.transfer("@World", &s.bob, 7, json!({}));
    // Sent together: one may share the other's batch; the refusal must not touch the neighbour.
    let (refused, accepted) =
        tokio::join!(s.server.post("/transactions/bulk", bulk.clone()), s.server.post("/transactions", neighbour));
    let body = assert_refused_by(refused, &limit);
    assert_eq!(body["error_detail"]["details"]["field"], "transactions[1]", "{body}");
    assert_eq!(accepted.0, StatusCode::CREATED, "{}", accepted.1);
    assert_eq!(s.balance(&s.alice).await, before, "the first item, allowed alone, did not move either");
    // Not atomic: items before the refused one stand, as Blnk records them one by one.
    let mut one_by_one = bulk;
    one_by_one["atomic"] = json!(false);
    assert_refused_by(s.server.post("/transactions/bulk", one_by_one).await, &limit);
    assert_eq!(s.balance(&s.alice).await["debit_balance"], json!(300));
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn commits_queued_transactions_and_refunds_are_guarded_voids_are_not() {
    let s = setup_on(Server::in_process(None)).await;
    let limit = s.guard(&s.alice, "debit_balance", ">", 500).await;
    // Holds move only the inflight totals; the commit is what moves debit_balance.
    let first = s.server.create("/transactions", s.transfer(&s.alice, &s.bob, 400, json!({"inflight": true}))).await;
    let second = s.server.create("/transactions", s.transfer(&s.alice, &s.bob, 300, json!({"inflight": true}))).await;
    let commit = |t: &Value| format!("/transactions/inflight/{}", t["transaction_id"].as_str().unwrap());
    assert_eq!(s.server.put(&commit(&first), json!({"status": "commit"})).await.0, StatusCode::OK);
    assert_refused_by(s.server.put(&commit(&second), json!({"status": "commit"})).await, &limit);
    let (_, hold) = s.server.get(&format!("/transactions/{}", second["transaction_id"].as_str().unwrap())).await;
    assert_eq!(hold["status"], "INFLIGHT", "a refused commit leaves the hold as it was");
    assert_eq!(s.server.put(&commit(&second), json!({"status": "void"})).await.0, StatusCode::OK, "voids go");
    // A queued transaction the guard refuses when it is applied is REJECTED, like one short of funds.
    let queued =
        s.server.create("/transactions", s.transfer(&s.alice, &s.bob, 200, json!({"skip_queue": false}))).await;
    let path = format!("/transactions/{}", queued["transaction_id"].as_str().unwrap());
    wait_for(&s.server, &path, |t| t["status"] != "QUEUED").await;
    assert_eq!(s.server.get(&path).await.1["status"], "REJECTED");
    // A refund to Alice is money in; a refund from her would pass the limit: refused, nothing moved.
    let paid = s.server.create("/transactions", s.transfer(&s.bob, &s.alice, 150, json!({}))).await;
    let refund = format!("/refund-transaction/{}", paid["transaction_id"].as_str().unwrap());
    assert_refused_by(s.server.post(&refund, json!({})).await, &limit);
    assert_eq!(s.balance(&s.alice).await["debit_balance"], json!(400));
    assert_ledger_invariants(&s.server, &s.currency).await;
}

/// `clients` concurrent clients spread over `servers` spend from one balance under a 10,000 spending
/// limit, far more than it allows: the limit is never passed, and what moved is exactly what was
/// acknowledged.
/// `ledger_wide`: the limit is a rule on Alice's ledger (every balance of it), not a monitor of hers.
async fn race_a_spending_limit(servers: Vec<Arc<Server>>, clients: usize, ledger_wide: bool) {
    let s = setup_on_shared(&servers[0]).await;
    let mut body = json!({"action": "reject",
        "condition": {"field": "debit_balance", "operator": ">", "value": 10_000}});
    match ledger_wide {
        false => body["balance_id"] = json!(s.0),
        true => body["ledger_id"] = servers[0].get(&format!("/balances/{}", s.0)).await.1["ledger_id"].clone(),
    }
    let guard = servers[0].create("/balance-monitors", body).await["monitor_id"].as_str().unwrap().to_string();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (server, s) = (servers[i % servers.len()].clone(), s.clone());
            let guard = guard.clone();
            tokio::spawn(async move {
                let mut spent = 0i64;
                for k in 0..12 {
                    let amount = 37 + ((i * 12 + k) * 53 % 101) as i64; // 37..=137
                    let body = json!({"precise_amount": amount, "currency": s.1, "source": s.0, "destination": s.2,
                        "reference": unique("race"), "skip_queue": true});
                    let (status, answer) = server.post("/transactions", body).await;
                    match status {
                        StatusCode::CREATED => spent += amount,
                        StatusCode::BAD_REQUEST => {
                            assert_eq!(answer["error_detail"]["details"]["monitor_id"], guard.as_str())
                        }
                        other => panic!("{other} {answer}"),
                    }
                }
                spent
            })
        })
        .collect();
    let mut acknowledged = 0;
    for task in tasks {
        acknowledged += task.await.unwrap();
    }
    let (_, alice) = servers[0].get(&format!("/balances/{}", s.0)).await;
    let debit = big(&alice["debit_balance"]);
    assert!(debit <= 10_000.into(), "the limit was passed: {alice}");
    assert_eq!(debit, acknowledged.into(), "what moved is what was acknowledged");
    assert!(acknowledged > 10_000 - 137, "the limit was reached, not refused early: {acknowledged}");
    assert_ledger_invariants(&servers[0], &s.1).await;
}

/// (alice, currency, bob), Alice funded with 100,000.
async fn setup_on_shared(server: &Server) -> Arc<(String, String, String)> {
    let (currency, ids) = common::parties(server, 2).await;
    let (alice, bob) = (ids[1].clone(), ids[2].clone());
    assert_eq!(server.transfer("@World", &alice, 100_000, &currency).await.0, StatusCode::CREATED);
    Arc::new((alice, currency, bob))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spending_limit_holds_under_32_concurrent_clients() {
    race_a_spending_limit(vec![Arc::new(Server::start())], 32, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ledger_wide_spending_limit_holds_under_32_concurrent_clients() {
    race_a_spending_limit(vec![Arc::new(Server::start())], 32, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn a_spending_limit_holds_across_two_processes() {
    race_across_two_processes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn a_ledger_wide_spending_limit_holds_across_two_processes() {
    race_across_two_processes(true).await;
}

/// 32 clients racing a spending limit through two Keel processes on one PostgreSQL database.
async fn race_across_two_processes(ledger_wide: bool) {
    assert!(postgres_url().is_some(), "several processes share a database only on PostgreSQL");
    let database = TestDatabase::new();
    let servers = vec![Arc::new(Server::start_on(&database.url, &[])), Arc::new(Server::start_on(&database.url, &[]))];
    race_a_spending_limit(servers, 32, ledger_wide).await;
}
