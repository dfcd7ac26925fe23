//! An event larger than RabbitMQ's `max_message_size` (128 MiB by default in 3.10, 16 MiB in 4.x; an
//! operator may set it lower): the broker closes the channel on it, so before, Keel reconnected and
//! sent the same event again, for ever, and no later event reached the exchange. Now the broker's
//! limit is learnt from its refusal, that event is published as a stub saying where to read it
//! whole (as on NATS: `/events/feed`), and the stream goes on. A test binary of its own: it lowers
//! the limit for the whole broker, and test binaries run one at a time.
//!
//! Needs RabbitMQ and its `rabbitmqctl`, so `cargo test` lists it as ignored; `.ci/run` runs it with
//! `KEEL_TEST_AMQP_URL=… cargo test -- --include-ignored`.

mod common;

use common::rabbitmq::{message_id, rabbitmqctl, TestExchange};
use common::{unique, unique_currency, Server};
use lapin::types::AMQPValue;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The broker's `max_message_size` set to `bytes`, put back as it was when dropped (also when the
/// test fails). A channel reads it when it opens, so set it before Keel connects.
struct MessageLimit {
    was: String,
}

impl MessageLimit {
    fn set(bytes: u32) -> MessageLimit {
        let was = rabbitmqctl(&["eval", "application:get_env(rabbit, max_message_size)."]);
        let was = was.trim_start_matches("{ok,").trim_end_matches('}').to_string();
        assert!(was.parse::<u64>().is_ok(), "a number of bytes: {was}");
        rabbitmqctl(&["eval", &format!("application:set_env(rabbit, max_message_size, {bytes}).")]);
        MessageLimit { was }
    }
}

impl Drop for MessageLimit {
    fn drop(&mut self) {
        rabbitmqctl(&["eval", &format!("application:set_env(rabbit, max_message_size, {}).", self.was)]);
    }
}

#[tokio::test]
#[ignore = "broker suite: set KEEL_TEST_AMQP_URL and pass --include-ignored (.ci/run does)"]
async fn an_event_larger_than_the_brokers_limit_is_published_as_a_stub_and_the_stream_goes_on() {
    let _limit = MessageLimit::set(64 * 1024);
    let exchange = TestExchange::new().await;
    let server = Server::start_with_args(&exchange.args());
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("large").await, &currency).await;
    let body = json!({"precise_amount": 1, "currency": currency, "source": "@World", "destination": wallet,
        "reference": unique("large"), "description": "d".repeat(100_000), "skip_queue": true});
    let (status, large) = server.post("/transactions", body).await;
    assert_eq!(status, StatusCode::CREATED, "{large}");
    for amount in 1..=3 {
        assert_eq!(server.transfer("@World", &wallet, amount, &currency).await.0, StatusCode::CREATED);
    }

    // Every event, in order, once, the large one's stub in its place (at most 20 s).
    let (_, feed) = server.get("/events/feed?limit=1000").await;
    let events = feed["events"].as_array().unwrap().clone();
    let ids: Vec<String> = events.iter().map(|e| e["event_id"].as_str().unwrap().to_string()).collect();
    let mut taken = Vec::new();
    let started = std::time::Instant::now();
    while taken.len() < ids.len() && started.elapsed() < std::time::Duration::from_secs(20) {
        taken.extend(exchange.take_whole().await);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(taken.iter().map(message_id).collect::<Vec<_>>(), ids, "each event once, in order");

    let event = events.iter().find(|e| e["data"]["transaction_id"] == large["transaction_id"]).expect("in the feed");
    let stub = taken.iter().find(|m| message_id(m) == event["event_id"].as_str().unwrap()).unwrap();
    let headers = stub.delivery.properties.headers().as_ref().expect("headers").inner();
    let Some(AMQPValue::LongLongInt(size)) = headers.get("keel-too-large") else {
        panic!("marked too large: {headers:?}")
    };
    assert!(*size > 100_000, "{size}");
    let stub: Value = serde_json::from_slice(&stub.delivery.data).unwrap();
    assert_eq!(stub["event"], "transaction.applied", "{stub}");
    assert_eq!(stub["too_large"]["max_message_size"], 64 * 1024, "{stub}");
    let (_, whole) = server.get(stub["too_large"]["read_it_at"].as_str().unwrap()).await;
    assert_eq!(whole["events"][0]["event_id"], stub["event_id"]);
    assert_eq!(whole["events"][0]["data"]["transaction_id"], large["transaction_id"]);
    let logs = server.logs();
    assert!(logs.iter().any(|l| l.contains("over 65536 bytes (its max_message_size)")), "{logs:?}");
    exchange.delete().await;
}
