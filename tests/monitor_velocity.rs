//! Velocity windows (issue 18): monitors on what moved through a balance in a rolling window
//! (`debit_volume`, `credit_volume`, `transaction_count` over `condition.window`), exact to the
//! millisecond at both ends, as notifications and as guards (a daily spending limit). Through the
//! app in this process on a clock the test moves (`Clock::manual`), on SQLite or PostgreSQL.

mod common;

use common::{unique, Server};
use keel::engine::Clock;
use reqwest::StatusCode;
use serde_json::{json, Value};

const HOUR_MS: i64 = 3_600_000;

struct Setup {
    server: Server,
    clock: Clock,
    currency: String,
    alice: String,
    bob: String,
}

/// Alice holds 100,000 minor units; Bob none; the clock stands still until moved.
async fn setup() -> Setup {
    let clock = Clock::manual(1_800_000_000_000);
    let server = Server::in_process_on_clock(None, clock);
    let (currency, ids) = common::parties(&server, 2).await;
    let (alice, bob) = (ids[1].clone(), ids[2].clone());
    assert_eq!(server.transfer("@World", &alice, 100_000, &currency).await.0, StatusCode::CREATED);
    Setup { server, clock, currency, alice, bob }
}

impl Setup {
    async fn monitor(&self, condition: Value, extra: Value) -> Value {
        let mut body = json!({"balance_id": self.alice, "condition": condition});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        self.server.create("/balance-monitors", body).await
    }

    /// Alice pays Bob `amount`: the answer.
    async fn spend(&self, amount: i64) -> (StatusCode, Value) {
        let body = json!({"precise_amount": amount, "currency": self.currency, "source": self.alice,
            "destination": self.bob, "reference": unique("v"), "skip_queue": true});
        self.server.post("/transactions", body).await
    }

    async fn history(&self, monitor: &Value) -> Vec<(String, String)> {
        common::monitor_signals(&self.server, monitor).await
    }
}

fn id(t: &Value) -> String {
    t["transaction_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_daily_spending_limit_is_a_velocity_guard_exact_at_both_ends_of_its_window() {
    let s = setup().await;
    let limit = s
        .monitor(
            json!({"field": "debit_volume", "operator": ">", "value": 1_000, "window": "24h"}),
            json!({"action": "reject", "description": "daily spending limit"}),
        )
        .await;
    assert_eq!(limit["condition"]["window"], "24h");
    let guard = limit["monitor_id"].as_str().unwrap();
    assert_eq!(s.spend(600).await.0, StatusCode::CREATED); // at T0
    s.clock.advance(HOUR_MS);
    assert_eq!(s.spend(400).await.0, StatusCode::CREATED, "1,000 spent: the limit, not past it");
    let (status, refused) = s.spend(1).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error_detail"]["code"], "TXN_REJECTED_BY_MONITOR");
    assert_eq!(refused["error_detail"]["details"]["monitor_id"], guard);
    assert!(refused["error"].as_str().unwrap().contains("debit_volume of balance"), "{refused}");
    // One millisecond before T0 + 24h the 600 still counts; at T0 + 24h it has left the window.
    s.clock.advance(23 * HOUR_MS - 1);
    assert_eq!(s.spend(1).await.0, StatusCode::BAD_REQUEST);
    s.clock.advance(1);
    assert_eq!(s.spend(601).await.0, StatusCode::BAD_REQUEST, "only the 600 left the window");
    assert_eq!(s.spend(600).await.0, StatusCode::CREATED);
    // Money in does not count against what goes out; a dry run sees the window too.
    assert_eq!(s.server.transfer("@World", &s.alice, 5_000, &s.currency).await.0, StatusCode::CREATED);
    let body = json!({"precise_amount": 1, "currency": s.currency, "source": s.alice, "destination": s.bob,
        "reference": unique("v"), "skip_queue": true, "dry_run": true});
    let (_, preview) = s.server.post("/transactions", body).await;
    assert_eq!(
        (preview["would_apply"].as_bool(), preview["rejection"]["monitor_id"].as_str()),
        (Some(false), Some(guard))
    );
    let (_, alice) = s.server.get(&format!("/balances/{}", s.alice)).await;
    assert_eq!(alice["debit_balance"], json!(1_600), "600 + 400 + 600, nothing refused moved");
}

#[tokio::test]
async fn volume_and_count_monitors_signal_as_movements_enter_and_leave_their_window() {
    let s = setup().await;
    let volume = s
        .monitor(
            json!({"field": "credit_volume", "operator": ">=", "value": 3, "precision": 100, "window": "1h"}),
            json!({"trigger": "edge"}),
        )
        .await;
    let count =
        s.monitor(json!({"field": "transaction_count", "operator": ">", "value": 2, "window": "90s"}), json!({})).await;
    let pay_in = |amount: i64| {
        let body = json!({"precise_amount": amount, "currency": s.currency, "source": "@World",
            "destination": s.alice, "reference": unique("in"), "skip_queue": true});
        s.server.create("/transactions", body)
    };
    let t1 = pay_in(200).await; // credit volume 200 (2.00), 1 movement
    s.clock.advance(30_000);
    let t2 = pay_in(100).await; // 300: volume reached; 2 movements
    let t3 = pay_in(1).await; // 3 movements: count > 2
    s.clock.advance(60_000); // t1 is 90 s old: out of the 90 s window; still in the hour
    let t4 = pay_in(1).await; // 3 movements in 90 s again (t2, t3, t4): count fires
    s.clock.advance(HOUR_MS - 90_000); // t1 is an hour old: the volume is 102, below 3.00
    let t5 = pay_in(1).await;
    let fired = |t: &Value| ("balance.monitor".to_string(), id(t));
    let resolved = |t: &Value| ("balance.monitor.resolved".to_string(), id(t));
    assert_eq!(s.history(&volume).await, [fired(&t2), resolved(&t5)]);
    assert_eq!(s.history(&count).await, [fired(&t3), fired(&t4)]);
    let _ = t1;
    let (_, read) = s.server.get(&format!("/balance-monitors/{}", count["monitor_id"].as_str().unwrap())).await;
    assert_eq!((read["condition"]["window"].as_str(), read["trigger_count"].as_i64()), (Some("90s"), Some(2)));
}

#[tokio::test]
async fn changing_a_limit_keeps_what_was_spent_in_its_window() {
    let s = setup().await;
    let condition = |value: i64| json!({"field": "debit_volume", "operator": ">", "value": value, "window": "1h"});
    let limit = s.monitor(condition(500), json!({"action": "reject"})).await;
    assert_eq!(s.spend(400).await.0, StatusCode::CREATED);
    let path = format!("/balance-monitors/{}", limit["monitor_id"].as_str().unwrap());
    let body = json!({"balance_id": s.alice, "condition": condition(600), "action": "reject"});
    assert_eq!(s.server.put(&path, body).await.0, StatusCode::OK);
    assert_eq!(s.spend(201).await.0, StatusCode::BAD_REQUEST, "the 400 still counts against the new limit");
    assert_eq!(s.spend(200).await.0, StatusCode::CREATED);
}

/// A window lengthened by an update carries on from where the old one had reached: what the old
/// window had already let go does not count again, on a monitor of one balance and on a rule.
#[tokio::test]
async fn lengthening_a_window_does_not_count_again_what_had_left_it() {
    let s = setup().await;
    let (_, alice) = s.server.get(&format!("/balances/{}", s.alice)).await;
    let condition = |window: &str| json!({"field": "debit_volume", "operator": ">", "value": 500, "window": window});
    let own = s.monitor(condition("1h"), json!({"action": "reject"})).await;
    let rule_body = json!({"ledger_id": alice["ledger_id"], "condition": condition("2h"), "action": "reject"});
    let rule = s.server.create("/balance-monitors", rule_body).await;
    // At T0; then it leaves both windows, at their edges (the rule's exactly).
    assert_eq!(s.spend(400).await.0, StatusCode::CREATED);
    s.clock.advance(2 * HOUR_MS);
    // The rule first: its update reads no balance, so nothing rolls its stored window before.
    for (monitor, scope) in [(&rule, json!({"ledger_id": alice["ledger_id"]})), (&own, json!({"balance_id": s.alice}))]
    {
        let mut body = json!({"condition": condition("24h"), "action": "reject"});
        body.as_object_mut().unwrap().extend(scope.as_object().unwrap().clone());
        let path = format!("/balance-monitors/{}", monitor["monitor_id"].as_str().unwrap());
        let (status, updated) = s.server.put(&path, body).await;
        assert_eq!((status, updated["condition"]["window"].as_str()), (StatusCode::OK, Some("24h")), "{updated}");
    }
    assert_eq!(s.spend(500).await.0, StatusCode::CREATED, "the 400 spent before had left the old windows");
    s.clock.advance(HOUR_MS);
    assert_eq!(s.spend(1).await.0, StatusCode::BAD_REQUEST, "the 500 counts in the lengthened windows");
}

#[tokio::test]
async fn velocity_conditions_are_validated_naming_the_field() {
    let s = setup().await;
    let cases = [
        (json!({"field": "debit_volume", "operator": ">", "value": 1}), "condition.window", "required"),
        (json!({"field": "balance", "operator": ">", "value": 1, "window": "1h"}), "condition.window", "applies to"),
        (
            json!({"field": "debit_volume", "operator": ">", "value": 1, "window": "soon"}),
            "condition.window",
            "duration",
        ),
        (
            json!({"field": "debit_volume", "operator": ">", "value": 1, "window": "500ms"}),
            "condition.window",
            "between",
        ),
        (
            json!({"field": "credit_volume", "operator": ">", "value": 1, "window": "400d"}),
            "condition.window",
            "between",
        ),
        (
            json!({"field": "transaction_count", "operator": ">", "value": 1, "precision": 100, "window": "1h"}),
            "condition.precision",
            "count",
        ),
        (
            json!({"field": "transaction_count", "operator": ">", "value": "1.5", "window": "1h"}),
            "condition.value",
            "decimal places",
        ),
        (
            json!({"field": "debit_volumes", "operator": ">", "value": 1, "window": "1h"}),
            "condition.field",
            "transaction_count",
        ),
    ];
    for (condition, field, says) in cases {
        let (status, answer) =
            s.server.post("/balance-monitors", json!({"balance_id": s.alice, "condition": condition.clone()})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{condition}: {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], field, "{condition}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{condition}: {answer}");
    }
}

/// A window's note of its next checkpoint is memory: once the balance is read from storage again
/// (here, after a rule with a window cleared the engine's cache), checkpoints taken before the
/// read must still roll out of the window, though the batch after it takes one of its own.
#[tokio::test]
async fn a_window_rolls_past_checkpoints_taken_before_its_balance_was_read_again() {
    let s = setup().await;
    let limit = json!({"field": "debit_volume", "operator": ">", "value": 150, "window": "1h"});
    s.monitor(limit, json!({"action": "reject"})).await;
    assert_eq!(s.spend(60).await.0, StatusCode::CREATED); // at T0
    assert_eq!(s.spend(40).await.0, StatusCode::CREATED); // at T0 too: 100 in the window
    let (_, alice) = s.server.get(&format!("/balances/{}", s.alice)).await;
    let rule = json!({"ledger_id": alice["ledger_id"], "currency": s.currency,
        "condition": {"field": "transaction_count", "operator": ">", "value": 1_000, "window": "1h"}});
    s.server.create("/balance-monitors", rule).await;
    s.clock.advance(HOUR_MS / 2);
    assert_eq!(s.spend(10).await.0, StatusCode::CREATED, "110 in the window");
    s.clock.advance(HOUR_MS / 2);
    let (status, answer) = s.spend(100).await;
    assert_eq!(status, StatusCode::CREATED, "the 100 of T0 has left the window: 10 + 100 = 110 {answer}");
    assert_eq!(s.spend(41).await.0, StatusCode::BAD_REQUEST, "151 would exceed the limit");
}
