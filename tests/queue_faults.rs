//! The queue of `QUEUED` transactions under a fault of one of them: a queued transaction that
//! cannot be applied (its row does not read back, or the database refuses its statements) is set
//! aside with an error naming it, and the queue goes on past it. Before, the whole queue failed on
//! it for ever, and the engine slept up to 5 s before every batch it ran while it did.

mod common;

use common::invariants::assert_ledger_invariants;
use common::{unique, unique_currency, wait_for, Server, TestDatabase};
use reqwest::StatusCode;
use serde_json::json;

/// Queues `amount` from `@World` to `wallet` (no `skip_queue`); returns the transaction's id.
async fn queue(server: &Server, wallet: &str, amount: u64, currency: &str) -> String {
    let body = json!({"precise_amount": amount, "currency": currency, "source": "@World",
        "destination": wallet, "reference": unique("q")});
    let txn = server.create("/transactions", body).await;
    assert_eq!(txn["status"], "QUEUED", "{txn}");
    txn["transaction_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_queued_transaction_that_cannot_be_applied_is_set_aside_and_the_queue_goes_on() {
    let database = TestDatabase::new();
    let currency = unique_currency();
    // --hold-queue: the three wait, in arrival order, until the server that applies them starts.
    let server = Server::start_on(&database.url, &["--hold-queue"]);
    let wallet = server.balance(&server.ledger("queue").await, &currency).await;
    let before = queue(&server, &wallet, 1, &currency).await;
    let poison = queue(&server, &wallet, 2, &currency).await;
    let after = queue(&server, &wallet, 4, &currency).await;
    server.kill();
    // Broken behind Keel's back, as a bad restore or a hand edit would: the row no longer reads back.
    database.execute(&format!("UPDATE transactions SET meta_data = 'not json' WHERE transaction_id = '{poison}'"));

    let server = Server::start_on(&database.url, &[]);
    for id in [&before, &after] {
        let txn = wait_for(&server, &format!("/transactions/{id}"), |t| t["status"] != "QUEUED").await;
        assert_eq!(txn["status"], "APPLIED", "{txn}");
    }
    // The engine serves on, and so does the queue: a transaction queued now is applied too.
    for _ in 0..20 {
        assert_eq!(server.transfer("@World", &wallet, 8, &currency).await.0, StatusCode::CREATED);
    }
    let later = queue(&server, &wallet, 16, &currency).await;
    let txn = wait_for(&server, &format!("/transactions/{later}"), |t| t["status"] != "QUEUED").await;
    assert_eq!(txn["status"], "APPLIED", "{txn}");
    assert_eq!(server.get(&format!("/balances/{wallet}")).await.1["balance"], json!(1 + 4 + 20 * 8 + 16));

    let logs = server.logs();
    let named = logs.iter().filter(|l| l.contains("set aside") && l.contains(&poison)).count();
    assert!(named >= 1, "the transaction set aside is named in an error: {logs:?}");
    // Mended, it is applied on the next start (a set-aside transaction stays QUEUED).
    server.kill();
    database.execute(&format!("UPDATE transactions SET meta_data = '{{}}' WHERE transaction_id = '{poison}'"));
    let server = Server::start_on(&database.url, &[]);
    let txn = wait_for(&server, &format!("/transactions/{poison}"), |t| t["status"] != "QUEUED").await;
    assert_eq!(txn["status"], "APPLIED", "{txn}");
    assert_eq!(server.get(&format!("/balances/{wallet}")).await.1["balance"], json!(1 + 2 + 4 + 20 * 8 + 16));
    assert_ledger_invariants(&server, &currency).await;
}
