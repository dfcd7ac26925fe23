//! The benchmark's webhooks-on mode (`--webhooks`): a fast local receiver that answers 200 at once,
//! on a thread of its own so its CPU is reported apart from the load generator's, and what a run
//! reports about delivery: events delivered per second, lag p50/p99 (from the transaction's
//! `created_at` to the arrival), the outbox's backlog once a second, and how long it takes to
//! drain after the load stops.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The name of the receiver's one thread (its CPU is read from `/proc/self/task`).
const THREAD: &str = "bench-receiver";

/// What arrived: the arrival time and the event's `data.created_at`, per request.
#[derive(Default)]
struct Arrivals {
    lags_ms: Vec<f64>,
    count: u64,
}

/// A receiver on 127.0.0.1 that counts every webhook and notes its lag; nothing else.
pub struct FastReceiver {
    pub url: String,
    arrivals: Arc<Mutex<Arrivals>>,
}

impl FastReceiver {
    /// Starts the receiver on its own thread with a single-threaded runtime.
    pub fn start() -> FastReceiver {
        let arrivals = Arc::new(Mutex::new(Arrivals::default()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let state = arrivals.clone();
        std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
                    port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                    let app = Router::new().route("/hook", post(arrived)).with_state(state);
                    axum::serve(listener, app).await.unwrap();
                });
            })
            .expect("the receiver's thread starts");
        let port = port_rx.recv().expect("the receiver listens");
        FastReceiver { url: format!("http://127.0.0.1:{port}/hook"), arrivals }
    }

    /// Webhooks received so far.
    pub fn count(&self) -> u64 {
        self.arrivals.lock().unwrap().count
    }

    /// Lag p50 and p99 (ms) of what arrived since the last call, which forgets them.
    pub fn take_lag_quantiles(&self) -> (Option<f64>, Option<f64>) {
        quantiles(std::mem::take(&mut self.arrivals.lock().unwrap().lags_ms))
    }

    /// CPU seconds (user + system) the receiver's thread has used.
    pub fn cpu_seconds() -> f64 {
        std::fs::read_dir("/proc/self/task")
            .expect("this process's threads are listed in /proc")
            .flatten()
            .find(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim() == THREAD))
            .map(|task| super::cpu_seconds_of(&task.path().join("stat").display().to_string()))
            .expect("the receiver's thread runs")
    }
}

/// Notes the arrival. The lag runs from the transaction's `created_at` (the batch that applied it)
/// to now; only `created_at` is looked for, so parsing costs the receiver little.
async fn arrived(State(arrivals): State<Arc<Mutex<Arrivals>>>, body: Bytes) -> StatusCode {
    let now = SystemTime::now();
    let lag =
        created_at(&body).and_then(|created| now.duration_since(created).ok()).map(|lag| lag.as_secs_f64() * 1000.0);
    let mut arrivals = arrivals.lock().unwrap();
    arrivals.count += 1;
    if let Some(lag) = lag {
        arrivals.lags_ms.push(lag);
    }
    StatusCode::OK
}

/// p50 and p99 of `values` (ms).
pub fn quantiles(mut values: Vec<f64>) -> (Option<f64>, Option<f64>) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| (!values.is_empty()).then(|| values[((values.len() as f64 * q) as usize).min(values.len() - 1)]);
    (at(0.5), at(0.99))
}

/// The first `"created_at":"…"` of a body (the transaction's, in a `transaction.*` event).
pub fn created_at(body: &[u8]) -> Option<SystemTime> {
    const KEY: &[u8] = b"\"created_at\":\"";
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let end = start + body[start..].iter().position(|&b| b == b'"')?;
    humantime::parse_rfc3339(std::str::from_utf8(&body[start..end]).ok()?).ok()
}

/// What a webhooks-on run adds to a row: delivery seen from the receiver and the outbox.
pub struct Delivery {
    /// Events received per second over the load.
    pub during_load_per_s: f64,
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    /// The outbox's pending events, once a second, from the load's start to its drain.
    pub backlog: Vec<u64>,
    /// From the load's end until every event of it had arrived (`None`: not within 30 s).
    pub drained_after: Option<Duration>,
    /// The receiver's CPU per event, µs.
    pub receiver_cpu_us: f64,
}

/// Samples the outbox's depth (the server's `keel_outbox_pending_events`) once a second while
/// `load` runs, then waits until `expected()` events have arrived (at most 30 s).
pub async fn observe<T>(
    receiver: &FastReceiver,
    base: &str,
    load: impl std::future::Future<Output = T>,
    expected: impl Fn(&T) -> u64,
) -> (T, Delivery) {
    let client = reqwest::Client::new();
    let (received_before, cpu_before) = (receiver.count(), FastReceiver::cpu_seconds());
    receiver.take_lag_quantiles();
    let backlog = Arc::new(Mutex::new(Vec::new()));
    let sampling = tokio::spawn(sample_backlog(client.clone(), base.to_string(), backlog.clone()));
    let started = Instant::now();
    let result = load.await;
    let load_took = started.elapsed();
    let received_in_load = receiver.count() - received_before;
    let target = received_before + expected(&result);
    let ended = Instant::now();
    let mut drained_after = None;
    while ended.elapsed() < Duration::from_secs(30) {
        if receiver.count() >= target {
            drained_after = Some(ended.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sampling.abort();
    let received = (receiver.count() - received_before).max(1);
    let (lag_p50_ms, lag_p99_ms) = receiver.take_lag_quantiles();
    let backlog = backlog.lock().unwrap().clone();
    let delivery = Delivery {
        during_load_per_s: received_in_load as f64 / load_took.as_secs_f64(),
        lag_p50_ms,
        lag_p99_ms,
        backlog,
        drained_after,
        receiver_cpu_us: (FastReceiver::cpu_seconds() - cpu_before) * 1e6 / received as f64,
    };
    (result, delivery)
}

async fn sample_backlog(client: reqwest::Client, base: String, into: Arc<Mutex<Vec<u64>>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Ok(response) = client.get(format!("{base}/metrics")).send().await else { continue };
        let text = response.text().await.unwrap_or_default();
        let pending = text
            .lines()
            .find_map(|l| l.strip_prefix("keel_outbox_pending_events ")?.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        into.lock().unwrap().push(pending as u64);
    }
}

impl Delivery {
    /// Two lines under a run's row.
    pub fn print(&self) {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |ms| format!("{ms:.1} ms"));
        println!(
            "{:>17} webhooks: {:.0} delivered/s during the load, lag p50 {} p99 {}, drained {} after the load, \
             receiver CPU {:.1} µs/event",
            "",
            self.during_load_per_s,
            ms(self.lag_p50_ms),
            ms(self.lag_p99_ms),
            self.drained_after.map_or("NOT within 30 s".to_string(), |d| format!("{} ms", d.as_millis())),
            self.receiver_cpu_us
        );
        println!("{:>17} outbox pending, once a second: {:?}", "", self.backlog);
    }
}

/// Makes `url` a webhook endpoint of the server at `base` for every event type (`--webhook-endpoint`).
pub async fn subscribe(base: &str, url: &str) {
    let body = serde_json::json!({"url": url, "events": ["*"]});
    let answer = reqwest::Client::new().post(format!("{base}/webhooks")).json(&body).send().await;
    assert!(answer.is_ok_and(|a| a.status() == 201), "the benchmark's endpoint is created");
}
