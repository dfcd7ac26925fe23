//! Webhook delivery to a real local receiver: body, signatures (verified here independently),
//! per-monitor callback URLs, retries after failures, a receiver that is down then up, events pending
//! across a restart, the failed state and redelivery, and the transaction lifecycle events.

mod common;

use base64::Engine;
use common::receiver::{Receiver, ReservedPort};
use common::{unique, unique_currency, wait_for, Server, TestDatabase};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "test-secret";

fn hmac(key: &[u8], message: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Fast retries so the tests do not wait: 50 ms doubling, capped at 200 ms; a 2 s receiver timeout.
/// `url` is the server-wide webhook URL (which also receives the transaction lifecycle events).
fn fast_retries(url: Option<&str>, max_attempts: u32) -> Vec<String> {
    let mut args: Vec<String> = [
        "--webhook-secret",
        SECRET,
        "--webhook-retry-base-ms",
        "50",
        "--webhook-retry-max-ms",
        "200",
        "--webhook-timeout-ms",
        "2000",
        "--webhook-max-attempts",
        &max_attempts.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(url) = url {
        args.extend(["--webhook-url".to_string(), url.to_string()]);
    }
    args
}

fn start(args: &[String]) -> Server {
    Server::start_with_args(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A ledger with a funded balance `alice` and a monitor `balance > 100` on it.
async fn monitored(server: &Server, extra: Value) -> (String, String, Value) {
    let currency = unique_currency();
    let alice = server.balance(&server.ledger("w").await, &currency).await;
    let mut body = json!({"balance_id": alice,
        "condition": {"field": "balance", "operator": ">", "value": 1, "precision": 100},
        "description": "over a dollar"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let monitor = server.create("/balance-monitors", body).await;
    (currency, alice, monitor)
}

#[tokio::test]
async fn a_monitor_event_arrives_signed_with_the_balance_after_the_transaction() {
    let receiver = Receiver::start().await;
    let server = start(&fast_retries(Some(&receiver.url), 5));
    let (currency, alice, monitor) = monitored(&server, json!({})).await;
    server.transfer("@World", &alice, 50, &currency).await; // 50 minor units: not > 100
    let (_, t) = server.transfer("@World", &alice, 70, &currency).await; // 120: fires
    let got = receiver.wait_for_monitor_events(1).await;
    let webhook = got.iter().find(|r| r.body["event"] == "balance.monitor").expect("a balance.monitor webhook");
    let data = &webhook.body["data"];
    assert_eq!(data["monitor_id"], monitor["monitor_id"]);
    assert_eq!(data["transaction_id"], t["transaction_id"]);
    assert_eq!(data["balance"]["balance"], json!(120));
    assert_eq!(data["balance"]["balance_id"], alice.as_str());
    assert_eq!(data["condition"]["precise_value"], json!(100));
    assert_eq!(data["trigger_count"], json!(1));
    assert_eq!(webhook.header("content-type"), "application/json");

    // Blnk's signature: hex(HMAC-SHA256(secret, "<timestamp>.<body>")).
    let ts = webhook.header("x-blnk-timestamp");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - ts.parse::<i64>().unwrap()).abs() < 60, "a fresh timestamp");
    let expected: String =
        hmac(SECRET.as_bytes(), &format!("{ts}.{}", webhook.raw)).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(webhook.header("x-blnk-signature"), expected);
    // Standard Webhooks: v1,base64(HMAC-SHA256(secret, "<id>.<timestamp>.<body>")).
    let id = webhook.header("webhook-id");
    assert!(id.starts_with("evt_"));
    let signed = format!("{id}.{}.{}", webhook.header("webhook-timestamp"), webhook.raw);
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(hmac(SECRET.as_bytes(), &signed)));
    assert_eq!(webhook.header("webhook-signature"), expected);

    let event = wait_for(&server, &format!("/events/{id}"), |e| e["status"] == "delivered").await;
    assert_eq!(event["attempts"], json!(1));
    assert_eq!(event["deliveries"][0]["status_code"], json!(200));
    assert_eq!(receiver.monitor_events().len(), 1, "the first transaction did not fire");
}

#[tokio::test]
async fn a_call_back_url_takes_its_monitors_events() {
    let default = Receiver::start().await;
    let own = Receiver::start().await;
    let server = start(&fast_retries(Some(&default.url), 5));
    let (currency, alice, monitor) = monitored(&server, json!({"call_back_url": own.url})).await;
    server.transfer("@World", &alice, 500, &currency).await;
    let got = own.wait_for(1).await;
    assert_eq!(got[0].body["data"]["monitor_id"], monitor["monitor_id"]);
    let lifecycle = default.wait_for(1).await;
    assert_eq!(lifecycle[0].body["event"], "transaction.applied");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(default.monitor_events().is_empty(), "the monitor's own URL, not the default");
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_on_retry_with_the_same_webhook_id() {
    let receiver = Receiver::start().await;
    receiver.fail_next(&[500, 503]);
    let server = start(&fast_retries(None, 5));
    let (currency, alice, _) = monitored(&server, json!({"call_back_url": receiver.url})).await;
    server.transfer("@World", &alice, 500, &currency).await;
    let got = receiver.wait_for(3).await;
    let id = got[0].header("webhook-id").to_string();
    let event = wait_for(&server, &format!("/events/{id}"), |e| e["status"] == "delivered").await;
    let codes: Vec<&Value> = event["deliveries"].as_array().unwrap().iter().map(|d| &d["status_code"]).collect();
    assert_eq!(codes, [&json!(500), &json!(503), &json!(200)], "{event}");
    let same_id: Vec<_> = receiver.received().into_iter().filter(|r| r.header("webhook-id") == id).collect();
    assert_eq!(same_id.len(), 3, "webhook-id is stable across retries");
    assert!(same_id.iter().all(|r| r.raw == same_id[0].raw), "the same body every time");
}

#[tokio::test]
async fn events_produced_while_the_receiver_is_down_all_arrive_when_it_comes_up() {
    let port = ReservedPort::new();
    let server = start(&fast_retries(Some(&port.url()), 50));
    let (currency, alice, _) = monitored(&server, json!({})).await;
    let mut fired = Vec::new();
    for _ in 0..10 {
        let (status, t) = server.transfer("@World", &alice, 200, &currency).await;
        assert_eq!(status, StatusCode::CREATED);
        fired.push(t["transaction_id"].clone());
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, pending) = server.get("/events?status=pending&limit=100").await;
    let counted = pending
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] != "balance.created" && e["event"] != "ledger.created");
    assert_eq!(counted.count(), 20, "10 monitor events and 10 transaction.applied, all pending");
    let receiver = Receiver::start_on(port);
    receiver.wait_for(20).await;
    let mut got: Vec<Value> =
        receiver.monitor_events().iter().map(|r| r.body["data"]["transaction_id"].clone()).collect();
    got.dedup();
    got.sort_by_key(|v| v.to_string());
    fired.sort_by_key(|v| v.to_string());
    assert_eq!(got, fired, "one monitor event per transaction");
}

#[tokio::test]
async fn events_pending_at_a_stop_are_delivered_after_the_restart() {
    let test_database = TestDatabase::new();
    let database = test_database.url.clone();
    let port = ReservedPort::new();
    let args = fast_retries(Some(&port.url()), 50);
    let mut with_db: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_on(&database, &with_db);
    let (currency, alice, _) = monitored(&server, json!({})).await;
    for _ in 0..5 {
        server.transfer("@World", &alice, 200, &currency).await;
    }
    server.kill();
    let receiver = Receiver::start_on(port);
    with_db.push("--hold-queue"); // the restart changes nothing else
    let server = Server::start_on(&database, &with_db);
    receiver.wait_for(10).await;
    assert_eq!(receiver.monitor_events().len(), 5);
    // The receiver's 200 is recorded by the delivery task after it arrives: wait for the outbox to say so.
    wait_for(&server, "/events?status=pending", |p| p.as_array().is_some_and(Vec::is_empty)).await;
    let mut arrived: Vec<String> = receiver.received_all().iter().map(|r| r.header("webhook-id").to_string()).collect();
    arrived.sort();
    arrived.dedup(); // delivery is at least once: a slow 200 may be sent again under the same id
    let (_, delivered) = server.get("/events?status=delivered&limit=100").await;
    let mut stored: Vec<String> =
        delivered.as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().to_string()).collect();
    stored.sort();
    assert_eq!(arrived, stored, "every stored event arrived, and nothing else did");
}

#[tokio::test]
async fn an_event_that_keeps_failing_is_marked_failed_and_can_be_redelivered() {
    let receiver = Receiver::start().await;
    receiver.fail_next(&[500, 500, 500]);
    let server = start(&fast_retries(None, 3));
    let (currency, alice, _) = monitored(&server, json!({"call_back_url": receiver.url})).await;
    server.transfer("@World", &alice, 500, &currency).await;
    receiver.wait_for(3).await;
    let id = receiver.received()[0].header("webhook-id").to_string();
    let failed = wait_for(&server, &format!("/events/{id}"), |e| e["status"] == "failed").await;
    assert_eq!(failed["attempts"], json!(3));
    let (_, listed) = server.get("/events?status=failed").await;
    assert_eq!(listed.as_array().unwrap().iter().map(|e| &e["event_id"]).collect::<Vec<_>>(), [&json!(id)]);
    let (status, redelivered) = server.post(&format!("/events/{id}/redeliver"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{redelivered}");
    let delivered = wait_for(&server, &format!("/events/{id}"), |e| e["status"] == "delivered").await;
    assert_eq!(delivered["deliveries"].as_array().unwrap().len(), 4, "three failures and the redelivery");
    let (status, _) = server.post("/events/evt_missing/redeliver", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer) = server.get("/events?status=lost").await;
    assert_eq!(
        (status, answer["error_detail"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("status"))
    );
}

#[tokio::test]
async fn transaction_lifecycle_events_follow_each_transaction() {
    let receiver = Receiver::start().await;
    let server = start(&fast_retries(Some(&receiver.url), 5));
    let currency = unique_currency();
    let alice = server.balance(&server.ledger("l").await, &currency).await;
    let post = |body: Value| server.create("/transactions", body);
    let base = |amount: u64, source: &str, extra: Value| {
        let destination = if source == "@World" { alice.as_str() } else { "@Sink" };
        let mut b = json!({"precise_amount": amount, "currency": currency, "source": source,
            "destination": destination, "reference": unique("l")});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    let applied = post(base(100, "@World", json!({"skip_queue": true}))).await;
    let queued = post(base(10, &alice, json!({}))).await;
    wait_for(&server, &format!("/transactions/{}", queued["transaction_id"].as_str().unwrap()), |t| {
        t["status"] == "APPLIED"
    })
    .await;
    let held = post(base(20, &alice, json!({"skip_queue": true, "inflight": true}))).await;
    let (_, void) = server
        .put(&format!("/transactions/inflight/{}", held["transaction_id"].as_str().unwrap()), json!({"status": "void"}))
        .await;
    let rejected = post(base(1_000_000, &alice, json!({}))).await;
    let got = receiver.wait_for(7).await;
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            (
                r.body["event"].as_str().unwrap().to_string(),
                r.body["data"]["transaction_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let tid = |t: &Value| t["transaction_id"].as_str().unwrap().to_string();
    for expected in [
        ("transaction.applied", tid(&applied)),
        ("transaction.queued", tid(&queued)),
        ("transaction.applied", tid(&queued)),
        ("transaction.inflight", tid(&held)),
        ("transaction.void", tid(&void)),
        ("transaction.queued", tid(&rejected)),
        ("transaction.rejected", tid(&rejected)),
    ] {
        assert!(seen.contains(&(expected.0.to_string(), expected.1.clone())), "{expected:?} missing from {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_carries_its_sequence_which_follows_commit_order_for_each_balance() {
    let receiver = Receiver::start().await;
    let server = std::sync::Arc::new(Server::start_with_args(&[
        "--webhook-url",
        receiver.url.as_str(),
        "--webhook-concurrency",
        "16",
    ]));
    let currency = unique_currency();
    let ledger = server.ledger("ordered").await;
    let (watched, other) = (server.balance(&ledger, &currency).await, server.balance(&ledger, &currency).await);
    let monitor = json!({"balance_id": watched, "condition": {"field": "credit_balance", "operator": ">", "value": 0}});
    server.create("/balance-monitors", monitor).await;
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (server, watched, other, currency) = (server.clone(), watched.clone(), other.clone(), currency.clone());
            tokio::spawn(async move {
                for i in 0..10 {
                    let (from, to) = if (c + i) % 3 == 0 { ("@World", &other) } else { ("@World", &watched) };
                    assert_eq!(server.transfer(from, to, 1, &currency).await.0, StatusCode::CREATED);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let (_, log) = server.get("/transactions?sort_order=asc&limit=1000").await;
    let log: Vec<String> =
        log.as_array().unwrap().iter().map(|t| t["transaction_id"].as_str().unwrap().into()).collect();
    // 80 transaction.applied events, and a monitor event for each transfer into the watched
    // balance: as many as its version.
    let monitor_events = server.get(&format!("/balances/{watched}")).await.1["version"].as_i64().unwrap() as usize;
    let got = receiver.wait_for(80 + monitor_events).await;

    let sequence = |r: &common::receiver::Received| r.body["sequence"].as_i64().expect("every body has a sequence");
    let mut sequences: Vec<i64> = got.iter().map(sequence).collect();
    sequences.sort();
    sequences.dedup();
    assert_eq!(sequences.len(), got.len(), "sequences are unique");
    let arrived_out_of_order = got.windows(2).filter(|w| sequence(&w[0]) > sequence(&w[1])).count();

    // Ordered by sequence, the transfers into each balance follow the log, and the watched
    // balance's snapshots in its monitor events follow its versions.
    let mut by_sequence = got.clone();
    by_sequence.sort_by_key(sequence);
    for balance in [&watched, &other] {
        let applied: Vec<&str> = by_sequence
            .iter()
            .filter(|r| r.body["event"] == "transaction.applied" && r.body["data"]["destination"] == balance.as_str())
            .map(|r| r.body["data"]["transaction_id"].as_str().unwrap())
            .collect();
        let logged: Vec<&str> = log.iter().map(String::as_str).filter(|id| applied.contains(id)).collect();
        assert_eq!(applied, logged, "events about {balance} by sequence are in commit order");
    }
    let versions: Vec<i64> = by_sequence
        .iter()
        .filter(|r| r.body["event"] == "balance.monitor")
        .map(|r| r.body["data"]["balance"]["version"].as_i64().unwrap())
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "snapshots by sequence follow the balance's versions: {versions:?}"
    );
    let (_, first) = server.get(&format!("/events/{}", got[0].header("webhook-id"))).await;
    assert_eq!(first["sequence"], got[0].body["sequence"], "the API shows the same sequence: {first}");
    eprintln!("{arrived_out_of_order} of {} consecutive deliveries arrived out of sequence", got.len() - 1);
}
