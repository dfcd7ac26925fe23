//! Throughput benchmark: the real `keel serve` (release build) on a fresh SQLite file, driven over
//! HTTP by C concurrent clients posting `skip_queue: true` transfers between K balances for T seconds,
//! for each C in a list; then the storage baseline: the minimal writes of one transfer (one
//! transaction row, two balance updates) straight through rusqlite with the same settings, one
//! commit per transfer and one per 1,000.
//!
//! `cargo bench --bench transfers -- [--clients 1,8,64] [--seconds 5] [--balances 1000]
//!     [--monitors N (per balance)] [--firing-monitors] [--postgres postgres://USER@HOST:PORT/DB (an admin database)]`
//!
//! `--monitors N` adds N monitors per balance whose thresholds are never reached (every one is
//! evaluated on every transfer). `--firing-monitors` adds one more per balance that fires on every
//! credit, with the server's webhooks sent to a local receiver, and reports the monitor-event lag:
//! from the batch that committed the transfer to the webhook's arrival.
//!
//! With `--postgres`, each run gets a database of its own (created, then dropped); the storage
//! baseline is SQLite's either way.

use rusqlite::{params, Connection};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    clients: Vec<usize>,
    seconds: u64,
    balances: usize,
    monitors: usize,
    firing_monitors: bool,
    postgres: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        clients: vec![1, 8, 64],
        seconds: 5,
        balances: 1000,
        monitors: 0,
        firing_monitors: false,
        postgres: None,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--clients" => o.clients = value.split(',').map(|c| c.parse().expect("--clients 1,8,64")).collect(),
            "--seconds" => o.seconds = value.parse().expect("--seconds N"),
            "--balances" => o.balances = value.parse().expect("--balances N"),
            "--monitors" => o.monitors = value.parse().expect("--monitors N"),
            "--postgres" => o.postgres = Some(value),
            "--firing-monitors" => {
                o.firing_monitors = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue; // cargo passes --bench
            }
        }
        i += 2;
    }
    o
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let store = if o.postgres.is_some() { "PostgreSQL" } else { "SQLite WAL synchronous=FULL" };
    println!(
        "keel over HTTP: {store}, {} balances, {} monitors per balance, {} s per run",
        o.balances, o.monitors, o.seconds
    );
    println!(
        "{:>8} {:>12} {:>10} {:>10} {:>10} {:>14} {:>14} {:>10}",
        "clients", "transfers/s", "p50 ms", "p99 ms", "max ms", "event lag p50", "event lag p99", "peak RSS"
    );
    for &clients in &o.clients {
        let r = runtime.block_on(http_run(clients, &o));
        let lag = |v: Option<f64>| v.map_or("-".to_string(), |ms| format!("{ms:.1} ms"));
        println!(
            "{clients:>8} {:>12.0} {:>10.2} {:>10.2} {:>10.2} {:>14} {:>14} {:>7} MiB",
            r.rate,
            r.p50,
            r.p99,
            r.max,
            lag(r.lag_p50),
            lag(r.lag_p99),
            r.peak_rss_mib
        );
    }
    println!("\nstorage baseline (rusqlite, same pragmas, 1 insert + 2 updates per transfer):");
    for per_commit in [1usize, 1000] {
        println!(
            "{per_commit:>8} per commit {:>12.0} transfers/s",
            storage_baseline(per_commit, o.seconds, o.balances)
        );
    }
}

/// A fresh PostgreSQL database for one run, dropped afterwards.
struct PgDatabase {
    admin: String,
    name: String,
}

impl PgDatabase {
    fn create(admin: &str) -> (PgDatabase, String) {
        let name = format!("keel_bench_{}", std::process::id() as u64 * 1000 + fastrand::u64(0..1000));
        pg_admin(admin, format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
        (PgDatabase { admin: admin.to_string(), name: name.clone() }, format!("{base}/{name}"))
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        pg_admin(&self.admin, format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn pg_admin(url: &str, sql: String) {
    let url = url.to_string();
    std::thread::spawn(move || postgres::Client::connect(&url, postgres::NoTls).unwrap().batch_execute(&sql).unwrap())
        .join()
        .unwrap();
}

struct RunResult {
    rate: f64,
    p50: f64,
    p99: f64,
    max: f64,
    lag_p50: Option<f64>,
    lag_p99: Option<f64>,
    peak_rss_mib: u64,
}

/// A webhook receiver that notes, for each monitor event, how long after its batch it arrived.
async fn lag_receiver() -> (String, Arc<std::sync::Mutex<Vec<f64>>>) {
    let lags = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = lags.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if let Some(at) = event["data"]["last_triggered_at"].as_str() {
                    if let Ok(at) = humantime::parse_rfc3339(at) {
                        let lag = std::time::SystemTime::now().duration_since(at).unwrap_or_default();
                        kept.lock().unwrap().push(lag.as_secs_f64() * 1000.0);
                    }
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, lags)
}

fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    kib / 1024
}

async fn http_run(clients: usize, o: &Options) -> RunResult {
    let (seconds, balances) = (o.seconds, o.balances);
    let dir = tempfile::tempdir().unwrap();
    let (_pg, url) = match &o.postgres {
        Some(admin) => {
            let (db, url) = PgDatabase::create(admin);
            (Some(db), url)
        }
        None => (None, format!("sqlite://{}", dir.path().join("bench.db").display())),
    };
    let (hook_url, lags) = lag_receiver().await;
    let mut args = vec!["serve", "--bind", "127.0.0.1", "--port", "0", "--database", &url];
    if o.firing_monitors {
        args.extend(["--webhook-url", &hook_url]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(&args)
        .env("RUST_LOG", "warn,keel=info")
        .stdout(Stdio::piped())
        .spawn()
        .expect("keel starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("keel logs its address").unwrap();
        if let Some(a) = line.split("listening on ").nth(1) {
            break a.trim().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let base = format!("http://{address}");
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
    let post = |path: &str, body: serde_json::Value| {
        let request = client.post(format!("{base}{path}")).json(&body);
        async move { request.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let ledger = post("/ledgers", json!({"name": "bench"})).await["ledger_id"].as_str().unwrap().to_string();
    // Set-up is sequential: it is not what is measured.
    let mut ids = Vec::with_capacity(balances);
    for i in 0..balances {
        let b = post("/balances", json!({"ledger_id": ledger, "currency": "USD"})).await;
        let id = b["balance_id"].as_str().unwrap().to_string();
        if o.firing_monitors {
            let m = json!({"balance_id": id, "condition": {"field": "credit_balance", "operator": ">", "value": 0}});
            assert!(post("/balance-monitors", m).await["monitor_id"].is_string(), "the firing monitor is created");
        }
        for m in 0..o.monitors {
            // Thresholds no balance reaches: every monitor is evaluated, none fires.
            let body = json!({"balance_id": id, "condition": {"field": "debit_balance", "operator": ">",
                "value": 1_000_000_000_000u64 + m as u64}});
            assert!(post("/balance-monitors", body).await["monitor_id"].is_string(), "every monitor is created");
        }
        post(
            "/transactions",
            json!({"precise_amount": 1_000_000_000u64, "currency": "USD", "source": "@World",
            "destination": id, "reference": format!("fund-{i}"), "skip_queue": true}),
        )
        .await;
        ids.push(id);
    }
    let ids = Arc::new(ids);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (ids, stop, client, base) = (ids.clone(), stop.clone(), client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let from = (seed % ids.len() as u64) as usize;
                let to = (from + 1 + (seed >> 32) as usize % (ids.len() - 1)) % ids.len();
                let body = json!({"precise_amount": 1 + seed % 100, "currency": "USD", "source": ids[from],
                    "destination": ids[to], "reference": format!("b{c}-{n}"), "skip_queue": true});
                n += 1;
                let t = Instant::now();
                let response = client.post(format!("{base}/transactions")).json(&body).send().await.unwrap();
                assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
                response.bytes().await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    if o.firing_monitors {
        tokio::time::sleep(Duration::from_secs(2)).await; // let the last events arrive
    }
    let peak_rss_mib = peak_rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)]);
    let mut lags = lags.lock().unwrap().clone();
    lags.sort_by(f64::total_cmp);
    let lag_at = |q: f64| (!lags.is_empty()).then(|| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)]);
    RunResult {
        rate: latencies.len() as f64 / elapsed,
        p50: at(0.5),
        p99: at(0.99),
        max: ms(*latencies.last().unwrap()),
        lag_p50: lag_at(0.5),
        lag_p99: lag_at(0.99),
        peak_rss_mib,
    }
}

fn storage_baseline(per_commit: usize, seconds: u64, balances: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("baseline.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE balances (id TEXT PRIMARY KEY, credit TEXT, debit TEXT, version INTEGER);
         CREATE TABLE transactions (id TEXT PRIMARY KEY, amount TEXT, source TEXT, destination TEXT, reference TEXT UNIQUE);",
    )
    .unwrap();
    for i in 0..balances {
        conn.execute("INSERT INTO balances VALUES (?1, '0', '0', 0)", [format!("b{i}")]).unwrap();
    }
    let started = Instant::now();
    let mut n = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        for _ in 0..per_commit {
            let (from, to) = (format!("b{}", n % balances), format!("b{}", (n * 7 + 1) % balances));
            conn.prepare_cached("INSERT INTO transactions VALUES (?1, '10', ?2, ?3, ?1)")
                .unwrap()
                .execute(params![format!("t{n}"), from, to])
                .unwrap();
            let mut update =
                conn.prepare_cached("UPDATE balances SET debit = ?2, version = version + 1 WHERE id = ?1").unwrap();
            update.execute(params![from, n.to_string()]).unwrap();
            update.execute(params![to, n.to_string()]).unwrap();
            n += 1;
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}
