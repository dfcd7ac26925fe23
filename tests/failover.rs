//! PostgreSQL failing over, and restarting, while Keel is under load: a real primary with a
//! synchronous hot standby (`common::cluster`), and Keel given both in one URL (libpq's multi-host
//! form with `target_session_attrs=read-write`). Clients post transfers throughout, each retrying
//! the same reference until it gets a definite answer (a retryable error while the database is
//! away). Afterwards every acknowledged transfer is stored exactly once, nothing else is, `keel
//! check` passes against whichever server is primary now, and every monitor event of a stored
//! transfer was delivered.
//!
//! Needs PostgreSQL, so `cargo test` lists it as ignored; `.ci/run` runs it with
//! `KEEL_TEST_POSTGRES_URL=… cargo test -- --include-ignored`.

mod common;

use common::cluster::Cluster;
use common::database::postgres_url;
use common::invariants::{all, assert_ledger_invariants};
use common::receiver::Receiver;
use common::{unique, Server};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;

/// What happens to the database while the load runs.
#[derive(Clone, Copy)]
enum Fault {
    /// The primary stops at once (a crash) and the standby is promoted.
    Failover,
    /// The primary restarts (a clean stop and start: every connection cut).
    Restart,
}

/// What one client saw: the references the server acknowledged (directly, or as a duplicate of an
/// earlier attempt that had committed) and the retryable answers it got on the way.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<String>,
    retryable: Vec<String>,
}

/// Posts transfers until `stop`, each retried with its own reference until a definite answer.
async fn client(
    server: Arc<Server>,
    wallets: Arc<Vec<String>>,
    currency: String,
    n: usize,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut seen = Seen::default();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let (from, to) = (&wallets[(n + i) % wallets.len()], &wallets[(n + 2 * i + 1) % wallets.len()]);
        if from == to {
            continue;
        }
        let reference = unique("fo");
        let body = json!({"precise_amount": 1 + (n + i) % 50, "currency": currency, "source": from,
            "destination": to, "reference": reference, "skip_queue": true, "allow_overdraft": true});
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let answer = server.send("POST", "/transactions", &[], body.to_string().into_bytes()).await;
            let json = |a: &common::Answer| serde_json::from_str::<serde_json::Value>(&a.body).unwrap_or_default();
            let definite = match &answer {
                Some(a) if a.status == StatusCode::CREATED => true,
                Some(a) if a.status == StatusCode::BAD_REQUEST => {
                    assert_eq!(json(a)["error_detail"]["code"], "TXN_DUPLICATE_REFERENCE", "{}", json(a));
                    true // an earlier attempt, whose answer was lost, had committed
                }
                Some(a) if a.status == StatusCode::SERVICE_UNAVAILABLE => {
                    seen.retryable.push(json(a)["error_detail"]["code"].as_str().unwrap_or("").to_string());
                    false
                }
                Some(a) => panic!("{reference}: not a clear answer: {} {}", a.status, json(a)),
                None => false, // the connection to Keel itself failed: try again
            };
            if definite {
                seen.acknowledged.push(reference);
                break;
            }
            assert!(Instant::now() < deadline, "{reference} had no definite answer within 90 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    seen
}

// tidy: long because it is one scenario, step by step
async fn survives(fault: Fault) {
    assert!(postgres_url().is_some(), "failover is PostgreSQL's: set KEEL_TEST_POSTGRES_URL");
    let cluster = tokio::task::block_in_place(|| Cluster::start(true));
    let url = cluster.failover_url();
    let receiver = Receiver::start().await;
    let args =
        ["--webhook-url", receiver.url.as_str(), "--webhook-retry-base-ms", "50", "--webhook-retry-max-ms", "500"];
    let server = Arc::new(Server::start_on(&url, &args));
    let (currency, mut wallets) = common::parties(&server, 4).await;
    wallets.remove(0); // @World: the wallets are the rest
    let monitor = server
        .create(
            "/balance-monitors",
            json!({"balance_id": wallets[0], "condition": {"field": "credit_balance", "operator": ">", "value": 0},
                "trigger": "level"}),
        )
        .await;

    let (stop, wallets) = (Arc::new(AtomicBool::new(false)), Arc::new(wallets));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(server.clone(), wallets.clone(), currency.clone(), n, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tokio::task::block_in_place(|| match fault {
        Fault::Failover => {
            cluster.primary.stop_immediately();
            cluster.standby.promote();
        }
        Fault::Restart => cluster.primary.restart(),
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = BTreeSet::new();
    let mut retryable = Vec::new();
    for c in clients {
        let seen = c.await.expect("a client finished");
        acknowledged.extend(seen.acknowledged);
        retryable.extend(seen.retryable);
    }
    assert!(acknowledged.len() > 50, "the load ran ({} transfers)", acknowledged.len());
    let codes: HashSet<&str> = retryable.iter().map(String::as_str).collect();
    let lost_commits = server.logs().iter().filter(|l| l.contains("COMMIT failed")).count();
    eprintln!(
        "{} transfers acknowledged; {} retryable answers {codes:?}; {lost_commits} COMMIT answers lost",
        acknowledged.len(),
        retryable.len()
    );
    assert!(codes.iter().all(|c| !c.is_empty()), "every retryable answer has a code: {codes:?}");

    // Stored exactly once each, and nothing else: the log of the load's references is the set
    // acknowledged (a reference is unique, so "once" is "present").
    assert_ledger_invariants(&server, &currency).await;
    let log = all(&server, "/transactions").await;
    let stored: BTreeSet<String> = log
        .iter()
        .filter_map(|t| t["reference"].as_str().filter(|r| r.starts_with("fo")).map(str::to_string))
        .collect();
    assert_eq!(stored.len(), acknowledged.len(), "every acknowledged transfer stored, nothing else");
    assert_eq!(stored, acknowledged);
    let (ok, report) = tokio::task::block_in_place(|| common::keel(&["check", "--database", &url]));
    assert!(ok, "keel check after the fault: {report}");

    // Every stored transfer into wallet 0 fired the monitor ("level": also those out of it, once it
    // holds), and its event was delivered, at least once; no event is of a transfer not stored.
    let into_first: HashSet<String> = log
        .iter()
        .filter(|t| {
            t["destination"] == wallets[0].as_str() && t["reference"].as_str().is_some_and(|r| r.starts_with("fo"))
        })
        .map(|t| t["transaction_id"].as_str().unwrap().to_string())
        .collect();
    let mut delivered = HashSet::new();
    for _ in 0..600 {
        delivered = receiver
            .monitor_events()
            .iter()
            .filter(|r| r.body["data"]["monitor_id"] == monitor["monitor_id"])
            .map(|r| r.body["data"]["transaction_id"].as_str().unwrap().to_string())
            .collect();
        if into_first.is_subset(&delivered) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(into_first.is_subset(&delivered), "{} of {} monitor events delivered", delivered.len(), into_first.len());
    let stored_ids: HashSet<String> = log.iter().map(|t| t["transaction_id"].as_str().unwrap().to_string()).collect();
    assert!(delivered.is_subset(&stored_ids), "no event of a transfer that was not stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn promoting_the_standby_under_load_loses_and_doubles_nothing() {
    survives(Fault::Failover).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn restarting_the_primary_under_load_loses_and_doubles_nothing() {
    survives(Fault::Restart).await;
}

/// With no database to be had for longer than the engine's retries last, a write and a read are
/// answered `503 GEN_UNAVAILABLE` with `Retry-After` (not a 500, not a wait without end), nothing
/// of the write is stored, and the same request succeeds once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn a_request_the_database_cannot_take_is_a_retryable_503() {
    assert!(postgres_url().is_some(), "this is PostgreSQL's: set KEEL_TEST_POSTGRES_URL");
    let cluster = tokio::task::block_in_place(|| Cluster::start(false));
    let server = Server::start_on(&cluster.failover_url(), &[]);
    let (currency, wallets) = common::parties(&server, 2).await;
    let body = json!({"precise_amount": 5, "currency": currency, "source": wallets[1], "destination": wallets[2],
        "reference": unique("away"), "skip_queue": true, "allow_overdraft": true});
    tokio::task::block_in_place(|| {
        cluster.standby.stop_immediately();
        cluster.primary.stop_immediately();
    });
    // Several writes at once, so a batch of several meets the database away: each is answered once
    // the retries are over (before, the batch's requests were then re-run one after another, each
    // retrying as long again, so the last waited past the client's 60 s).
    let writes = (0..6).map(|_| {
        let mut body = body.clone();
        body["reference"] = json!(unique("away"));
        server.send("POST", "/transactions", &[], body.to_string().into_bytes())
    });
    for answer in futures_util::future::join_all(writes).await {
        let answer = answer.expect("Keel answers each write");
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.body);
    }
    for (method, path, body) in [("POST", "/transactions", body.to_string()), ("GET", "/ledgers", String::new())] {
        let answer = server.send(method, path, &[], body.into_bytes()).await.expect("Keel answers");
        let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{method} {path}: {json}");
        assert_eq!(json["error_detail"]["code"], "GEN_UNAVAILABLE");
        assert_eq!(answer.headers["retry-after"], "1");
    }
    tokio::task::block_in_place(|| cluster.primary.start());
    let (status, made) = server.post("/transactions", body).await;
    assert_eq!(status, StatusCode::CREATED, "the same request, once the database is back: {made}");
    let (_, balance) = server.get(&format!("/balances/{}", wallets[2])).await;
    assert_eq!(balance["credit_balance"], json!(5), "applied once");
}
