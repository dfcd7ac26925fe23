//! Broker streams to a real NATS with JetStream: every event of the outbox arrives in the stream
//! once, in commit order, on its subject; Keel SIGKILLed mid-stream resumes without a gap or a
//! copy; a NATS server stopped mid-stream and started again loses nothing; and on PostgreSQL two
//! Keel processes publish one stream between them, each event once.
//!
//! Needs a NATS with JetStream, so `cargo test` lists these as ignored; `.ci/run` runs them with
//! `KEEL_TEST_NATS_URL=nats://127.0.0.1:4222 cargo test -- --include-ignored` (starting the
//! machine's NATS if it is down). That NATS serves all but the broker-restart test, which starts
//! a NATS server of its own (Debian's `nats-server`) so it can stop it. Each test has a stream and
//! subjects of its own, deleted afterwards.

mod common;

use common::{kill_under_load, unique, unique_currency, Server, TestDatabase};
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The machine's NATS, from `KEEL_TEST_NATS_URL`.
fn machine_nats() -> String {
    std::env::var("KEEL_TEST_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("the broker suite needs KEEL_TEST_NATS_URL (a NATS with JetStream, e.g. nats://127.0.0.1:4222)")
}

/// A stream and subject prefix of a test's own, and the Keel arguments that publish there.
struct TestStream {
    url: String,
    name: String,
    prefix: String,
}

impl TestStream {
    fn on(url: &str) -> TestStream {
        let tag = unique("s").replace(['-', '.'], "_");
        TestStream { url: url.into(), name: format!("KEEL_TEST_{tag}"), prefix: format!("keeltest.{tag}") }
    }

    fn args(&self) -> Vec<&str> {
        vec!["--nats-url", &self.url, "--nats-stream", &self.name, "--nats-subject-prefix", &self.prefix]
    }

    async fn context(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(async_nats::connect(&self.url).await.expect("NATS is reachable"))
    }

    /// Every message in the stream, in its order: (subject, `Nats-Msg-Id`).
    async fn messages(&self) -> Vec<(String, String)> {
        let context = self.context().await;
        let Ok(mut stream) = context.get_stream(&self.name).await else { return Vec::new() };
        let last = stream.info().await.expect("stream info").state.last_sequence;
        let mut all = Vec::new();
        for sequence in 1..=last {
            let message = stream.get_raw_message(sequence).await.expect("a stored message");
            let id = message.headers.get("Nats-Msg-Id").map(|v| v.to_string()).unwrap_or_default();
            all.push((message.subject.to_string(), id));
        }
        all
    }

    /// Waits (at most 20 s) until the stream holds as many messages as `server`'s feed has events;
    /// returns the feed's event ids, in order.
    async fn wait_for_all(&self, server: &Server) -> (Vec<String>, Vec<(String, String)>) {
        let started = Instant::now();
        loop {
            let (_, feed) = server.get("/events/feed?limit=1000").await;
            let ids: Vec<String> =
                feed["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().into()).collect();
            let messages = self.messages().await;
            if messages.len() >= ids.len() || started.elapsed() > Duration::from_secs(20) {
                return (ids, messages);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn delete(&self) {
        let _ = self.context().await.delete_stream(&self.name).await;
    }
}

async fn transfers(server: &Server, wallets: &[String], currency: &str, n: u64) {
    for amount in 1..=n {
        let wallet = &wallets[amount as usize % wallets.len()];
        assert_eq!(server.transfer("@World", wallet, amount, currency).await.0, StatusCode::CREATED);
    }
}

#[tokio::test]
#[ignore = "broker suite: set KEEL_TEST_NATS_URL and pass --include-ignored (.ci/run does)"]
async fn every_event_arrives_once_in_commit_order_on_its_subject() {
    let stream = TestStream::on(&machine_nats());
    let server = Server::start_with_args(&stream.args());
    let currency = unique_currency();
    let ledger = server.ledger("stream").await;
    let wallets = vec![server.balance(&ledger, &currency).await, server.balance(&ledger, &currency).await];
    transfers(&server, &wallets, &currency, 20).await;

    let (ids, messages) = stream.wait_for_all(&server).await;
    assert_eq!(messages.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(), ids, "each event once, in order");
    let applied: Vec<&String> =
        messages.iter().map(|(subject, _)| subject).filter(|s| s.contains(".transaction.")).collect();
    assert_eq!(applied.len(), 20);
    let (_, feed) = server.get("/events/feed?limit=1000").await;
    let world = feed["events"].as_array().unwrap().iter().find(|e| e["event"] == "transaction.applied").unwrap()
        ["data"]["source"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(applied[0], &format!("{}.transaction.applied.{world}", stream.prefix), "subject: type, then balance");
    assert!(messages.iter().any(|(s, _)| s == &format!("{}.ledger.created.none", stream.prefix)));
    stream.delete().await;
}

/// A transaction as large as a request may be makes an event over NATS's 1 MiB message limit: it
/// is published as a stub saying where to read it whole, and the events after it follow (before,
/// the stream stopped at it for good, retrying).
#[tokio::test]
#[ignore = "broker suite: set KEEL_TEST_NATS_URL and pass --include-ignored (.ci/run does)"]
async fn an_event_too_large_for_nats_is_published_as_a_stub_and_the_stream_goes_on() {
    let stream = TestStream::on(&machine_nats());
    let server = Server::start_with_args(&stream.args());
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("large").await, &currency).await;
    let body = serde_json::json!({"precise_amount": 1, "currency": currency, "source": "@World",
        "destination": wallet, "reference": unique("large"), "description": "d".repeat(1_048_300), "skip_queue": true});
    let (status, answer) = server.post("/transactions", body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    transfers(&server, &[wallet], &currency, 3).await;

    let (ids, messages) = stream.wait_for_all(&server).await;
    assert_eq!(messages.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(), ids, "each event once, in order");
    let (_, feed) = server.get("/events/feed?limit=1000").await;
    let large =
        feed["events"].as_array().unwrap().iter().position(|e| {
            e["event"] == "transaction.applied" && e["data"]["transaction_id"] == answer["transaction_id"]
        });
    let large = large.expect("the large transaction's event is in the feed");
    let stored = stream.context().await.get_stream(&stream.name).await.expect("the stream");
    let stub = stored.get_raw_message(large as u64 + 1).await.expect("the large event's message");
    let size: usize = stub.headers.get("Keel-Too-Large").expect("marked too large").to_string().parse().unwrap();
    assert!(size > 1_048_576, "{size}");
    let stub: serde_json::Value = serde_json::from_slice(&stub.payload).unwrap();
    assert_eq!(stub["event"], "transaction.applied", "{stub}");
    let (_, whole) = server.get(stub["too_large"]["read_it_at"].as_str().unwrap()).await;
    assert_eq!(whole["events"][0]["event_id"], stub["event_id"]);
    assert_eq!(whole["events"][0]["data"]["transaction_id"], answer["transaction_id"]);
    stream.delete().await;
}

#[tokio::test]
#[ignore = "broker suite: set KEEL_TEST_NATS_URL and pass --include-ignored (.ci/run does)"]
async fn keel_killed_mid_stream_resumes_without_a_gap_or_a_copy() {
    let stream = TestStream::on(&machine_nats());
    // SQLite: the process that starts on the file takes the dead one's lease at once.
    let database = TestDatabase::sqlite();
    let server = Server::start_on(&database.url, &stream.args());
    let currency = unique_currency();
    let ledger = server.ledger("stream").await;
    let wallets = vec![server.balance(&ledger, &currency).await, server.balance(&ledger, &currency).await];
    // Transfers run while the server is killed: some are answered, the rest fail on the way.
    kill_under_load(server, &wallets, &currency).await;
    let server = Server::start_on(&database.url, &stream.args());
    transfers(&server, &wallets, &currency, 10).await;

    let (ids, messages) = stream.wait_for_all(&server).await;
    assert_eq!(messages.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(), ids, "no gap, no copy, in order");
    stream.delete().await;
}

/// A NATS server of the test's own, on a free port, keeping JetStream's files in a folder that
/// outlives a restart.
struct OwnNats {
    port: u16,
    store: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnNats {
    fn start() -> OwnNats {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut nats = OwnNats { port, store: tempfile::tempdir().unwrap(), child: None };
        nats.resume();
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and storage, and waits until it takes connections.
    fn resume(&mut self) {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("nats-server is installed (Debian's package; .ci/run installs it)");
        let child = std::process::Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "nats-server listens");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
#[ignore = "broker suite: set KEEL_TEST_NATS_URL and pass --include-ignored (.ci/run does)"]
async fn a_nats_server_stopped_mid_stream_loses_nothing() {
    let mut nats = OwnNats::start();
    let stream = TestStream::on(&nats.url());
    let server = Server::start_with_args(&stream.args());
    let currency = unique_currency();
    let ledger = server.ledger("stream").await;
    let wallets = vec![server.balance(&ledger, &currency).await, server.balance(&ledger, &currency).await];
    transfers(&server, &wallets, &currency, 10).await;
    let (ids, messages) = stream.wait_for_all(&server).await;
    assert_eq!(messages.len(), ids.len(), "all published before the broker goes away");

    // While NATS is down, Keel takes transfers as ever; their events wait in the outbox.
    nats.stop();
    transfers(&server, &wallets, &currency, 15).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.resume();

    let (ids, messages) = stream.wait_for_all(&server).await;
    assert_eq!(messages.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(), ids, "nothing lost, in order, once");
}

// tidy: long because it is one scenario: two publishers, one stream, then the comparison
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL and broker suites: set KEEL_TEST_POSTGRES_URL and KEEL_TEST_NATS_URL, pass --include-ignored"]
async fn two_processes_on_postgresql_publish_each_event_once_in_order() {
    assert!(common::database::postgres_url().is_some(), "two processes share a database only on PostgreSQL");
    let stream = TestStream::on(&machine_nats());
    let database = TestDatabase::new();
    let a = Arc::new(Server::start_on(&database.url, &stream.args()));
    let b = Arc::new(Server::start_on(&database.url, &stream.args()));
    let currency = unique_currency();
    let ledger = a.ledger("stream").await;
    let wallets = vec![a.balance(&ledger, &currency).await, b.balance(&ledger, &currency).await];
    let mut clients = Vec::new();
    for c in 0..8 {
        let (server, wallets, currency) = ([&a, &b][c % 2].clone(), wallets.clone(), currency.clone());
        clients.push(tokio::spawn(async move { transfers(&server, &wallets, &currency, 20).await }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let (ids, messages) = stream.wait_for_all(&a).await;
    assert_eq!(ids.len(), 8 * 20 + 4, "a ledger, two balances, @World and the transfers");
    assert_eq!(messages.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(), ids, "each once, in commit order");
    stream.delete().await;
}
