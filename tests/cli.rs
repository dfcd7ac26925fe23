//! The maintenance subcommands against a real database that a running server is using:
//! `keel check` passes on a healthy ledger and names a balance corrupted behind Keel's back;
//! `keel webhooks redeliver --failed` gets failed events delivered.

mod common;

use common::receiver::Receiver;
use common::{keel, unique_currency, wait_for, Server, TestDatabase};
use reqwest::StatusCode;
use serde_json::json;

/// Changes a stored balance without going through Keel, as a bad migration or a hand edit would.
fn corrupt_balance(database: &TestDatabase, balance_id: &str) {
    let sql = format!("UPDATE balances SET credit_balance = credit_balance + 7 WHERE balance_id = '{balance_id}'");
    if database.is_postgres() {
        let url = database.url.clone();
        std::thread::spawn(move || {
            postgres::Client::connect(&url, postgres::NoTls).unwrap().batch_execute(&sql).unwrap()
        })
        .join()
        .unwrap();
    } else {
        let path = database.url.trim_start_matches("sqlite://");
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        conn.execute_batch(&sql.replace("credit_balance + 7", "CAST(CAST(credit_balance AS INTEGER) + 7 AS TEXT)"))
            .unwrap();
    }
}

#[tokio::test]
async fn check_passes_on_a_healthy_ledger_and_names_a_corrupted_balance() {
    let database = TestDatabase::new();
    let server = Server::start_on(&database.url, &[]);
    let currency = unique_currency();
    let ledger = server.ledger("checked").await;
    let a = server.balance(&ledger, &currency).await;
    let b = server.balance(&ledger, &currency).await;
    server.transfer("@World", &a, 500, &currency).await;
    for _ in 0..5 {
        server.transfer(&a, &b, 30, &currency).await;
    }
    let held = server
        .create(
            "/transactions",
            json!({"precise_amount": 50, "currency": currency, "source": a, "destination": b,
            "reference": common::unique("h"), "skip_queue": true, "inflight": true}),
        )
        .await;
    let (status, _) = server
        .put(
            &format!("/transactions/inflight/{}", held["transaction_id"].as_str().unwrap()),
            json!({"status": "commit", "precise_amount": 20}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (ok, log) = keel(&["check", "--database", &database.url]);
    assert!(ok, "{log}");
    assert!(log.contains("8 transactions replayed") && log.contains("every invariant holds"), "{log}");

    corrupt_balance(&database, &b);
    let (ok, log) = keel(&["check", "--database", &database.url]);
    assert!(!ok, "a corrupted balance fails the check: {log}");
    assert!(log.contains(&format!("balance {b}")), "the report names the balance: {log}");
    assert!(log.contains("sum to 7"), "and the broken double entry: {log}");
}

#[tokio::test]
async fn redeliver_failed_requeues_every_failed_event() {
    let receiver = Receiver::start().await;
    let database = TestDatabase::new();
    let args = ["--webhook-url", receiver.url.as_str(), "--webhook-max-attempts", "1", "--webhook-retry-base-ms", "50"];
    let server = Server::start_on(&database.url, &args);
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("l").await, &currency).await;
    // First the ledger, the wallet and @World (created by the first transfer) are announced...
    server.transfer("@World", &wallet, 1, &currency).await;
    for _ in 0..500 {
        if receiver.received_all().len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.received_all().len(), 4, "the ledger, the wallet, @World and the first transfer");
    // ...then two transfers whose events the receiver refuses.
    receiver.fail_next(&[500, 500]);
    server.transfer("@World", &wallet, 1, &currency).await;
    server.transfer("@World", &wallet, 1, &currency).await;
    receiver.wait_for(3).await;
    wait_for(&server, "/events?status=failed", |e| e.as_array().is_some_and(|l| l.len() == 2)).await;

    let (ok, log) = keel(&["webhooks", "redeliver", "--failed", "--database", &database.url]);
    assert!(ok, "{log}");
    assert!(log.contains("2 failed events are pending again"), "{log}");
    wait_for(&server, "/events?status=delivered", |e| e.as_array().is_some_and(|l| l.len() == 6)).await;
    assert_eq!(receiver.received().len(), 5, "the first transfer's, two failures, then two deliveries");
}
