//! Throughput benchmark. One run:
//! 1. set-up, through Keel's own engine (no HTTP, so a million balances take seconds, not an hour):
//!    K balances, each funded from `@World`, then M monitors per balance whose thresholds are never
//!    reached (every one is evaluated on every transfer, none fires), then one more transfer to each
//!    balance (so its monitors' state exists, as in a ledger that has run), and, on F% of the balances,
//!    one monitor that fires on every transfer touching its balance, with a `call_back_url` at a
//!    local webhook receiver;
//! 2. the real `keel serve` (release build) started on that database, timed until it listens, and
//!    warmed: every balance moved once through it (`warm_up`; SQLite, where the balances and their
//!    monitors fit the engine's cache), so the runs measure a server that has run a while, not a
//!    restart's first read of each balance's monitors;
//! 3. over HTTP: C concurrent clients posting `skip_queue: true` transfers between random balances
//!    for T seconds, for each C in a list: applied transfers/s, latency p50/p99/max, monitor-event
//!    lag (from the batch that fired the monitor to the webhook's arrival) and the server's peak RSS;
//! 4. the engine alone: the same workload submitted straight to the engine (no HTTP, no JSON), to
//!    show what the HTTP layer costs;
//! 5. the storage baseline: the minimal writes of one transfer (one transaction row, two balance
//!    updates), one commit per transfer, per B (the mean batch Keel committed in its largest HTTP
//!    run), per C (the largest batch C clients can make) and per 1,000, twice:
//!    - smallest rows: four-column rows with sequential keys straight through rusqlite, with the
//!      same pragmas (SQLite only): what the disk and SQLite can do at all;
//!    - Keel's rows: Keel's full rows, UUIDv7 ids and interleaved client references, through
//!      Keel's own store (`Store::write`: its schema, indexes, pragmas and checkpointer), with no
//!      reads, checks, monitors, JSON or HTTP. Keel's HTTP figure is quoted as a ratio to this one
//!      at its own batch B: the same writes in the same commits, so the ratio is what everything
//!      but storage costs.
//!
//! With `--bulk N`, step 3 posts `POST /transactions/bulk` requests of N transfers each (atomic,
//! `skip_queue`) instead, and steps 4 and 5 give way to the Keel's-rows baseline at the commit size
//! those requests made (N × the mean requests per batch).
//!
//! `cargo bench --bench transfers -- [--clients 1,8,64] [--seconds 5] [--balances 1000]
//!     [--monitors M] [--monitor-kind KIND] [--ledger-rules R] [--firing F (percent of balances)]
//!     [--postgres postgres://USER@HOST:PORT/DB [--processes N] [--engine-workers N]] [--bulk N] [--http-only]
//!     [--history-mib N] [--webhooks] [--described]
//!     [--webhook-endpoint] [--nats URL]`
//!
//! `--monitor-kind` picks the quiet monitors: `plain` (`debit_balance >`, the default), `edge` (an
//! edge trigger with a re-arm level), `guard` (`action: reject`), `velocity` (`debit_volume` over
//! 24 h), `velocity-guard` (a daily limit), or `mixed` (the five in turn). None ever fires or
//! refuses, so the run measures what evaluating them costs. `--ledger-rules R` adds R quiet
//! ledger-wide monitors of that kind on the one ledger all the balances are in (each rule watches
//! every balance). `--http-only` stops after step 3 (for interleaved runs of two configurations).
//! `--history-mib N` grows the SQLite file by N MiB before the server starts, with a table the
//! server never reads, standing in for a ledger's history: below 1 GiB, SQLite scans the writer's
//! whole page cache at each commit that split a B-tree page (see docs/performance.md), which a
//! fresh benchmark database always is and a ledger with a few million transactions never is.
//!
//! `--webhooks` starts the server with its webhook URL at a fast local receiver (answers 200 at
//! once, on a thread of its own), so every transfer is a `transaction.applied` event: each run
//! also reports events delivered per second during the load, their lag p50/p99 (from the
//! transaction's `created_at` to the arrival), the outbox's backlog once a second, how long it
//! took to drain after the load, and the receiver's CPU per event. The server's CPU per transfer
//! then runs to the drain's end: delivering the load's events is part of its cost.
//!
//! `--webhook-endpoint` is `--webhooks` with the receiver as a webhook endpoint (`POST /webhooks`,
//! every event type) instead of the server's webhook URL: the outbox's backlog is then always 0
//! (an endpoint reads the outbox from its cursor), the rest is measured the same way.
//!
//! `--nats URL` has the server publish every event to a NATS JetStream stream of the run's own
//! (`--nats-url`), and each run also reports the stream's lag (from the transaction's
//! `created_at` to a plain subscriber's receipt, p50/p99) and how long after the load it caught up.
//!
//! With `--postgres` (an admin database), the run and each Keel's-rows baseline get a database of
//! their own, dropped afterwards. `--processes N` starts N Keel servers on that database and spreads
//! the clients' connections over them (HTTP runs; CPU is their sum).

mod broker;
#[path = "../tests/common/mod.rs"]
mod common;
mod shared;
mod webhooks;

use common::receiver::Receiver;
use common::{Server, TestDatabase};
use keel::domain::amount::Precision;
use keel::domain::monitor::{Action, Condition, Trigger};
use keel::engine::{Command, EngineConfig, EngineHandle, NewMonitor, Outcome};
use num_bigint::BigInt;
use rusqlite::{params, Connection};
use serde_json::Map;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The load generator shares the two cores with the server: mimalloc, as the server has.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Options {
    clients: Vec<usize>,
    seconds: u64,
    balances: usize,
    monitors: usize,
    firing_percent: usize,
    postgres: Option<String>,
    /// Keel servers sharing the database (PostgreSQL), the clients' connections spread over them.
    processes: usize,
    /// The server's and the engine run's `--engine-workers` (PostgreSQL; the server's default if
    /// not given). The Keel's-rows baseline writes through as many connections at once.
    engine_workers: Option<usize>,
    /// Items per `POST /transactions/bulk` request; 0: single transfers.
    bulk: usize,
    /// What the quiet monitors are (`--monitor-kind`).
    monitor_kind: String,
    /// Only the HTTP runs (step 3).
    http_only: bool,
    /// Quiet ledger-wide monitors on the balances' ledger (`--ledger-rules`).
    ledger_rules: usize,
    /// MiB of cold history the SQLite file is grown by before the server starts (`--history-mib`).
    history_mib: usize,
    /// The server's webhook URL at a fast local receiver (`--webhooks`): every transfer an event.
    webhooks: bool,
    /// `--webhook-endpoint`: the same receiver as a `/webhooks` endpoint instead of the server's URL.
    endpoint: bool,
    /// A NATS server the server streams every event to (`--nats URL`).
    nats: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        clients: vec![1, 8, 64],
        seconds: 5,
        balances: 1000,
        monitors: 0,
        firing_percent: 0,
        postgres: None,
        processes: 1,
        engine_workers: None,
        bulk: 0,
        monitor_kind: "plain".into(),
        http_only: false,
        ledger_rules: 0,
        history_mib: 0,
        webhooks: false,
        endpoint: false,
        nats: None,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--clients" => o.clients = value.split(',').map(|c| c.parse().expect("--clients 1,8,64")).collect(),
            "--seconds" => o.seconds = value.parse().expect("--seconds N"),
            "--balances" => o.balances = value.parse().expect("--balances N"),
            "--monitors" => o.monitors = value.parse().expect("--monitors N (per balance)"),
            "--firing" => o.firing_percent = value.parse().expect("--firing PERCENT (of balances)"),
            "--postgres" => o.postgres = Some(value),
            "--processes" => o.processes = value.parse().expect("--processes N (Keel servers on one PostgreSQL)"),
            "--engine-workers" => o.engine_workers = Some(value.parse().expect("--engine-workers N (PostgreSQL)")),
            "--nats" => o.nats = Some(value),
            "--bulk" => o.bulk = value.parse().expect("--bulk ITEMS (per request)"),
            "--monitor-kind" => o.monitor_kind = value,
            "--ledger-rules" => o.ledger_rules = value.parse().expect("--ledger-rules R (on the balances' ledger)"),
            "--history-mib" => o.history_mib = value.parse().expect("--history-mib N (SQLite only)"),
            // Transfers with a description and metadata (what the search indexer indexes).
            "--described" => {
                DESCRIBED.store(true, std::sync::atomic::Ordering::Relaxed);
                i += 1;
                continue;
            }
            "--http-only" | "--webhooks" | "--webhook-endpoint" => {
                o.http_only |= args[i] == "--http-only";
                o.webhooks |= args[i] != "--http-only";
                o.endpoint |= args[i] == "--webhook-endpoint";
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
    assert!(o.balances >= 2, "--balances must be at least 2");
    let kinds = shared::MONITOR_KINDS;
    assert!(kinds.contains(&o.monitor_kind.as_str()), "--monitor-kind is one of {kinds:?}");
    o
}

/// The engine workers the server runs (`--engine-workers`, else its default for the store).
fn engine_workers(o: &Options) -> usize {
    o.engine_workers.unwrap_or(keel::engine::default_workers(o.postgres.is_none()))
}

// tidy: long because it is the benchmark's one list of modes and how each is run
fn main() {
    // The baselines run SQLite in this process: with the page cache the server uses.
    keel::store::sqlite::page_cache::install();
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    assert!(o.processes == 1 || o.postgres.is_some(), "--processes needs --postgres: SQLite serves one process");
    let database = test_database(&o);
    let url = database.url.clone();
    let store = if o.postgres.is_some() { "PostgreSQL" } else { "SQLite WAL synchronous=FULL" };
    println!(
        "keel: {store}, {} balances, {} quiet {} monitors per balance, {} ledger-wide, a firing monitor on {}% \
         of balances, {} s per run",
        o.balances, o.monitors, o.monitor_kind, o.ledger_rules, o.firing_percent, o.seconds
    );
    let largest = o.clients.iter().copied().max().unwrap_or(1);
    if o.bulk > 0 {
        return bulk_mode(&o, &runtime, &url, largest);
    }
    let (keel_rate, keel_batch) = runtime.block_on(async {
        let receiver = Receiver::start().await;
        let hook_url = receiver.url.clone();
        let (ids, commands, took) = set_up(&url, &o, &hook_url).await;
        println!("set-up through the engine: {commands} commands in {:.1} s", took.as_secs_f64());
        if o.history_mib > 0 {
            grow_database(&url, o.history_mib);
        }

        let fast_receiver = o.webhooks.then(webhooks::FastReceiver::start);
        let nats = match &o.nats {
            Some(url) => Some(broker::NatsWatcher::start(url).await),
            None => None,
        };
        let mut server_args: Vec<&str> = match &fast_receiver {
            Some(r) if !o.endpoint => vec!["--webhook-url", &r.url],
            _ => vec![],
        };
        server_args.extend(nats.as_ref().map(|n| n.server_args()).unwrap_or_default());
        let workers = o.engine_workers.map(|n| n.to_string());
        if let Some(n) = &workers {
            server_args.extend(["--engine-workers", n.as_str()]);
        }
        let started = Instant::now();
        let servers: Vec<Server> =
            (0..o.processes).map(|_| Server::start_discarding_logs(&url, &server_args)).collect();
        let server = &servers[0];
        println!("server start-up on that database: {} ms to listening", started.elapsed().as_millis());
        if o.processes > 1 {
            println!("{} Keel processes on the database; CPU and batch figures are their sums and means", o.processes);
        }
        if let (Some(r), true) = (&fast_receiver, o.endpoint) {
            webhooks::subscribe(&server.base, &r.url).await;
        }
        let ids = Arc::new(ids);
        let bases: Vec<&str> = servers.iter().map(|s| s.base.as_str()).collect();
        // Only where a warm server would hold every balance: past the cache's capacity most loads
        // miss whatever came before (and a million warm-up transfers would take minutes).
        let fits = ids.len() * (1 + o.monitors) + o.ledger_rules * ids.len() <= keel::engine::BALANCE_CACHE_CAPACITY;
        if o.postgres.is_none() && fits {
            let took = warm_up(&bases, &ids).await;
            println!("warm-up through the server: every balance moved once in {:.1} s", took.as_secs_f64());
            if fast_receiver.is_some() || nats.is_some() {
                tokio::time::sleep(Duration::from_secs(2)).await; // the warm-up's events delivered first
            }
        }
        header();
        let mut keel_at_largest = (0.0, 1.0);
        let client = reqwest::Client::new(); // for /metrics only; transfers go through `HttpSubmit`
        for &clients in &o.clients {
            let measuring_from = SystemTime::now();
            let before = all_batch_totals(&client, &servers).await;
            let cpu_before = CpuTimes::read_all(&servers);
            let submit = HttpSubmit::new(&bases);
            let streamed_before = nats.as_ref().map_or(0, |n| n.count());
            let load = drive(clients, o.seconds, &ids, Arc::new(submit));
            let (mut r, delivery) = match &fast_receiver {
                Some(hooks) => {
                    let (r, delivery) = webhooks::observe(hooks, &server.base, load, |r| r.transfers).await;
                    (r, Some(delivery))
                }
                None => (load.await, None),
            };
            let load_ended = Instant::now();
            // With webhooks on, up to the drain's end: delivering the load's events is part of its cost.
            let cpu = CpuTimes::read_all(&servers).since(&cpu_before);
            let after = all_batch_totals(&client, &servers).await;
            r.batch = Some((after.0 - before.0) / (after.1 - before.1).max(1.0));
            r.cpu = Some(cpu.per_transfer(r.transfers));
            if clients == largest {
                keel_at_largest = (r.rate, r.batch.unwrap_or(1.0));
            }
            if o.firing_percent > 0 {
                tokio::time::sleep(Duration::from_secs(2)).await; // let the last events arrive
                (r.lag_p50, r.lag_p99) = lag_quantiles(&receiver, measuring_from);
            }
            row("HTTP", clients, &r);
            if let Some(delivery) = delivery {
                delivery.print();
            }
            if let Some(nats) = &nats {
                nats.report(streamed_before, r.transfers, load_ended).await;
            }
        }
        let peak_rss = peak_rss_mib(server.pid());
        if let Some(nats) = &nats {
            nats.delete().await;
        }
        // SIGTERM: the server finishes what it has, then exits (so the engine run can open the file).
        for server in servers {
            assert!(server.stop(), "the server exits cleanly");
        }
        if o.http_only {
            println!("server peak RSS: {peak_rss} MiB");
            return keel_at_largest;
        }

        let store = open_store(&url);
        let config = EngineConfig { apply_queue: false, workers: engine_workers(&o), ..Default::default() };
        let (engine, thread) = keel::engine::start(store, config);
        for &clients in &o.clients {
            let r = drive(clients, o.seconds, &ids, Arc::new(EngineSubmit(engine.clone()))).await;
            row("engine", clients, &r);
        }
        drop(engine);
        thread.join().unwrap();
        println!("server peak RSS: {peak_rss} MiB");
        keel_at_largest
    });
    if o.http_only {
        return;
    }
    // One commit per transfer; per Keel's own mean batch at its largest run; per the largest batch
    // that run could make (one request per client); and per 1,000.
    let own_batch = (keel_batch.round() as usize).max(1);
    let mut sizes = vec![1usize, own_batch, largest, 1000];
    sizes.sort();
    sizes.dedup();
    let note = |per_commit: usize| if per_commit == own_batch { "  (Keel's mean batch)" } else { "" };
    if o.postgres.is_none() {
        println!("\nstorage baseline, smallest rows (rusqlite, same pragmas, 1 insert + 2 updates per transfer):");
        for &per_commit in &sizes {
            let rate = storage_baseline(per_commit, o.seconds, o.balances);
            println!("{per_commit:>8} per commit {rate:>12.0} transfers/s{}", note(per_commit));
        }
    }
    let writers = engine_workers(&o);
    println!(
        "\nstorage baseline, Keel's rows (Keel's store, {store}, 1 insert + 2 updates per transfer, {writers} \
         writer(s) at once as Keel's engine workers):"
    );
    let mut at_own_batch = 0.0;
    for &per_commit in &sizes {
        let database = test_database(&o);
        let rate = keel_rows_baseline(&database.url, per_commit, o.seconds, o.balances, largest, writers);
        println!("{per_commit:>8} per commit {rate:>12.0} transfers/s{}", note(per_commit));
        if per_commit == own_batch {
            at_own_batch = rate;
        }
    }
    println!(
        "\nKeel over HTTP at {largest} clients: {keel_rate:.0} transfers/s = {:.0}% of Keel's rows at its own batch \
         ({own_batch} per commit)",
        100.0 * keel_rate / at_own_batch
    );
}

/// Builds the database through the engine, with many commands in flight so they share commits.
/// Returns the balance ids, how many commands it took and how long.
async fn set_up(url: &str, o: &Options, hook_url: &str) -> (Vec<String>, usize, Duration) {
    let started = Instant::now();
    let store = open_store(url);
    let (engine, thread) = keel::engine::start(store, EngineConfig { apply_queue: false, ..Default::default() });
    let ledger = match engine.submit(Command::CreateLedger { name: "bench".into(), meta_data: Map::new() }).await {
        Ok(Outcome::Ledger(l)) => l.id,
        other => panic!("the ledger is created: {other:?}"),
    };
    let balances = in_parallel(&engine, o.balances, |_| Command::CreateBalance {
        ledger_id: ledger.clone(),
        currency: "USD".into(),
        identity_id: String::new(),
        meta_data: Map::new(),
        indicator: String::new(),
    })
    .await;
    let ids: Vec<String> = balances
        .into_iter()
        .map(|b| match b {
            Outcome::Balance(b) => b.id,
            other => panic!("a balance is created: {other:?}"),
        })
        .collect();
    // Funded before any monitor exists, so set-up fires nothing.
    in_parallel(&engine, ids.len(), |i| transfer("@World", &ids[i], 1_000_000_000, format!("fund-{i}"))).await;
    let quiet = |i: usize| {
        // Thresholds no balance reaches: evaluated on every transfer, never fired.
        let threshold = format!("{}", 1_000_000_000_000u64 + (i % o.monitors.max(1)) as u64);
        shared::quiet_monitor(&ids[i / o.monitors.max(1)], &o.monitor_kind, i, &threshold)
    };
    in_parallel(&engine, ids.len() * o.monitors, quiet).await;
    let rule = |i: usize| {
        let threshold = format!("{}", 1_000_000_000_000u64 + i as u64);
        shared::quiet_rule(&ledger, &o.monitor_kind, i, &threshold)
    };
    in_parallel(&engine, o.ledger_rules, rule).await;
    // Each balance moved once under its monitors, as in a ledger that has run a while: a balance's
    // first velocity checkpoint widens its row once (`store::codec::padded_log`), which is set-up,
    // not the steady state the run measures.
    in_parallel(&engine, ids.len(), |i| transfer("@World", &ids[i], 1, format!("warm-{i}"))).await;
    let firing = ids.len() * o.firing_percent / 100;
    // `credit_balance > 0` holds on every funded balance: these fire on each transfer they are in.
    in_parallel(&engine, firing, |i| monitor(&ids[i * ids.len() / firing], "credit_balance", "0", hook_url.into()))
        .await;
    let commands = 1 + ids.len() * (3 + o.monitors) + o.ledger_rules + firing;
    drop(engine);
    thread.join().unwrap();
    (ids, commands, started.elapsed())
}

/// Grows the SQLite file at `url` by `mib` MiB of rows in a table of its own (`--history-mib`).
fn grow_database(url: &str, mib: usize) {
    assert_eq!(url.split("://").next(), Some("sqlite"), "--history-mib is for SQLite");
    let file = Connection::open(url.trim_start_matches("sqlite://")).expect("the benchmark's database opens");
    file.execute_batch("CREATE TABLE bench_history (filler BLOB NOT NULL)").expect("a table of its own");
    for _ in 0..mib {
        file.execute("INSERT INTO bench_history VALUES (zeroblob(1048576))", []).expect("a MiB of history");
    }
    file.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("the history is in the file");
    println!("history: the database file grown by {mib} MiB");
}

/// The store, opened off the async threads (the PostgreSQL client blocks). The engine thread that
/// takes it also drops it there.
fn open_store(url: &str) -> Arc<dyn keel::store::Store> {
    tokio::task::block_in_place(|| {
        keel::store::open(url, 8, keel::store::Access::Own, &[]).expect("the database opens")
    })
}

/// Submits `count` commands, 256 in flight at a time; returns their outcomes in order.
async fn in_parallel(engine: &EngineHandle, count: usize, command: impl Fn(usize) -> Command) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(count);
    for chunk_start in (0..count).step_by(256) {
        let tasks: Vec<_> = (chunk_start..(chunk_start + 256).min(count))
            .map(|i| {
                let (engine, command) = (engine.clone(), command(i));
                tokio::spawn(async move { engine.submit(command).await })
            })
            .collect();
        for task in tasks {
            outcomes.push(task.await.unwrap().expect("a set-up command succeeds"));
        }
    }
    outcomes
}

fn transfer(source: &str, destination: &str, amount: u64, reference: String) -> Command {
    Command::CreateTransaction(shared::transfer(source, destination, amount, reference))
}

fn monitor(balance_id: &str, field: &str, value: &str, call_back_url: String) -> Command {
    Command::CreateMonitor(NewMonitor {
        balance_id: balance_id.into(),
        scope: None,
        condition: Condition::new(field, ">", value, None).expect("a valid condition"),
        description: String::new(),
        call_back_url,
        meta_data: Map::new(),
        trigger: Trigger::Every,
        action: Action::Notify,
        transfer: None,
    })
}

/// The running `keel serve`.
/// The server's peak RSS in MiB (`VmHWM`), read while it runs.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    kib / 1024
}

/// A fresh database for one run, dropped afterwards: the tests' own (`tests/common/database.rs`).
fn test_database(o: &Options) -> TestDatabase {
    match &o.postgres {
        Some(admin) => TestDatabase::postgres_on(admin),
        None => TestDatabase::sqlite(),
    }
}

/// The server's `keel_engine_batch_size` sum and count so far (its Prometheus metrics).
/// `batch_totals` summed over `servers`.
async fn all_batch_totals(client: &reqwest::Client, servers: &[Server]) -> (f64, f64) {
    let mut sum = (0.0, 0.0);
    for server in servers {
        let (requests, batches) = batch_totals(client, &server.base).await;
        sum = (sum.0 + requests, sum.1 + batches);
    }
    sum
}

async fn batch_totals(client: &reqwest::Client, base: &str) -> (f64, f64) {
    let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let value = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()).unwrap_or(0.0);
    (value("keel_engine_batch_size_sum "), value("keel_engine_batch_size_count "))
}

/// One way of applying a transfer: over HTTP, or straight into the engine.
/// Moves every balance once through the server(s) before the measured runs. A server that has run
/// a while holds each balance and its monitors in its engine's cache; a fresh one reads them on
/// each balance's first transfer (10 monitors each at `--monitors 10`), which is a restart's cold
/// start, not what watching costs a transfer, and which a 12 s run would otherwise half contain.
async fn warm_up(bases: &[&str], ids: &Arc<Vec<String>>) -> Duration {
    let submit = Arc::new(HttpSubmit::new(bases));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (submit, next, ids) = (submit.clone(), next.clone(), ids.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ids.len() {
                        break;
                    }
                    submit.submit("@World", &ids[i], 1, format!("server-warm-{i}")).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a warm-up client finishes");
    }
    started.elapsed()
}

trait Submit: Send + Sync + 'static {
    fn submit(
        &self,
        source: &str,
        destination: &str,
        amount: u64,
        reference: String,
    ) -> impl std::future::Future<Output = ()> + Send;
}

/// The load generator shares the machine's two cores with the server, so it is kept lean, as
/// `wrk` is: each client has one kept-alive HTTP/1.1 connection of its own (taken from `idle` and
/// put back), writes its request as one pre-formatted buffer and reads the answer on the same task.
/// A general client (hyper's, reqwest's) costs a task hand-off, a header map and a body type per
/// request, which is CPU taken from the server on this machine.
struct HttpSubmit {
    /// The servers' addresses, connected to in turn (`--processes`).
    addresses: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
    idle: Mutex<Vec<KeptAlive>>,
}

/// One kept-alive connection and the buffer its answers are read into.
struct KeptAlive {
    stream: tokio::net::TcpStream,
    read: Vec<u8>,
}

impl HttpSubmit {
    fn new(bases: &[&str]) -> Self {
        let addresses = bases.iter().map(|base| base.trim_start_matches("http://").to_string()).collect();
        HttpSubmit { addresses, next: Default::default(), idle: Mutex::new(Vec::new()) }
    }

    async fn connect(&self) -> KeptAlive {
        let at = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.addresses.len();
        let stream = tokio::net::TcpStream::connect(&self.addresses[at]).await.unwrap();
        stream.set_nodelay(true).unwrap();
        KeptAlive { stream, read: Vec::with_capacity(4096) }
    }
}

impl KeptAlive {
    /// Sends one request and reads its whole answer; returns the status and the body.
    async fn exchange(&mut self, request: &[u8]) -> (u16, Vec<u8>) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(request).await.unwrap();
        self.read.clear();
        let (head_end, status, length) = loop {
            if let Some(at) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.read[..at]).expect("an HTTP head is text");
                let status = head.get(9..12).and_then(|s| s.parse().ok()).expect("an HTTP/1.1 status line");
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
                    })
                    .expect("Keel answers with a Content-Length");
                break (at + 4, status, length);
            }
            self.fill().await;
        };
        while self.read.len() < head_end + length {
            self.fill().await;
        }
        assert_eq!(self.read.len(), head_end + length, "one answer per request, nothing pipelined");
        (status, self.read[head_end..].to_vec())
    }

    async fn fill(&mut self) {
        use tokio::io::AsyncReadExt;
        if self.read.capacity() == self.read.len() {
            self.read.reserve(4096);
        }
        let n = self.stream.read_buf(&mut self.read).await.unwrap();
        assert!(n > 0, "the server closed a kept-alive connection");
    }
}

/// `--described`: HTTP transfers carry a description and metadata.
static DESCRIBED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Submit for HttpSubmit {
    async fn submit(&self, source: &str, destination: &str, amount: u64, reference: String) {
        let taken = self.idle.lock().unwrap().pop();
        let mut connection = match taken {
            Some(connection) => connection,
            None => self.connect().await,
        };
        // Written out, not built as a `serde_json::Value`: ids and references here need no escaping.
        let described = match DESCRIBED.load(std::sync::atomic::Ordering::Relaxed) {
            true => r#","description":"card payment","meta_data":{"channel":"card"}"#,
            false => "",
        };
        let body = format!(
            concat!(
                r#"{{"precise_amount":{amount},"currency":"USD","source":"{source}","#,
                r#""destination":"{destination}","reference":"{reference}","skip_queue":true{described}}}"#
            ),
            amount = amount,
            source = source,
            destination = destination,
            reference = reference,
            described = described
        );
        let request = format!(
            "POST /transactions HTTP/1.1\r\nhost: keel\r\ncontent-type: application/json\r\ncontent-length: \
                {}\r\n\r\n{body}",
            body.len()
        );
        let (status, answer) = connection.exchange(request.as_bytes()).await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
        self.idle.lock().unwrap().push(connection);
    }
}

struct EngineSubmit(EngineHandle);

impl Submit for EngineSubmit {
    async fn submit(&self, source: &str, destination: &str, amount: u64, reference: String) {
        match self.0.submit(transfer(source, destination, amount, reference)).await {
            Ok(Outcome::Transaction(_)) => {}
            other => panic!("the transfer is applied: {other:?}"),
        }
    }
}

#[derive(Default)]
struct RunResult {
    rate: f64,
    p50: f64,
    p99: f64,
    max: f64,
    lag_p50: Option<f64>,
    lag_p99: Option<f64>,
    /// Mean transfers per commit (HTTP runs, from the server's own metrics).
    batch: Option<f64>,
    transfers: u64,
    /// CPU time per transfer, µs (HTTP runs): the server, its engine thread, the load generator.
    cpu: Option<CpuTimes>,
}

/// CPU time (user + system) of the server, of its engine thread and of this process (the load
/// generator), from `/proc`: steadier than a rate on a shared machine, since it does not count
/// the time a thread waited for a core.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTimes {
    server: f64,
    engine: f64,
    load_generator: f64,
}

impl CpuTimes {
    fn read(server_pid: u32) -> CpuTimes {
        let seconds = |path: String| cpu_seconds_of(&path);
        // Every worker of the engine: `keel-engine`, then `keel-engine-1`… (`--engine-workers`).
        let engine_threads: Vec<f64> = std::fs::read_dir(format!("/proc/{server_pid}/task"))
            .expect("the server's threads are listed in /proc")
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim().starts_with("keel-engine"))
            })
            .map(|task| seconds(task.path().join("stat").display().to_string()))
            .collect();
        assert!(!engine_threads.is_empty(), "the server has a keel-engine thread");
        let engine = engine_threads.iter().sum();
        CpuTimes {
            server: seconds(format!("/proc/{server_pid}/stat")),
            engine,
            load_generator: seconds("/proc/self/stat".into()),
        }
    }

    /// The sum over `servers` (the load generator counted once).
    fn read_all(servers: &[Server]) -> CpuTimes {
        servers
            .iter()
            .map(|s| CpuTimes::read(s.pid()))
            .reduce(|a, b| CpuTimes {
                server: a.server + b.server,
                engine: a.engine + b.engine,
                load_generator: a.load_generator,
            })
            .expect("at least one server")
    }

    fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            server: self.server - earlier.server,
            engine: self.engine - earlier.engine,
            load_generator: self.load_generator - earlier.load_generator,
        }
    }

    /// In µs per transfer.
    fn per_transfer(&self, transfers: u64) -> CpuTimes {
        let us = |s: f64| s * 1e6 / transfers.max(1) as f64;
        CpuTimes { server: us(self.server), engine: us(self.engine), load_generator: us(self.load_generator) }
    }
}

/// CPU seconds (user + system) of the process or thread whose `/proc` stat file is at `path`.
fn cpu_seconds_of(path: &str) -> f64 {
    // Fields 14 and 15 of a stat line (after the parenthesised name) are utime and stime, in
    // clock ticks (100 a second on Linux).
    // A figure that cannot be read stops the run: a silent zero would read as "free".
    let stat = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path} is readable: {e}"));
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).expect("utime and stime in a stat line");
    (tick(11) + tick(12)) / 100.0
}

/// `clients` tasks, each applying transfers one after another for `seconds`.
async fn drive<S: Submit>(clients: usize, seconds: u64, ids: &Arc<Vec<String>>, submit: Arc<S>) -> RunResult {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (ids, stop, submit) = (ids.clone(), stop.clone(), submit.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1) ^ (run << 32);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let from = (seed % ids.len() as u64) as usize;
                let to = (from + 1 + (seed >> 32) as usize % (ids.len() - 1)) % ids.len();
                let t = Instant::now();
                submit.submit(&ids[from], &ids[to], 1 + seed % 100, format!("r{run}-c{c}-{n}")).await;
                latencies.push(t.elapsed());
                n += 1;
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
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)]);
    RunResult {
        rate: latencies.len() as f64 / elapsed,
        transfers: latencies.len() as u64,
        p50: at(0.5),
        p99: at(0.99),
        max: ms(*latencies.last().unwrap()),
        ..Default::default()
    }
}

fn header() {
    println!(
        "{:>7} {:>8} {:>12} {:>9} {:>9} {:>9} {:>14} {:>14} {:>14}",
        "path", "clients", "transfers/s", "p50 ms", "p99 ms", "max ms", "event lag p50", "event lag p99", "per commit"
    );
}

fn row(path: &str, clients: usize, r: &RunResult) {
    let lag = |v: Option<f64>| v.map_or("-".to_string(), |ms| format!("{ms:.1} ms"));
    println!(
        "{path:>7} {clients:>8} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>14} {:>14} {:>14}",
        r.rate,
        r.p50,
        r.p99,
        r.max,
        lag(r.lag_p50),
        lag(r.lag_p99),
        r.batch.map_or("-".to_string(), |b| format!("{b:.1}"))
    );
    if let Some(cpu) = r.cpu {
        println!(
            "{:>17} CPU per transfer: server {:.1} µs (its engine thread {:.1} µs), load generator {:.1} µs",
            "", cpu.server, cpu.engine, cpu.load_generator
        );
    }
}

/// A webhook receiver that notes when each monitor event arrived and when its monitor fired.
/// Lag p50 and p99, in ms, of the events fired since `since`.
/// Lag runs from the batch that fired the monitor (its `last_triggered_at`) to the arrival.
fn lag_quantiles(receiver: &Receiver, since: SystemTime) -> (Option<f64>, Option<f64>) {
    let mut lags: Vec<f64> = receiver
        .received()
        .iter()
        .filter_map(|r| Some((humantime::parse_rfc3339(r.body["data"]["last_triggered_at"].as_str()?).ok()?, r.at)))
        .filter(|(fired, _)| *fired >= since)
        .map(|(fired, arrived)| arrived.duration_since(fired).unwrap_or_default().as_secs_f64() * 1000.0)
        .collect();
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| (!lags.is_empty()).then(|| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)]);
    (at(0.5), at(0.99))
}

/// The same minimal writes, but Keel's rows through Keel's own store (`Store::write`, so Keel's
/// schema, indexes, pragmas and checkpointer): one `INSERT` of a full transaction row with a UUIDv7
/// id and a client reference from one of `streams` interleaved clients, and two balance updates.
/// No reads, checks, monitors, JSON or HTTP: what Keel's storage can do at best.
/// Keel's rows stored without reads or rules: `per_commit` transfers per commit through Keel's own
/// store, from `writers` threads at once (each on its own share of the balances, so they never
/// wait on one another's locks), for `seconds`.
fn keel_rows_baseline(
    url: &str,
    per_commit: usize,
    seconds: u64,
    balances: usize,
    streams: usize,
    writers: usize,
) -> f64 {
    use keel::domain::balance::Balance;
    let store = open_store(url);
    let now = || humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    let rows: Vec<Balance> = (0..balances)
        .map(|_| Balance::new(keel::engine::new_id("bln"), "general_ledger_id".into(), "USD".into(), now()))
        .collect();
    store.write(&mut |w| rows.iter().try_for_each(|b| w.insert_balance(b))).unwrap();
    let writers = writers.clamp(1, balances / 2);
    let shares: Vec<Vec<Balance>> =
        (0..writers).map(|i| rows.iter().skip(i).step_by(writers).cloned().collect()).collect();
    let started = Instant::now();
    let threads: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(writer, share)| {
            let store = store.clone();
            std::thread::spawn(move || baseline_writer(store.as_ref(), share, writer, per_commit, seconds, streams))
        })
        .collect();
    let n: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    n as f64 / started.elapsed().as_secs_f64()
}

/// One writer of `keel_rows_baseline`: transfers among `rows` until `seconds` pass; how many.
fn baseline_writer(
    store: &dyn keel::store::Store,
    mut rows: Vec<keel::domain::balance::Balance>,
    writer: usize,
    per_commit: usize,
    seconds: u64,
    streams: usize,
) -> usize {
    use keel::domain::transaction::{Status, Transaction};
    let now = || humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    let balances = rows.len();
    let started = Instant::now();
    let mut n = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        store
            .write(&mut |w| {
                for k in n..n + per_commit {
                    let (from, to) = (k % balances, (k * 7 + 1) % balances);
                    let transaction = Transaction {
                        id: keel::engine::new_id("txn"),
                        parent: None,
                        precise_amount: BigInt::from(10),
                        precision: Precision::ONE,
                        reference: format!("r-w{writer}-c{}-{}", k % streams, k / streams),
                        description: String::new(),
                        currency: "USD".into(),
                        source: rows[from].id.clone(),
                        destination: rows[to].id.clone(),
                        source_balance_id: rows[from].id.clone(),
                        destination_balance_id: rows[to].id.clone(),
                        status: Status::Applied,
                        allow_overdraft: false,
                        overdraft_limit: BigInt::ZERO,
                        inflight: false,
                        created_at: now(),
                        effective_date: None,
                        scheduled_for: None,
                        inflight_expiry_date: None,
                        inflight_commit_date: None,
                        group: None,
                        meta_data: Map::new(),
                    };
                    w.insert_transaction(&transaction)?;
                    rows[from].debit_balance += 10u32;
                    rows[from].version += 1;
                    rows[to].credit_balance += 10u32;
                    rows[to].version += 1;
                    w.save_balance_totals(&rows[from])?;
                    w.save_balance_totals(&rows[to])?;
                }
                Ok(())
            })
            .unwrap();
        n += per_commit;
    }
    n
}

fn storage_baseline(per_commit: usize, seconds: u64, balances: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("baseline.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE balances (id TEXT PRIMARY KEY, credit TEXT, debit TEXT, version INTEGER);
         CREATE TABLE transactions (
             id TEXT PRIMARY KEY, amount TEXT, source TEXT, destination TEXT, reference TEXT UNIQUE);",
    )
    .unwrap();
    conn.execute_batch("BEGIN").unwrap();
    for i in 0..balances {
        conn.execute("INSERT INTO balances VALUES (?1, '0', '0', 0)", [format!("b{i}")]).unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
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

/// `--bulk N`: clients posting N-transfer bulk requests over HTTP, then Keel's rows at the same
/// commit size.
fn bulk_mode(o: &Options, runtime: &tokio::runtime::Runtime, url: &str, largest: usize) {
    let (rate, per_commit) = runtime.block_on(async {
        let receiver = Receiver::start().await;
        let (ids, commands, took) = set_up(url, o, &receiver.url).await;
        println!("set-up through the engine: {commands} commands in {:.1} s", took.as_secs_f64());
        let ids = Arc::new(ids);
        let workers = o.engine_workers.map(|n| n.to_string());
        let args: Vec<&str> = workers.iter().flat_map(|n| ["--engine-workers", n.as_str()]).collect();
        let server = Server::start_discarding_logs(url, &args);
        let client = reqwest::Client::new();
        println!(
            "{:>7} {:>8} {:>14} {:>14} {:>16} {:>22}",
            "path", "clients", "transfers/s", "requests/s", "transfers/commit", "CPU µs/transfer: server engine load"
        );
        let mut at_largest = (0.0, 1.0);
        for &clients in &o.clients {
            let before = batch_totals(&client, &server.base).await;
            let cpu_before = CpuTimes::read(server.pid());
            let requests = drive_bulk(clients, o.seconds, &ids, &server.base, o.bulk).await;
            let cpu = CpuTimes::read(server.pid()).since(&cpu_before).per_transfer((requests * o.bulk) as u64);
            let after = batch_totals(&client, &server.base).await;
            let per_batch = (after.0 - before.0) / (after.1 - before.1).max(1.0);
            let rate = (requests * o.bulk) as f64 / o.seconds as f64;
            let per_commit = per_batch * o.bulk as f64;
            println!(
                "{:>7} {clients:>8} {rate:>14.0} {:>14.1} {per_commit:>16.0} {:>14.1} {:>6.1} {:>5.1}",
                "bulk",
                requests as f64 / o.seconds as f64,
                cpu.server,
                cpu.engine,
                cpu.load_generator
            );
            if clients == largest {
                at_largest = (rate, per_commit);
            }
        }
        assert!(server.stop(), "the server exits cleanly");
        at_largest
    });
    let per_commit = (per_commit.round() as usize).max(1);
    let database = test_database(o);
    let writers = engine_workers(o);
    let baseline = keel_rows_baseline(&database.url, per_commit, o.seconds, o.balances, largest, writers);
    println!(
        "\nstorage baseline, Keel's rows at {per_commit} per commit, {writers} writer(s): {baseline:.0} transfers/s"
    );
    println!(
        "Keel bulk over HTTP at {largest} clients: {rate:.0} transfers/s = {:.0}% of Keel's rows at the same \
         commit size",
        100.0 * rate / baseline
    );
}

/// `clients` clients each posting `items`-transfer bulk requests (atomic, applied at once) for
/// `seconds`; returns how many requests were applied.
async fn drive_bulk(clients: usize, seconds: u64, ids: &Arc<Vec<String>>, base: &str, items: usize) -> usize {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (ids, stop, url) = (ids.clone(), stop.clone(), format!("{base}/transactions/bulk"));
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1) ^ (run << 32);
            let mut applied = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut body = String::with_capacity(items * 220);
                body.push_str(r#"{"atomic":true,"skip_queue":true,"transactions":["#);
                for k in 0..items {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let from = (seed % ids.len() as u64) as usize;
                    let to = (from + 1 + (seed >> 32) as usize % (ids.len() - 1)) % ids.len();
                    if k > 0 {
                        body.push(',');
                    }
                    body.push_str(&format!(
                        concat!(
                            r#"{{"precise_amount":1,"currency":"USD","source":"{}","destination":"{}","#,
                            r#""reference":"b{}-{}-{}-{}"}}"#
                        ),
                        ids[from], ids[to], run, c, applied, k
                    ));
                }
                body.push_str("]}");
                let response = client.post(&url).body(body).send().await.unwrap();
                assert_eq!(response.status(), reqwest::StatusCode::CREATED, "{}", response.text().await.unwrap());
                applied += 1;
            }
            applied
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}
