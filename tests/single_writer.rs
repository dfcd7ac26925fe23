//! One writer per SQLite file (DESIGN rule 7): the engine trusts its copy of the balances it wrote,
//! so a second `keel serve` on the same file, as a blue/green or rolling restart on one volume
//! starts it, must refuse to start rather than write behind the first; so must `keel migrate`.
//! `keel check` (reads only) still runs beside a server. Once the first process has stopped, the
//! next one starts.

mod common;

use common::invariants::assert_ledger_invariants;
use common::{keel_within_20s, unique_currency, Server, TestDatabase};
use reqwest::StatusCode;

/// Runs `keel` beside the test; `None` if it was still running after 20 s (it started serving).
fn run_to_exit(args: &[&str]) -> Option<(bool, String)> {
    keel_within_20s(&std::env::current_dir().expect("a working directory"), args)
}

#[tokio::test]
async fn a_second_server_on_one_sqlite_file_refuses_to_start_and_the_books_hold() {
    // One writer per file is SQLite's rule (PostgreSQL takes many processes): SQLite on both suites.
    let database = TestDatabase::sqlite();
    let first = Server::start_on(&database.url, &[]);
    let currency = unique_currency();
    let ledger = first.ledger("one writer").await;
    let a = first.balance(&ledger, &currency).await;
    let b = first.balance(&ledger, &currency).await;
    assert_eq!(first.transfer("@World", &a, 100, &currency).await.0, StatusCode::CREATED);

    // The reproduction: a second process would move money from A behind the first.
    let second = run_to_exit(&["serve", "--bind", "127.0.0.1", "--port", "0", "--database", &database.url]);
    let (ok, log) = second.expect("a second server on the same SQLite file exits instead of serving");
    assert!(!ok, "it exits with an error: {log}");
    assert!(log.contains("another Keel process"), "the message says why: {log}");
    assert!(!log.contains("listening on"), "it never listens: {log}");

    // Nor may migrations run under a live server; a read-only check may.
    let (ok, log) = run_to_exit(&["migrate", "--database", &database.url]).expect("keel migrate exits");
    assert!(!ok && log.contains("another Keel process"), "keel migrate refuses: {log}");
    let (ok, log) = run_to_exit(&["check", "--database", &database.url]).expect("keel check exits");
    assert!(ok && log.contains("every invariant holds"), "keel check reads beside a server: {log}");

    // The first server carries on alone: spending all of A once works, a second time does not.
    assert_eq!(first.transfer(&a, &b, 100, &currency).await.0, StatusCode::CREATED);
    assert_eq!(first.transfer(&a, &b, 99, &currency).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(assert_ledger_invariants(&first, &currency).await, 2);

    // Once the first has stopped, the next one takes the file over and sees everything.
    assert!(first.stop(), "a graceful stop exits 0");
    let next = Server::start_on(&database.url, &[]);
    assert_eq!(next.get(&format!("/balances/{b}")).await.1["balance"], serde_json::json!(100));
    assert_eq!(assert_ledger_invariants(&next, &currency).await, 2);
}

#[tokio::test]
async fn the_lock_follows_the_file_not_the_name_it_is_opened_by() {
    let database = TestDatabase::sqlite();
    let first = Server::start_on(&database.url, &[]);
    let path = std::path::PathBuf::from(database.url.trim_start_matches("sqlite://"));
    let link = path.with_file_name("alias.db");
    std::os::unix::fs::symlink(&path, &link).expect("a symlink to the database");
    let alias = format!("sqlite://{}", link.display());
    let (ok, log) = run_to_exit(&["serve", "--bind", "127.0.0.1", "--port", "0", "--database", &alias])
        .expect("a server on another name for the same file exits");
    assert!(!ok && log.contains("another Keel process"), "{log}");
    assert_eq!(first.get("/health").await.0, StatusCode::OK);
}
