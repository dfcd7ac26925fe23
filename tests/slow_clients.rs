//! Clients that never finish a request cannot hold the server: a connection that has sent half a
//! request's headers is closed after `--request-timeout-ms`, and SIGTERM ends the process within
//! `--shutdown-timeout-ms` however many such connections are open, with every acknowledged write
//! durable.

mod common;

use common::{unique_currency, Server, TestDatabase};
use reqwest::StatusCode;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A connection that sends the start of a request's head and then nothing more (slowloris).
fn half_a_request(server: &Server) -> std::net::TcpStream {
    let address = server.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(stream, "POST /transactions HTTP/1.1\r\nHost: {address}\r\nContent-Ty").unwrap();
    stream.flush().unwrap();
    stream
}

#[test]
fn half_sent_headers_are_cut_off_after_the_request_timeout() {
    let server = Server::start_with_args(&["--request-timeout-ms", "1000"]);
    let mut stream = half_a_request(&server);
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(read.is_ok(), "the server closed the connection rather than the read timing out: {read:?}");
    assert!(waited < Duration::from_secs(10), "closed after about the request timeout, not {waited:?}");
    assert!(waited >= Duration::from_millis(900), "not before the timeout: {waited:?}");
}

#[tokio::test]
async fn sigterm_completes_within_the_shutdown_timeout_while_slow_clients_hold_connections() {
    let database = TestDatabase::new();
    // Headers may take a minute: only the shutdown deadline can end these connections in time.
    let args = ["--request-timeout-ms", "60000", "--shutdown-timeout-ms", "1000"];
    let server = Server::start_on(&database.url, &args);
    let currency = unique_currency();
    let wallet = server.balance(&server.ledger("l").await, &currency).await;
    let (status, _) = server.transfer("@World", &wallet, 25, &currency).await;
    assert_eq!(status, StatusCode::CREATED);
    let slow: Vec<_> = (0..5).map(|_| half_a_request(&server)).collect();
    // An idle keep-alive connection too: it must be closed at once, not waited for.
    let idle = reqwest::Client::new();
    assert!(idle.get(format!("{}/health", server.base)).send().await.unwrap().status().is_success());

    let started = Instant::now();
    let stopped = tokio::task::spawn_blocking(move || server.stop()).await.unwrap();
    let took = started.elapsed();
    assert!(stopped, "SIGTERM exits 0");
    assert!(took < Duration::from_secs(8), "stopped within the shutdown timeout, not {took:?}");
    drop(slow);

    let server = Server::start_on(&database.url, &[]);
    assert_eq!(server.get(&format!("/balances/{wallet}")).await.1["balance"], serde_json::json!(25));
}
