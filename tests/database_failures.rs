//! The database going wrong: a wrong or unreachable URL is a clear start-up error (no server that
//! half works), and connections PostgreSQL drops while Keel runs are replaced without a client ever
//! seeing an error.

mod common;

use common::database::postgres_url;
use common::invariants::assert_ledger_invariants;
use common::receiver::ReservedPort;
use common::{unique_currency, Server, TestDatabase};
use reqwest::StatusCode;
use std::process::{Command, Stdio};

/// Runs `keel serve` against `database` and returns its exit status and everything it logged.
fn serve_and_fail(database: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["serve", "--bind", "127.0.0.1", "--port", "0", "--database", database])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("keel runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn a_wrong_or_unreachable_database_is_a_clear_startup_error() {
    let refusing = ReservedPort::new(); // held to the end: nothing else can start listening there
    let unreachable = format!("postgres://keel@127.0.0.1:{}/ledger", refusing.port);
    for (url, says) in [
        (unreachable.as_str(), "cannot connect to PostgreSQL database ledger on 127.0.0.1"),
        ("postgres://keel@127.0.0.1:notaport/x", "invalid PostgreSQL URL"),
        ("mysql://root@localhost/keel", "unsupported database URL"),
        ("sqlite:///nonexistent-dir/for/sure/keel.db", "cannot open SQLite database"),
    ] {
        let (ok, log) = serve_and_fail(url);
        assert!(!ok, "{url} must not start");
        assert!(log.contains(says), "{url}: expected {says:?} in {log}");
        assert!(!log.contains("listening on"), "{url}: nothing listens: {log}");
    }
}

#[tokio::test]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn connections_postgres_drops_are_replaced_without_client_errors() {
    let admin_url = postgres_url().expect("the PostgreSQL suite needs KEEL_TEST_POSTGRES_URL");
    let database = TestDatabase::new();
    let server = Server::start_on(&database.url, &[]);
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("resilient").await, &currency).await;
    let name = database.url.rsplit('/').next().unwrap().to_string();
    for round in 0..3 {
        // What a database restart does to Keel: every connection it holds is cut.
        let sql = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'");
        let admin = admin_url.clone();
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            client.batch_execute(&sql).unwrap();
        })
        .join()
        .unwrap();
        for _ in 0..10 {
            let (status, body) = server.transfer("@World", &wallet, 1, &currency).await;
            assert_eq!(status, StatusCode::CREATED, "round {round}: {body}");
        }
        let (status, _) = server.get(&format!("/balances/{wallet}")).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(server.get(&format!("/balances/{wallet}")).await.1["balance"], serde_json::json!(30));
    assert_ledger_invariants(&server, &currency).await;
}

/// A lock held elsewhere (a DBA's maintenance transaction) under a `lock_timeout` the DBA set on
/// the database: Keel's batch meets `lock_not_available` and tries again until the lock is free,
/// so the transfer is applied. Before, that error counted as final: the request answered 500 at
/// once (and a queued transaction meeting it could have been set aside).
#[tokio::test]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn a_dbas_lock_timeout_is_waited_out_not_answered_500() {
    assert!(postgres_url().is_some(), "the PostgreSQL suite needs KEEL_TEST_POSTGRES_URL");
    let database = TestDatabase::new();
    let name = database.url.rsplit('/').next().unwrap().to_string();
    database.execute(&format!("ALTER DATABASE \"{name}\" SET lock_timeout = '100ms'"));
    let server = Server::start_on(&database.url, &[]);
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("locked").await, &currency).await;
    assert_eq!(server.transfer("@World", &wallet, 1, &currency).await.0, StatusCode::CREATED);

    let (locked, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let (url, id) = (database.url.clone(), wallet.clone());
    let holder = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
        let mut maintenance = client.transaction().expect("a transaction");
        maintenance.execute("SET LOCAL lock_timeout = 0", &[]).unwrap();
        maintenance.query("SELECT 1 FROM balances WHERE balance_id = $1 FOR UPDATE", &[&id]).unwrap();
        locked.0.send(()).unwrap();
        // Held for a second after the transfer started waiting on it, ten times the lock_timeout.
        release.1.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(1));
        maintenance.commit().unwrap();
    });
    locked.1.recv().unwrap();
    release.0.send(()).unwrap();
    let (status, body) = server.transfer("@World", &wallet, 1, &currency).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    holder.join().unwrap();
    assert_eq!(server.get(&format!("/balances/{wallet}")).await.1["balance"], serde_json::json!(2));
    assert_ledger_invariants(&server, &currency).await;
}
