//! Filter benchmark: how fast a filtered page of a large ledger answers. One run:
//! 1. set-up, through Keel's own engine (no HTTP): 20 ledgers, K balances in three currencies, and
//!    N transactions between random balances in bulk requests of 1,000 (amounts, descriptions and a
//!    `customer_type` metadata key varied; 2% held inflight; every 1,000th inflight one committed,
//!    so children exist);
//! 2. the real `keel serve` (release build) started on that database (on PostgreSQL after an
//!    `ANALYZE`, as autovacuum would have run by then);
//! 3. over HTTP, one client: each filter of Blnk's docs (and the lookups clients make most), Q
//!    times with its value varied where it names a balance, a transaction or a time, the requests
//!    the console's pages make (`console:`), then searches
//!    (`POST /search/transactions`, once the search indexer has caught up with the load): latency
//!    p50/p99/max and how many items the pages had.
//!
//! `cargo bench --bench filters -- [--transactions 1000000] [--balances 10000] [--queries 200]
//!     [--postgres postgres://USER@HOST:PORT/DB]`

#[path = "../tests/common/mod.rs"]
mod common;
mod shared;

use common::{Server, TestDatabase};
use keel::engine::{BulkItem, Command, EngineConfig, InflightAction, NewBulk, Outcome};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

struct Options {
    transactions: usize,
    balances: usize,
    queries: usize,
    postgres: Option<String>,
}

fn options() -> Options {
    let mut o = Options { transactions: 1_000_000, balances: 10_000, queries: 200, postgres: None };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--transactions" => o.transactions = value.parse().expect("--transactions N"),
            "--balances" => o.balances = value.parse().expect("--balances N"),
            "--queries" => o.queries = value.parse().expect("--queries N (per filter)"),
            "--postgres" => o.postgres = Some(value),
            _ => {
                i += 1;
                continue; // cargo passes --bench
            }
        }
        i += 2;
    }
    assert!(o.balances >= 10 && o.transactions >= 1000, "at least 10 balances and 1,000 transactions");
    o
}

const CURRENCIES: [&str; 3] = ["USD", "EUR", "GBP"];

/// What set-up made, for the queries to name.
struct Made {
    balances: Vec<(String, &'static str)>,
    /// A sample of transactions: (id, reference).
    transactions: Vec<(String, String)>,
    /// Transactions with children (inflight ones, committed).
    parents: Vec<String>,
    /// The first and last `created_at` of the load.
    span: (String, String),
    /// How many transactions the load made.
    count: usize,
}

fn main() {
    let o = options();
    let database = match &o.postgres {
        Some(admin) => TestDatabase::postgres_on(admin),
        None => TestDatabase::sqlite(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let started = Instant::now();
    let made = runtime.block_on(set_up(&database.url, &o));
    println!(
        "set-up: {} transactions between {} balances in {:.1} s ({})",
        o.transactions,
        o.balances,
        started.elapsed().as_secs_f64(),
        if o.postgres.is_some() { "PostgreSQL" } else { "SQLite" }
    );
    if o.postgres.is_some() {
        // As autovacuum would have by the time a ledger holds this much: the planner's statistics.
        database.execute("ANALYZE");
    }
    let server = Server::start_discarding_logs(&database.url, &[]);
    runtime.block_on(measure(&server, &made, o.queries));
}

async fn set_up(url: &str, o: &Options) -> Made {
    let store = tokio::task::block_in_place(|| {
        keel::store::open(url, 8, keel::store::Access::Own, &[]).expect("the database opens")
    });
    let (engine, thread) = keel::engine::start(store, EngineConfig { apply_queue: false, ..Default::default() });
    let mut ledgers = Vec::new();
    for i in 0..20 {
        let name = if i % 4 == 0 { format!("Savings {i}") } else { format!("Operations {i}") };
        match engine.submit(Command::CreateLedger { name, meta_data: Map::new() }).await {
            Ok(Outcome::Ledger(l)) => ledgers.push(l.id),
            other => panic!("a ledger is created: {other:?}"),
        }
    }
    let mut balances = Vec::new();
    for chunk in (0..o.balances).collect::<Vec<_>>().chunks(256) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let mut meta = Map::new();
                meta.insert("tier".into(), json!(["gold", "silver", "bronze"][i % 3]));
                let command = Command::CreateBalance {
                    ledger_id: ledgers[i % ledgers.len()].clone(),
                    currency: CURRENCIES[i % 3].into(),
                    identity_id: String::new(),
                    meta_data: meta,
                    indicator: String::new(),
                };
                let engine = engine.clone();
                tokio::spawn(async move { engine.submit(command).await })
            })
            .collect();
        for (task, &i) in tasks.into_iter().zip(chunk) {
            match task.await.unwrap() {
                Ok(Outcome::Balance(b)) => balances.push((b.id, CURRENCIES[i % 3])),
                other => panic!("a balance is created: {other:?}"),
            }
        }
    }
    let made = load(&engine, o, balances).await;
    drop(engine);
    thread.join().unwrap();
    made
}

/// The transactions, in bulk requests of 1,000, eight in flight.
async fn load(engine: &keel::engine::EngineHandle, o: &Options, balances: Vec<(String, &'static str)>) -> Made {
    let mut rng = fastrand::Rng::with_seed(17);
    let (mut transactions, mut held) = (Vec::new(), Vec::new());
    let mut first_created = None;
    let mut last_created = String::new();
    let requests: Vec<Vec<BulkItem>> = (0..o.transactions.div_ceil(1000))
        .map(|r| (r * 1000..((r + 1) * 1000).min(o.transactions)).map(|i| item(&mut rng, &balances, i)).collect())
        .collect();
    for eight in requests.chunks(8) {
        let tasks: Vec<_> = eight
            .iter()
            .map(|items| {
                let (engine, bulk) = (engine.clone(), NewBulk::new(items.clone(), true, false));
                tokio::spawn(async move { engine.submit(Command::CreateBulk(bulk)).await })
            })
            .collect();
        for task in tasks {
            let recorded = match task.await.unwrap() {
                Ok(Outcome::Bulk { recorded, refused: None, .. }) => recorded,
                other => panic!("a bulk request is applied: {other:?}"),
            };
            for (i, t) in recorded.iter().enumerate() {
                first_created.get_or_insert_with(|| t.created_at.clone());
                last_created.clone_from(&t.created_at);
                if i % 97 == 0 {
                    transactions.push((t.id.clone(), t.reference.clone()));
                }
                if t.inflight && held.len() < o.transactions / 1000 {
                    held.push(t.id.clone());
                }
            }
        }
    }
    for id in &held {
        let action = InflightAction::Commit { amount: None, precise_amount: None };
        let commit = Command::FinishInflight { id: id.clone(), action };
        engine.submit(commit).await.expect("an inflight transaction is committed");
    }
    Made {
        balances,
        transactions,
        parents: held,
        span: (first_created.unwrap_or_default(), last_created),
        count: o.transactions,
    }
}

fn item(rng: &mut fastrand::Rng, balances: &[(String, &'static str)], i: usize) -> BulkItem {
    // Balance i is in currency i % 3: a destination of the same currency, not the source.
    let from = rng.usize(..balances.len());
    let to = loop {
        let to = rng.usize(..balances.len());
        if to % 3 == from % 3 && to != from {
            break to;
        }
    };
    let ((source, currency), (destination, _)) = (&balances[from], &balances[to]);
    let mut t = shared::transfer(source, destination, rng.u64(1..2_000_000), format!("bench-{i}-{}", rng.u32(..)));
    t.currency = (*currency).into();
    t.allow_overdraft = true;
    t.description = ["card payment", "payout", "Savings top-up", ""][i % 4].into();
    t.meta_data.insert("customer_type".into(), json!(if i.is_multiple_of(10) { "premium" } else { "basic" }));
    t.meta_data.insert("n".into(), json!(format!("n{i}")));
    t.inflight = i.is_multiple_of(50);
    BulkItem::Transaction(t)
}

/// Each filter, timed; its value drawn afresh each time where it names something.
async fn measure(server: &Server, made: &Made, queries: usize) {
    let mut rng = fastrand::Rng::with_seed(23);
    let filters = asks(made);
    indexed(server, made).await;
    use Ask::{Body, Fixed, Get, Search};
    println!("| filter | p50 ms | p99 ms | max ms | items per page (mean) |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, make) in &filters {
        let mut times = Vec::with_capacity(queries);
        let mut items = 0usize;
        for _ in 0..queries {
            let (path, filter_body) = match make {
                Fixed(path) => (path.to_string(), None),
                Get(path) => (path(&mut rng), None),
                Body(make_body) => ("/transactions/filter".to_string(), Some(make_body(&mut rng))),
                Search(make_body) => ("/search/transactions".to_string(), Some(make_body(&mut rng))),
            };
            let started = Instant::now();
            let (status, answer) = match filter_body {
                Some(body) => server.post(&path, body).await,
                None => server.get(&path).await,
            };
            times.push(started.elapsed());
            assert!(status.is_success(), "{path}: {status} {answer}");
            let page = answer.as_array().or_else(|| answer["data"].as_array()).or_else(|| answer["hits"].as_array());
            items += page.map_or(0, Vec::len);
        }
        times.sort();
        let at = |q: f64| ms(times[((times.len() - 1) as f64 * q).round() as usize]);
        let mean = items as f64 / queries as f64;
        println!("| {name} | {:.2} | {:.2} | {:.2} | {mean:.1} |", at(0.5), at(0.99), ms(*times.last().unwrap()));
    }
}

/// The benchmark's requests: each filter of Blnk's docs, the lookups clients make, and searches.
// tidy: long because it is a table, one request a row
fn asks(made: &Made) -> Vec<(&'static str, Ask<'_>)> {
    let (from, until) = &made.span;
    let balance = |rng: &mut fastrand::Rng| made.balances[rng.usize(..made.balances.len())].0.clone();
    let txn = |rng: &mut fastrand::Rng| made.transactions[rng.usize(..made.transactions.len())].clone();
    use Ask::{Body, Fixed, Get, Search};
    let filters: Vec<(&str, Ask)> = vec![
        ("status_eq=APPLIED&amount_gte=10000", Fixed("/transactions?status_eq=APPLIED&amount_gte=10000")),
        ("currency_eq=USD&balance_gt=0 (balances)", Fixed("/balances?currency_eq=USD&balance_gt=0")),
        (
            "created_at_between (the load's span)",
            Get(Box::new(move |_| format!("/transactions?created_at_between={from}|{until}"))),
        ),
        (
            "status_eq=QUEUED&currency_in=USD,EUR&amount_gt=1000",
            Fixed("/transactions?status_eq=QUEUED&currency_in=USD,EUR&amount_gt=1000"),
        ),
        ("name_ilike=%savings% (ledgers)", Fixed("/ledgers?name_ilike=%25savings%25")),
        ("meta_data.customer_type_eq=premium", Fixed("/transactions?meta_data.customer_type_eq=premium")),
        ("status_eq=INFLIGHT", Fixed("/transactions?status_eq=INFLIGHT")),
        (
            "parent_transaction_eq=<id>",
            Get(Box::new(move |rng| {
                format!("/transactions?parent_transaction_eq={}", made.parents[rng.usize(..made.parents.len())])
            })),
        ),
        ("source_eq=<balance>", Get(Box::new(move |rng| format!("/transactions?source_eq={}", balance(rng))))),
        (
            "destination_eq=<balance>",
            Get(Box::new(move |rng| format!("/transactions?destination_eq={}", balance(rng)))),
        ),
        ("balance_id_eq=<balance>", Get(Box::new(move |rng| format!("/transactions?balance_id_eq={}", balance(rng))))),
        ("reference_eq=<reference>", Get(Box::new(move |rng| format!("/transactions?reference_eq={}", txn(rng).1)))),
        (
            "transaction_id_in=<3 ids>",
            Get(Box::new(move |rng| {
                let ids: Vec<String> = (0..3).map(|_| txn(rng).0).collect();
                format!("/transactions?transaction_id_in={}", ids.join(","))
            })),
        ),
        (
            "POST /transactions/filter status=APPLIED, sorted by amount",
            Body(Box::new(move |_| {
                json!({"filters": [{"field": "status", "operator": "eq", "value": "APPLIED"}],
                    "sort_by": "amount", "sort_order": "desc"})
            })),
        ),
        (
            "POST /transactions/filter source=<balance>, include_count",
            Body(Box::new(move |rng| {
                json!({"filters": [{"field": "source", "operator": "eq", "value": balance(rng)}],
                    "include_count": true})
            })),
        ),
        // What the console's pages ask (assets/console/pages.js): the overview's counts, the lists'
        // first and a later page (PAGE + 1 rows), a balance's page.
        ("console: count of balances", Fixed("/balances?limit=1&include_count=true")),
        ("console: count of transactions", Fixed("/transactions?limit=1&include_count=true")),
        (
            "console: count of triggered monitors",
            Fixed("/balance-monitors?state_eq=triggered&limit=1&include_count=true"),
        ),
        ("console: count of failed events", Fixed("/events?status=failed&limit=1&include_count=true")),
        ("console: balances, first page", Fixed("/balances?limit=26")),
        ("console: balances, page 400", Fixed("/balances?limit=26&offset=10000")),
        ("console: balances by metadata", Fixed("/balances?meta_data.tier_eq=gold&limit=26")),
        ("console: transactions, first page", Fixed("/transactions?limit=26")),
        ("console: transactions, page 400", Fixed("/transactions?limit=26&offset=10000")),
        ("console: a balance", Get(Box::new(move |rng| format!("/balances/{}", balance(rng))))),
        (
            "console: a balance's recent transactions",
            Get(Box::new(move |rng| format!("/transactions?balance_id_eq={}&limit=10", balance(rng)))),
        ),
        (
            "console: a balance's history (since created)",
            Get(Box::new(move |rng| format!("/balances/{}/history?limit=2000", balance(rng)))),
        ),
        (
            "console: a balance's history (last 7 days)",
            Get(Box::new(move |rng| {
                let week_ago = std::time::SystemTime::now() - Duration::from_secs(7 * 86_400);
                let from = humantime::format_rfc3339_seconds(week_ago);
                format!("/balances/{}/history?limit=2000&from={from}", balance(rng))
            })),
        ),
        (
            "console: a transaction's children",
            Get(Box::new(move |rng| {
                format!(
                    "/transactions?parent_transaction_eq={}&limit=100",
                    made.parents[rng.usize(..made.parents.len())]
                )
            })),
        ),
        (
            "search q=<balance> query_by=source,destination",
            Search(Box::new(move |rng| json!({"q": balance(rng), "query_by": "source,destination", "per_page": 20}))),
        ),
        (
            "search q=<reference> query_by=reference",
            Search(Box::new(move |rng| json!({"q": txn(rng).1, "query_by": "reference"}))),
        ),
        (
            "search q=savings query_by=description, filter_by currency",
            Search(Box::new(move |_| json!({"q": "savings", "query_by": "description", "filter_by": "currency:=GBP"}))),
        ),
        (
            "search q=* filter_by status:=INFLIGHT, sort_by amount:desc",
            Search(Box::new(move |_| json!({"q": "*", "filter_by": "status:=INFLIGHT", "sort_by": "amount:desc"}))),
        ),
    ];
    filters
}

/// A request of the benchmark: a fixed path, a path made afresh each time, a filter body, or a
/// search body (`POST /search/transactions`).
enum Ask<'a> {
    Fixed(&'static str),
    Get(Box<dyn Fn(&mut fastrand::Rng) -> String + 'a>),
    Body(Box<dyn Fn(&mut fastrand::Rng) -> Value + 'a>),
    Search(Box<dyn Fn(&mut fastrand::Rng) -> Value + 'a>),
}

/// Waits until the search indexer has indexed the whole load (it indexes in the order the writes
/// queued their records: the last transaction, `meta_data.n` = `n<N-1>`, is found last), and says
/// how long that took.
async fn indexed(server: &Server, made: &Made) {
    let started = Instant::now();
    let last = format!("n{}", made.count - 1);
    loop {
        let (_, answer) = server.post("/search/transactions", json!({"q": last, "query_by": "meta_data.n"})).await;
        if answer["found"].as_u64() > Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("search index caught up {:.1} s after the server started", started.elapsed().as_secs_f64());
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
