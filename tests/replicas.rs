//! Read replicas (`--database-replica`) against a real hot standby: a PostgreSQL primary and a
//! standby streaming from it, made for the test from the machine's PostgreSQL (`common::cluster`).
//! Lists come from the standby (shown by pausing its replay: a new transaction is missing from the
//! list, yet a read of it by id or reference, right after its `POST`, finds it on the primary); a
//! standby more than 5 s behind, or that stops answering, sends its reads to the primary; and a URL
//! that is not a replica of Keel's database is refused at start.
//!
//! Needs PostgreSQL, so `cargo test` lists it as ignored; `.ci/run` runs it with
//! `KEEL_TEST_POSTGRES_URL=… cargo test -- --include-ignored`.

mod common;

use common::cluster::Cluster;
use common::database::postgres_url;
use common::{unique, Server};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

/// The references of the transactions a list of `currency` shows.
async fn listed(server: &Server, currency: &str) -> Vec<String> {
    let (status, list) = server.get(&format!("/transactions?currency_eq={currency}&limit=100")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().unwrap().iter().map(|t| t["reference"].as_str().unwrap().to_string()).collect()
}

/// Waits (at most 20 s) until the list shows `reference`.
async fn until_listed(server: &Server, currency: &str, reference: &str) {
    for _ in 0..200 {
        if listed(server, currency).await.iter().any(|r| r == reference) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{reference} was never listed");
}

// tidy: long because it is one scenario, step by step
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn lists_come_from_the_replica_and_a_read_by_id_sees_its_own_write() {
    assert!(postgres_url().is_some(), "replicas are PostgreSQL's: set KEEL_TEST_POSTGRES_URL");
    let cluster = tokio::task::block_in_place(|| Cluster::start(false));
    let server = Server::start_on(&cluster.primary.url(), &["--database-replica", &cluster.standby.url()]);
    let (currency, wallets) = common::parties(&server, 2).await;
    let transfer = |reference: &str| {
        json!({"precise_amount": 7, "currency": currency, "source": wallets[1], "destination": wallets[2],
            "reference": reference, "skip_queue": true, "allow_overdraft": true})
    };
    let first = unique("replica");
    assert_eq!(server.post("/transactions", transfer(&first)).await.0, StatusCode::CREATED);
    until_listed(&server, &currency, &first).await;
    // A replica whose read failed (one still replaying the migrations, right after start) rests
    // for 5 s, its reads going to the primary meanwhile: wait until it serves them again.
    if server.logs().iter().any(|l| l.contains("reads go elsewhere")) {
        tokio::time::sleep(Duration::from_millis(5_500)).await;
    }

    // The standby stops replaying: what commits now is on the primary only.
    tokio::task::block_in_place(|| cluster.standby.sql("test", "SELECT pg_wal_replay_pause()"));
    let second = unique("replica");
    let (status, made) = server.post("/transactions", transfer(&second)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["transaction_id"].as_str().unwrap();
    let (status, by_id) = server.get(&format!("/transactions/{id}")).await;
    assert_eq!((status, by_id["reference"].as_str()), (StatusCode::OK, Some(second.as_str())), "read your write");
    let (status, by_reference) = server.get(&format!("/transactions/reference/{second}")).await;
    assert_eq!((status, &by_reference["transaction_id"]), (StatusCode::OK, &made["transaction_id"]));
    let (_, balance) = server.get(&format!("/balances/{}", wallets[2])).await;
    assert_eq!(balance["credit_balance"], json!(14), "a balance by id is the primary's too");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = listed(&server, &currency).await;
    assert!(seen.contains(&first) && !seen.contains(&second), "the list is the paused replica's: {seen:?}");
    let (status, history) = server.get(&format!("/balances/{}/history", wallets[2])).await;
    assert_eq!(status, StatusCode::OK, "{history}");

    // Still paused 5 s on, the replica is too far behind: lists come from the primary.
    until_listed(&server, &currency, &second).await;
    assert!(server.logs().iter().any(|l| l.contains("behind the primary")), "the lag is logged");

    // Replay again, then the standby stops: lists come from the primary.
    tokio::task::block_in_place(|| cluster.standby.sql("test", "SELECT pg_wal_replay_resume()"));
    tokio::task::block_in_place(|| cluster.standby.stop_immediately());
    let third = unique("replica");
    assert_eq!(server.post("/transactions", transfer(&third)).await.0, StatusCode::CREATED);
    let seen = listed(&server, &currency).await;
    assert!(seen.contains(&third), "with the replica gone, the primary answers the list: {seen:?}");
    let logs = server.logs().join("\n");
    assert!(logs.contains("replica") && logs.contains("reads go elsewhere"), "the fallback is logged: {logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn a_replica_of_another_database_is_refused_at_start() {
    let other = postgres_url().expect("replicas are PostgreSQL's: set KEEL_TEST_POSTGRES_URL");
    let cluster = tokio::task::block_in_place(|| Cluster::start(false));
    let (ok, log) = common::keel_within_20s(
        std::env::temp_dir().as_path(),
        &["serve", "--port", "0", "--database", &cluster.primary.url(), "--database-replica", &other],
    )
    .expect("keel stops by itself");
    assert!(!ok, "it must not start: {log}");
    assert!(log.contains("is not a replica of the primary's database"), "{log}");
}
