//! History benchmark: what reading a balance at an instant (`GET /balances/{id}/at`) costs as the
//! balance's log grows. For each log length N: a fresh database; through Keel's engine, N transfers
//! between two balances in bulk requests of 1,000, with `effective_date`s spread over the past 365
//! days; their snapshots taken (`Command::TakeSnapshots`, what the daily run does); then the real
//! `keel serve` (release build) and, over HTTP, Q reads at random instants, from the snapshots and
//! with `from_source=true` (every transaction summed): latency p50/p99.
//!
//! `cargo bench --bench history -- [--transactions 10000,100000,1000000] [--queries 200]
//!     [--postgres postgres://USER@HOST:PORT/DB]`

#[path = "../tests/common/mod.rs"]
mod common;
mod shared;

use common::{Server, TestDatabase};
use keel::engine::{BulkItem, Command, EngineConfig, NewBulk, Outcome};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DAY_MS: u64 = 86_400_000;

fn main() {
    let (mut sizes, mut queries, mut postgres) = (vec![10_000, 100_000, 1_000_000], 200, None);
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--transactions" => sizes = pair[1].split(',').map(|n| n.parse().expect("--transactions N,N")).collect(),
            "--queries" => queries = pair[1].parse().expect("--queries N"),
            "--postgres" => postgres = Some(pair[1].clone()),
            _ => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "| transactions of the balance | set-up s | snapshots | at: p50 ms | p99 ms | from_source: p50 ms | p99 ms |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for n in sizes {
        let database = match &postgres {
            Some(admin) => TestDatabase::postgres_on(admin),
            None => TestDatabase::sqlite(),
        };
        let started = Instant::now();
        let (alice, snapshots) = runtime.block_on(set_up(&database.url, n));
        let set_up = started.elapsed().as_secs_f64();
        if postgres.is_some() {
            database.execute("ANALYZE");
        }
        let server = Server::start_discarding_logs(&database.url, &[]);
        let (at, source) = runtime.block_on(measure(&server, &alice, queries));
        println!("| {n} | {set_up:.1} | {snapshots} | {:.2} | {:.2} | {:.2} | {:.2} |", at.0, at.1, source.0, source.1);
    }
}

/// Two balances, `n` transfers between them over the past year, and their snapshots.
async fn set_up(url: &str, n: usize) -> (String, u64) {
    let store = tokio::task::block_in_place(|| keel::store::open(url, 8, keel::store::Access::Own, &[]).unwrap());
    let (engine, thread) = keel::engine::start(store, EngineConfig { apply_queue: false, ..Default::default() });
    let mut ids = Vec::new();
    for _ in 0..2 {
        let command = Command::CreateBalance {
            ledger_id: keel::domain::ledger::GENERAL_LEDGER_ID.into(),
            currency: "USD".into(),
            identity_id: String::new(),
            meta_data: Default::default(),
            indicator: String::new(),
        };
        match engine.submit(command).await {
            Ok(Outcome::Balance(b)) => ids.push(b.id),
            other => panic!("a balance is created: {other:?}"),
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut rng = fastrand::Rng::with_seed(29);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let items = chunk
            .iter()
            .map(|i| {
                let (source, destination) = if i % 2 == 0 { (&ids[0], &ids[1]) } else { (&ids[1], &ids[0]) };
                let mut t = shared::transfer(source, destination, rng.u64(1..100_000), format!("history-{i}"));
                t.allow_overdraft = true;
                let at = UNIX_EPOCH + Duration::from_millis(now - rng.u64(DAY_MS..366 * DAY_MS));
                t.effective_date = Some(humantime::format_rfc3339_micros(at).to_string());
                BulkItem::Transaction(t)
            })
            .collect();
        match engine.submit(Command::CreateBulk(NewBulk::new(items, true, false))).await {
            Ok(Outcome::Bulk { refused: None, .. }) => {}
            other => panic!("a bulk request is applied: {other:?}"),
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    let snapshots = match engine.submit(Command::TakeSnapshots { balance_ids: sorted }).await {
        Ok(Outcome::Snapshots(n)) => n,
        other => panic!("snapshots are taken: {other:?}"),
    };
    drop(engine);
    thread.join().unwrap();
    (ids.swap_remove(0), snapshots)
}

/// (p50, p99) in milliseconds of reads at random instants of the past year, from snapshots and
/// from every transaction.
async fn measure(server: &Server, balance: &str, queries: usize) -> ((f64, f64), (f64, f64)) {
    let mut rng = fastrand::Rng::with_seed(31);
    let now = SystemTime::now();
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..queries {
        let at = now - Duration::from_millis(rng.u64(0..366 * DAY_MS));
        let at = humantime::format_rfc3339_micros(at);
        let mut answers = Vec::new();
        for (from_source, times) in ["false", "true"].into_iter().zip(times.iter_mut()) {
            let path = format!("/balances/{balance}/at?timestamp={at}&from_source={from_source}");
            let started = Instant::now();
            let (status, answer) = server.get(&path).await;
            times.push(started.elapsed());
            assert!(status.is_success(), "{path}: {status} {answer}");
            answers.push(answer["balance"].clone());
        }
        assert_eq!(answers[0], answers[1], "snapshots and the whole log agree at {at}");
    }
    let quantiles = |times: &mut Vec<Duration>| {
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
        (at(0.5), at(0.99))
    };
    let [mut snapshot, mut source] = times;
    (quantiles(&mut snapshot), quantiles(&mut source))
}
