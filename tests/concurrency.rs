//! Many clients moving money across the same few balances at once. Afterwards every invariant holds,
//! every 2xx is in the log, and every refusal moved nothing.

mod common;

use common::invariants::assert_ledger_invariants;
use common::{unique, unique_currency, Server};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;

const CLIENTS: usize = 32;
const TRANSFERS_PER_CLIENT: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_on_shared_balances_keep_every_invariant() {
    hot_balances(Server::start()).await;
}

/// Four engine workers, each with its own connection, applying batches that share the same four
/// balances: every batch locks what it reads, so none applies a movement on a stale total.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn four_engine_workers_on_shared_balances_keep_every_invariant() {
    assert!(common::database::postgres_url().is_some(), "several engine workers need PostgreSQL");
    let server = Server::start_with_args(&["--engine-workers", "4", "--max-batch", "8"]);
    let workers = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("keel-engine")))
        .count();
    assert_eq!(workers, 4, "the server runs four engine threads");
    hot_balances(server).await;
}

/// 32 clients moving money among four wallets; afterwards the ledger's invariants hold, the log
/// holds exactly what was acknowledged, and no wallet was overdrawn.
async fn hot_balances(server: Server) {
    let server = Arc::new(server);
    let currency = unique_currency();
    let ledger = server.ledger("hot").await;
    let mut wallets = Vec::new();
    for _ in 0..4 {
        let id = server.balance(&ledger, &currency).await;
        assert_eq!(server.transfer("@World", &id, 100, &currency).await.0, StatusCode::CREATED);
        wallets.push(id);
    }
    let wallets = Arc::new(wallets);
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (server, wallets, currency) = (server.clone(), wallets.clone(), currency.clone());
        tasks.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut refused = 0;
            for i in 0..TRANSFERS_PER_CLIENT {
                let from = &wallets[(client + i) % wallets.len()];
                let to = &wallets[(client + i + 1 + i % 3) % wallets.len()];
                // Amounts large enough that some transfers must be refused for lack of funds.
                let amount = 1 + (client * 7 + i * 13) % 60;
                let inflight = i % 10 == 9;
                let body = json!({
                    "precise_amount": amount, "currency": currency, "source": from, "destination": to,
                    "reference": unique("c"), "skip_queue": true, "inflight": inflight,
                });
                let (status, answer) = server.post("/transactions", body).await;
                match status {
                    StatusCode::CREATED => accepted.push(answer["transaction_id"].as_str().unwrap().to_string()),
                    StatusCode::BAD_REQUEST => {
                        assert_eq!(answer["error_detail"]["code"], "TXN_INSUFFICIENT_FUNDS", "{answer}");
                        refused += 1;
                    }
                    other => panic!("unexpected {other}: {answer}"),
                }
            }
            (accepted, refused)
        }));
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (ids, r) = task.await.expect("client task");
        accepted.extend(ids);
        refused += r;
    }
    assert_eq!(accepted.len() + refused, CLIENTS * TRANSFERS_PER_CLIENT);
    assert!(
        refused > 0 && !accepted.is_empty(),
        "the load exercises both outcomes ({} ok, {refused} refused)",
        accepted.len()
    );
    for id in &accepted {
        assert_eq!(server.get(&format!("/transactions/{id}")).await.0, StatusCode::OK);
    }
    let replayed = assert_ledger_invariants(&server, &currency).await;
    assert_eq!(
        replayed,
        accepted.len() + wallets.len(),
        "the log holds exactly the accepted transfers and the fundings"
    );
    for wallet in wallets.iter() {
        let (_, b) = server.get(&format!("/balances/{wallet}")).await;
        let available = common::invariants::big(&b["balance"]) - common::invariants::big(&b["inflight_debit_balance"]);
        assert!(available >= 0.into(), "no wallet was overdrawn: {b}");
    }
}
