//! A RabbitMQ exchange of a test's own, with a queue bound to every routing key, for the AMQP
//! stream tests (`KEEL_TEST_AMQP_URL`).

use super::{unique, Server};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::{Duration, Instant};

/// Runs `rabbitmqctl` with `args` (Debian's `rabbitmq-server` has it); its output, or a panic
/// saying why not.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs (Debian's rabbitmq-server)");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The machine's RabbitMQ, from `KEEL_TEST_AMQP_URL`.
pub fn rabbitmq() -> String {
    std::env::var("KEEL_TEST_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("the broker suite needs KEEL_TEST_AMQP_URL (a RabbitMQ, e.g. amqp://guest:guest@127.0.0.1:5672/%2f)")
}

/// An exchange of the test's own with a queue bound to every routing key (`#`), declared before
/// Keel starts, so nothing Keel publishes goes unrouted.
pub struct TestExchange {
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
    pub async fn new() -> TestExchange {
        let url = rabbitmq();
        let tag = unique("x").replace('-', "_");
        let (name, queue) = (format!("keeltest.{tag}"), format!("keeltest.{tag}.all"));
        let (_connection, channel) = channel(&url).await;
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel
            .exchange_declare(name.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .unwrap();
        let options = QueueDeclareOptions::default();
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

    pub fn args(&self) -> Vec<&str> {
        vec!["--amqp-url", &self.url, "--amqp-exchange", &self.name]
    }

    /// Takes what waits in the queue: (routing key, `message_id`), in the queue's order.
    pub async fn take(&self) -> Vec<(String, String)> {
        self.take_whole().await.into_iter().map(|m| (m.delivery.routing_key.to_string(), message_id(&m))).collect()
    }

    /// Takes what waits in the queue, each message whole, in the queue's order.
    pub async fn take_whole(&self) -> Vec<lapin::message::BasicGetMessage> {
        let (_connection, channel) = channel(&self.url).await;
        let mut taken = Vec::new();
        let options = BasicGetOptions { no_ack: true };
        while let Some(message) = channel.basic_get(self.queue.as_str().into(), options).await.unwrap() {
            taken.push(message);
        }
        taken
    }

    /// Takes messages into `taken` until it holds as many distinct ids as `server`'s feed has
    /// events (at most 20 s); returns the feed's ids, in order.
    pub async fn take_all(&self, server: &Server, taken: &mut Vec<(String, String)>) -> Vec<String> {
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

    /// Deletes the exchange and the queue (never consumed from, so never deleted by itself).
    pub async fn delete(&self) {
        let (_connection, channel) = channel(&self.url).await;
        let _ = channel.exchange_delete(self.name.as_str().into(), ExchangeDeleteOptions::default()).await;
        let _ = channel.queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default()).await;
    }
}

/// A message's `message_id` (Keel's event id), or "" without one.
pub fn message_id(message: &lapin::message::BasicGetMessage) -> String {
    message.delivery.properties.message_id().as_ref().map(|id| id.to_string()).unwrap_or_default()
}

/// The ids in the order they first arrived (a copy sent again after a crash counted once).
pub fn first_occurrences(taken: &[(String, String)]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    taken.iter().filter(|(_, id)| seen.insert(id.clone())).map(|(_, id)| id.clone()).collect()
}
