//! RabbitMQ blocking its publishers (a resource alarm: memory over its high watermark, or its disk
//! under `disk_free_limit`): the connection stays up, but nothing Keel publishes is taken until the
//! alarm clears. Writes go on at once (the stream reads the outbox, never the other way round), and
//! once the alarm clears every event arrives, in order, once (Keel waits on the blocked connection
//! rather than sending again). A test binary of its own: it blocks every
//! publisher on the broker, and test binaries run one at a time.
//!
//! Needs RabbitMQ and its `rabbitmqctl` (Debian's `rabbitmq-server`), so `cargo test` lists it as
//! ignored; `.ci/run` runs it with `KEEL_TEST_AMQP_URL=… cargo test -- --include-ignored`.

mod common;

use common::rabbitmq::{first_occurrences, rabbitmqctl, TestExchange};
use common::{unique_currency, Server};
use reqwest::StatusCode;

/// A memory alarm raised on the broker (its watermark set to nothing), cleared when dropped, also
/// when the test fails: the watermark goes back to what it was.
struct Alarm {
    watermark: String,
}

impl Alarm {
    fn raise() -> Alarm {
        let watermark = rabbitmqctl(&["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."]);
        assert!(watermark.parse::<f64>().is_ok(), "a relative watermark, as Debian's default: {watermark}");
        rabbitmqctl(&["set_vm_memory_high_watermark", "0"]);
        Alarm { watermark }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        rabbitmqctl(&["set_vm_memory_high_watermark", &self.watermark]);
    }
}

#[tokio::test]
#[ignore = "broker suite: set KEEL_TEST_AMQP_URL and pass --include-ignored (.ci/run does)"]
async fn a_broker_that_blocks_publishers_slows_no_write_and_loses_nothing() {
    let exchange = TestExchange::new().await;
    let server = Server::start_with_args(&exchange.args());
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("blocked").await, &currency).await;
    for amount in 1..=5 {
        assert_eq!(server.transfer("@World", &wallet, amount, &currency).await.0, StatusCode::CREATED);
    }
    let mut taken = Vec::new();
    let ids = exchange.take_all(&server, &mut taken).await;
    assert_eq!(first_occurrences(&taken), ids);

    let alarm = Alarm::raise();
    for amount in 1..=15 {
        let (status, answer) = server.transfer("@World", &wallet, amount, &currency).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    // Longer than a confirmation may take (5 s): before, the publisher gave up on what it had sent
    // and sent it again, so the broker took it twice once the alarm cleared.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    assert_eq!(server.get(&format!("/balances/{wallet}")).await.1["balance"], serde_json::json!(15 + 120));
    drop(alarm);

    let ids = exchange.take_all(&server, &mut taken).await;
    assert_eq!(first_occurrences(&taken), ids, "nothing lost, in order, once the alarm cleared");
    // Kept waiting on the blocked connection rather than sent again: no copy, no crash.
    assert_eq!(taken.len(), ids.len(), "no event twice: {taken:?}");
    assert!(server.logs().iter().any(|l| l.contains("the broker blocks publishing")), "the wait is logged");
    exchange.delete().await;
}
