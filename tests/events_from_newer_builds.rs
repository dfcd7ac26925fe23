//! Events that a newer Keel wrote to the outbox, of a type this build does not know: after a
//! rollback, or beside it during a rolling upgrade (the schema allows both: migrations only add).
//! They are delivered as stored — to the server's webhook URL, to an endpoint whose wildcard
//! matches, in `/events` and the feed — and the build's own events go on; likewise an event in a
//! delivery state this build does not know. Before, one such type stopped the webhook dispatcher
//! for good (its claim failed on the row every round, an ERROR every 200 ms), and `GET /events`
//! and the feed answered 500. On both backends.

mod common;

use common::receiver::Receiver;
use common::{unique_currency, wait_for, Server, TestDatabase};
use reqwest::StatusCode;
use serde_json::json;

const FUTURE_ID: &str = "evt_from_a_newer_keel";
const STATE_ID: &str = "evt_in_a_newer_state";

#[tokio::test]
async fn an_event_of_a_type_this_build_does_not_know_is_delivered_as_stored_and_the_rest_go_on() {
    let database = TestDatabase::new();
    let (to_url, to_endpoint) = (Receiver::start().await, Receiver::start().await);
    let args = ["--webhook-url", to_url.url.as_str(), "--webhook-retry-base-ms", "50", "--webhook-retry-max-ms", "200"];
    let server = Server::start_on(&database.url, &args);
    let (status, endpoint) = server.post("/webhooks", json!({"url": to_endpoint.url, "events": ["balance.*"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("newer").await, &currency).await;
    assert_eq!(server.transfer("@World", &wallet, 1, &currency).await.0, StatusCode::CREATED);
    to_url.wait_until_event("transaction.applied").await;
    server.kill();

    // As a newer build would have written it: its own type, its body rendered by it.
    let stored = json!({"event": "balance.archived", "data": {"balance_id": wallet, "reason": "closed"}});
    let body = stored.to_string();
    database.execute(&format!(
        "INSERT INTO events (event_id, event_type, body, created_at, status, attempts, next_attempt_at)
         VALUES ('{FUTURE_ID}', 'balance.archived', '{body}', '2026-12-08T00:00:00.000000Z', 'pending', 0, 0)"
    ));
    // And one in a delivery state this build does not know either: its own dispatcher never takes
    // it, but endpoints and the feed, which keep their own state, do.
    let frozen = json!({"event": "balance.frozen", "data": {"balance_id": wallet}}).to_string();
    database.execute(&format!(
        "INSERT INTO events (event_id, event_type, body, created_at, status, attempts, next_attempt_at)
         VALUES ('{STATE_ID}', 'balance.frozen', '{frozen}', '2026-12-08T00:00:00.000000Z', 'expired', 0, 0)"
    ));
    let server = Server::start_on(&database.url, &args);
    assert_eq!(server.transfer("@World", &wallet, 2, &currency).await.0, StatusCode::CREATED);

    let future = to_url.wait_until_event("balance.archived").await;
    assert_eq!(future.header("webhook-id"), FUTURE_ID);
    let mut delivered = future.body.clone();
    delivered.as_object_mut().unwrap().remove("sequence"); // the outbox's position, as on every webhook
    assert_eq!(delivered, stored, "delivered as stored");
    // The build's own events were not held up behind it.
    let applied = |r: &&common::receiver::Receiver| {
        r.received().iter().filter(|e| e.body["event"] == "transaction.applied").count()
    };
    for _ in 0..200 {
        if applied(&&to_url) >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(applied(&&to_url), 2, "both transfers' events arrived");
    // The endpoint subscribed to `balance.*`: the wildcard takes the new type too, and only that.
    let at_endpoint = to_endpoint.wait_until_event("balance.archived").await;
    assert_eq!(at_endpoint.header("webhook-id"), FUTURE_ID);
    assert!(to_endpoint.received().iter().all(|r| r.body["event"] != "transaction.applied"));
    assert_eq!(to_endpoint.wait_until_event("balance.frozen").await.header("webhook-id"), STATE_ID);
    assert!(to_url.received().iter().all(|r| r.body["event"] != "balance.frozen"), "not pending: not sent");

    let event = wait_for(&server, &format!("/events/{FUTURE_ID}"), |e| e["status"] == "delivered").await;
    assert_eq!(event["event"], "balance.archived", "{event}");
    assert_eq!(event["data"]["reason"], "closed", "{event}");
    let (status, listed) = server.get("/events?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let (status, feed) = server.get("/events/feed?after=0&limit=100").await;
    assert_eq!(status, StatusCode::OK, "{feed}");
    let in_feed = feed["events"].as_array().unwrap().iter().filter(|e| e["event"] == "balance.archived").count();
    assert_eq!(in_feed, 1, "{feed}");
    let (status, event) = server.get(&format!("/events/{STATE_ID}")).await;
    assert_eq!((status, &event["status"]), (StatusCode::OK, &json!("expired")), "{event}");
    let logs = server.logs();
    assert!(!logs.iter().any(|l| l.contains("unknown event type")), "{logs:?}");
}
