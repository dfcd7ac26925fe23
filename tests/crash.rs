//! Crash safety: the real server under concurrent load is killed with SIGKILL at random moments,
//! many times, and restarted on the same data. After every restart:
//! - every transaction that got a 2xx is there, with its effect (queued ones get applied or rejected);
//! - nothing is half applied: the balances equal the replay of the log and sum to zero.
//!
//! At the end, every monitor event of a committed change has been delivered, and none of a change
//! that does not exist. `KEEL_CRASH_ROUNDS` sets the number of kills (default 6).

mod common;

use common::invariants::assert_ledger_invariants;
use common::receiver::Receiver;
use common::{unique, unique_currency, Server, TestDatabase};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

fn random(below: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % below as u128) as u64
}

/// Posts transfers until the server goes away; returns the acknowledged ones.
async fn load(http: reqwest::Client, base: String, wallets: Vec<String>, currency: String) -> Vec<Value> {
    let mut acknowledged = Vec::new();
    loop {
        let from = &wallets[random(wallets.len() as u64) as usize];
        let to = &wallets[random(wallets.len() as u64) as usize];
        if from == to {
            continue;
        }
        let body = json!({"precise_amount": 1 + random(40), "currency": currency, "source": from, "destination": to,
            "reference": unique("crash"), "skip_queue": random(4) != 0});
        match http.post(format!("{base}/transactions")).json(&body).send().await {
            Ok(r) if r.status() == StatusCode::CREATED => match r.json::<Value>().await {
                Ok(t) => acknowledged.push(t),
                Err(_) => return acknowledged, // killed while answering: not acknowledged
            },
            Ok(r) if r.status() == StatusCode::BAD_REQUEST => {} // refused for funds: nothing moved
            _ => return acknowledged,
        }
    }
}

/// Waits until no transaction of `currency` is still QUEUED (the restarted engine drains them).
async fn drain_queue(server: &Server, currency: &str) {
    for _ in 0..200 {
        let (_, all) = server.get("/transactions?sort_order=asc&limit=1000&offset=0").await;
        let mut offset = 0;
        let mut queued = all.as_array().unwrap().iter().any(|t| t["currency"] == currency && t["status"] == "QUEUED");
        let mut page = all;
        while page.as_array().unwrap().len() == 1000 {
            offset += 1000;
            page = server.get(&format!("/transactions?sort_order=asc&limit=1000&offset={offset}")).await.1;
            queued |= page.as_array().unwrap().iter().any(|t| t["currency"] == currency && t["status"] == "QUEUED");
        }
        if !queued {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("queued transactions were never applied");
}

// tidy: long because it is one scenario, step by step
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_nothing_acknowledged_and_half_applies_nothing() {
    let rounds: usize = std::env::var("KEEL_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(6);
    let database = TestDatabase::new();
    let receiver = Receiver::start().await;
    let args = [
        "--webhook-url",
        receiver.url.as_str(),
        "--webhook-retry-base-ms",
        "50",
        "--webhook-retry-max-ms",
        "200",
        "--webhook-timeout-ms",
        "1000",
    ];
    let mut server = Server::start_on(&database.url, &args);
    let currency = unique_currency();
    let ledger = server.ledger("crash").await;
    let mut wallets = Vec::new();
    for _ in 0..4 {
        let wallet = server.balance(&ledger, &currency).await;
        assert_eq!(server.transfer("@World", &wallet, 1000, &currency).await.0, StatusCode::CREATED);
        wallets.push(wallet);
    }
    let monitor = server
        .create(
            "/balance-monitors",
            json!({"balance_id": wallets[0], "condition": {"field": "credit_balance", "operator": ">", "value": 0}}),
        )
        .await;
    let mut acknowledged: Vec<Value> = Vec::new();
    for round in 0..rounds {
        let clients: Vec<_> = (0..8)
            .map(|_| {
                tokio::spawn(load(server.client().clone(), server.base.clone(), wallets.clone(), currency.clone()))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100 + random(400))).await;
        server.kill();
        for client in clients {
            acknowledged.extend(client.await.unwrap());
        }
        server = Server::start_on(&database.url, &args);
        drain_queue(&server, &currency).await;
        for t in &acknowledged {
            let id = t["transaction_id"].as_str().unwrap();
            let (status, stored) = server.get(&format!("/transactions/{id}")).await;
            assert_eq!(status, StatusCode::OK, "round {round}: acknowledged {id} is gone");
            match t["status"].as_str().unwrap() {
                "QUEUED" => assert!(matches!(stored["status"].as_str(), Some("APPLIED" | "REJECTED")), "{stored}"),
                other => assert_eq!(stored["status"], other, "{stored}"),
            }
        }
        assert_ledger_invariants(&server, &currency).await;
    }

    // Every committed transaction touching wallet 0 after the monitor existed fires it ("every").
    let mut log = Vec::new();
    loop {
        let (_, page) = server.get(&format!("/transactions?sort_order=asc&limit=1000&offset={}", log.len())).await;
        let page = page.as_array().unwrap().clone();
        let done = page.len() < 1000;
        log.extend(page);
        if done {
            break;
        }
    }
    let expected: HashSet<String> = log
        .iter()
        .filter(|t| t["currency"] == currency.as_str() && t["status"] == "APPLIED")
        .skip(4) // the fundings came before the monitor
        .filter(|t| t["source"] == wallets[0].as_str() || t["destination"] == wallets[0].as_str())
        .map(|t| t["transaction_id"].as_str().unwrap().to_string())
        .collect();
    let monitor_path = format!("/balance-monitors/{}", monitor["monitor_id"].as_str().unwrap());
    assert_eq!(server.get(&monitor_path).await.1["trigger_count"], json!(expected.len()));
    let mut delivered = HashSet::new();
    for _ in 0..400 {
        delivered = receiver
            .monitor_events()
            .iter()
            .map(|r| r.body["data"]["transaction_id"].as_str().unwrap().to_string())
            .collect();
        if delivered.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered, expected, "every monitor event of a committed change delivered, none of another");
    println!(
        "crash: {rounds} kills survived, {} acknowledged transactions checked, {} monitor events delivered, nothing \
            lost",
        acknowledged.len(),
        delivered.len()
    );
}
