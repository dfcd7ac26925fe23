//! Deterministic simulation. Many simulated clients issue random commands of every kind
//! (transfers, some backdated, queued, inflight, commits, voids, refunds, monitors, balances,
//! balance snapshots while days pass) to the engine's batch
//! loop (`engine::Core`), one batch per step, over a real SQLite store wrapped in a `FaultyStore`
//! that injects, at points chosen by the seed, a failed statement, a failed commit, a commit whose
//! answer is lost (then the process "dies" and restarts from its file), and a slow commit.
//!
//! After every step the simulator checks what the clients were told against what is stored
//! (every acknowledged change is durable, and nothing refused or failed was written) and that no
//! total is negative and every currency sums to zero. After every step too (every 60 in the long
//! run), after every restart and at the end it checks the whole database: `keel check`'s ledger
//! invariants (balances replay from the log, nothing negative, double entry), that every stored
//! transaction was acknowledged (or its answer was lost), and that the events are exactly those of
//! committed changes.
//!
//! Some steps are a dry run followed by the same request for real: the dry run must change
//! nothing at all, and its prediction (the answer, or the rule that refuses it; the balances after;
//! the monitors it triggers) must be what the real request then does. Dry runs also ride inside
//! ordinary batches, where faults are injected around them.
//!
//! A failure prints its seed; the same seed replays the same commands and the same faults:
//!   KEEL_SIM_SEED=1234 cargo test --release --test simulation -- --nocapture
//! The long run (figures in docs/testing.md):
//!   KEEL_SIM_SEEDS=100 KEEL_SIM_COMMANDS=10000 KEEL_SIM_FULL_CHECK_EVERY=60 \
//!     cargo test --release --test simulation -- --nocapture

use keel::domain::amount::Precision;
use keel::domain::balance::Balance;
use keel::domain::event::Event;
use keel::domain::event::EventKind;
use keel::domain::ledger::GENERAL_LEDGER_ID;
use keel::domain::monitor::Monitor;
use keel::domain::monitor::{Action, AutoTransfer, Condition, LedgerScope, Trigger};
use keel::domain::preview::BulkPreview;
use keel::domain::preview::Preview;
use keel::domain::split::{distribute, Share, SplitSide};
use keel::domain::transaction::{Status, Transaction};
use keel::engine::{
    BulkItem, Clock, Command, Core, EngineConfig, EngineError, InflightAction, NewBulk, NewMonitor, NewSplit,
    NewTransaction, Outcome,
};
use keel::store::faults::{Fault, FaultyStore};
use keel::store::{Access, ErrorKind, EventFilter, Page, Reads, Store};
use num_bigint::BigInt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Seeds CI runs on every push; each is a different mix of commands and faults.
const CI_SEEDS: std::ops::Range<u64> = 1..7;
const CI_COMMANDS: usize = 1_500;
/// A full-database check (`keel check`'s replay of the whole log, and the events) after every this
/// many steps, besides after every restart and at the end; `KEEL_SIM_FULL_CHECK_EVERY` sets it.
/// Every step by default, as CI runs; a long run's log grows to thousands of transactions, so it
/// checks every 60 steps, and B1 and D1 over every balance after every step still (`check_ledger`).
const FULL_CHECK_EVERY: u64 = 1;
const CURRENCIES: [&str; 2] = ["USD", "EUR"];

#[test]
fn simulated_clients_under_injected_storage_faults_keep_every_invariant() {
    let seeds: Vec<u64> = match (std::env::var("KEEL_SIM_SEED"), std::env::var("KEEL_SIM_SEEDS")) {
        (Ok(one), _) => vec![one.parse().expect("KEEL_SIM_SEED is a number")],
        (_, Ok(count)) => (1..=count.parse::<u64>().expect("KEEL_SIM_SEEDS is a number")).collect(),
        _ => CI_SEEDS.collect(),
    };
    let commands: usize = std::env::var("KEEL_SIM_COMMANDS").map_or(CI_COMMANDS, |n| n.parse().expect("a number"));
    let every: u64 =
        std::env::var("KEEL_SIM_FULL_CHECK_EVERY").map_or(FULL_CHECK_EVERY, |n| n.parse().expect("a number"));
    let mut total = Stats::default();
    let started = std::time::Instant::now();
    for seed in seeds {
        let stats =
            std::panic::catch_unwind(|| Simulation::new(seed, every.max(1)).run(commands)).unwrap_or_else(|panic| {
                eprintln!("\nsimulation failed with seed {seed}; replay it with KEEL_SIM_SEED={seed}\n");
                std::panic::resume_unwind(panic)
            });
        total.add(&stats);
    }
    println!("{} in {:.1}s", total.report(), started.elapsed().as_secs_f64());
}

#[derive(Default, Debug)]
struct Stats {
    seeds: u64,
    commands: u64,
    steps: u64,
    acknowledged: u64,
    refused: u64,
    store_errors: u64,
    outcome_unknown: u64,
    restarts: u64,
    full_checks: u64,
    /// Dry runs checked against the real request that followed.
    dry_runs_predicted: u64,
    /// Split transactions acknowledged (each leg is checked as a transaction).
    splits: u64,
    /// Bulk requests acknowledged (likewise each item).
    bulks: u64,
    /// Commits, voids and refunds that wrote several transactions (of a split, a batch, a hold).
    multi_settlements: u64,
    /// Refunds of a void, held back the other way.
    voids_refunded: u64,
    /// Commands a guard (a monitor with `action: "reject"`) refused.
    guard_refusals: u64,
    /// Automatic transfers found stored, summed over the full checks.
    auto_transfers: u64,
    /// Bulk dry runs checked against the real request.
    bulk_dry_runs: u64,
    /// Ledger-wide monitors created or changed (acknowledged).
    rules: u64,
    /// Balance snapshots found (and recomputed from the log) by the last full check.
    snapshots: u64,
    faults: BTreeMap<&'static str, u64>,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.seeds += other.seeds;
        self.commands += other.commands;
        self.steps += other.steps;
        self.acknowledged += other.acknowledged;
        self.refused += other.refused;
        self.store_errors += other.store_errors;
        self.outcome_unknown += other.outcome_unknown;
        self.restarts += other.restarts;
        self.full_checks += other.full_checks;
        self.dry_runs_predicted += other.dry_runs_predicted;
        self.splits += other.splits;
        self.bulks += other.bulks;
        self.multi_settlements += other.multi_settlements;
        self.voids_refunded += other.voids_refunded;
        self.guard_refusals += other.guard_refusals;
        self.auto_transfers += other.auto_transfers;
        self.bulk_dry_runs += other.bulk_dry_runs;
        self.rules += other.rules;
        self.snapshots += other.snapshots;
        for (name, n) in &other.faults {
            *self.faults.entry(name).or_default() += n;
        }
    }

    fn report(&self) -> String {
        format!(
            "simulation: {} seeds, {} commands in {} batches: {} acknowledged, {} refused ({} by guards), \
             {} failed in storage, {} outcome unknown; {} restarts, {} full checks, {} dry runs predicted \
             ({} of bulk requests), {} splits, {} bulks, {} commits, voids or refunds of several, \
             {} voids refunded, {} automatic transfers seen by full checks, {} ledger-wide monitors written, \
             {} balance snapshots checked at the end; faults fired: {:?}",
            self.seeds,
            self.commands,
            self.steps,
            self.acknowledged,
            self.refused,
            self.guard_refusals,
            self.store_errors,
            self.outcome_unknown,
            self.restarts,
            self.full_checks,
            self.dry_runs_predicted,
            self.bulk_dry_runs,
            self.splits,
            self.bulks,
            self.multi_settlements,
            self.voids_refunded,
            self.auto_transfers,
            self.rules,
            self.snapshots,
            self.faults
        )
    }
}

/// What the clients were told: the oracle every stored row is checked against.
#[derive(Default)]
struct Model {
    /// Balance ids, in creation order (choices index into it, so they replay with the seed).
    balances: Vec<String>,
    currency_of: HashMap<String, String>,
    /// Every acknowledged transaction, as acknowledged.
    acked: HashMap<String, Transaction>,
    inflight: Vec<String>,
    applied: Vec<String>,
    /// Ids a commit, void or refund may name beyond `inflight` and `applied`: settled holds, and
    /// the ids splits and bulk requests were answered with.
    settled_and_groups: Vec<String>,
    references: Vec<String>,
    /// References of new transactions whose answer was lost: stored or not, both are right.
    maybe_references: HashSet<String>,
    /// Transactions a commit, void or refund whose answer was lost was made against.
    maybe_parents: HashSet<String>,
    /// Bulk requests run with `run_async` that were acknowledged: each has one event.
    async_bulks: HashSet<String>,
    /// One such request's answer was lost: an event for a batch nobody knows is then allowed.
    lost_async_bulks: bool,
    /// Monitors acknowledged and not deleted: (id, balance id).
    monitors: Vec<(String, String)>,
    next_reference: u64,
}

struct Simulation {
    seed: u64,
    rng: fastrand::Rng,
    _dir: tempfile::TempDir,
    path: String,
    /// The running "process": its store and its engine. `None` only while it restarts.
    process: Option<Process>,
    /// The engine's clock, moved by hand between steps.
    clock: Clock,
    model: Model,
    stats: Stats,
    /// A full check after every this many steps.
    full_check_every: u64,
}

struct Process {
    faulty: Arc<FaultyStore>,
    core: Core,
}

/// Opens the store and an engine on it, on the simulation's own clock (which a restart keeps).
fn open(path: &str, clock: Clock) -> Process {
    let store =
        keel::store::open(&format!("sqlite://{path}"), 1, Access::Own, &[]).expect("the simulation's store opens");
    let faulty = Arc::new(FaultyStore::new(store));
    let config = EngineConfig {
        max_batch: 1000,
        apply_queue: true,
        webhook_url_configured: true,
        record_every_event: false,
        endpoints_exist: Arc::default(),
        events_written: None,
        clock,
        token_key: None,
        workers: 1,
    };
    let core = Core::new(faulty.clone() as Arc<dyn Store>, config);
    Process { faulty, core }
}

impl Simulation {
    fn new(seed: u64, full_check_every: u64) -> Self {
        // In memory where the machine has it: a crash here is the process's, not the disk's, so
        // the page cache keeps every commit, and the run is not bound by fsync.
        let dir = match std::path::Path::new("/dev/shm").is_dir() {
            true => tempfile::tempdir_in("/dev/shm"),
            false => tempfile::tempdir(),
        }
        .expect("a temporary directory");
        let path = dir.path().join("sim.db").display().to_string();
        // A clock the simulation moves: velocity windows cross their boundaries within a run.
        let clock = Clock::manual(1_800_000_000_000);
        let process = Some(open(&path, clock));
        let stats = Stats { seeds: 1, ..Stats::default() };
        Simulation {
            seed,
            rng: fastrand::Rng::with_seed(seed),
            _dir: dir,
            path,
            process,
            clock,
            model: Model::default(),
            stats,
            full_check_every,
        }
    }

    fn run(mut self, commands: usize) -> Stats {
        // Every client starts with a few balances to move money between.
        let opening: Vec<Command> = (0..6).map(|i| self.new_balance(CURRENCIES[i % 2])).collect();
        self.step(opening);
        while (self.stats.commands as usize) < commands {
            let clients = 1 + self.rng.usize(..16);
            let batch: Vec<Command> = (0..clients).map(|_| self.random_command()).collect();
            // Up to 1.5 s between batches: the 1 s, 3 s and 10 s windows of velocity monitors roll.
            // Now and then hours pass, so days end and balance snapshots are taken across them; and
            // now and then the clock steps back, as NTP or a resumed virtual machine makes a system
            // clock do (M1: the engine's stamps do not).
            match self.rng.u8(..100) {
                0 => self.clock.advance(self.rng.i64(3_600_000..30 * 3_600_000)),
                1..=4 => self.clock.advance(-self.rng.i64(0..5_000)),
                _ => self.clock.advance(self.rng.i64(0..1_500)),
            }
            self.arm_random_faults();
            self.step(batch);
            if self.rng.u8(..6) == 0 {
                self.dry_run_then_real();
            }
            if self.rng.u8(..10) == 0 {
                self.apply_queue();
            }
            if self.rng.u16(..400) == 0 {
                self.restart();
            }
            if self.stats.steps.is_multiple_of(self.full_check_every) {
                self.full_check();
            }
        }
        self.faulty().disarm();
        // Past the minute a transaction an injected fault made the queue set aside is left alone:
        // with no fault left, the queue applies everything (none stays QUEUED for good).
        self.clock.advance(61_000);
        while self.core().apply_queued() > 0 {}
        let now = self.clock.now().0;
        let waiting = self.reader().queued_transaction_ids(10, &now).unwrap();
        assert!(waiting.is_empty(), "seed {}: the queue applied everything, but {waiting:?} wait", self.seed);
        self.full_check();
        self.count_fired_faults();
        self.stats
    }

    /// Arms up to three faults for the writes to come (the batch, and its commands re-run one by
    /// one if it fails).
    fn arm_random_faults(&mut self) {
        for _ in 0..1 + self.rng.usize(..3) {
            self.arm_random_fault();
        }
    }

    fn arm_random_fault(&mut self) {
        // Early statements are where a one-command batch can meet it, late ones a large batch.
        let reach = if self.rng.bool() { 4 } else { 40 };
        let at = self.rng.u32(..reach);
        let fault = match self.rng.u8(..100) {
            0..=5 => Fault::FailStatement { at, kind: ErrorKind::Database },
            6..=8 => Fault::FailStatement { at, kind: ErrorKind::Transient },
            9..=10 => Fault::FailCommit,
            11..=12 => Fault::LoseCommitAnswer,
            13 => Fault::SlowCommit(std::time::Duration::from_millis(2)),
            _ => return,
        };
        self.faulty().arm(fault);
    }

    fn core(&mut self) -> &mut Core {
        &mut self.process.as_mut().expect("a running process").core
    }

    fn faulty(&self) -> &FaultyStore {
        &self.process.as_ref().expect("a running process").faulty
    }

    fn count_fired_faults(&mut self) {
        for fault in self.faulty().fired() {
            *self.stats.faults.entry(fault_name(&fault)).or_default() += 1;
        }
    }

    fn restart(&mut self) {
        self.count_fired_faults();
        // The process dies: the engine and its cache go, the file stays. The old store's file
        // lock is released when its last handle goes, so the new process opens only then.
        self.process = None;
        self.process = Some(open(&self.path, self.clock));
        self.stats.restarts += 1;
        self.full_check();
    }

    fn apply_queue(&mut self) {
        self.core().apply_queued();
    }

    /// Runs one batch and checks every answer against what is stored.
    fn step(&mut self, commands: Vec<Command>) {
        let answers = self.core().execute(commands.clone());
        self.settle(commands, answers);
    }

    /// A dry run of a random money-moving request, then the request itself (no fault armed for
    /// either): the dry run changed nothing, and predicted what the request did.
    fn dry_run_then_real(&mut self) {
        // A bulk request a quarter of the time: its prediction has the most parts to get right.
        let bulk = self.rng.u8(..4) == 0;
        let command = loop {
            let command = self.random_request();
            let wanted = match &command {
                Command::CreateBulk(_) => true,
                Command::CreateTransaction(_)
                | Command::CreateSplit(_)
                | Command::FinishInflight { .. }
                | Command::Refund { .. } => !bulk,
                _ => false,
            };
            if wanted {
                break command;
            }
        };
        let seed = self.seed;
        // A queued request is applied after those queued before it: with none ahead of it, the
        // state it meets is the one the dry run saw.
        while self.core().apply_queued() > 0 {}
        let before = self.world();
        let mut answers = self.core().execute(vec![Command::DryRun(Box::new(command.clone()))]);
        assert_eq!(self.world(), before, "a dry run changed nothing (seed {seed}): {command:?}");
        let predicted = answers.pop().expect("E1: one answer");
        let answers = self.core().execute(vec![command.clone()]);
        match (&predicted, &answers[0]) {
            (Ok(Outcome::Preview(preview)), real) => self.assert_predicted(preview, real, &command),
            (Ok(Outcome::BulkPreview(preview)), real) => self.assert_bulk_predicted(preview, real, &command),
            (Err(EngineError::Rejected(expected)), Err(EngineError::Rejected(refused))) => {
                assert_eq!(expected, refused, "seed {seed}: refused before locking, as predicted: {command:?}")
            }
            (predicted, real) => panic!("seed {seed}: {command:?} was predicted {predicted:?} and did {real:?}"),
        }
        self.stats.dry_runs_predicted += 1;
        self.settle(vec![command], answers);
    }

    fn assert_predicted(&mut self, preview: &Preview, real: &Result<Outcome, EngineError>, command: &Command) {
        let seed = self.seed;
        // A queued transaction answers QUEUED and meets the rules when the queue applies it, now.
        let real = match real {
            Ok(Outcome::Transaction(t)) if t.status == Status::Queued => {
                while self.core().apply_queued() > 0 {}
                let applied = self.reader().transaction(&t.id).unwrap().expect("an acknowledged transaction is stored");
                match (&preview.result, applied.status) {
                    (Err(_), Status::Rejected) => None,
                    (Ok(_), _) => Some(applied),
                    (Err(expected), status) => panic!("seed {seed}: predicted {expected:?}, queued one is {status:?}"),
                }
            }
            Ok(Outcome::Transaction(t)) => Some(t.clone()),
            Ok(Outcome::Transactions(written)) if written.len() == 1 => Some(written[0].clone()),
            Ok(Outcome::Transactions(written)) => {
                let real: Vec<(&BigInt, &Option<String>)> =
                    written.iter().map(|t| (&t.precise_amount, &t.parent)).collect();
                let predicted: Vec<(&BigInt, &Option<String>)> =
                    preview.legs.iter().map(|l| (&l.transaction.precise_amount, &l.transaction.parent)).collect();
                assert_eq!(predicted, real, "seed {seed}: each transaction written is as predicted: {command:?}");
                let mut total = written[0].clone();
                total.precise_amount = written.iter().map(|t| &t.precise_amount).sum();
                Some(total)
            }
            Ok(Outcome::Split { parent, legs }) => {
                let real: Vec<&BigInt> = legs.iter().flatten().map(|t| &t.precise_amount).collect();
                let predicted: Vec<&BigInt> = preview.legs.iter().map(|l| &l.transaction.precise_amount).collect();
                assert_eq!(predicted, real, "seed {seed}: the split's legs are as predicted: {command:?}");
                Some(parent.clone())
            }
            Err(EngineError::Rejected(refused)) => {
                let expected = preview.result.as_ref().err();
                assert_eq!(expected, Some(refused), "seed {seed}: refused by the predicted rule: {command:?}");
                None
            }
            other => panic!("seed {seed}: {command:?} was predicted {:?} and did {other:?}", preview.result),
        };
        if let (Ok(predicted), Some(t)) = (&preview.result, &real) {
            let shape = |t: &Transaction| (t.status, t.precise_amount.clone(), t.currency.clone(), t.parent.clone());
            assert_eq!(shape(predicted), shape(t), "seed {seed}: the transaction is as predicted: {command:?}");
        }
        assert_eq!(preview.result.is_ok(), real.is_some(), "seed {seed}: {command:?} applied as predicted");
        let reader = self.reader();
        for change in &preview.balances {
            let stored = match change.is_new_indicator {
                true => reader.balance_by_indicator(&change.before.indicator, &change.before.currency).unwrap(),
                false => reader.balance(&change.before.id).unwrap(),
            };
            let expected = match preview.result.is_ok() {
                true => &change.after,
                false => &change.before,
            };
            let totals = |b: &keel::domain::balance::Balance| {
                [
                    b.credit_balance.clone(),
                    b.debit_balance.clone(),
                    b.inflight_credit_balance.clone(),
                    b.inflight_debit_balance.clone(),
                ]
            };
            match stored {
                Some(stored) => {
                    assert_eq!(totals(expected), totals(&stored), "seed {seed}: balance as predicted: {command:?}")
                }
                None => assert!(change.is_new_indicator && preview.result.is_err(), "seed {seed}: {change:?} exists"),
            }
        }
        for monitor in &preview.monitors_triggered {
            // A rule's trigger shows its instance on one balance: that balance's count.
            let count = match monitor.scope {
                None => reader.monitor(&monitor.id).unwrap().expect("a triggered monitor exists").trigger_count,
                Some(_) => {
                    let states = reader.rule_states(std::slice::from_ref(&monitor.balance_id)).unwrap();
                    states.iter().find(|s| s.monitor_id == monitor.id).expect("a triggered rule's state").trigger_count
                }
            };
            assert_eq!(count, monitor.trigger_count, "seed {seed}: monitor triggered as predicted");
        }
    }

    /// A bulk request did what its dry run predicted: refused at the predicted item (or by the
    /// predicted rule before any), each item recorded, applied or rejected as predicted, and every
    /// balance it names as predicted once the queue has applied what it queued.
    fn assert_bulk_predicted(&mut self, preview: &BulkPreview, real: &Result<Outcome, EngineError>, command: &Command) {
        let seed = self.seed;
        let Command::CreateBulk(bulk) = command else { panic!("seed {seed}: a bulk preview is of a bulk request") };
        self.stats.bulk_dry_runs += 1;
        let (recorded, refused) = match real {
            Ok(Outcome::Bulk { recorded, refused, .. }) => (recorded, refused),
            other => panic!("seed {seed}: {command:?} was predicted {preview:?} and did {other:?}"),
        };
        assert_eq!(preview.stops_at, refused.as_ref().map(|(i, _)| *i), "seed {seed}: stops where predicted");
        if let Some((i, why)) = refused {
            assert_eq!(preview.items[*i].result.as_ref().err(), Some(why), "seed {seed}: refused as predicted");
        }
        while self.core().apply_queued() > 0 {}
        let reader = self.reader();
        let mut legs = recorded.iter();
        let recorded_items =
            if bulk.atomic && refused.is_some() { 0 } else { refused.as_ref().map_or(bulk.items.len(), |r| r.0) };
        for (item, predicted) in bulk.items.iter().zip(&preview.items).take(recorded_items) {
            for leg in item.legs().iter() {
                let t = legs.next().expect("every leg of a recorded item is recorded");
                assert_eq!(t.precise_amount, leg.precise_amount, "seed {seed}: a recorded leg is the item's");
                let stored = reader.transaction(&t.id).unwrap().expect("a recorded item is stored");
                let rejected = stored.status == Status::Rejected;
                assert_eq!(
                    rejected,
                    predicted.result.is_err(),
                    "seed {seed}: item {} as predicted: {predicted:?}",
                    t.id
                );
            }
        }
        assert!(legs.next().is_none(), "seed {seed}: nothing after the refused item is recorded");
        for change in &preview.balances {
            let stored = match change.is_new_indicator {
                true => reader.balance_by_indicator(&change.before.indicator, &change.before.currency).unwrap(),
                false => reader.balance(&change.before.id).unwrap(),
            };
            let totals = |b: &Balance| {
                [&b.credit_balance, &b.debit_balance, &b.inflight_credit_balance, &b.inflight_debit_balance]
                    .map(Clone::clone)
            };
            match stored {
                Some(stored) => assert_eq!(totals(&change.after), totals(&stored), "seed {seed}: {command:?}"),
                None => assert!(change.is_new_indicator, "seed {seed}: {change:?} exists"),
            }
        }
    }

    /// Everything a dry run must leave as it was: every balance, transaction, monitor and event.
    fn world(&self) -> (Vec<Balance>, Vec<Transaction>, Vec<Monitor>, Vec<Event>) {
        let reader = self.reader();
        let all = Page::first(u32::MAX, 0);
        (
            reader.balances(all).unwrap(),
            reader.transactions(all).unwrap(),
            reader.monitors(all).unwrap(),
            reader.events(&EventFilter::default(), all).unwrap(),
        )
    }

    /// Checks a batch's answers against what is stored.
    fn settle(&mut self, commands: Vec<Command>, answers: Vec<Result<Outcome, EngineError>>) {
        self.stats.steps += 1;
        self.stats.commands += commands.len() as u64;
        assert_eq!(answers.len(), commands.len(), "E1: one answer per command (seed {})", self.seed);
        let mut lost = false;
        let deleted: HashSet<String> = commands
            .iter()
            .zip(&answers)
            .filter_map(|(c, a)| match (c, a) {
                (Command::DeleteMonitor { id }, Ok(_)) => Some(id.clone()),
                _ => None,
            })
            .collect();
        for (command, answer) in commands.iter().zip(answers) {
            match answer {
                Ok(outcome) => {
                    self.stats.acknowledged += 1;
                    self.acknowledged(command, outcome, &deleted);
                }
                Err(EngineError::Rejected(refused)) => {
                    self.stats.refused += 1;
                    if matches!(refused, keel::domain::error::DomainError::RejectedByMonitor { .. }) {
                        self.stats.guard_refusals += 1;
                    }
                    self.refused(command, &refused);
                }
                Err(EngineError::Store(error)) if error.is_outcome_unknown() => {
                    self.stats.outcome_unknown += 1;
                    lost = true;
                    self.maybe(command);
                }
                Err(EngineError::Store(_)) => {
                    self.stats.store_errors += 1;
                    self.not_written(command);
                }
                Err(EngineError::Stopped) => panic!("the core never stops"),
            }
        }
        // A fault armed for a batch that failed before reaching it must not leak into the checks.
        self.faulty().disarm();
        self.check_ledger();
        if lost {
            // The answer was lost because the process died between commit and answer.
            self.restart();
        }
    }

    fn reader(&self) -> Box<dyn Reads + '_> {
        self.faulty().reader().expect("a reader")
    }

    /// A bulk request's answer: nothing after the refused item is stored, and each leg recorded is
    /// acknowledged as a transaction.
    fn acknowledged_bulk(
        &mut self,
        bulk: &NewBulk,
        id: String,
        recorded: Vec<Transaction>,
        refused: bool,
        deleted: &HashSet<String>,
    ) {
        let seed = self.seed;
        self.stats.bulks += 1;
        if bulk.run_async {
            self.model.async_bulks.insert(id.clone());
        }
        assert!(!bulk.atomic || !refused || recorded.is_empty(), "seed {seed}: atomic is all or none");
        self.model.settled_and_groups.push(id);
        let legs: Vec<NewTransaction> = bulk.items.iter().flat_map(|item| item.legs().into_owned()).collect();
        for leg in legs.iter().skip(recorded.len()) {
            if self.fresh(&leg.reference) {
                self.assert_reference_free(&leg.reference, "a bulk item after the refused one");
            }
        }
        for (t, leg) in recorded.into_iter().zip(legs) {
            self.acknowledged(&Command::CreateTransaction(leg), Outcome::Transaction(t), deleted);
        }
    }

    /// What a commit, void or refund wrote: each acknowledged as a transaction.
    fn acknowledged_settlement(&mut self, command: &Command, written: Vec<Transaction>, deleted: &HashSet<String>) {
        if let Command::FinishInflight { id, .. } | Command::Refund { id, .. } = command {
            self.model.settled_and_groups.push(id.clone());
        }
        self.stats.multi_settlements += u64::from(written.len() > 1);
        let held_back = written.iter().filter(|t| t.inflight && matches!(command, Command::Refund { .. }));
        self.stats.voids_refunded += held_back.count() as u64;
        for t in written {
            self.acknowledged(&Command::RunQueue, Outcome::Transaction(t), deleted);
        }
    }

    /// `deleted`: the monitors this batch deleted (a later command may delete what an earlier one
    /// made or changed).
    fn acknowledged(&mut self, command: &Command, outcome: Outcome, deleted: &HashSet<String>) {
        let seed = self.seed;
        match outcome {
            Outcome::Balance(b) => {
                self.model.currency_of.insert(b.id.clone(), b.currency.clone());
                self.model.balances.push(b.id);
            }
            Outcome::Bulk { id, recorded, refused } => {
                let Command::CreateBulk(bulk) = command else { panic!("seed {seed}: a bulk request answers a batch") };
                self.acknowledged_bulk(bulk, id, recorded, refused.is_some(), deleted);
            }
            Outcome::Transactions(written) => self.acknowledged_settlement(command, written, deleted),
            Outcome::Split { parent, legs } => {
                let Command::CreateSplit(split) = command else { panic!("seed {seed}: a split answers a split") };
                self.model.settled_and_groups.push(parent.id);
                self.stats.splits += 1;
                for (leg, (_, new)) in legs.into_iter().flatten().zip(split.legs()) {
                    let as_command = Command::CreateTransaction(new);
                    self.acknowledged(&as_command, Outcome::Transaction(leg), deleted);
                }
            }
            Outcome::Transaction(t) => {
                let stored = self.reader().transaction(&t.id).unwrap();
                let stored = stored.unwrap_or_else(|| panic!("A1, seed {seed}: acknowledged {} is not stored", t.id));
                assert_eq!(
                    (
                        &stored.precise_amount,
                        &stored.source_balance_id,
                        &stored.destination_balance_id,
                        &stored.reference
                    ),
                    (&t.precise_amount, &t.source_balance_id, &t.destination_balance_id, &t.reference),
                    "A1, seed {seed}: transaction {} is stored as acknowledged",
                    t.id
                );
                assert_status_follows(&t, &stored, seed);
                match t.status {
                    Status::Inflight => self.model.inflight.push(t.id.clone()),
                    Status::Applied if t.parent.is_none() => self.model.applied.push(t.id.clone()),
                    _ => {}
                }
                if let Command::CreateTransaction(new) = command {
                    self.model.references.push(new.reference.clone());
                }
                self.model.acked.insert(t.id.clone(), t);
            }
            Outcome::Monitor(m) => {
                self.stats.rules += u64::from(m.scope.is_some());
                self.model.monitors.retain(|(id, _)| *id != m.id);
                if !deleted.contains(&m.id) {
                    assert!(
                        self.reader().monitor(&m.id).unwrap().is_some(),
                        "A1, seed {seed}: monitor {} is stored",
                        m.id
                    );
                    self.model.monitors.push((m.id, m.balance_id));
                }
            }
            Outcome::MonitorDeleted => {
                let Command::DeleteMonitor { id } = command else { panic!("seed {seed}: a deletion answers a delete") };
                self.model.monitors.retain(|(m, _)| m != id);
                assert!(self.reader().monitor(id).unwrap().is_none(), "A1, seed {seed}: deleted monitor {id} is gone");
            }
            Outcome::Ledger(_)
            | Outcome::Event(_)
            | Outcome::ApiKey { .. }
            | Outcome::Preview(_)
            | Outcome::BulkPreview(_)
            | Outcome::MetaData(_)
            | Outcome::Endpoint { .. }
            | Outcome::EndpointDelivery(_)
            | Outcome::Identity(_)
            | Outcome::Done
            | Outcome::Snapshots(_)
            | Outcome::QueueNudged => {}
        }
    }

    fn refused(&mut self, command: &Command, refused: &keel::domain::error::DomainError) {
        for reference in new_references(command) {
            if self.fresh(&reference) {
                self.assert_reference_free(&reference, &format!("refused ({refused})"));
            }
        }
    }

    /// A command that failed in storage (and the store knew its batch did not commit).
    fn not_written(&mut self, command: &Command) {
        for reference in new_references(command) {
            if self.fresh(&reference) {
                self.assert_reference_free(&reference, "failed in storage");
            }
        }
        // A failed commit, void or refund left no child: checked by the next full check, which
        // finds any child nobody was told about.
    }

    fn maybe(&mut self, command: &Command) {
        match command {
            Command::CreateTransaction(_) | Command::CreateSplit(_) | Command::CreateBulk(_) => {
                self.model.maybe_references.extend(new_references(command));
                self.model.lost_async_bulks |= matches!(command, Command::CreateBulk(b) if b.run_async);
            }
            // What it writes is a child of the transaction it names, of one of a split's or a batch's
            // members, or (a refund of a settled hold) of one of their commits or voids.
            Command::FinishInflight { id, .. } | Command::Refund { id, .. } => {
                let reader = self.reader();
                let mut named = vec![id.clone()];
                named.extend(reader.members(id).unwrap().into_iter().map(|m| m.id));
                let children: Vec<String> =
                    named.iter().flat_map(|n| reader.children(n).unwrap()).map(|c| c.id).collect();
                drop(reader);
                self.model.maybe_parents.extend(named.into_iter().chain(children));
            }
            // A monitor or balance whose answer was lost: the client never learnt its id, so the
            // model never chooses it; stored or not, the full check accepts it.
            _ => {}
        }
    }

    /// No earlier transaction (acknowledged, or whose answer was lost) has this reference.
    fn fresh(&self, reference: &String) -> bool {
        !self.model.references.contains(reference) && !self.model.maybe_references.contains(reference)
    }

    fn assert_reference_free(&self, reference: &str, what: &str) {
        let stored = self.reader().transaction_by_reference(reference).unwrap();
        assert!(stored.is_none(), "A2, seed {}: a {what} transaction was stored: {stored:?}", self.seed);
    }

    /// B1 and D1 over every balance, after every step: no stored total is negative, and per
    /// currency `balance` and `inflight_balance` sum to zero. (R1, the replay, is the full check's.)
    fn check_ledger(&mut self) {
        let seed = self.seed;
        let reader = self.reader();
        let mut sums: BTreeMap<String, (BigInt, BigInt)> = BTreeMap::new();
        let mut offset = 0;
        loop {
            let page = reader.balances(Page::first(1000, offset)).unwrap();
            for b in &page {
                let totals =
                    [&b.credit_balance, &b.debit_balance, &b.inflight_credit_balance, &b.inflight_debit_balance];
                assert!(totals.iter().all(|t| t.sign() != num_bigint::Sign::Minus), "B1, seed {seed}: {b:?}");
                let sum = sums.entry(b.currency.clone()).or_default();
                sum.0 += &b.credit_balance - &b.debit_balance;
                sum.1 += &b.inflight_credit_balance - &b.inflight_debit_balance;
            }
            offset += page.len() as u64;
            if page.len() < 1000 {
                break;
            }
        }
        for (currency, (balance, inflight)) in sums {
            let zero = BigInt::from(0);
            assert!(balance == zero && inflight == zero, "D1, seed {seed}: {currency} sums to {balance}, {inflight}");
        }
    }

    /// Checks the whole database against `keel check`'s invariants and the model.
    // tidy: long because it is the one whole-database check, each invariant a few lines
    fn full_check(&mut self) {
        self.stats.full_checks += 1;
        let seed = self.seed;
        let report = keel::check::run(self.faulty(), &mut |_| {}).expect("the check reads the store");
        assert!(report.problems.is_empty(), "B1/D1/R1/H1, seed {seed}: keel check found {:?}", report.problems);
        self.stats.snapshots = report.snapshots;
        let reader = self.reader();
        let mut stored_ids = HashSet::new();
        let mut automatic_seen = 0;
        let mut offset = 0;
        loop {
            let page = reader.transactions(Page::first(1000, offset)).unwrap();
            for t in &page {
                // An automatic transfer is told of by the transaction that triggered it (stored
                // before it, so read before it), under the reference that names the two.
                let automatic = t.meta_data.get("triggered_by").and_then(|by| by.as_str()).is_some_and(|by| {
                    let monitor = t.meta_data["monitor_id"].as_str().unwrap_or_default();
                    // A rule's instances differ by balance: its reference names the balance too.
                    stored_ids.contains(by)
                        && (t.reference == format!("auto-{monitor}-{by}")
                            || [&t.source_balance_id, &t.destination_balance_id]
                                .iter()
                                .any(|b| t.reference == format!("auto-{monitor}-{b}-{by}")))
                });
                automatic_seen += u64::from(automatic);
                let told = self.model.acked.contains_key(&t.id)
                    || automatic
                    || (t.parent.is_none() && self.model.maybe_references.contains(&t.reference))
                    || t.parent.as_ref().is_some_and(|p| self.model.maybe_parents.contains(p));
                assert!(
                    told,
                    "A2, seed {seed}: transaction {} ({:?}) is stored but no client was told",
                    t.id, t.status
                );
                stored_ids.insert(t.id.clone());
            }
            offset += page.len() as u64;
            if page.len() < 1000 {
                break;
            }
        }
        for id in self.model.acked.keys() {
            assert!(stored_ids.contains(id), "A1, seed {seed}: acknowledged transaction {id} was lost");
        }
        drop(reader);
        self.stats.auto_transfers += automatic_seen;
        let reader = self.reader();
        // Events: each is about a stored transaction; each stored transaction has its lifecycle
        // event(s); each monitor has exactly one event per trigger it counts, and resolves no more
        // often than it triggered.
        let mut per_transaction: HashMap<String, u64> = HashMap::new();
        let mut per_monitor: HashMap<String, i64> = HashMap::new();
        let mut resolved: HashMap<String, i64> = HashMap::new();
        let mut bulk_events = HashSet::new();
        let mut created_balances = HashSet::new();
        let mut offset = 0;
        loop {
            let page = reader.events(&Default::default(), Page::first(1000, offset)).unwrap();
            for e in &page {
                if e.kind == EventKind::BalanceCreated {
                    let body: serde_json::Value = serde_json::from_str(&e.body).unwrap();
                    let balance = body["data"]["balance_id"].as_str().unwrap().to_string();
                    assert!(reader.balance(&balance).unwrap().is_some(), "V1, seed {seed}: {balance} was created");
                    assert!(created_balances.insert(balance), "V1, seed {seed}: one balance.created per balance");
                    continue;
                }
                if matches!(e.kind, EventKind::BulkApplied | EventKind::BulkInflight | EventKind::BulkFailed) {
                    // About a batch: one per run_async bulk request acknowledged (or whose answer
                    // was lost), none for any other.
                    let body: serde_json::Value = serde_json::from_str(&e.body).unwrap();
                    let batch = body["data"]["batch_id"].as_str().unwrap().to_string();
                    let known = self.model.async_bulks.contains(&batch);
                    assert!(known || self.model.lost_async_bulks, "V1, seed {seed}: bulk event {} for {batch}", e.id);
                    assert!(bulk_events.insert(batch), "V1, seed {seed}: one event per bulk request");
                    continue;
                }
                let about = e.transaction_id.clone().expect("every event is about a transaction");
                assert!(stored_ids.contains(&about), "V1, seed {seed}: event {} is about {about}, never stored", e.id);
                match (&e.monitor_id, e.kind) {
                    (Some(monitor), EventKind::BalanceMonitorResolved) => {
                        *resolved.entry(monitor.clone()).or_default() += 1
                    }
                    // An automatic transfer that could not be made: never more than its triggers.
                    (Some(monitor), EventKind::BalanceMonitorActionFailed) => {
                        *resolved.entry(format!("{monitor} failed")).or_default() += 1
                    }
                    (Some(monitor), _) => *per_monitor.entry(monitor.clone()).or_default() += 1,
                    (None, _) => *per_transaction.entry(about).or_default() += 1,
                }
            }
            offset += page.len() as u64;
            if page.len() < 1000 {
                break;
            }
        }
        for id in &stored_ids {
            assert!(per_transaction.contains_key(id), "V1, seed {seed}: transaction {id} has no lifecycle event");
        }
        let mut offset = 0;
        loop {
            let page = reader.balances(Page::first(1000, offset)).unwrap();
            for b in &page {
                assert!(created_balances.contains(&b.id), "V1, seed {seed}: balance {} has its balance.created", b.id);
            }
            offset += page.len() as u64;
            if page.len() < 1000 {
                break;
            }
        }
        for batch in &self.model.async_bulks {
            assert!(bulk_events.contains(batch), "V1, seed {seed}: run_async bulk {batch} has its event");
        }
        let mut offset = 0;
        loop {
            let page = reader.monitors(Page::first(1000, offset)).unwrap();
            for m in &page {
                let events = per_monitor.get(&m.id).copied().unwrap_or(0);
                assert_eq!(events, m.trigger_count, "V1, seed {seed}: monitor {} has one event per trigger", m.id);
                // A monitor resolves only after it triggered (an update re-arms it without a word).
                let resolutions = resolved.get(&m.id).copied().unwrap_or(0);
                assert!(resolutions <= m.trigger_count, "V1, seed {seed}: monitor {} resolved too often", m.id);
                let failed = resolved.get(&format!("{} failed", m.id)).copied().unwrap_or(0);
                assert!(failed <= m.trigger_count, "V1, seed {seed}: monitor {} failed more than it triggered", m.id);
            }
            offset += page.len() as u64;
            if page.len() < 1000 {
                break;
            }
        }
    }

    fn new_balance(&mut self, currency: &str) -> Command {
        Command::CreateBalance {
            ledger_id: GENERAL_LEDGER_ID.into(),
            currency: currency.into(),
            identity_id: String::new(),
            meta_data: Default::default(),
            indicator: String::new(),
        }
    }

    fn pick<'a>(&mut self, from: &'a [String]) -> Option<&'a String> {
        (!from.is_empty()).then(|| &from[self.rng.usize(..from.len())])
    }

    fn random_command(&mut self) -> Command {
        let command = self.random_request();
        let moves_money = matches!(
            command,
            Command::CreateTransaction(_)
                | Command::CreateSplit(_)
                | Command::CreateBulk(_)
                | Command::FinishInflight { .. }
                | Command::Refund { .. }
        );
        match moves_money && self.rng.u8(..15) == 0 {
            true => Command::DryRun(Box::new(command)),
            false => command,
        }
    }

    fn random_request(&mut self) -> Command {
        match self.rng.u8(..100) {
            0..=1 => {
                let currency = CURRENCIES[self.rng.usize(..2)];
                self.new_balance(currency)
            }
            // Snapshots of some balances (H1: `keel check` recomputes each from the log).
            2 => {
                let mut balance_ids: Vec<String> =
                    self.model.balances.iter().filter(|_| self.rng.bool()).cloned().collect();
                balance_ids.sort();
                Command::TakeSnapshots { balance_ids }
            }
            3..=46 => self.random_transfer(),
            47..=49 => self.random_bulk(),
            50..=54 => self.random_split(),
            55..=69 => {
                // Mostly a hold; sometimes a split or batch (all its holds at once), or one settled.
                let ids = if self.rng.u8(..5) == 0 {
                    self.model.settled_and_groups.clone()
                } else {
                    self.model.inflight.clone()
                };
                let id = self.pick(&ids).cloned().unwrap_or_else(|| "txn_unknown".into());
                let action = match self.rng.u8(..3) {
                    0 => InflightAction::Void,
                    1 => InflightAction::Commit { amount: None, precise_amount: None },
                    _ => {
                        InflightAction::Commit { amount: None, precise_amount: Some(self.rng.u32(1..400).to_string()) }
                    }
                };
                Command::FinishInflight { id, action }
            }
            70..=79 => {
                // Mostly an applied transfer; sometimes a settled hold (its commits and void), a
                // split or a batch (every leg or item), or a hold not settled yet.
                let ids = match self.rng.u8(..6) {
                    0 | 1 => self.model.settled_and_groups.clone(),
                    2 => self.model.inflight.clone(),
                    _ => self.model.applied.clone(),
                };
                let id = self.pick(&ids).cloned().unwrap_or_else(|| "txn_unknown".into());
                let description = if self.rng.bool() { "refund".to_string() } else { String::new() };
                Command::Refund { id, description, meta_data: Default::default() }
            }
            80..=91 => {
                let balances = self.model.balances.clone();
                let balance_id = self.pick(&balances).cloned().unwrap_or_default();
                let monitor = self.random_monitor(balance_id);
                let existing = self.model.monitors.clone();
                match (self.rng.u8(..3), existing.is_empty()) {
                    (0, false) => {
                        let (id, _) = &existing[self.rng.usize(..existing.len())];
                        Command::UpdateMonitor { id: id.clone(), monitor }
                    }
                    _ => Command::CreateMonitor(monitor),
                }
            }
            92..=94 => {
                let existing = self.model.monitors.clone();
                match existing.is_empty() {
                    true => Command::DeleteMonitor { id: "mon_unknown".into() },
                    false => Command::DeleteMonitor { id: existing[self.rng.usize(..existing.len())].0.clone() },
                }
            }
            95 => self.random_metadata(),
            _ => {
                // A transfer from the outside world: `@World` is created on first use, per currency.
                let balances = self.model.balances.clone();
                let destination = self.pick(&balances).cloned().unwrap_or_default();
                let currency = self.model.currency_of.get(&destination).cloned().unwrap_or_else(|| "USD".into());
                self.transfer("@World".into(), destination, currency, true)
            }
        }
    }

    /// Metadata on a balance (written under its lock, into the engine's copy: C1 checks it on the
    /// next cache hit) or on a transaction and its children.
    fn random_metadata(&mut self) -> Command {
        let ids = match self.rng.u8(..4) {
            0 | 1 => self.model.balances.clone(),
            2 => self.model.applied.clone(),
            _ => self.model.settled_and_groups.clone(),
        };
        let id = self.pick(&ids).cloned().unwrap_or_else(|| "bln_unknown".into());
        let mut meta_data = serde_json::Map::new();
        meta_data.insert(format!("k{}", self.rng.u8(..4)), serde_json::Value::from(self.rng.u32(..100)));
        Command::UpdateMetadata { id, meta_data }
    }

    /// A bulk request of one to five transfers (now and then a split among them), atomic or not,
    /// applied at once or queued (at once if atomic or with a split: `NewBulk::new`).
    fn random_bulk(&mut self) -> Command {
        let (atomic, skip_queue) = (self.rng.bool(), self.rng.bool());
        let inflight = self.rng.u8(..5) == 0;
        let mut items = Vec::new();
        for i in 0..1 + self.rng.usize(..5) {
            let mut item = match (self.rng.u8(..5), self.random_transfer()) {
                (0, _) => match self.random_split() {
                    Command::CreateSplit(split) => BulkItem::Split(split),
                    Command::CreateTransaction(new) => BulkItem::Transaction(new),
                    _ => unreachable!("a split or a transfer"),
                },
                (_, Command::CreateTransaction(new)) => BulkItem::Transaction(new),
                _ => unreachable!("a transfer"),
            };
            let template = match &mut item {
                BulkItem::Transaction(t) => t,
                BulkItem::Split(split) => &mut split.template,
            };
            template.inflight = inflight;
            template.meta_data.insert("sequence".into(), serde_json::Value::from(i + 1));
            items.push(item);
        }
        for item in &mut items {
            if let BulkItem::Transaction(t) = item {
                t.skip_queue = skip_queue;
            }
        }
        Command::CreateBulk(NewBulk::new(items, atomic, self.rng.u8(..4) == 0))
    }

    /// A split of a random transfer among two or three balances, by shares of every kind (fixed,
    /// percentage, left); one the API would refuse (it does not add up) becomes a plain transfer.
    fn random_split(&mut self) -> Command {
        let Command::CreateTransaction(mut template) = self.random_transfer() else { unreachable!("a transfer") };
        let balances = self.model.balances.clone();
        let mut shares = Vec::new();
        for i in 0..2 + self.rng.usize(..2) {
            let identifier = match self.rng.u8(..6) {
                0 => "@World".to_string(),
                _ => self.pick(&balances).cloned().unwrap_or_default(),
            };
            let distribution = match (i, self.rng.u8(..3)) {
                (0, _) | (_, 0) => format!("{}%", self.rng.u8(1..60)),
                (_, 1) => format!("{}.{:02}", self.rng.u8(..3), self.rng.u8(..100)),
                _ => "left".to_string(),
            };
            shares.push(Share { identifier, distribution, precise_distribution: String::new() });
        }
        let side = if self.rng.bool() { SplitSide::Sources } else { SplitSide::Destinations };
        match side {
            SplitSide::Sources => template.source = String::new(),
            SplitSide::Destinations => template.destination = String::new(),
        }
        match distribute(&template.precise_amount, template.precision, &shares, "sources") {
            Ok(amounts) => Command::CreateSplit(NewSplit { template, side, shares, amounts }),
            Err(_) => self.random_transfer(),
        }
    }

    fn random_transfer(&mut self) -> Command {
        let balances = self.model.balances.clone();
        let source = self.pick(&balances).cloned().unwrap_or_default();
        let destination = self.pick(&balances).cloned().unwrap_or_default();
        let currency = self.model.currency_of.get(&source).cloned().unwrap_or_else(|| "USD".into());
        let overdraft = self.rng.u8(..4) == 0;
        self.transfer(source, destination, currency, overdraft)
    }

    fn transfer(&mut self, source: String, destination: String, currency: String, overdraft: bool) -> Command {
        let reused = self.rng.u8(..30) == 0 && !self.model.references.is_empty();
        let reference = match reused {
            true => self.model.references[self.rng.usize(..self.model.references.len())].clone(),
            false => {
                self.model.next_reference += 1;
                format!("sim-{}-{}", self.seed, self.model.next_reference)
            }
        };
        Command::CreateTransaction(NewTransaction {
            precise_amount: BigInt::from(self.rng.u32(1..1_000)),
            precision: Precision::parse("100").unwrap(),
            reference,
            description: String::new(),
            currency,
            source,
            destination,
            allow_overdraft: overdraft,
            // Sometimes a bounded overdraft (Blnk's `overdraft_limit`), with or without permission.
            overdraft_limit: BigInt::from(if self.rng.u8(..5) == 0 { self.rng.u32(1..500) } else { 0 }),
            // Now and then backdated (up to three days, behind snapshots taken since) or ahead.
            effective_date: match self.rng.u8(..8) {
                0 => {
                    let at = self.clock.now().1 + self.rng.i64(-3 * 86_400_000..3_600_000);
                    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at as u64);
                    Some(humantime::format_rfc3339_micros(at).to_string())
                }
                _ => None,
            },
            // Now and then scheduled: in the past (so applied as usual) or far ahead (so it waits).
            scheduled_for: match self.rng.u8(..40) {
                0 => Some("2000-01-01T00:00:00.000000Z".into()),
                1 => Some("2100-01-01T00:00:00.000000Z".into()),
                _ => None,
            },
            inflight_expiry_date: None,
            inflight_commit_date: None,
            inflight: self.rng.u8(..5) == 0,
            skip_queue: self.rng.u8(..8) != 0,
            meta_data: Default::default(),
        })
    }

    /// A monitor of `balance_id`, or, one time in five, a ledger-wide rule over every balance of its
    /// ledger (in its currency, or any).
    fn random_monitor(&mut self, balance_id: String) -> NewMonitor {
        let fields = ["balance", "credit_balance", "debit_balance", "inflight_balance"];
        let velocity = ["debit_volume", "credit_volume", "transaction_count"];
        let operators = [">", "<", ">=", "<=", "=", "!="];
        // A third watch what moved in a window (1 s to 10 s, which the clock crosses often).
        let windowed = self.rng.u8(..3) == 0;
        let field = match windowed {
            true => velocity[self.rng.usize(..velocity.len())],
            false => fields[self.rng.usize(..fields.len())],
        };
        let operator = operators[self.rng.usize(..operators.len())];
        let count = field == "transaction_count";
        let value = if count { self.rng.i32(0..6) } else { self.rng.i32(-20..20) };
        let trigger = [Trigger::Every, Trigger::Crossing, Trigger::Level, Trigger::Edge][self.rng.usize(..4)];
        // A quarter are guards: they refuse transfers, commits and refunds, which dry runs must
        // predict and atomic requests must refuse whole.
        let action = if self.rng.u8(..4) == 0 { Action::Reject } else { Action::Notify };
        let precision = if count { None } else { Some("100") };
        let mut condition = Condition::new(field, operator, &value.to_string(), precision).expect("a valid condition");
        if windowed {
            let window = ["1s", "3s", "10s"][self.rng.usize(..3)];
            condition = condition.with_window(window).expect("a valid window");
        }
        if trigger.is_edge() && action == Action::Notify && !matches!(operator, "=" | "!=") && self.rng.bool() {
            let band = self.rng.i32(0..10);
            let reset = if operator.starts_with('>') { value - band } else { value + band };
            condition = condition.with_reset(&reset.to_string()).expect("a re-arm level on the far side");
        }
        // A sixth of those that only notify record a transfer when they trigger instead.
        let (action, transfer) = match action == Action::Notify && !count && self.rng.u8(..6) == 0 {
            true => (Action::Transfer, Some(self.random_auto_transfer(&balance_id, &condition))),
            false => (action, None),
        };
        let (balance_id, scope) = match self.rng.u8(..5) {
            0 => {
                let watched = self.reader().balance(&balance_id).unwrap();
                let (ledger_id, currency) =
                    watched.map_or(("ldg_unknown".into(), None), |b| (b.ledger_id, Some(b.currency)));
                let currency = currency.filter(|_| transfer.is_some() || self.rng.bool());
                (String::new(), Some(LedgerScope { ledger_id, currency, balance_meta_data: Default::default() }))
            }
            _ => (balance_id, None),
        };
        NewMonitor {
            balance_id,
            scope,
            condition,
            description: String::new(),
            call_back_url: String::new(),
            meta_data: Default::default(),
            trigger,
            action,
            transfer,
        }
    }

    /// An automatic transfer for a monitor of `balance_id` with `condition`: a sweep of the excess or
    /// a top-up of the shortfall where the condition allows one, else a small fixed amount either
    /// way; to or from another balance (in another currency now and then: a 400 then).
    fn random_auto_transfer(&mut self, balance_id: &str, condition: &Condition) -> AutoTransfer {
        let balances = self.model.balances.clone();
        let others: Vec<&String> = balances.iter().filter(|b| *b != balance_id).collect();
        let counterparty = others.get(self.rng.usize(..others.len().max(1))).map_or("bln_none", |b| b.as_str());
        let (field, op) = (condition.field.as_str(), condition.operator.as_str());
        let (amount, outgoing) = match (field, op) {
            ("balance", ">" | ">=") if self.rng.bool() => ("excess", true),
            ("balance", "<" | "<=") if self.rng.bool() => ("shortfall", false),
            _ => (["0.01", "0.05", "0.2"][self.rng.usize(..3)], self.rng.bool()),
        };
        let (source, destination) = if outgoing { (None, Some(counterparty)) } else { (Some(counterparty), None) };
        let overdraft = self.rng.u8(..4) == 0;
        AutoTransfer::new(source, destination, amount, condition.precision, String::new(), overdraft)
            .expect("a valid automatic transfer")
    }
}

/// The references a command would give the transactions it creates.
fn new_references(command: &Command) -> Vec<String> {
    match command {
        Command::CreateTransaction(new) => vec![new.reference.clone()],
        Command::CreateSplit(split) => split.legs().into_iter().map(|(_, leg)| leg.reference).collect(),
        Command::CreateBulk(bulk) => bulk
            .items
            .iter()
            .flat_map(|item| item.legs().iter().map(|leg| leg.reference.clone()).collect::<Vec<_>>())
            .collect(),
        _ => vec![],
    }
}

/// A stored transaction's status may only have moved on from the one acknowledged.
fn assert_status_follows(acked: &Transaction, stored: &Transaction, seed: u64) {
    let allowed: &[Status] = match acked.status {
        Status::Queued => {
            &[Status::Queued, Status::Applied, Status::Inflight, Status::Rejected, Status::Commit, Status::Void]
        }
        // This simulation schedules only far ahead: such a transaction never comes due in a run.
        Status::Scheduled => &[Status::Scheduled],
        Status::Inflight => &[Status::Inflight, Status::Commit, Status::Void],
        other => &[other],
    };
    assert!(
        allowed.contains(&stored.status),
        "L1, seed {seed}: transaction {} was acknowledged {:?} and is stored {:?}",
        acked.id,
        acked.status,
        stored.status
    );
}

fn fault_name(fault: &Fault) -> &'static str {
    match fault {
        Fault::FailStatement { kind: ErrorKind::Transient, .. } => "statement failed (transient)",
        Fault::FailStatement { .. } => "statement failed",
        Fault::FailCommit => "commit failed",
        Fault::LoseCommitAnswer => "commit answer lost (crash and restart)",
        Fault::SlowCommit(_) => "slow commit",
    }
}
