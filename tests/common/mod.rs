//! Shared test helpers: a real `keel serve` process on a free port with its own SQLite file (or,
//! where a subprocess adds nothing, the same app in the test's process: `Server::in_process`), an
//! HTTP client for it, and the ledger invariants every test can assert.
#![allow(dead_code)] // each test binary uses a different subset

pub mod cluster;
pub mod database;
pub mod in_process;
pub mod invariants;
pub mod pg_proxy;
pub mod rabbitmq;
pub mod receiver;

/// The request-body fields CONTRACT.md gives `POST /transactions`, as clients send them.
pub const TRANSACTION_FIELDS: [&str; 12] = [
    "amount",
    "precise_amount",
    "precision",
    "reference",
    "currency",
    "source",
    "destination",
    "description",
    "allow_overdraft",
    "inflight",
    "skip_queue",
    "meta_data",
];

/// The request-body fields CONTRACT.md gives `POST /balance-monitors`.
pub const MONITOR_FIELDS: [&str; 6] =
    ["balance_id", "condition", "description", "call_back_url", "meta_data", "trigger"];

pub use database::TestDatabase;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Server {
    transport: Transport,
    pub base: String,
    pub database_url: String,
    client: reqwest::Client,
    /// Every line the server logged so far.
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The database the server owns, dropped with it (None when the test owns it).
    _database: Option<TestDatabase>,
}

/// What the harness does with a server's log lines (it always reads them, so the server never
/// blocks on a full pipe).
#[derive(Clone, Copy, PartialEq)]
enum Logs {
    Keep,
    Discard,
}

/// An answer, by either transport.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

/// How requests reach the app.
enum Transport {
    /// A real `keel serve` process, over HTTP.
    Process(Child),
    /// The app in this process, through its router (no socket, no subprocess).
    InProcess(in_process::InProcess),
}

impl Server {
    /// The app in this process on a fresh database (SQLite, or PostgreSQL with
    /// `KEEL_TEST_POSTGRES_URL`), with `api_key` if given. Requests go through the router
    /// directly: `request`, `send` and the helpers built on them work; `base`, `client`, `pid`,
    /// `logs`, `stop` and `kill` are a real server's only.
    pub fn in_process(api_key: Option<&str>) -> Server {
        Self::in_process_on_clock(api_key, keel::engine::Clock::system())
    }

    /// The app in this process on `clock` (`Clock::manual`: the test moves time).
    pub fn in_process_on_clock(api_key: Option<&str>, clock: keel::engine::Clock) -> Server {
        let database = TestDatabase::new();
        let app = in_process::InProcess::start_with_clock(&database.url, api_key, clock);
        Server {
            transport: Transport::InProcess(app),
            base: String::new(),
            database_url: database.url.clone(),
            client: reqwest::Client::new(),
            logs: Default::default(),
            _database: Some(database),
        }
    }

    /// A server on a fresh SQLite file.
    pub fn start() -> Server {
        Self::start_with_args(&[])
    }

    pub fn start_with_args(extra: &[&str]) -> Server {
        let database = TestDatabase::new();
        let mut server = Self::start_on(&database.url, extra);
        server._database = Some(database);
        server
    }

    /// A server on an existing database (restart and multi-process tests); the caller keeps the
    /// `TestDatabase` alive.
    pub fn start_on(database_url: &str, extra: &[&str]) -> Server {
        Self::spawn(database_url, extra, Logs::Keep)
    }

    /// A server that keeps none of its log lines after the one it listens with: for the benchmark,
    /// whose servers log one line per request and whose own CPU is measured.
    pub fn start_discarding_logs(database_url: &str, extra: &[&str]) -> Server {
        Self::spawn(database_url, extra, Logs::Discard)
    }

    fn spawn(database_url: &str, extra: &[&str], keep: Logs) -> Server {
        let mut args = vec!["serve", "--bind", "127.0.0.1", "--port", "0", "--database", database_url];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(&args)
            .env("RUST_LOG", "info")
            .env_remove("KEEL_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("keel binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (found, address) = mpsc::channel();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = logs.clone();
        // Read the log until the listening line, then keep draining (and keeping) it so the server
        // never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    // Text logs end the line with the address; JSON logs close a string after it.
                    let address = rest.split(|c: char| c == '"' || c.is_whitespace()).next().unwrap_or("");
                    if let Some(tx) = found.take() {
                        let _ = tx.send(address.to_string());
                    }
                }
                if keep == Logs::Discard {
                    continue;
                }
                kept.lock().unwrap().push(line.clone());
                if std::env::var_os("KEEL_TEST_LOG").is_some() {
                    eprintln!("[keel] {line}");
                }
            }
        });
        let address = match address.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!("keel did not log its listening address within 30 s");
            }
        };
        Server {
            transport: Transport::Process(child),
            base: format!("http://{address}"),
            database_url: database_url.to_string(),
            client: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client"),
            logs,
            _database: None,
        }
    }

    /// The HTTP client of a real server (`base` is its address).
    pub fn client(&self) -> &reqwest::Client {
        assert!(matches!(self.transport, Transport::Process(_)), "an in-process app has no socket: use `send`");
        &self.client
    }

    pub async fn request(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (headers, bytes): (&[(&str, &str)], Vec<u8>) = match &body {
            Some(body) => (&[("content-type", "application/json")], serde_json::to_vec(body).expect("JSON")),
            None => (&[], Vec::new()),
        };
        let answer = self.send(method, path, headers, bytes).await.expect("a valid request");
        let (status, text) = (answer.status, answer.body);
        let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status} body is not JSON: {text:?}"));
        (status, value)
    }

    /// Sends any request, raw body and all, by either transport. `None`: the method or path is not
    /// one an HTTP client can send.
    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Option<Answer> {
        match &self.transport {
            Transport::Process(_) => {
                let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
                let mut request = self.client.request(method, format!("{}{path}", self.base)).body(body);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let response = request.send().await.ok()?;
                let (status, headers) = (response.status(), response.headers().clone());
                Some(Answer { status, headers, body: response.text().await.expect("a body") })
            }
            Transport::InProcess(app) => {
                let mut request = axum::http::Request::builder().method(method).uri(path);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let request = request.body(axum::body::Body::from(body)).ok()?;
                Some(app.send(request).await)
            }
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request("PUT", path, Some(body)).await
    }

    /// POST that must answer 201; returns the body.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let (status, value) = self.post(path, body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "POST {path} {body} → {value}");
        value
    }

    pub async fn ledger(&self, name: &str) -> String {
        self.create("/ledgers", json!({ "name": name })).await["ledger_id"].as_str().unwrap().to_string()
    }

    pub async fn balance(&self, ledger_id: &str, currency: &str) -> String {
        let body = json!({ "ledger_id": ledger_id, "currency": currency });
        self.create("/balances", body).await["balance_id"].as_str().unwrap().to_string()
    }

    /// A transfer applied before the answer (`skip_queue: true`).
    pub async fn transfer(
        &self,
        source: &str,
        destination: &str,
        precise_amount: u64,
        currency: &str,
    ) -> (StatusCode, Value) {
        self.post(
            "/transactions",
            json!({
                "precise_amount": precise_amount, "currency": currency, "source": source,
                "destination": destination, "reference": unique("ref"), "skip_queue": true,
            }),
        )
        .await
    }

    /// The server's process id (to read its memory use).
    pub fn pid(&self) -> u32 {
        match &self.transport {
            Transport::Process(child) => child.id(),
            Transport::InProcess(_) => panic!("an in-process app has no process"),
        }
    }

    fn child(&mut self) -> &mut Child {
        match &mut self.transport {
            Transport::Process(child) => child,
            Transport::InProcess(_) => panic!("an in-process app has no process"),
        }
    }

    /// Every line the server has logged so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Stops the server with SIGTERM (graceful), waits for it, and says whether it exited 0.
    pub fn stop(mut self) -> bool {
        let child = self.child();
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        child.wait().is_ok_and(|status| status.success())
    }

    /// Kills the server with SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        let child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // An in-process app stops when its transport is dropped (`InProcess::drop`).
        if let Transport::Process(child) = &mut self.transport {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fresh currency and its parties: `@World` first, then `wallets` balances in a new ledger.
pub async fn parties(server: &Server, wallets: usize) -> (String, Vec<String>) {
    let currency = unique_currency();
    let ledger = server.ledger("prop").await;
    let mut ids = vec!["@World".to_string()];
    for _ in 0..wallets {
        ids.push(server.balance(&ledger, &currency).await);
    }
    (currency, ids)
}

/// Runs `keel` with `args` in `dir` and waits at most 20 s for it to exit: whether it exited 0 and
/// everything it printed, or `None` if it was still running then (a server that started), which
/// is killed.
pub fn keel_within_20s(dir: &std::path::Path, args: &[&str]) -> Option<(bool, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(dir)
        .env_remove("KEEL_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keel runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("the child can be waited for").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("its output");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Some((output.status.success(), text))
}

/// Runs a `keel` subcommand to its end; returns whether it exited 0 and everything it printed.
pub fn keel(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_keel")).args(args).output().expect("keel runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// A currency code no other test uses, so invariants can be checked per test on a shared server.
pub fn unique_currency() -> String {
    format!("T{}", &uuid::Uuid::new_v4().simple().to_string()[..10]).to_uppercase()
}

/// Runs a property over `default_cases` random inputs (`KEEL_PROPTEST_CASES` overrides), each on
/// the shared server, with proptest's shrinking on failure.
pub fn check_property<'a, S: proptest::strategy::Strategy>(
    default_cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>,
) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime for the property");
    let cases = std::env::var("KEEL_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default_cases);
    let config = proptest::test_runner::Config { cases, failure_persistence: None, ..Default::default() };
    proptest::test_runner::TestRunner::new(config)
        .run(&strategy, |input| {
            runtime.block_on(property(input));
            Ok(())
        })
        .unwrap();
}

/// Polls `path` until `done` holds (for the background queue), at most 10 s.
pub async fn wait_for(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let (_, value) = server.get(path).await;
        if done(&value) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never reached the expected state");
}

/// A monitor's history (`GET /balance-monitors/{id}/events`), oldest first: each event whole.
pub async fn monitor_history(server: &Server, monitor: &Value) -> Vec<Value> {
    let path = format!("/balance-monitors/{}/events?limit=1000", monitor["monitor_id"].as_str().unwrap());
    let (status, events) = server.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    events.as_array().unwrap().iter().rev().cloned().collect()
}

/// A monitor's history as (event, transaction id) pairs, oldest first.
pub async fn monitor_signals(server: &Server, monitor: &Value) -> Vec<(String, String)> {
    let history = monitor_history(server, monitor).await;
    let pair =
        |e: &Value| (e["event"].as_str().unwrap().to_string(), e["transaction_id"].as_str().unwrap().to_string());
    history.iter().map(pair).collect()
}

/// Kills `server` with SIGKILL while transfers from `@World` to `wallets` (in turn) are being
/// posted to it: some are answered, the rest fail on the way. Returns once the writer has stopped.
pub async fn kill_under_load(server: Server, wallets: &[String], currency: &str) {
    let writer = {
        let (client, base, wallets, currency) =
            (server.client().clone(), server.base.clone(), wallets.to_vec(), currency.to_string());
        tokio::spawn(async move {
            for amount in 1..=500u64 {
                let body = json!({"precise_amount": amount, "currency": currency, "source": "@World",
                    "destination": wallets[amount as usize % wallets.len()], "reference": unique("ref"),
                    "skip_queue": true});
                if client.post(format!("{base}/transactions")).json(&body).send().await.is_err() {
                    return;
                }
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    server.kill();
    let _ = writer.await;
}
