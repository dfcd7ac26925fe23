//! Broker streams to a real RabbitMQ: every event of the outbox reaches a queue bound to Keel's
//! exchange once, in commit order, with its routing key and `message_id`; Keel SIGKILLed
//! mid-stream resumes without a gap (a copy is allowed across a crash, and then carries the same
//! `message_id`).
//!
//! Needs RabbitMQ, so `cargo test` lists these as ignored; `.ci/run` runs them with
//! `KEEL_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f cargo test -- --include-ignored`
//! (starting the machine's RabbitMQ if it is down). Each test has an exchange and a queue of its
//! own, deleted afterwards.

mod common;

use common::{unique, unique_currency, Server, TestDatabase};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

/// The machine's RabbitMQ, from `KEEL_TEST_AMQP_URL`.
fn rabbitmq() -> String {
    std::env::var("KEEL_TEST_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("the broker suite needs KEEL_TEST_AMQP_URL (a RabbitMQ, e.g. amqp://guest:guest@127.0.0.1:5672/%2f)")
}

/// An exchange of the test's own with a queue bound to every routing key (`#`), declared before
/// Keel starts, so nothing Keel publishes goes unrouted.
struct TestExchange {
    url: String,
    name: String,
    queue: String,
}

/// A channel on a connection of its own (a test may have RabbitMQ close every connection).
async fn channel(url: &str) -> (Connection, Channel) {
    let connection = Connection::connect(url, ConnectionProperties::default()).await.expect("RabbitMQ is reachable");
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

impl TestExchange {
    async fn new() -> TestExchange {
        let url = rabbitmq();
        let tag = unique("x").replace('-', "_");
        let (name, queue) = (format!("keeltest.{tag}"), format!("keeltest.{tag}.all"));
        let (_connection, channel) = channel(&url).await;
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel
            .exchange_declare(name.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .unwrap();
        let options = QueueDeclareOptions { auto_delete: true, ..Default::default() };
        channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await.unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                name.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        TestExchange { url, name, queue }
    }

    fn args(&self) -> Vec<&str> {
        vec!["--amqp-url", &self.url, "--amqp-exchange", &self.name]
    }

    /// Takes what waits in the queue: (routing key, `message_id`), in the queue's order.
    async fn take(&self) -> Vec<(String, String)> {
        let (_connection, channel) = channel(&self.url).await;
        let mut taken = Vec::new();
        let options = BasicGetOptions { no_ack: true };
        while let Some(message) = channel.basic_get(self.queue.as_str().into(), options).await.unwrap() {
            let id = message.delivery.properties.message_id().as_ref().map(|id| id.to_string()).unwrap_or_default();
            taken.push((message.delivery.routing_key.to_string(), id));
        }
        taken
    }

    /// Takes messages into `taken` until it holds as many distinct ids as `server`'s feed has
    /// events (at most 20 s); returns the feed's ids, in order.
    async fn take_all(&self, server: &Server, taken: &mut Vec<(String, String)>) -> Vec<String> {
        let started = Instant::now();
        loop {
            taken.extend(self.take().await);
            let (_, feed) = server.get("/events/feed?limit=1000").await;
            let ids: Vec<String> =
                feed["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().into()).collect();
            if first_occurrences(taken).len() >= ids.len() || started.elapsed() > Duration::from_secs(20) {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn delete(&self) {
        let (_connection, channel) = channel(&self.url).await;
        let _ = channel.exchange_delete(self.name.as_str().into(), ExchangeDeleteOptions::default()).await;
    }
}

/// The ids in the order they first arrived (a copy sent again after a crash counted once).
fn first_occurrences(taken: &[(String, String)]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    taken.iter().filter(|(_, id)| seen.insert(id.clone())).map(|(_, id)| id.clone()).collect()
}

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
    let writer = {
        let (client, base, wallet, currency) =
            (server.client().clone(), server.base.clone(), wallet.clone(), currency.clone());
        tokio::spawn(async move {
            for amount in 1..=500u64 {
                let body = json!({"precise_amount": amount, "currency": currency, "source": "@World",
                    "destination": wallet, "reference": unique("ref"), "skip_queue": true});
                if client.post(format!("{base}/transactions")).json(&body).send().await.is_err() {
                    return;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill();
    let _ = writer.await;
    let server = Server::start_on(&database.url, &exchange.args());
    for amount in 1..=10 {
        assert_eq!(server.transfer("@World", &wallet, amount, &currency).await.0, StatusCode::CREATED);
    }
    let mut taken = Vec::new();
    let ids = exchange.take_all(&server, &mut taken).await;
    assert_eq!(first_occurrences(&taken), ids, "no gap, in order");
    exchange.delete().await;
}

#[tokio::test]
#[ignore = "broker suite: set KEEL_TEST_AMQP_URL and pass --include-ignored (.ci/run does)"]
async fn a_connection_rabbitmq_closed_mid_stream_loses_nothing() {
    let exchange = TestExchange::new().await;
    let server = Server::start_with_args(&exchange.args());
    let currency = unique_currency();
    let ledger = server.ledger("stream").await;
    let wallet = server.balance(&ledger, &currency).await;
    for amount in 1..=10 {
        assert_eq!(server.transfer("@World", &wallet, amount, &currency).await.0, StatusCode::CREATED);
    }
    let mut taken = Vec::new();
    let ids = exchange.take_all(&server, &mut taken).await;
    assert_eq!(first_occurrences(&taken), ids);

    // RabbitMQ drops every client connection (as a broker restart or a failover does), and Keel
    // takes transfers meanwhile: it reconnects and publishes what waited in the outbox.
    let closed = std::process::Command::new("rabbitmqctl")
        .args(["close_all_connections", "closed by a Keel test"])
        .output()
        .expect("rabbitmqctl runs (Debian's rabbitmq-server package)");
    assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));
    for amount in 1..=15 {
        assert_eq!(server.transfer("@World", &wallet, amount, &currency).await.0, StatusCode::CREATED);
    }
    let ids = exchange.take_all(&server, &mut taken).await;
    assert_eq!(first_occurrences(&taken), ids, "nothing lost, in order");
    exchange.delete().await;
}
