//! What a platform team sees: Prometheus metrics that move with real traffic, a request id on every
//! response and every log line of its request, JSON logs, secrets never logged, and a graceful stop
//! on SIGTERM that finishes the work in flight.

mod common;

use common::receiver::Receiver;
use common::{unique, unique_currency, wait_for, Server, TestDatabase};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;

/// `name{labels} value` lines of a Prometheus page, keyed by `name{labels}`.
async fn scrape(server: &Server) -> HashMap<String, f64> {
    let response = server.client().get(format!("{}/metrics", server.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_string(), v.parse().unwrap_or(f64::NAN))))
        .collect()
}

fn metric(page: &HashMap<String, f64>, key: &str) -> f64 {
    *page.get(key).unwrap_or_else(|| panic!("{key} missing from /metrics: {:?}", page.keys().collect::<Vec<_>>()))
}

#[tokio::test]
async fn metrics_move_with_real_traffic() {
    let receiver = Receiver::start().await;
    let server = Server::start_with_args(&["--webhook-url", &receiver.url]);
    let currency = unique_currency();
    let ledger = server.ledger("observed").await;
    let alice = server.balance(&ledger, &currency).await;
    let bob = server.balance(&ledger, &currency).await;
    server
        .create(
            "/balance-monitors",
            json!({"balance_id": bob, "condition": {"field": "balance", "operator": ">", "value": 10}}),
        )
        .await;
    assert_eq!(server.transfer("@World", &alice, 100, &currency).await.0, StatusCode::CREATED);
    for _ in 0..3 {
        assert_eq!(server.transfer(&alice, &bob, 20, &currency).await.0, StatusCode::CREATED);
        // bob: 20, 40, 60
    }
    assert_eq!(server.transfer(&alice, &bob, 1000, &currency).await.0, StatusCode::BAD_REQUEST);
    let queued = server
        .create(
            "/transactions",
            json!({"precise_amount": 5, "currency": currency, "source": alice, "destination": bob,
            "reference": unique("q")}),
        )
        .await;
    wait_for(&server, &format!("/transactions/{}", queued["transaction_id"].as_str().unwrap()), |t| {
        t["status"] == "APPLIED"
    })
    .await;
    // Webhooks: 5 transaction.applied, 1 transaction.queued, 4 monitor triggers (bob > 10 four times);
    // besides, ledger.created and balance.created for the ledger, the two balances and @World.
    receiver.wait_for(10).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await; // let the outbox gauge refresh

    let page = scrape(&server).await;
    let tx = |status: &str| format!("keel_transactions_total{{status=\"{status}\"}}");
    assert_eq!(metric(&page, &tx("APPLIED")), 5.0);
    assert_eq!(metric(&page, &tx("QUEUED")), 1.0);
    assert_eq!(metric(&page, &tx("REFUSED")), 1.0);
    assert_eq!(metric(&page, r#"keel_http_requests_total{route="/transactions",method="POST",status="201"}"#), 5.0);
    assert_eq!(metric(&page, r#"keel_http_requests_total{route="/transactions",method="POST",status="400"}"#), 1.0);
    assert_eq!(metric(&page, r#"keel_http_requests_total{route="/balance-monitors",method="POST",status="201"}"#), 1.0);
    assert_eq!(metric(&page, "keel_monitor_triggers_total"), 4.0);
    assert!(metric(&page, "keel_monitor_evaluations_total") >= 4.0);
    assert!(metric(&page, "keel_engine_batch_size_count") >= 8.0, "one batch per write at least");
    assert!(metric(&page, "keel_engine_commit_duration_seconds_count") >= 8.0);
    assert_eq!(metric(&page, r#"keel_webhook_deliveries_total{outcome="delivered"}"#), 14.0);
    assert_eq!(metric(&page, "keel_webhook_delivery_lag_seconds_count"), 14.0);
    assert_eq!(metric(&page, "keel_outbox_pending_events"), 0.0);
    assert!(metric(&page, r#"keel_db_pool_connections{state="idle"}"#) >= 0.0);
    assert!(metric(&page, r#"keel_http_request_duration_seconds_count{route="/transactions",method="POST"}"#) >= 6.0);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let server = Server::start();
    let url = format!("{}/ledgers", server.base);
    let response = server.client().get(&url).header("x-request-id", "client-chosen-42").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chosen-42", "a sane incoming id is kept");
    let response = server.client().get(&url).send().await.unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let response = server.client().get(&url).header("x-request-id", "x".repeat(500)).send().await.unwrap();
    assert_ne!(response.headers()["x-request-id"].len(), 500, "an absurd id is replaced");
    let response = server.client().get(format!("{}/nowhere", server.base)).send().await.unwrap();
    assert!(response.headers().contains_key("x-request-id"), "errors carry one too");
}

#[tokio::test]
async fn json_logs_tie_lines_to_requests_and_never_show_secrets() {
    let server = Server::start_with_args(&[
        "--log-format",
        "json",
        "--api-key",
        "sup3r-s3cret-key",
        "--webhook-secret",
        "whsec_c2VjcmV0",
    ]);
    let response = server
        .client()
        .post(format!("{}/ledgers", server.base))
        .header("x-blnk-key", "sup3r-s3cret-key")
        .header("x-request-id", "json-req-7")
        .json(&json!({"name": "logged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let bad = server
        .client()
        .get(format!("{}/ledgers", server.base))
        .header("x-blnk-key", "wrong-guess")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = server.logs();
    let parsed: Vec<Value> =
        logs.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    let served = parsed
        .iter()
        .find(|l| l["span"]["request_id"] == "json-req-7")
        .unwrap_or_else(|| panic!("no line of request json-req-7 in {logs:?}"));
    assert_eq!(served["fields"]["status"], json!(201));
    assert_eq!(served["span"]["route"], "/ledgers");
    for secret in ["sup3r-s3cret-key", "wrong-guess", "whsec_c2VjcmV0"] {
        assert!(!logs.iter().any(|l| l.contains(secret)), "{secret} appears in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_the_work_in_flight_and_exits_zero() {
    let database = TestDatabase::new();
    let server = Server::start_on(&database.url, &[]);
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("draining").await, &currency).await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (http, base, wallet, currency) =
            (server.client().clone(), server.base.clone(), wallet.clone(), currency.clone());
        clients.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for _ in 0..200 {
                let body = json!({"precise_amount": 1, "currency": currency, "source": "@World", "destination": wallet,
                    "reference": unique("t"), "skip_queue": true});
                match http.post(format!("{base}/transactions")).json(&body).send().await {
                    Ok(r) if r.status() == StatusCode::CREATED => acknowledged
                        .push(r.json::<Value>().await.unwrap()["transaction_id"].as_str().unwrap().to_string()),
                    _ => break, // the server stopped accepting
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let stopper = std::thread::spawn(move || server.stop());
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap());
    }
    assert!(stopper.join().unwrap(), "SIGTERM exits 0");
    assert!(!acknowledged.is_empty());
    let server = Server::start_on(&database.url, &[]);
    for id in &acknowledged {
        assert_eq!(server.get(&format!("/transactions/{id}")).await.0, StatusCode::OK, "acknowledged {id} is durable");
    }
    let (_, balance) = server.get(&format!("/balances/{wallet}")).await;
    assert_eq!(balance["balance"], json!(acknowledged.len()), "exactly the acknowledged transfers moved money");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_stay_small_whatever_refused_requests_name() {
    let server = std::sync::Arc::new(Server::start());
    let size = |server: &Server| {
        let request = server.client().get(format!("{}/metrics", server.base)).send();
        async move { request.await.unwrap().text().await.unwrap() }
    };
    let (ledger, currency) = (server.ledger("hostile").await, unique_currency());
    let wallet = server.balance(&ledger, &currency).await;
    assert_eq!(server.transfer("@World", &wallet, 1, &currency).await.0, StatusCode::CREATED);
    let before = size(&server).await;
    let rss = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().to_string();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
    };
    let rss_before = rss(server.pid());
    // 3,000 refused transactions, each in a currency of its own, and 500 requests with methods of
    // their own: neither may become a label.
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (server, wallet) = (server.clone(), wallet.clone());
            tokio::spawn(async move {
                for i in (t..3000).step_by(8) {
                    let currency = format!("HOSTILE{i}{}", "X".repeat(50));
                    let body = json!({"precise_amount": 1, "currency": currency, "source": "@World",
                        "destination": wallet, "reference": unique("h"), "skip_queue": true});
                    let (status, answer) = server.post("/transactions", body).await;
                    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
                }
                for i in (t..500).step_by(8) {
                    let method = reqwest::Method::from_bytes(format!("HOSTILE{i}").as_bytes()).unwrap();
                    let answer = server.client().request(method, format!("{}/balances", server.base)).send().await;
                    assert!(answer.unwrap().status().is_client_error());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let after = size(&server).await;
    assert!(!after.contains("HOSTILE"), "no label took a client's value");
    assert!(
        after.len() < before.len() + 16 * 1024,
        "/metrics grew from {} to {} bytes after hostile requests",
        before.len(),
        after.len()
    );
    let rss_after = rss(server.pid());
    assert!(rss_after < rss_before + 64, "the server grew from {rss_before} to {rss_after} MiB");
    let page = scrape(&server).await;
    assert_eq!(metric(&page, r#"keel_transactions_total{status="REFUSED"}"#), 3000.0);
    assert_eq!(metric(&page, r#"keel_http_requests_total{route="/balances",method="OTHER",status="405"}"#), 500.0);
}
