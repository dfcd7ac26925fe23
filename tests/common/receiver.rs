//! A real local webhook receiver: an HTTP server on 127.0.0.1 that records every request and can be
//! told to answer failures first.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived (the benchmark's monitor-event lag).
    pub at: std::time::SystemTime,
    pub headers: HeaderMap,
    pub raw: String,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// How the receiver answers (after the planned statuses, if any).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Mode {
    #[default]
    Ok,
    /// Never answers (the request hangs until the sender gives up).
    Hang,
    /// Answers 200 after this long.
    Slow(Duration),
    /// Answers this status.
    Status(u16),
    /// Answers 200 with a body of this many bytes.
    Huge(usize),
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Statuses to answer before answering 200 again.
    planned: VecDeque<u16>,
    mode: Mode,
    in_flight: usize,
    max_in_flight: usize,
}

pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

/// Where a receiver on this port takes webhooks.
fn hook_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/hook")
}

/// A port on 127.0.0.1 that is bound but not listening: connections to it are refused, like a
/// receiver that is down. The port stays bound until it listens, so no other socket can take it
/// meanwhile (asking for a free port number and binding it later raced with the ephemeral ports of
/// the tests' own outgoing connections: "Address already in use").
pub struct ReservedPort {
    socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl ReservedPort {
    pub fn new() -> ReservedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("a test can open a socket");
        socket.bind(([127, 0, 0, 1], 0).into()).expect("127.0.0.1 has a free port");
        let port = socket.local_addr().expect("a bound socket has an address").port();
        ReservedPort { socket, port }
    }

    pub fn url(&self) -> String {
        hook_url(self.port)
    }

    /// Starts listening on the reserved port (must be called inside the tests' runtime).
    pub fn listen(self) -> tokio::net::TcpListener {
        self.socket.listen(128).expect("a reserved port can listen")
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("receiver binds");
        Self::serve(listener)
    }

    /// The receiver comes up on a port that was refusing connections until now.
    pub fn start_on(reserved: ReservedPort) -> Receiver {
        Self::serve(reserved.listen())
    }

    /// Serves on a listener the test already holds.
    pub fn serve(listener: tokio::net::TcpListener) -> Receiver {
        let port = listener.local_addr().expect("a listener has an address").port();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().route("/{*path}", post(record)).route("/", post(record)).with_state(inner.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url: hook_url(port), inner, task }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.inner.lock().unwrap().mode = mode;
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.inner.lock().unwrap().max_in_flight
    }

    /// Answer these statuses to the next requests, then 200 again.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().planned.extend(statuses);
    }

    /// Every delivery but Blnk's creation events (`ledger.created`, `balance.created`), which the
    /// suites about transactions and monitors do not count; `received_all` has those too.
    pub fn received(&self) -> Vec<Received> {
        let creation = |r: &Received| matches!(r.body["event"].as_str(), Some("ledger.created" | "balance.created"));
        self.received_all().into_iter().filter(|r| !creation(r)).collect()
    }

    pub fn received_all(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Waits until at least `n` requests arrived (at most 20 s); returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        self.wait_until(&format!("{n} webhooks"), |got| got.len() >= n).await
    }

    /// Waits until at least `n` `balance.monitor` webhooks arrived (at most 20 s); returns those.
    pub async fn wait_for_monitor_events(&self, n: usize) -> Vec<Received> {
        self.wait_until(&format!("{n} monitor webhooks"), |_| self.monitor_events().len() >= n).await;
        self.monitor_events()
    }

    /// Waits until a webhook of `event` arrived (at most 20 s); returns the first.
    pub async fn wait_until_event(&self, event: &str) -> Received {
        let got = self.wait_until(event, |got| got.iter().any(|r| r.body["event"] == event)).await;
        got.into_iter().find(|r| r.body["event"] == event).expect("it arrived")
    }

    async fn wait_until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..400 {
            let got = self.received();
            if done(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let events: Vec<Value> = self.received().iter().map(|r| r.body["event"].clone()).collect();
        panic!("expected {what}; got {} webhooks: {events:?}", self.received().len());
    }

    /// The `balance.monitor` deliveries, in arrival order.
    pub fn monitor_events(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.body["event"] == "balance.monitor").collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: Bytes) -> (StatusCode, Vec<u8>) {
    let at = std::time::SystemTime::now();
    let raw = String::from_utf8_lossy(&body).to_string();
    let parsed = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let (planned, mode) = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(Received { at, headers, raw, body: parsed });
        inner.in_flight += 1;
        inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
        (inner.planned.pop_front(), inner.mode)
    };
    // Counted out when the answer is sent or the sender gives up (the future is then dropped).
    let _in_flight = InFlight(inner.clone());
    match (planned, mode) {
        (Some(status), _) => (StatusCode::from_u16(status).unwrap(), Vec::new()),
        (None, Mode::Ok) => (StatusCode::OK, Vec::new()),
        (None, Mode::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            (StatusCode::OK, Vec::new())
        }
        (None, Mode::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            (StatusCode::OK, Vec::new())
        }
        (None, Mode::Status(status)) => (StatusCode::from_u16(status).unwrap(), Vec::new()),
        (None, Mode::Huge(bytes)) => (StatusCode::OK, vec![b'x'; bytes]),
    }
}

struct InFlight(Arc<Mutex<Inner>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.0.lock() {
            inner.in_flight -= 1;
        }
    }
}
