//! Property test: for random transactions (transfers, holds, commits, voids, refused overdrafts),
//! random waits (on a clock the test moves, so windows cross their boundaries) and random monitors
//! (created, updated, deleted along the way; of one wallet or ledger-wide over all of them; every
//! trigger mode in both spellings, re-arm levels, guards, velocity windows; all fields and
//! operators), the events Keel records, each monitor's state (a ledger-wide one's on each wallet)
//! and every refusal by a guard equal those of a plain reference evaluation done step by step.

mod common;

use common::{check_property, unique, Server};
use keel::engine::Clock;
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Parties: 0 is @World, 1..=3 are wallets of one ledger (only wallets carry monitors).
const PARTIES: usize = 4;
/// `Spec::wallet` of a ledger-wide monitor: it watches every wallet (never @World, which lives in
/// another ledger).
const LEDGER_WIDE: usize = 0;
const FIELDS: [&str; 9] = [
    "balance",
    "credit_balance",
    "debit_balance",
    "inflight_balance",
    "inflight_credit_balance",
    "inflight_debit_balance",
    "debit_volume",
    "credit_volume",
    "transaction_count",
];
/// The first velocity field's index.
const VELOCITY: usize = 6;
const COUNT: usize = 8;
/// Velocity windows: as sent, and in milliseconds.
const WINDOWS: [(&str, i64); 2] = [("2s", 2_000), ("5s", 5_000)];
const OPERATORS: [&str; 6] = [">", "<", "=", "!=", ">=", "<="];
/// Keel's spellings and Blnk PR #388's; odd indexes are edge triggers.
const TRIGGERS: [&str; 4] = ["every", "crossing", "level", "edge"];

#[derive(Debug, Clone)]
struct Spec {
    /// The wallet watched, or `LEDGER_WIDE`.
    wallet: usize,
    field: usize,
    operator: usize,
    /// Threshold in minor units; sent as `value = threshold / 10` with `precision: 10` (a count
    /// as it is).
    threshold: i64,
    trigger: usize,
    /// Index into `WINDOWS`, for a velocity field.
    window: usize,
    /// How far beyond the threshold the re-arm level lies, for edge monitors that notify and
    /// compare by order (the others cannot have one).
    reset_band: Option<i64>,
    guard: bool,
}

impl Spec {
    fn edge(&self) -> bool {
        self.trigger % 2 == 1
    }

    /// The re-arm level in minor units, when the monitor has one.
    fn reset(&self) -> Option<i64> {
        let ordering = !matches!(OPERATORS[self.operator], "=" | "!=");
        let band = self.reset_band.filter(|_| self.edge() && !self.guard && ordering)?;
        let band = if self.field == COUNT { band % 4 } else { band };
        Some(if OPERATORS[self.operator].starts_with('>') { self.threshold - band } else { self.threshold + band })
    }

    fn window_ms(&self) -> Option<i64> {
        (self.field >= VELOCITY).then_some(WINDOWS[self.window].1)
    }

    fn watches(&self, party: usize) -> bool {
        party != 0 && (self.wallet == LEDGER_WIDE || self.wallet == party)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        amount: i64,
        inflight: bool,
    },
    Settle {
        pick: usize,
        commit: bool,
    },
    CreateMonitor(Spec),
    UpdateMonitor {
        pick: usize,
        spec: Spec,
    },
    DeleteMonitor {
        pick: usize,
    },
    /// The clock moves on by this many milliseconds.
    Wait {
        ms: i64,
    },
}

fn spec() -> impl Strategy<Value = Spec> {
    let band = prop::option::of(0i64..60);
    let shape = (0..PARTIES, 0..9usize, 0..6usize, -100i64..300, 0..4usize, 0..2usize);
    (shape, band, prop::bool::weighted(0.35)).prop_map(
        |((wallet, field, operator, threshold, trigger, window), reset_band, guard)| Spec {
            wallet,
            field,
            operator,
            // A count's threshold is a few movements; a volume's is never negative in practice.
            threshold: match field {
                COUNT => threshold.rem_euclid(4),
                VELOCITY.. => threshold.rem_euclid(120),
                _ => threshold,
            },
            trigger,
            window,
            reset_band,
            guard,
        },
    )
}

/// A burst: a dozen or more small movements of one wallet, to and from @World, a few hundred
/// milliseconds apart, so its checkpoint log fills and is stored as a chunk (`LOG_BYTES`) while
/// its windows reach back into that chunk.
fn burst() -> impl Strategy<Value = Vec<Op>> {
    let movement = (prop::bool::ANY, 1i64..40, 0i64..400);
    (1..PARTIES, prop::collection::vec(movement, 14..24)).prop_map(|(wallet, movements)| {
        let step = |(outgoing, amount, ms): (bool, i64, i64)| {
            let (from, to) = if outgoing { (wallet, 0) } else { (0, wallet) };
            [Op::Transfer { from, to, amount, inflight: false }, Op::Wait { ms }]
        };
        movements.into_iter().flat_map(step).collect()
    })
}

/// A case's operations: single ones, now and then a burst.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let one_or_burst = prop_oneof![12 => op().prop_map(|op| vec![op]), 1 => burst()];
    prop::collection::vec(one_or_burst, 1..40).prop_map(|ops| ops.into_iter().flatten().collect())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..PARTIES, 1..PARTIES, 1i64..120, prop::bool::weighted(0.3))
            .prop_map(|(from, to, amount, inflight)| {
                let to = if to == from { (to % (PARTIES - 1)) + 1 } else { to };
                Op::Transfer { from, to, amount, inflight }
            }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, commit)| Op::Settle { pick, commit }),
        3 => spec().prop_map(Op::CreateMonitor),
        1 => (any::<usize>(), spec()).prop_map(|(pick, spec)| Op::UpdateMonitor { pick, spec }),
        1 => any::<usize>().prop_map(|pick| Op::DeleteMonitor { pick }),
        2 => (0i64..3_000).prop_map(|ms| Op::Wait { ms }),
    ]
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    credit: i64,
    debit: i64,
    inflight_credit: i64,
    inflight_debit: i64,
}

/// One movement of one wallet, for its velocity windows.
#[derive(Debug, Clone, Copy)]
struct Moved {
    /// Its place among all movements (a monitor counts those after it was created).
    seq: u64,
    at_ms: i64,
    debit: i64,
    credit: i64,
}

/// What moved through a wallet at a time (each movement counts once).
fn window_value(field: usize, moved: &[Moved]) -> i64 {
    match field {
        6 => moved.iter().map(|m| m.debit).sum(),
        7 => moved.iter().map(|m| m.credit).sum(),
        _ => moved.len() as i64,
    }
}

impl Totals {
    fn field(&self, field: usize) -> i64 {
        match field {
            0 => self.credit - self.debit,
            1 => self.credit,
            2 => self.debit,
            3 => self.inflight_credit - self.inflight_debit,
            4 => self.inflight_credit,
            _ => self.inflight_debit,
        }
    }
}

/// The wallets as the reference sees them: totals, and every movement (for the windows).
#[derive(Debug, Clone, Default)]
struct Books {
    totals: [Totals; PARTIES],
    moved: [Vec<Moved>; PARTIES],
    seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Movement {
    Transfer,
    Hold,
    Commit,
    Void,
}

impl Books {
    /// The books after `movement` of `amount` from `from` to `to` at `now_ms`.
    fn after(&self, movement: Movement, from: usize, to: usize, amount: i64, now_ms: i64) -> Books {
        let mut next = self.clone();
        let (debit, credit) = match movement {
            Movement::Transfer | Movement::Commit => (amount, amount),
            Movement::Hold | Movement::Void => (0, 0),
        };
        let inflight = match movement {
            Movement::Hold => amount,
            Movement::Commit | Movement::Void => -amount,
            Movement::Transfer => 0,
        };
        next.totals[from].debit += debit;
        next.totals[to].credit += credit;
        next.totals[from].inflight_debit += inflight;
        next.totals[to].inflight_credit += inflight;
        for (party, debit, credit) in [(from, debit, 0), (to, 0, credit)] {
            next.seq += 1;
            next.moved[party].push(Moved { seq: next.seq, at_ms: now_ms, debit, credit });
        }
        next
    }
}

struct ModelMonitor {
    id: String,
    spec: Spec,
    /// The monitor's state on each wallet: triggered (the condition held, and has not re-armed
    /// since). One wallet's only, unless the monitor is ledger-wide.
    triggered: [bool; PARTIES],
    /// (event, transaction id, wallet), oldest first.
    expected: Vec<(&'static str, String, usize)>,
    deleted: bool,
    /// A velocity monitor counts the movements after this one (those before it was created)...
    origin_seq: u64,
    /// ...and after this instant (where its window had reached when an update lengthened it).
    floor_ms: i64,
}

fn compare(operator: usize, v: i64, t: i64) -> bool {
    match OPERATORS[operator] {
        ">" => v > t,
        "<" => v < t,
        "=" => v == t,
        "!=" => v != t,
        ">=" => v >= t,
        _ => v <= t,
    }
}

impl ModelMonitor {
    /// The watched field of `wallet` now: its own total, or what moved in the window.
    fn observe(&self, books: &Books, now_ms: i64, wallet: usize) -> i64 {
        let Some(window) = self.spec.window_ms() else {
            return books.totals[wallet].field(self.spec.field);
        };
        let since = self.floor_ms.max(now_ms - window);
        let moved: Vec<Moved> =
            books.moved[wallet].iter().filter(|m| m.seq > self.origin_seq && m.at_ms > since).copied().collect();
        window_value(self.spec.field, &moved)
    }

    fn evaluate(&mut self, books: &Books, now_ms: i64, transaction: &str, wallet: usize) {
        let value = self.observe(books, now_ms, wallet);
        let holds = compare(self.spec.operator, value, self.spec.threshold);
        let was = self.triggered[wallet];
        let in_band = self.spec.reset().is_some_and(|r| compare(self.spec.operator, value, r));
        self.triggered[wallet] = holds || (was && in_band);
        let event = match (self.spec.edge(), holds) {
            (true, _) if self.triggered[wallet] == was => None,
            (true, true) => Some("balance.monitor"),
            (true, false) => Some("balance.monitor.resolved"),
            (false, true) => Some("balance.monitor"),
            (false, false) => None,
        };
        if let Some(event) = event {
            self.expected.push((event, transaction.to_string(), wallet));
        }
    }

    /// A guard refuses a movement that makes its condition hold on `wallet`, or takes the field
    /// further in.
    fn refuses(&self, before: &Books, after: &Books, now_ms: i64, wallet: usize) -> bool {
        let (b, a) = (self.observe(before, now_ms, wallet), self.observe(after, now_ms, wallet));
        let further = match OPERATORS[self.spec.operator] {
            ">" | ">=" => a > b,
            "<" | "<=" => a < b,
            _ => a != b,
        };
        let holds = |v| compare(self.spec.operator, v, self.spec.threshold);
        self.spec.guard && holds(a) && (!holds(b) || further)
    }
}

/// `wallets[0]` is the wallets' ledger (a ledger-wide monitor's `ledger_id`), the others theirs.
fn body(spec: &Spec, wallets: &[String]) -> Value {
    // minor units / 10 as exact decimal text, e.g. -7 → "-0.7"; a count as it is.
    let text = |minor: i64| match spec.field {
        COUNT => minor.to_string(),
        _ => format!("{}{}.{}", if minor < 0 { "-" } else { "" }, minor.abs() / 10, minor.abs() % 10),
    };
    let mut condition = json!({"field": FIELDS[spec.field], "operator": OPERATORS[spec.operator],
        "value": text(spec.threshold)});
    if spec.field != COUNT {
        condition["precision"] = json!(10);
    }
    if let Some(reset) = spec.reset() {
        condition["reset_value"] = json!(text(reset));
    }
    if spec.field >= VELOCITY {
        condition["window"] = json!(WINDOWS[spec.window].0);
    }
    let watched = if spec.wallet == LEDGER_WIDE { "ledger_id" } else { "balance_id" };
    json!({watched: wallets[spec.wallet], "condition": condition, "trigger": TRIGGERS[spec.trigger],
        "action": if spec.guard { "reject" } else { "notify" }})
}

/// The guards of `from` and `to` that refuse the books going from `before` to `after`.
fn refusing(monitors: &[ModelMonitor], parties: [usize; 2], before: &Books, after: &Books, now: i64) -> Vec<String> {
    let live = monitors.iter().filter(|m| !m.deleted);
    let refuses = |m: &&ModelMonitor| parties.iter().any(|&p| m.spec.watches(p) && m.refuses(before, after, now, p));
    live.filter(refuses).map(|m| m.id.clone()).collect()
}

/// A refusal by one of `guards`.
fn assert_guarded(status: StatusCode, answer: &Value, guards: &[String]) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error_detail"]["code"], "TXN_REJECTED_BY_MONITOR", "{answer}");
    let named = answer["error_detail"]["details"]["monitor_id"].as_str().unwrap();
    assert!(guards.iter().any(|g| g == named), "refused by {named}, expected one of {guards:?}");
}

// tidy: long because one match arm per operation keeps the model and the server side by side
async fn run_case(server: &Server, clock: Clock, ops: Vec<Op>) {
    let (currency, ids) = common::parties(server, PARTIES - 1).await;
    let (_, wallet) = server.get(&format!("/balances/{}", ids[1])).await;
    // What monitor bodies name: the wallets' ledger in place of @World (which carries none).
    let mut watched = ids.clone();
    watched[LEDGER_WIDE] = wallet["ledger_id"].as_str().unwrap().to_string();
    let mut books = Books::default();
    let mut monitors: Vec<ModelMonitor> = Vec::new();
    let mut holds: Vec<(String, usize, usize, i64, bool)> = Vec::new(); // id, from, to, amount, open

    for op in ops {
        let now = clock.now().1;
        let moved: Option<(String, usize, usize)> = match op {
            Op::Transfer { from, to, amount, inflight } => {
                let (status, t) = server
                    .post(
                        "/transactions",
                        json!({"precise_amount": amount, "currency": currency, "source": ids[from],
                        "destination": ids[to], "reference": unique("mp"), "skip_queue": true, "inflight": inflight}),
                    )
                    .await;
                let movement = if inflight { Movement::Hold } else { Movement::Transfer };
                let after = books.after(movement, from, to, amount, now);
                let totals = &books.totals[from];
                let available = totals.credit - totals.debit - totals.inflight_debit;
                let guards = refusing(&monitors, [from, to], &books, &after, now);
                if from != 0 && available < amount {
                    assert_eq!(status, StatusCode::BAD_REQUEST, "{t}");
                    assert_eq!(t["error_detail"]["code"], "TXN_INSUFFICIENT_FUNDS", "funds are checked first: {t}");
                    None // refused: no movement, no monitor event
                } else if !guards.is_empty() {
                    assert_guarded(status, &t, &guards);
                    None
                } else {
                    assert_eq!(status, StatusCode::CREATED, "{t}");
                    let id = t["transaction_id"].as_str().unwrap().to_string();
                    if inflight {
                        holds.push((id.clone(), from, to, amount, true));
                    }
                    books = after;
                    Some((id, from, to))
                }
            }
            Op::Settle { pick, commit } => {
                let open: Vec<usize> = (0..holds.len()).filter(|&i| holds[i].4).collect();
                if open.is_empty() {
                    continue;
                }
                let k = open[pick % open.len()];
                let (hold_id, from, to, amount, _) = holds[k].clone();
                let status = if commit { "commit" } else { "void" };
                let (code, child) =
                    server.put(&format!("/transactions/inflight/{hold_id}"), json!({"status": status})).await;
                let movement = if commit { Movement::Commit } else { Movement::Void };
                let after = books.after(movement, from, to, amount, now);
                // A void is never refused; a commit is, by a guard, and the hold stays open.
                let guards = if commit { refusing(&monitors, [from, to], &books, &after, now) } else { vec![] };
                if !guards.is_empty() {
                    assert_guarded(code, &child, &guards);
                    continue;
                }
                assert_eq!(code, StatusCode::OK, "{child}");
                holds[k].4 = false;
                books = after;
                Some((child["transaction_id"].as_str().unwrap().to_string(), from, to))
            }
            Op::CreateMonitor(spec) => {
                let created = server.create("/balance-monitors", body(&spec, &watched)).await;
                let id = created["monitor_id"].as_str().unwrap().to_string();
                let (origin_seq, floor_ms) = (books.seq, i64::MIN);
                monitors.push(ModelMonitor {
                    id,
                    spec,
                    triggered: [false; PARTIES],
                    expected: vec![],
                    deleted: false,
                    origin_seq,
                    floor_ms,
                });
                None
            }
            Op::UpdateMonitor { pick, mut spec } => {
                let live: Vec<usize> = (0..monitors.len()).filter(|&i| !monitors[i].deleted).collect();
                if live.is_empty() {
                    continue;
                }
                let m = &mut monitors[live[pick % live.len()]];
                // A monitor stays of its kind (a ledger-wide one stays so; one wallet's may move).
                if (m.spec.wallet == LEDGER_WIDE) != (spec.wallet == LEDGER_WIDE) {
                    spec.wallet = m.spec.wallet;
                }
                let (status, answer) = server.put(&format!("/balance-monitors/{}", m.id), body(&spec, &watched)).await;
                assert_eq!(status, StatusCode::OK, "{answer}");
                // A window watching the same wallet carries on from where the old one had reached;
                // any other starts now.
                match (m.spec.window_ms(), spec.window_ms()) {
                    (Some(old), Some(_)) if m.spec.wallet == spec.wallet => m.floor_ms = m.floor_ms.max(now - old),
                    _ => (m.origin_seq, m.floor_ms) = (books.seq, i64::MIN),
                }
                m.spec = spec;
                m.triggered = [false; PARTIES]; // an update re-arms the monitor (on every wallet)
                None
            }
            Op::DeleteMonitor { pick } => {
                let live: Vec<usize> = (0..monitors.len()).filter(|&i| !monitors[i].deleted).collect();
                if live.is_empty() {
                    continue;
                }
                let m = &mut monitors[live[pick % live.len()]];
                check_monitor(server, m, &ids).await;
                let (status, _) = server.request("DELETE", &format!("/balance-monitors/{}", m.id), None).await;
                assert_eq!(status, StatusCode::OK);
                m.deleted = true;
                None
            }
            Op::Wait { ms } => {
                clock.advance(ms);
                None
            }
        };
        if let Some((transaction, from, to)) = moved {
            for party in [from, to] {
                for m in monitors.iter_mut().filter(|m| !m.deleted && m.spec.watches(party)) {
                    m.evaluate(&books, now, &transaction, party);
                }
            }
        }
    }
    for m in monitors.iter().filter(|m| !m.deleted) {
        check_monitor(server, m, &ids).await;
        if m.spec.wallet == LEDGER_WIDE {
            check_instances(server, m, &ids).await;
        }
    }
}

/// A ledger-wide monitor's instance on each wallet: that wallet's own state and trigger count.
async fn check_instances(server: &Server, m: &ModelMonitor, ids: &[String]) {
    for (wallet, id) in ids.iter().enumerate().skip(1) {
        let (_, listed) = server.get(&format!("/balance-monitors/balances/{id}")).await;
        let instance = listed.as_array().unwrap().iter().find(|i| i["monitor_id"] == m.id.as_str()).cloned();
        let instance = instance.unwrap_or_else(|| panic!("wallet {wallet} lists {}: {listed}", m.id));
        let triggers = m.expected.iter().filter(|(e, _, w)| *e == "balance.monitor" && *w == wallet).count();
        assert_eq!(instance["trigger_count"], json!(triggers), "wallet {wallet}: {instance}");
        assert_eq!(instance["condition_state"], json!(m.triggered[wallet]), "wallet {wallet}: {instance}");
        assert_eq!(instance["balance_id"], id.as_str(), "{instance}");
    }
}

async fn check_monitor(server: &Server, m: &ModelMonitor, ids: &[String]) {
    let (status, events) = server.get(&format!("/balance-monitors/{}/events?limit=1000", m.id)).await;
    assert_eq!(status, StatusCode::OK);
    let wallet =
        |e: &Value| ids.iter().position(|id| e["data"]["balance_id"] == id.as_str()).expect("a wallet's event");
    let mut seen: Vec<(&str, String, usize)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["transaction_id"].as_str().unwrap().to_string(), wallet(e)))
        .collect();
    seen.reverse();
    assert_eq!(seen, m.expected, "monitor {} {:?}", m.id, m.spec);
    let (_, monitor) = server.get(&format!("/balance-monitors/{}", m.id)).await;
    let triggers = m.expected.iter().filter(|(event, _, _)| *event == "balance.monitor").count();
    assert_eq!(monitor["trigger_count"], json!(triggers), "{monitor}");
    // A ledger-wide monitor is triggered while it is on any wallet.
    assert_eq!(monitor["condition_state"], json!(m.triggered.iter().any(|t| *t)), "{monitor}");
    assert_eq!(monitor["trigger"], TRIGGERS[m.spec.trigger], "read back as written: {monitor}");
}

#[test]
fn monitor_events_equal_a_step_by_step_reference_evaluation() {
    // In this process: a property of the engine and the API, not of the socket.
    let clock = Clock::manual(1_800_000_000_000);
    let server = Server::in_process_on_clock(None, clock);
    check_property(24, ops(), |ops| Box::pin(run_case(&server, clock, ops)));
}
