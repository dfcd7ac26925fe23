//! Broker streams to a real RabbitMQ: every event of the outbox reaches a queue bound to Keel's
//! exchange once, in commit order, with its routing key and `message_id`; Keel SIGKILLed
//! mid-stream resumes without a gap (a copy is allowed across a crash, and then carries the same
//! `message_id`). RabbitMQ closing every connection is `tests/rabbitmq_outage.rs`, a binary of its
//! own so it cannot close these tests' connections.
//!
//! Needs RabbitMQ, so `cargo test` lists these as ignored; `.ci/run` runs them with
//! `KEEL_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f cargo test -- --include-ignored`
//! (starting the machine's RabbitMQ if it is down). Each test has an exchange and a queue of its
//! own, deleted afterwards.

mod common;

use common::rabbitmq::{first_occurrences, TestExchange};
use common::{kill_under_load, unique_currency, Server, TestDatabase};
use reqwest::StatusCode;

#[tokio::test]
#[ignore = "broker suite: set KEEL_TEST_AMQP_URL and pass --include-ignored (.ci/run does)"]
async fn every_event_reaches_a_bound_queue_once_in_commit_order() {
    let exchange = TestExchange::new().await;
    let server = Server::start_with_args(&exchange.args());
    let currency = unique_currency();
    let ledger = server.ledger("stream").await;
    let wallet = server.balance(&ledger, &currency).await;
    for amount in 1..=20 {
        assert_eq!(server.transfer("@World", &wallet, amount, &currency).await.0, StatusCode::CREATED);
    }
    let mut taken = Vec::new();
    let ids = exchange.take_all(&server, &mut taken).await;
    assert_eq!(taken.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(), ids, "each event once, in order");
    let (_, feed) = server.get("/events/feed?limit=1000").await;
    let first = feed["events"].as_array().unwrap().iter().find(|e| e["event"] == "transaction.applied").unwrap();
    let key = format!("transaction.applied.{}", first["data"]["source"].as_str().unwrap());
    assert!(taken.iter().any(|(k, _)| k == &key), "routing key: type, then balance ({key})");
    assert!(taken.iter().any(|(k, _)| k == "ledger.created.none"));
    exchange.delete().await;
}

#[tokio::test]
#[ignore = "broker suite: set KEEL_TEST_AMQP_URL and pass --include-ignored (.ci/run does)"]
async fn keel_killed_mid_stream_resumes_without_a_gap() {
    let exchange = TestExchange::new().await;
    // SQLite: the process that starts on the file takes the dead one's lease at once.
    let database = TestDatabase::sqlite();
    let server = Server::start_on(&database.url, &exchange.args());
    let currency = unique_currency();
    let ledger = server.ledger("stream").await;
    let wallet = server.balance(&ledger, &currency).await;
    kill_under_load(server, std::slice::from_ref(&wallet), &currency).await;
    let server = Server::start_on(&database.url, &exchange.args());
    for amount in 1..=10 {
        assert_eq!(server.transfer("@World", &wallet, amount, &currency).await.0, StatusCode::CREATED);
    }
    let mut taken = Vec::new();
    let ids = exchange.take_all(&server, &mut taken).await;
    assert_eq!(first_occurrences(&taken), ids, "no gap, in order");
    exchange.delete().await;
}
