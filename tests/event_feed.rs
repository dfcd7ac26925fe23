//! The event feed, `GET /events/feed?after=&limit=&wait=`, over HTTP on a real server: every event
//! in commit order, pages that resume from any cursor, a long poll woken by a commit, bad queries
//! refused naming the field; and, on PostgreSQL, two processes writing while a reader follows the
//! feed: the reader sees every event once, none behind one it already read.
//!
//! The tests that run on one server use the suite's database (SQLite, or PostgreSQL when
//! `KEEL_TEST_POSTGRES_URL` is set); the two-process one is in the PostgreSQL suite.

mod common;

use common::database::postgres_url;
use common::pg_proxy::PgProxy;
use common::{unique_currency, Server, TestDatabase};
use reqwest::StatusCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A page of the feed: its events' (sequence, event type) and its `next_cursor`.
async fn page(server: &Server, query: &str) -> (Vec<(i64, String)>, String) {
    let (status, body) = server.get(&format!("/events/feed?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = body["events"]
        .as_array()
        .expect("a page lists events")
        .iter()
        .map(|e| (e["sequence"].as_i64().expect("a sequence"), e["event"].as_str().unwrap_or_default().to_string()))
        .collect();
    (events, body["next_cursor"].as_str().expect("a next_cursor").to_string())
}

/// Every event from `after` on, following `next_cursor` page by page.
async fn follow(server: &Server, after: &str, limit: u32) -> (Vec<(i64, String)>, String) {
    let (mut all, mut cursor) = (Vec::new(), after.to_string());
    loop {
        let (events, next) = page(server, &format!("after={cursor}&limit={limit}")).await;
        if events.is_empty() {
            assert_eq!(next, cursor, "an empty page leaves the cursor where it was");
            return (all, cursor);
        }
        all.extend(events);
        cursor = next;
    }
}

#[tokio::test]
async fn the_feed_gives_every_event_in_commit_order_and_resumes_from_any_cursor() {
    let server = Server::start_with_args(&["--event-feed"]);
    let currency = unique_currency();
    let ledger = server.ledger("feed").await;
    let (a, b) = (server.balance(&ledger, &currency).await, server.balance(&ledger, &currency).await);
    for amount in 1..=5 {
        assert_eq!(server.transfer("@World", &a, amount, &currency).await.0, StatusCode::CREATED);
    }
    assert_eq!(server.transfer(&a, &b, 3, &currency).await.0, StatusCode::CREATED);

    // One page holds them all, oldest first, with no webhook URL anywhere (`--event-feed`).
    let (everything, last) = page(&server, "limit=1000").await;
    let kinds: Vec<&str> = everything.iter().map(|(_, kind)| kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "transaction.applied").count(), 6, "{kinds:?}");
    assert!(kinds.contains(&"ledger.created") && kinds.contains(&"balance.created"), "{kinds:?}");
    assert!(everything.windows(2).all(|w| w[0].0 < w[1].0), "in order, each once: {everything:?}");
    assert_eq!(last, everything.last().unwrap().0.to_string());

    // Pages of two, and from a cursor in the middle, give the same events.
    assert_eq!(follow(&server, "0", 2).await.0, everything);
    let middle = everything[everything.len() / 2].0;
    let (rest, _) = follow(&server, &middle.to_string(), 3).await;
    assert_eq!(rest, everything.iter().filter(|(s, _)| *s > middle).cloned().collect::<Vec<_>>());

    // After the last, nothing: the cursor stays.
    assert_eq!(page(&server, &format!("after={last}")).await, (vec![], last));
}

#[tokio::test]
async fn a_long_poll_answers_when_an_event_commits_and_empty_when_its_wait_ends() {
    let server = Arc::new(Server::start_with_args(&["--event-feed"]));
    let currency = unique_currency();
    let ledger = server.ledger("feed").await;
    let wallet = server.balance(&ledger, &currency).await;
    // `@World` of this currency exists from here on: the transfer below makes one event only.
    assert_eq!(server.transfer("@World", &wallet, 1, &currency).await.0, StatusCode::CREATED);
    let (_, last) = follow(&server, "0", 1000).await;

    // Nothing comes: an empty page once the wait is over, the cursor unchanged.
    let started = Instant::now();
    assert_eq!(page(&server, &format!("after={last}&wait=1")).await, (vec![], last.clone()));
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited: {:?}", started.elapsed());

    // A transfer made while the poll waits is its answer.
    let poll = {
        let (server, last) = (server.clone(), last.clone());
        tokio::spawn(async move { page(&server, &format!("after={last}&wait=20")).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.transfer("@World", &wallet, 7, &currency).await.0, StatusCode::CREATED);
    let (events, next) = poll.await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1, "transaction.applied");
    assert_eq!(next, events[0].0.to_string());
}

#[tokio::test]
async fn bad_feed_queries_are_400s_naming_the_field() {
    let server = Server::start();
    for (query, field) in [
        ("after=-1", "after"),
        ("after=abc", "after"),
        ("after=1.5", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("wait=31", "wait"),
        ("wait=-1", "wait"),
    ] {
        let (status, body) = server.get(&format!("/events/feed?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error_detail"]["details"]["field"], field, "{query}: {body}");
    }
}

#[tokio::test]
async fn without_the_option_or_a_webhook_url_the_feed_has_monitor_events_only() {
    let server = Server::start();
    let currency = unique_currency();
    let ledger = server.ledger("feed").await;
    let wallet = server.balance(&ledger, &currency).await;
    let condition = serde_json::json!({"field": "credit_balance", "operator": ">", "value": 0});
    server.create("/balance-monitors", serde_json::json!({"balance_id": wallet, "condition": condition})).await;
    assert_eq!(server.transfer("@World", &wallet, 5, &currency).await.0, StatusCode::CREATED);
    let (events, _) = follow(&server, "0", 100).await;
    let kinds: Vec<&str> = events.iter().map(|(_, kind)| kind.as_str()).collect();
    assert_eq!(kinds, ["balance.monitor"]);
}

// tidy: long because it is one scenario: two writers, one follower, then the comparison
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn a_follower_sees_every_event_of_two_processes_once_and_none_behind_its_cursor() {
    assert!(postgres_url().is_some(), "two processes share a database only on PostgreSQL");
    let database = TestDatabase::new();
    let a = Arc::new(Server::start_on(&database.url, &["--event-feed"]));
    let b = Arc::new(Server::start_on(&database.url, &["--event-feed"]));
    let currency = unique_currency();
    let ledger = a.ledger("feed").await;
    let mut wallets = Vec::new();
    for _ in 0..8 {
        wallets.push(a.balance(&ledger, &currency).await);
    }
    // `@World` of this currency exists from here on: each transfer below makes one event.
    assert_eq!(a.transfer("@World", &wallets[0], 1, &currency).await.0, StatusCode::CREATED);
    let (_, start) = follow(&a, "0", 1000).await;

    // Sixteen clients on two processes write while a reader follows the feed through B, short
    // pages and no waiting, so it reads between commits as often as it can.
    let writing = Arc::new(AtomicBool::new(true));
    let follower = {
        let (b, writing, start) = (b.clone(), writing.clone(), start.clone());
        tokio::spawn(async move {
            let (mut seen, mut cursor) = (Vec::new(), start);
            loop {
                let done = !writing.load(Ordering::SeqCst);
                let (events, next) = page(&b, &format!("after={cursor}&limit=7")).await;
                if events.is_empty() && done {
                    return seen;
                }
                seen.extend(events.into_iter().map(|(sequence, _)| sequence));
                cursor = next;
            }
        })
    };
    let mut clients = Vec::new();
    for c in 0..16 {
        let (server, wallet, currency) = ([&a, &b][c % 2].clone(), wallets[c % 8].clone(), currency.clone());
        clients.push(tokio::spawn(async move {
            for amount in 1..=25 {
                assert_eq!(server.transfer("@World", &wallet, amount, &currency).await.0, StatusCode::CREATED);
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    writing.store(false, Ordering::SeqCst);
    let seen = follower.await.unwrap();

    let (committed, _) = follow(&a, &start, 1000).await;
    let committed: Vec<i64> = committed.into_iter().map(|(sequence, _)| sequence).collect();
    assert_eq!(committed.len(), 16 * 25, "one event per transfer");
    assert_eq!(seen, committed, "the follower saw every event once, in the order they are stored");
}

// tidy: long because it is one scenario: a slow commit on one process, a quick one on the other
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "PostgreSQL suite: set KEEL_TEST_POSTGRES_URL and pass --include-ignored (.ci/run does)"]
async fn an_event_committed_behind_a_slow_commit_never_appears_before_it() {
    assert!(postgres_url().is_some(), "two processes share a database only on PostgreSQL");
    let database = TestDatabase::new();
    // A's commits go through a proxy that can hold one back; B's go straight to the database.
    let proxy = PgProxy::start("127.0.0.1:5432".into()).await;
    let a = Arc::new(Server::start_on(&proxy.url_for(&database.url), &["--event-feed"]));
    let b = Arc::new(Server::start_on(&database.url, &["--event-feed"]));
    let currency = unique_currency();
    let ledger = a.ledger("feed").await;
    let (x, y) = (a.balance(&ledger, &currency).await, a.balance(&ledger, &currency).await);
    // Two sources, so the two transfers below lock no balance in common (`@Funding` is created
    // here, not by the transfer below: each of those makes one event).
    assert_eq!(a.transfer("@World", &x, 1, &currency).await.0, StatusCode::CREATED);
    assert_eq!(b.transfer("@Funding", &y, 1, &currency).await.0, StatusCode::CREATED);
    let (_, start) = follow(&b, "0", 1000).await;

    // A draws its event's `seq` and then takes 1.5 s to commit; meanwhile B makes another event.
    // Drawn later, B's `seq` is higher: were it to commit first, a reader would pass A's.
    proxy.delay_next_commits(1, Duration::from_millis(1500));
    let slow = {
        let (a, x, currency) = (a.clone(), x.clone(), currency.clone());
        tokio::spawn(async move { a.transfer("@World", &x, 2, &currency).await.0 })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let quick = {
        let (b, y, currency) = (b.clone(), y.clone(), currency.clone());
        tokio::spawn(async move { b.transfer("@Funding", &y, 3, &currency).await.0 })
    };
    let (mut seen, mut cursor) = (Vec::new(), start.clone());
    // Reading one event at a time, as often as it can, until both transfers are answered.
    loop {
        let (events, next) = page(&b, &format!("after={cursor}&limit=1&wait=1")).await;
        seen.extend(events.into_iter().map(|(sequence, _)| sequence));
        cursor = next;
        if slow.is_finished() && quick.is_finished() {
            let (rest, _) = follow(&b, &cursor, 1000).await;
            seen.extend(rest.into_iter().map(|(sequence, _)| sequence));
            break;
        }
    }
    assert_eq!(slow.await.unwrap(), StatusCode::CREATED);
    assert_eq!(quick.await.unwrap(), StatusCode::CREATED);
    let (committed, _) = follow(&b, &start, 1000).await;
    let committed: Vec<i64> = committed.into_iter().map(|(sequence, _)| sequence).collect();
    assert_eq!(committed.len(), 2);
    assert_eq!(seen, committed, "the reader saw both events, the slow commit's first");
}
