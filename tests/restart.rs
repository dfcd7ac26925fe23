//! Durability across restarts: what got a 2xx is there after the server stops (gracefully or by
//! SIGKILL), and a transaction accepted as QUEUED before a stop is applied after the restart.

mod common;

use common::invariants::assert_ledger_invariants;
use common::{unique_currency, wait_for, Server, TestDatabase};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn snapshot(server: &Server) -> (Value, Value, Value) {
    (
        server.get("/ledgers?limit=1000").await.1,
        server.get("/balances?limit=1000").await.1,
        server.get("/transactions?sort_order=asc&limit=1000").await.1,
    )
}

#[tokio::test]
async fn everything_reads_back_the_same_after_a_graceful_restart() {
    let database = TestDatabase::new();
    let url = database.url.clone();
    let currency = unique_currency();
    let server = Server::start_on(&url, &[]);
    let ledger = server.ledger("durable").await;
    let a = server.balance(&ledger, &currency).await;
    let b = server.balance(&ledger, &currency).await;
    server.transfer("@World", &a, 1_000, &currency).await;
    for _ in 0..20 {
        assert_eq!(server.transfer(&a, &b, 7, &currency).await.0, StatusCode::CREATED);
    }
    let before = snapshot(&server).await;
    assert!(server.stop(), "a graceful stop exits 0");

    let server = Server::start_on(&url, &[]);
    assert_eq!(snapshot(&server).await, before);
    assert_eq!(server.get(&format!("/balances/{b}")).await.1["balance"], json!(140));
    assert_eq!(assert_ledger_invariants(&server, &currency).await, 21);
}

#[tokio::test]
async fn every_acknowledged_transfer_survives_sigkill() {
    let database = TestDatabase::new();
    let url = database.url.clone();
    let currency = unique_currency();
    let server = Server::start_on(&url, &[]);
    let ledger = server.ledger("durable").await;
    let a = server.balance(&ledger, &currency).await;
    let mut acknowledged = Vec::new();
    for _ in 0..25 {
        let (status, txn) = server.transfer("@World", &a, 3, &currency).await;
        assert_eq!(status, StatusCode::CREATED);
        acknowledged.push(txn);
    }
    server.kill();

    let server = Server::start_on(&url, &[]);
    for txn in &acknowledged {
        let (status, found) = server.get(&format!("/transactions/{}", txn["transaction_id"].as_str().unwrap())).await;
        assert_eq!((status, &found), (StatusCode::OK, txn));
    }
    assert_eq!(server.get(&format!("/balances/{a}")).await.1["balance"], json!(75));
    assert_ledger_invariants(&server, &currency).await;
}

#[tokio::test]
async fn queued_transactions_accepted_before_a_stop_are_applied_after_it() {
    let database = TestDatabase::new();
    let url = database.url.clone();
    let currency = unique_currency();
    // --hold-queue keeps the queue from being applied, so the stop surely finds it pending.
    let server = Server::start_on(&url, &["--hold-queue"]);
    let ledger = server.ledger("queue").await;
    let a = server.balance(&ledger, &currency).await;
    let mut queued = Vec::new();
    for amount in [100, 50, 80] {
        let body = json!({
            "precise_amount": amount, "currency": currency, "source": if amount == 100 { "@World" } else { a.as_str() },
            "destination": if amount == 100 { a.as_str() } else { "@Revenue" }, "reference": common::unique("q"),
        });
        let txn = server.create("/transactions", body).await;
        assert_eq!(txn["status"], "QUEUED");
        queued.push(txn["transaction_id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(server.get(&format!("/transactions/{}", queued[0])).await.1["status"], "QUEUED");
    assert_eq!(server.get(&format!("/balances/{a}")).await.1["balance"], json!(0));
    server.kill();

    let server = Server::start_on(&url, &[]);
    let statuses: Vec<Value> = {
        let mut out = Vec::new();
        for id in &queued {
            out.push(
                wait_for(&server, &format!("/transactions/{id}"), |t| t["status"] != "QUEUED").await["status"].clone(),
            );
        }
        out
    };
    assert_eq!(statuses, [json!("APPLIED"), json!("APPLIED"), json!("REJECTED")], "applied in arrival order");
    assert_eq!(server.get(&format!("/balances/{a}")).await.1["balance"], json!(50));
    assert_ledger_invariants(&server, &currency).await;
}
