//! Webhook endpoints (`/webhooks`) against real local receivers: each event arrives once at every
//! endpoint that subscribed to it and nowhere else, with the endpoint's own signature and headers;
//! a hanging or dead endpoint never delays another; failed deliveries are inspectable, retried and
//! redeliverable; a test delivery; a process killed mid-stream resumes without a gap. Runs on the
//! suite's backend (SQLite, or PostgreSQL with `KEEL_TEST_POSTGRES_URL`).

mod common;

use base64::Engine;
use common::receiver::{Mode, Received, Receiver, ReservedPort};
use common::{kill_under_load, unique_currency, Server, TestDatabase};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::BTreeSet;
use std::time::Duration;

fn hmac(key: &[u8], message: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Checks both signatures of a delivery against `secret`, computed here independently.
fn assert_signed_with(received: &Received, secret: &str) {
    let (id, ts) = (received.header("webhook-id"), received.header("webhook-timestamp"));
    let key = match secret.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64).unwrap(),
        None => secret.as_bytes().to_vec(),
    };
    let standard = hmac(&key, &format!("{id}.{ts}.{}", received.raw));
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(standard));
    assert_eq!(received.header("webhook-signature"), expected, "Standard Webhooks signature");
    let blnk = hmac(secret.as_bytes(), &format!("{}.{}", received.header("x-blnk-timestamp"), received.raw));
    let hex: String = blnk.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(received.header("x-blnk-signature"), hex, "Blnk's signature");
}

/// Fast retries (50 attempts, unless `extra` says), and `timeout_ms` for a receiver's answer.
fn args(timeout_ms: u64, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> =
        ["--webhook-retry-base-ms", "50", "--webhook-retry-max-ms", "200"].iter().map(|s| s.to_string()).collect();
    if !extra.contains(&"--webhook-max-attempts") {
        args.extend(["--webhook-max-attempts".to_string(), "50".to_string()]);
    }
    args.extend(["--webhook-timeout-ms".to_string(), timeout_ms.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn start(args: &[String]) -> Server {
    Server::start_with_args(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

async fn endpoint(server: &Server, body: Value) -> Value {
    let (status, answer) = server.post("/webhooks", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body} → {answer}");
    answer
}

/// The event ids of `received` of type `event`, each once; panics on a duplicate.
fn ids_of(received: &[Received], event: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for r in received.iter().filter(|r| r.body["event"] == event) {
        assert!(ids.insert(r.header("webhook-id").to_string()), "{event} {} arrived twice", r.header("webhook-id"));
    }
    ids
}

/// Waits until `receiver` has `n` deliveries of `event` (at most 20 s).
async fn wait_for_events(receiver: &Receiver, event: &str, n: usize) -> Vec<Received> {
    for _ in 0..400 {
        let got = receiver.received_all();
        if got.iter().filter(|r| r.body["event"] == event).count() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count = receiver.received_all().iter().filter(|r| r.body["event"] == event).count();
    panic!("expected {n} {event} deliveries, got {count}");
}

/// A funded ledger: `@World` pays `wallet`; a monitor fires when the wallet passes 1.00 (100 minor
/// units). Returns (currency, wallet).
async fn ledger_with_monitor(server: &Server) -> (String, String) {
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("hooks").await, &currency).await;
    let condition = json!({"field": "balance", "operator": ">", "value": 1, "precision": 100});
    server.create("/balance-monitors", json!({"balance_id": wallet, "condition": condition})).await;
    (currency, wallet)
}

// tidy: long because it is one scenario: five receivers, one load, then what each one got
#[tokio::test]
async fn each_event_arrives_once_at_every_endpoint_that_wants_it_and_only_there() {
    let (transactions, monitors, everything, inactive, server_wide) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let server = start(&args(
        2000,
        &[
            "--webhook-url",
            &server_wide.url,
            "--webhook-secret",
            "server-wide-secret",
            "--webhook-headers",
            "Authorization:Bearer server,X-Env:test",
        ],
    ));
    let a = endpoint(
        &server,
        json!({"url": transactions.url, "events": ["transaction.*"],
        "headers": {"X-Team": "payments"}}),
    )
    .await;
    let b = endpoint(
        &server,
        json!({"url": monitors.url, "events": ["balance.monitor"],
        "secret": "monitor-endpoint-secret", "headers": {"Authorization": "Bearer monitors"}}),
    )
    .await;
    endpoint(&server, json!({"url": everything.url, "events": ["*"], "description": "all"})).await;
    endpoint(&server, json!({"url": inactive.url, "active": false})).await;
    assert!(a["secret"].as_str().unwrap().starts_with("whsec_"), "a generated secret: {a}");
    assert_eq!(b["secret"], "monitor-endpoint-secret");

    let (currency, wallet) = ledger_with_monitor(&server).await;
    let mut applied = BTreeSet::new();
    for _ in 0..20 {
        let (status, t) = server.transfer("@World", &wallet, 10, &currency).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        applied.insert(t["transaction_id"].as_str().unwrap().to_string());
    }
    // 20 transfers of 10: the wallet passes 100 at the 11th; an every-time monitor fires 10 times.
    wait_for_events(&transactions, "transaction.applied", 20).await;
    wait_for_events(&monitors, "balance.monitor", 10).await;
    wait_for_events(&everything, "balance.monitor", 10).await;
    wait_for_events(&everything, "transaction.applied", 20).await;
    wait_for_events(&server_wide, "balance.monitor", 10).await;
    // Anything sent twice, or elsewhere, would have arrived by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let got_a = transactions.received_all();
    assert!(got_a.iter().all(|r| r.body["event"].as_str().unwrap().starts_with("transaction.")), "only transaction.*");
    let delivered: BTreeSet<String> = got_a
        .iter()
        .filter(|r| r.body["event"] == "transaction.applied")
        .map(|r| r.body["data"]["transaction_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(delivered, applied, "every applied transaction, at the transactions endpoint");
    ids_of(&got_a, "transaction.applied");
    for r in &got_a {
        assert_signed_with(r, a["secret"].as_str().unwrap());
        assert_eq!(r.header("x-team"), "payments");
        assert_eq!(r.header("authorization"), "", "another endpoint's headers never leak");
    }

    let got_b = monitors.received_all();
    assert_eq!(got_b.len(), 10, "only balance.monitor, each once");
    assert_eq!(ids_of(&got_b, "balance.monitor").len(), 10);
    for r in &got_b {
        assert_signed_with(r, "monitor-endpoint-secret");
        assert_eq!(r.header("authorization"), "Bearer monitors");
    }

    let got_c = everything.received_all();
    let c_monitor_ids = ids_of(&got_c, "balance.monitor");
    assert_eq!(c_monitor_ids, ids_of(&got_b, "balance.monitor"), "the same events, with the same webhook-id");
    assert_eq!(ids_of(&got_c, "transaction.applied").len(), 20);
    assert!(got_c.iter().any(|r| r.body["event"] == "balance.created"), "`*` has creation events too");
    assert!(inactive.received_all().is_empty(), "an inactive endpoint is sent nothing");

    // The server's URL keeps its own secret and its --webhook-headers.
    let wide = server_wide.received_all();
    assert_eq!(ids_of(&wide, "balance.monitor"), c_monitor_ids);
    for r in &wide {
        assert_signed_with(r, "server-wide-secret");
        assert_eq!(r.header("authorization"), "Bearer server");
        assert_eq!(r.header("x-env"), "test");
    }
}

#[tokio::test]
async fn a_hanging_or_dead_endpoint_never_delays_another_and_its_events_arrive_once_it_is_back() {
    let (healthy, hanging) = (Receiver::start().await, Receiver::start().await);
    hanging.set_mode(Mode::Hang);
    let down = ReservedPort::new();
    // A receiver's answer is awaited up to 30 s: were the healthy endpoint behind either of the
    // others, its 30 events would not all arrive within the 20 s wait below.
    let server = start(&args(30_000, &[]));
    let ok = endpoint(&server, json!({"url": healthy.url, "events": ["transaction.applied"]})).await;
    endpoint(&server, json!({"url": hanging.url, "events": ["transaction.applied"]})).await;
    let dead = endpoint(&server, json!({"url": down.url(), "events": ["transaction.applied"]})).await;
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("iso").await, &currency).await;
    for _ in 0..30 {
        server.transfer("@World", &wallet, 1, &currency).await;
    }
    let got = wait_for_events(&healthy, "transaction.applied", 30).await;
    assert_eq!(ids_of(&got, "transaction.applied").len(), 30);
    // The hanging endpoint is posted to (and holds the requests), whichever worker started first.
    for _ in 0..400 {
        if !hanging.received_all().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!hanging.received_all().is_empty(), "the hanging endpoint was posted to");
    let ok_id = ok["endpoint_id"].as_str().unwrap();
    let (_, none) = server.get(&format!("/webhooks/{ok_id}/deliveries")).await;
    assert_eq!(none, json!([]), "a healthy endpoint keeps no delivery rows");

    // The dead endpoint's first attempts failed: each event is a pending delivery, retried.
    let dead_id = dead["endpoint_id"].as_str().unwrap();
    let pending = common::wait_for(&server, &format!("/webhooks/{dead_id}/deliveries?status=pending&limit=100"), |v| {
        v.as_array().is_some_and(|list| list.len() == 30)
    })
    .await;
    let first = &pending[0];
    assert_eq!(first["event"], "transaction.applied");
    assert_eq!(first["last_error"], "connection failed");
    let event_id = first["event_id"].as_str().unwrap();
    let (status, one) = server.get(&format!("/webhooks/{dead_id}/deliveries/{event_id}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    let attempts = one["deliveries"].as_array().unwrap();
    assert!(!attempts.is_empty() && attempts.iter().all(|a| a["endpoint_id"] == dead_id), "{one}");
    // The event's own log lists the endpoint's attempts too.
    let (_, event) = server.get(&format!("/events/{event_id}")).await;
    assert!(event["deliveries"].as_array().unwrap().iter().any(|a| a["endpoint_id"] == dead_id), "{event}");

    let back = Receiver::start_on(down);
    let got = wait_for_events(&back, "transaction.applied", 30).await;
    assert_eq!(ids_of(&got, "transaction.applied").len(), 30, "every event, once");
    common::wait_for(&server, &format!("/webhooks/{dead_id}/deliveries?status=delivered&limit=100"), |v| {
        v.as_array().is_some_and(|list| list.len() == 30)
    })
    .await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_inspectable_and_redeliverable() {
    let receiver = Receiver::start().await;
    receiver.fail_next(&[500, 503]);
    let server = start(&args(2000, &[]));
    let hook = endpoint(&server, json!({"url": receiver.url, "events": ["ledger.created"]})).await;
    let id = hook["endpoint_id"].as_str().unwrap();
    server.ledger("first").await;
    let got = wait_for_events(&receiver, "ledger.created", 3).await;
    assert_eq!(got.len(), 3, "two failures, then delivered");
    let event_id = got[0].header("webhook-id").to_string();
    assert!(got.iter().all(|r| r.header("webhook-id") == event_id), "a stable webhook-id across retries");
    let delivery =
        common::wait_for(&server, &format!("/webhooks/{id}/deliveries/{event_id}"), |v| v["status"] == "delivered")
            .await;
    assert_eq!(delivery["attempts"], 3);
    let codes: Vec<Value> =
        delivery["deliveries"].as_array().unwrap().iter().map(|a| a["status_code"].clone()).collect();
    assert_eq!(codes, vec![json!(500), json!(503), json!(200)]);

    // Redelivered on request, with the same webhook-id.
    let (status, again) = server.post(&format!("/webhooks/{id}/deliveries/{event_id}/redeliver"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "pending");
    let got = wait_for_events(&receiver, "ledger.created", 4).await;
    assert_eq!(got[3].header("webhook-id"), event_id);
    let (status, _) = server.post(&format!("/webhooks/{id}/deliveries/evt_nope/redeliver"), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Out of attempts: failed, and kept.
    let stubborn = Receiver::start().await;
    stubborn.set_mode(Mode::Status(500));
    let server = start(&args(2000, &["--webhook-max-attempts", "2"]));
    let hook = endpoint(&server, json!({"url": stubborn.url, "events": ["ledger.created"]})).await;
    let id = hook["endpoint_id"].as_str().unwrap();
    server.ledger("second").await;
    let failed = common::wait_for(&server, &format!("/webhooks/{id}/deliveries?status=failed"), |v| {
        v.as_array().is_some_and(|l| l.len() == 1)
    })
    .await;
    assert_eq!(failed[0]["attempts"], 2);
    assert_eq!(failed[0]["last_error"], "receiver answered 500 Internal Server Error");
}

#[tokio::test]
async fn a_test_delivery_is_signed_and_says_how_the_receiver_took_it() {
    let receiver = Receiver::start().await;
    let server = start(&args(2000, &[]));
    let hook = endpoint(
        &server,
        json!({"url": receiver.url, "events": ["transaction.applied"],
        "headers": {"X-Tenant": "acme"}}),
    )
    .await;
    let id = hook["endpoint_id"].as_str().unwrap();
    let (status, answer) = server.post(&format!("/webhooks/{id}/test"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["delivered"], true);
    assert_eq!(answer["status_code"], 200);
    let got = receiver.received_all();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["event"], "webhook.test");
    assert_eq!(got[0].body["data"]["endpoint_id"], id);
    assert_eq!(got[0].header("webhook-id"), answer["event_id"].as_str().unwrap());
    assert_eq!(got[0].header("x-tenant"), "acme");
    assert_signed_with(&got[0], hook["secret"].as_str().unwrap());

    let down = ReservedPort::new();
    let dead = endpoint(&server, json!({"url": down.url()})).await;
    let (status, answer) =
        server.post(&format!("/webhooks/{}/test", dead["endpoint_id"].as_str().unwrap()), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["delivered"], false);
    assert_eq!(answer["error"], "connection failed");
}

#[tokio::test]
async fn endpoints_are_created_read_changed_and_deleted_and_bad_fields_are_400s_naming_them() {
    let server = start(&args(2000, &[]));
    for (body, field) in [
        (json!({}), "url"),
        (json!({"url": "ftp://x"}), "url"),
        (json!({"url": "http://127.0.0.1:1/", "events": ["transactions.*"]}), "events"),
        (json!({"url": "http://127.0.0.1:1/", "events": []}), "events"),
        (json!({"url": "http://127.0.0.1:1/", "secret": "short"}), "secret"),
        (json!({"url": "http://127.0.0.1:1/", "headers": {"Content-Type": "text/plain"}}), "headers"),
        (json!({"url": "http://127.0.0.1:1/", "headers": {"X-Ok": "a\nb"}}), "headers"),
        (json!({"url": "http://127.0.0.1:1/", "headers": {"X-Num": 1}}), "headers.X-Num"),
        (json!({"url": "http://127.0.0.1:1/", "event_types": ["*"]}), "event_types"),
    ] {
        let (status, answer) = server.post("/webhooks", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], field, "{body} → {answer}");
    }
    let hook = endpoint(&server, json!({"url": "http://127.0.0.1:1/a"})).await;
    let id = hook["endpoint_id"].as_str().unwrap();
    assert_eq!(hook["events"], json!(["*"]));
    assert_eq!(hook["active"], true);
    let (status, read) = server.get(&format!("/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(read.get("secret").is_none(), "the secret is shown once: {read}");
    let (_, list) = server.get("/webhooks").await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let (status, changed) =
        server.put(&format!("/webhooks/{id}"), json!({"events": ["balance.monitor.*"], "headers": {"X-A": "1"}})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["events"], json!(["balance.monitor.*"]));
    assert_eq!(changed["headers"], json!({"x-a": "1"}));
    assert_eq!(changed["url"], "http://127.0.0.1:1/a", "fields left out stay");
    assert!(changed.get("secret").is_none());
    let (_, rotated) = server.put(&format!("/webhooks/{id}"), json!({"secret": "a-brand-new-secret-1"})).await;
    assert_eq!(rotated["secret"], "a-brand-new-secret-1", "a secret set is shown in that answer");

    let deleted = server.client().delete(format!("{}/webhooks/{id}", server.base)).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    for (method, path) in [("GET", format!("/webhooks/{id}")), ("PUT", format!("/webhooks/{id}"))] {
        let (status, answer) = server.request(method, &path, Some(json!({"active": true}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_eq!(answer["error_detail"]["code"].as_str(), Some("GEN_NOT_FOUND"), "{answer}");
    }
}

#[tokio::test]
async fn only_the_master_key_manages_endpoints() {
    let server = start(&args(2000, &["--api-key", "master-key"]));
    let client = server.client();
    let created = client
        .post(format!("{}/api-keys", server.base))
        .header("x-blnk-key", "master-key")
        .json(&json!({"name": "all", "owner": "ops", "scopes": ["*:*"]}))
        .send()
        .await
        .unwrap();
    let key: Value = created.json().await.unwrap();
    let scoped = key["key"].as_str().unwrap();
    let refused = client.get(format!("{}/webhooks", server.base)).header("x-blnk-key", scoped).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let allowed =
        client.get(format!("{}/webhooks", server.base)).header("x-blnk-key", "master-key").send().await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
}

#[tokio::test]
async fn deactivated_or_deleted_endpoints_get_nothing_more_and_a_reactivated_one_starts_from_then() {
    let receiver = Receiver::start().await;
    let server = start(&args(2000, &[]));
    let hook = endpoint(&server, json!({"url": receiver.url, "events": ["ledger.created"]})).await;
    let id = hook["endpoint_id"].as_str().unwrap();
    let before = server.ledger("before").await;
    wait_for_events(&receiver, "ledger.created", 1).await;
    server.put(&format!("/webhooks/{id}"), json!({"active": false})).await;
    // The change takes effect within the supervisor's half second.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let during = server.ledger("while off").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    server.put(&format!("/webhooks/{id}"), json!({"active": true})).await;
    let after = server.ledger("after").await;
    let got = wait_for_events(&receiver, "ledger.created", 2).await;
    let ledgers: Vec<&str> = got.iter().map(|r| r.body["data"]["ledger_id"].as_str().unwrap()).collect();
    assert_eq!(ledgers, vec![before.as_str(), after.as_str()], "not {during}, created while it was off");

    let deleted = server.client().delete(format!("{}/webhooks/{id}", server.base)).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    server.ledger("gone").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received_all().len(), 2, "nothing after the delete");
}

#[tokio::test]
async fn a_process_killed_mid_stream_resumes_without_a_gap() {
    let receiver = Receiver::start().await;
    let database = TestDatabase::new();
    let extra = args(2000, &[]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let server = Server::start_on(&database.url, &extra);
    endpoint(&server, json!({"url": receiver.url, "events": ["transaction.applied"]})).await;
    let currency = unique_currency();
    let ledger = server.ledger("kill").await;
    let mut wallets = Vec::new();
    for _ in 0..4 {
        wallets.push(server.balance(&ledger, &currency).await);
    }
    kill_under_load(server, &wallets, &currency).await;

    let server = Server::start_on(&database.url, &extra);
    // Every committed transfer, acknowledged or not, has its event delivered.
    let mut committed = BTreeSet::new();
    for offset in (0..).step_by(1000) {
        let (_, page) = server.get(&format!("/transactions?limit=1000&offset={offset}")).await;
        let page = page.as_array().unwrap().clone();
        committed.extend(page.iter().filter(|t| t["status"] == "APPLIED").map(|t| t["transaction_id"].to_string()));
        if page.len() < 1000 {
            break;
        }
    }
    assert!(!committed.is_empty(), "some transfers committed before the kill");
    // Delivery is at least once: an event sent before the kill but not yet marked is sent again,
    // so what is awaited is every committed transfer, not a count of deliveries.
    let mut delivered = BTreeSet::new();
    for _ in 0..400 {
        delivered = transactions_delivered(&receiver);
        if delivered.is_superset(&committed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered, committed, "every committed transfer's event, and only those");
}

/// The ids of the transactions whose `transaction.applied` event `receiver` got, once each.
fn transactions_delivered(receiver: &Receiver) -> BTreeSet<String> {
    let received = receiver.received_all();
    let applied = received.iter().filter(|r| r.body["event"] == "transaction.applied");
    applied.map(|r| r.body["data"]["transaction_id"].to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn two_processes_on_one_database_send_each_event_to_an_endpoint_once() {
    assert!(common::database::postgres_url().is_some(), "two processes share a database only on PostgreSQL");
    let receiver = Receiver::start().await;
    let database = TestDatabase::new();
    let extra = args(2000, &[]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let a = Server::start_on(&database.url, &extra);
    let b = Server::start_on(&database.url, &extra);
    endpoint(&a, json!({"url": receiver.url, "events": ["transaction.applied"]})).await;
    // B learns of the endpoint from the database, and records its events from then on.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let currency = unique_currency();
    let ledger = a.ledger("two").await;
    let wallet = a.balance(&ledger, &currency).await;
    for i in 0..40 {
        let server = if i % 2 == 0 { &a } else { &b };
        let (status, t) = server.transfer("@World", &wallet, 1, &currency).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
    }
    let got = wait_for_events(&receiver, "transaction.applied", 40).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ids_of(&receiver.received_all(), "transaction.applied").len(), 40, "each once: {}", got.len());
}

#[tokio::test]
async fn an_error_keel_logs_is_a_system_error_webhook_to_the_url_and_to_endpoints_that_want_it() {
    let (server_wide, subscribed, other) = (Receiver::start().await, Receiver::start().await, Receiver::start().await);
    let database = TestDatabase::new();
    let extra = args(2000, &["--webhook-url", &server_wide.url]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let server = Server::start_on(&database.url, &extra);
    endpoint(&server, json!({"url": subscribed.url, "events": ["system.error"]})).await;
    endpoint(&server, json!({"url": other.url, "events": ["transaction.*"]})).await;
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("errors").await, &currency).await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // the endpoints' workers are running

    // An operator's mistake behind the server's back: the store refuses the next transfer.
    database.execute("ALTER TABLE transactions RENAME TO transactions_away");
    let (status, _) = server.transfer("@World", &wallet, 1, &currency).await;
    assert!(status.is_server_error(), "the store failed: {status}");
    for receiver in [&server_wide, &subscribed] {
        let got = wait_for_events(receiver, "system.error", 1).await;
        let error = got.iter().find(|r| r.body["event"] == "system.error").unwrap();
        let message = error.body["data"]["error"].as_str().unwrap();
        assert!(message.contains("transactions"), "names what failed: {message}");
        assert!(error.body["data"]["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{}", error.body);
        assert!(!error.header("webhook-id").is_empty());
    }
    database.execute("ALTER TABLE transactions_away RENAME TO transactions");
    let (status, t) = server.transfer("@World", &wallet, 1, &currency).await;
    assert_eq!(status, StatusCode::CREATED, "the server goes on once the table is back: {t}");
    wait_for_events(&other, "transaction.applied", 1).await;
    assert!(other.received_all().iter().all(|r| r.body["event"] != "system.error"), "only where it was asked for");
}
