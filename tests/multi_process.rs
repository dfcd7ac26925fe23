//! Two `keel serve` processes on one PostgreSQL database: many clients move money across shared
//! balances through both, queued transactions are applied by whichever engine gets them (never
//! both), a monitor created through one process fires on a transaction made through the other, and
//! afterwards every ledger invariant holds and every expected monitor event was delivered, once.
//!
//! Needs PostgreSQL, so `cargo test` lists it as ignored; `.ci/run` runs it with
//! `KEEL_TEST_POSTGRES_URL=… cargo test -- --include-ignored`.

mod common;

use common::database::postgres_url;
use common::invariants::assert_ledger_invariants;
use common::receiver::Receiver;
use common::{unique, unique_currency, wait_for, Server, TestDatabase};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

const CLIENTS: usize = 16;
const TRANSFERS_PER_CLIENT: usize = 30;

// tidy: long because it is one scenario, step by step
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn two_processes_share_one_database_safely() {
    assert!(
        postgres_url().is_some(),
        "several processes share a database only on PostgreSQL: set KEEL_TEST_POSTGRES_URL"
    );
    let database = TestDatabase::new();
    let receiver = Receiver::start().await;
    let args =
        ["--webhook-url", receiver.url.as_str(), "--webhook-retry-base-ms", "50", "--webhook-retry-max-ms", "200"];
    let a = Arc::new(Server::start_on(&database.url, &args));
    let b = Arc::new(Server::start_on(&database.url, &args));
    let servers = [a.clone(), b.clone()];

    let currency = unique_currency();
    let ledger = a.ledger("shared").await;
    let mut wallets = Vec::new();
    for i in 0..4 {
        let wallet = servers[i % 2].balance(&ledger, &currency).await;
        assert_eq!(servers[(i + 1) % 2].transfer("@World", &wallet, 500, &currency).await.0, StatusCode::CREATED);
        wallets.push(wallet);
    }

    // Created through A, honoured by the very next transaction through B.
    let monitor = a
        .create(
            "/balance-monitors",
            json!({"balance_id": wallets[0], "condition": {"field": "credit_balance", "operator": ">", "value": 0}}),
        )
        .await;
    let (status, first) = b.transfer(&wallets[1], &wallets[0], 1, &currency).await;
    assert_eq!(status, StatusCode::CREATED);
    let monitor_path = format!("/balance-monitors/{}/events", monitor["monitor_id"].as_str().unwrap());
    let (_, events) = b.get(&monitor_path).await;
    assert_eq!(
        events[0]["transaction_id"], first["transaction_id"],
        "the monitor made through A fired on B's transaction"
    );

    let wallets = Arc::new(wallets);
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (servers, wallets, currency) = (servers.clone(), wallets.clone(), currency.clone());
        tasks.push(tokio::spawn(async move {
            let mut queued = Vec::new();
            for i in 0..TRANSFERS_PER_CLIENT {
                let server = &servers[(client + i) % 2];
                let from = &wallets[(client + i) % wallets.len()];
                let to = &wallets[(client + 2 * i + 1) % wallets.len()];
                if from == to {
                    continue;
                }
                let body = json!({"precise_amount": 1 + (client * 5 + i * 11) % 90, "currency": currency,
                    "source": from,
                    "destination": to, "reference": unique("mp"), "skip_queue": i % 4 != 0});
                let (status, answer) = server.post("/transactions", body).await;
                match status {
                    StatusCode::CREATED if answer["status"] == "QUEUED" => {
                        queued.push(answer["transaction_id"].clone())
                    }
                    StatusCode::CREATED => {}
                    StatusCode::BAD_REQUEST => {
                        assert_eq!(answer["error_detail"]["code"], "TXN_INSUFFICIENT_FUNDS", "{answer}")
                    }
                    other => panic!("unexpected {other}: {answer}"),
                }
            }
            queued
        }));
    }
    let mut queued = Vec::new();
    for task in tasks {
        queued.extend(task.await.expect("client task"));
    }
    for id in &queued {
        wait_for(&a, &format!("/transactions/{}", id.as_str().unwrap()), |t| t["status"] != "QUEUED").await;
    }
    let replayed = assert_ledger_invariants(&a, &currency).await;
    assert!(replayed > CLIENTS * TRANSFERS_PER_CLIENT / 2, "the load ran ({replayed} transactions)");

    // Every applied transaction touching wallet 0 after the monitor existed fires it ("every").
    let (_, log) = a.get("/transactions?sort_order=asc&limit=1000").await;
    let fundings = 4;
    let expected: HashSet<String> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["currency"] == currency.as_str() && t["status"] == "APPLIED")
        .skip(fundings)
        .filter(|t| t["source"] == wallets[0].as_str() || t["destination"] == wallets[0].as_str())
        .map(|t| t["transaction_id"].as_str().unwrap().to_string())
        .collect();
    let (_, now) = b.get(&format!("/balance-monitors/{}", monitor["monitor_id"].as_str().unwrap())).await;
    assert_eq!(now["trigger_count"], json!(expected.len()), "monitor state is shared by both processes");
    let got = receiver.wait_for_monitor_events(expected.len()).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *per_id.entry(r.header("webhook-id").to_string()).or_default() += 1;
    }
    assert!(per_id.values().all(|&n| n == 1), "no event was delivered twice: {per_id:?}");
    let delivered: HashSet<String> =
        got.iter().map(|r| r.body["data"]["transaction_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(delivered, expected, "every expected monitor event was delivered");
}
