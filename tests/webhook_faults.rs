//! Receivers that misbehave (hang, answer slowly, answer 4xx/5xx, reset connections, answer with
//! huge bodies) never slow the write path, never make Keel's memory grow, never raise deliveries
//! above the configured concurrency, and never lose an event.

mod common;

use common::receiver::{Mode, Receiver, ReservedPort};
use common::{unique_currency, Server};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Waits (up to 30 s) until `expected` transaction and monitor events are delivered (and every
/// `ledger.created` / `balance.created` too, which are not counted).
async fn all_delivered(server: &Server, expected: usize) {
    for _ in 0..600 {
        let (_, delivered) = server.get("/events?status=delivered&limit=1000").await;
        let (_, pending) = server.get("/events?status=pending&limit=1000").await;
        let counted =
            |e: &&serde_json::Value| !matches!(e["event"].as_str(), Some("ledger.created" | "balance.created"));
        let delivered = delivered.as_array().map(|l| l.iter().filter(counted).count());
        if delivered == Some(expected) && pending.as_array().is_some_and(|l| l.is_empty()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not every event was delivered: {}", server.get("/events?limit=1000").await.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn misbehaving_receivers_slow_nothing_and_lose_nothing() {
    let receiver = Receiver::start().await;
    let server = Server::start_with_args(&[
        "--webhook-url",
        &receiver.url,
        "--webhook-timeout-ms",
        "8000",
        "--webhook-concurrency",
        "3",
        "--webhook-retry-base-ms",
        "50",
        "--webhook-retry-max-ms",
        "200",
        "--webhook-max-attempts",
        "1000",
    ]);
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("faults").await, &currency).await;

    // Errors, slowness and huge answers, each getting real deliveries.
    receiver.set_mode(Mode::Status(404));
    for _ in 0..10 {
        assert_eq!(server.transfer("@World", &wallet, 1, &currency).await.0, StatusCode::CREATED);
    }
    for mode in [Mode::Status(404), Mode::Status(503), Mode::Slow(Duration::from_millis(300)), Mode::Huge(64 << 20)] {
        receiver.set_mode(mode);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let rss = rss_kib(server.pid());
    assert!(rss < 200 * 1024, "server RSS {rss} KiB after 64 MiB answers: a receiver's body is never read");

    // A hanging receiver holds every delivery slot for 8 s; the write path must not notice.
    receiver.set_mode(Mode::Hang);
    let started = Instant::now();
    for _ in 0..30 {
        assert_eq!(server.transfer("@World", &wallet, 1, &currency).await.0, StatusCode::CREATED);
    }
    let writes = started.elapsed();
    assert!(writes < Duration::from_secs(5), "30 transfers took {writes:?} while webhooks hung for 8 s each");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.max_in_flight(), 3, "deliveries are bounded by --webhook-concurrency");

    // Healthy again: the hung attempts time out and are retried; nothing is lost.
    receiver.set_mode(Mode::Ok);
    all_delivered(&server, 40).await;
    let (_, events) = server.get("/events?limit=1000").await;
    let mut codes = std::collections::HashSet::new();
    for event in events.as_array().unwrap() {
        let (_, detail) = server.get(&format!("/events/{}", event["event_id"].as_str().unwrap())).await;
        for attempt in detail["deliveries"].as_array().unwrap() {
            codes.insert(attempt["status_code"].as_u64());
        }
    }
    for seen in [Some(404), Some(503), Some(200), None] {
        assert!(codes.contains(&seen), "the attempt log shows {seen:?} answers (None: timed out): {codes:?}");
    }
}

#[tokio::test]
async fn connections_reset_by_the_receiver_are_retried_until_it_recovers() {
    let reserved = ReservedPort::new();
    let url = reserved.url();
    let listener = reserved.listen();
    // Accept and drop at once: every delivery sees its connection reset. The listener is kept for the
    // receiver that comes up afterwards, so the port is never free for anything else to take.
    let resetter = tokio::spawn(async move {
        for _ in 0..10 {
            let (stream, _) = listener.accept().await.expect("the resetter accepts");
            drop(stream);
        }
        listener
    });
    let server = Server::start_with_args(&[
        "--webhook-url",
        &url,
        "--webhook-retry-base-ms",
        "50",
        "--webhook-retry-max-ms",
        "100",
        "--webhook-max-attempts",
        "1000",
    ]);
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("resets").await, &currency).await;
    for _ in 0..3 {
        server.transfer("@World", &wallet, 1, &currency).await;
    }
    // Ten connections were reset.
    let listener = resetter.await.expect("the resetter ran");
    // An event whose attempts were recorded (they are recorded in batches, up to 20 ms late; the
    // newest event may not have been tried before the resets ran out).
    let tried = common::wait_for(&server, "/events?status=pending", |list| {
        list.as_array().is_some_and(|l| l.iter().any(|e| e["attempts"].as_u64().is_some_and(|n| n > 0)))
    })
    .await;
    let tried = tried.as_array().unwrap().iter().find(|e| e["attempts"].as_u64().is_some_and(|n| n > 0)).unwrap();
    let (_, event) = server.get(&format!("/events/{}", tried["event_id"].as_str().unwrap())).await;
    assert!(
        event["deliveries"].as_array().is_some_and(|d| !d.is_empty() && d.iter().all(|a| a["status_code"].is_null())),
        "{event}"
    );
    let receiver = Receiver::serve(listener);
    receiver.wait_for(3).await;
    all_delivered(&server, 3).await;
}
