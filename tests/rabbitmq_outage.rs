//! RabbitMQ closing every client connection mid-stream (`rabbitmqctl close_all_connections`, as a
//! broker restart or a failover does) loses nothing: Keel reconnects and publishes what waited in
//! the outbox. A test binary of its own: it closes every connection on the broker, and test
//! binaries run one at a time, so no other test's connection is cut.
//!
//! Needs RabbitMQ and its `rabbitmqctl` (Debian's `rabbitmq-server`), so `cargo test` lists it as
//! ignored; `.ci/run` runs it with `KEEL_TEST_AMQP_URL=… cargo test -- --include-ignored`.

mod common;

use common::rabbitmq::{first_occurrences, rabbitmqctl, TestExchange};
use common::{unique_currency, Server};
use reqwest::StatusCode;

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
    rabbitmqctl(&["close_all_connections", "closed by a Keel test"]);
    for amount in 1..=15 {
        assert_eq!(server.transfer("@World", &wallet, amount, &currency).await.0, StatusCode::CREATED);
    }
    let ids = exchange.take_all(&server, &mut taken).await;
    assert_eq!(first_occurrences(&taken), ids, "nothing lost, in order");
    exchange.delete().await;
}
