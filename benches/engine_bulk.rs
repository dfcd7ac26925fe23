//! The engine's own cost of a bulk transfer, without HTTP, threads or a load generator: a fixed
//! workload driven straight through `engine::Core` (as the simulation drives it), so that
//! `valgrind --tool=callgrind` counts the same instructions run after run, whatever else the
//! machine is doing (a rate on this shared 2-core machine moves by ±15% between runs).
//!
//! Set-up: 10,000 balances in a fresh SQLite file (`synchronous=FULL`), each funded and watched by
//! one quiet monitor. Then `ROUNDS` batches, each of two atomic, applied-at-once bulk requests of
//! 1,000 transfers between pseudo-random balances (the commit size `--bulk 1000` reaches at 4
//! clients). Run it twice under callgrind with different `ROUNDS` and divide the difference:
//!
//! ```sh
//! cargo bench --bench engine_bulk --no-run
//! for r in 2 12; do KEEL_BULK_ROUNDS=$r valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$r \
//!   target/release/deps/engine_bulk-* 2>&1 | grep refs; done
//! # instructions per transfer = (refs at 12 − refs at 2) / (10 × 2,000)
//! ```
//!
//! Without valgrind it prints the wall-clock rate too (noisy; the instruction count is the figure).
//!
//! `KEEL_BULK_MONITORS=N` sets N quiet monitors per balance (1 by default) and
//! `KEEL_BULK_MONITOR_KIND` their kind (`plain`, `edge`, `guard`, `velocity`, `velocity-guard`,
//! `mixed`; see `benches/shared`), to count what each kind costs a transfer;
//! `KEEL_BULK_LEDGER_RULES=R` adds R quiet ledger-wide monitors of that kind on the balances'
//! ledger (each watching every balance), created before the funding.

use keel::domain::ledger::GENERAL_LEDGER_ID;
use keel::engine::{BulkItem, Command, Core, EngineConfig, NewBulk, Outcome};
use keel::store::{Access, Store};
use std::sync::Arc;
use std::time::Instant;

mod shared;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BALANCES: usize = 10_000;
const ITEMS: usize = 1_000;
const REQUESTS_PER_BATCH: usize = 2;

fn main() {
    let rounds: usize = std::env::var("KEEL_BULK_ROUNDS").map_or(10, |r| r.parse().expect("KEEL_BULK_ROUNDS"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("engine-bulk.db").display());
    let store = keel::store::open(&url, 1, Access::Own, &[]).expect("the store opens");
    let mut core = Core::new(store as Arc<dyn Store>, EngineConfig { apply_queue: false, ..Default::default() });
    let ids = set_up(&mut core);

    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let started = Instant::now();
    for round in 0..rounds {
        let requests = (0..REQUESTS_PER_BATCH)
            .map(|r| {
                let items = (0..ITEMS)
                    .map(|k| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let from = (seed % BALANCES as u64) as usize;
                        let to = (from + 1 + (seed >> 32) as usize % (BALANCES - 1)) % BALANCES;
                        let reference = format!("b-{round}-{r}-{k}");
                        BulkItem::Transaction(shared::transfer(&ids[from], &ids[to], 1, reference))
                    })
                    .collect();
                Command::CreateBulk(NewBulk::new(items, true, false))
            })
            .collect();
        for answer in core.execute(requests) {
            assert!(matches!(answer, Ok(Outcome::Bulk { refused: None, .. })), "every bulk request applies");
        }
    }
    let transfers = rounds * REQUESTS_PER_BATCH * ITEMS;
    let took = started.elapsed().as_secs_f64();
    println!(
        "engine_bulk: {transfers} transfers in {took:.2} s = {:.0}/s (wall clock; noisy)",
        transfers as f64 / took
    );
}

/// Balances, each funded from `@World` and watched by monitors that never fire.
fn set_up(core: &mut Core) -> Vec<String> {
    let per_balance: usize = std::env::var("KEEL_BULK_MONITORS").map_or(1, |n| n.parse().expect("KEEL_BULK_MONITORS"));
    let kind = std::env::var("KEEL_BULK_MONITOR_KIND").unwrap_or_else(|_| "plain".into());
    assert!(
        shared::MONITOR_KINDS.contains(&kind.as_str()),
        "KEEL_BULK_MONITOR_KIND: one of {:?}",
        shared::MONITOR_KINDS
    );
    let balance = || Command::CreateBalance {
        ledger_id: GENERAL_LEDGER_ID.into(),
        currency: "USD".into(),
        identity_id: String::new(),
        meta_data: Default::default(),
        indicator: String::new(),
    };
    let mut ids = Vec::with_capacity(BALANCES);
    for _ in 0..BALANCES / 1000 {
        for answer in core.execute((0..1000).map(|_| balance()).collect()) {
            let Ok(Outcome::Balance(b)) = answer else { panic!("a balance: {answer:?}") };
            ids.push(b.id);
        }
    }
    // Before the funding, so the measured rounds find every balance's instances as they would in
    // steady state (a rule with a window clears the engine's cache when it is created).
    let rules: usize =
        std::env::var("KEEL_BULK_LEDGER_RULES").map_or(0, |n| n.parse().expect("KEEL_BULK_LEDGER_RULES"));
    let rule =
        |i: usize| shared::quiet_rule(GENERAL_LEDGER_ID, &kind, i, &format!("{}", 1_000_000_000_000_000u64 + i as u64));
    for answer in core.execute((0..rules).map(rule).collect()) {
        assert!(answer.is_ok(), "set-up applies: {answer:?}");
    }
    for chunk in ids.chunks(1000) {
        let funding = chunk
            .iter()
            .map(|id| Command::CreateTransaction(shared::transfer("@World", id, 1_000_000_000, format!("fund-{id}"))));
        let quiet = chunk.iter().flat_map(|id| {
            (0..per_balance)
                .map(|i| shared::quiet_monitor(id, &kind, i, &format!("{}", 1_000_000_000_000u64 + i as u64)))
        });
        for answer in core.execute(funding.chain(quiet).collect()) {
            assert!(answer.is_ok(), "set-up applies: {answer:?}");
        }
    }
    ids
}
