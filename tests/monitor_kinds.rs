//! Monitors beyond Blnk's (issue 18), part one: Blnk PR #388's `edge`/`level` triggers and
//! `condition_state`; `balance.monitor.resolved` when an edge monitor re-arms; a re-arm level
//! (`condition.reset_value`) so a balance hovering at a threshold alerts once. Through the app in
//! this process (SQLite, or PostgreSQL with `KEEL_TEST_POSTGRES_URL`), except the delivery test,
//! which sends both events from a real server to a real receiver.

mod common;

use common::receiver::Receiver;
use common::{unique, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Setup {
    server: Server,
    currency: String,
    alice: String,
    bob: String,
}

async fn setup_on(server: Server) -> Setup {
    let (currency, ids) = common::parties(&server, 2).await;
    let (alice, bob) = (ids[1].clone(), ids[2].clone());
    Setup { server, currency, alice, bob }
}

impl Setup {
    async fn monitor(&self, condition: Value, extra: Value) -> Value {
        let mut body = json!({"balance_id": self.alice, "condition": condition});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        self.server.create("/balance-monitors", body).await
    }

    /// Moves `amount` into Alice (from @World) or, when negative, out of her (to Bob).
    async fn move_alice(&self, amount: i64) -> String {
        let (source, destination) =
            if amount > 0 { ("@World", self.alice.as_str()) } else { (self.alice.as_str(), self.bob.as_str()) };
        let body = json!({"precise_amount": amount.abs(), "currency": self.currency, "source": source,
            "destination": destination, "reference": unique("k"), "skip_queue": true});
        self.server.create("/transactions", body).await["transaction_id"].as_str().unwrap().to_string()
    }

    /// The monitor's history, oldest first: (event, transaction id).
    async fn history(&self, monitor: &Value) -> Vec<(String, String)> {
        common::monitor_signals(&self.server, monitor).await
    }

    async fn read(&self, monitor: &Value) -> Value {
        let (status, read) =
            self.server.get(&format!("/balance-monitors/{}", monitor["monitor_id"].as_str().unwrap())).await;
        assert_eq!(status, StatusCode::OK, "{read}");
        read
    }
}

fn fired(txn: &str) -> (String, String) {
    ("balance.monitor".into(), txn.into())
}

fn resolved(txn: &str) -> (String, String) {
    ("balance.monitor.resolved".into(), txn.into())
}

#[tokio::test]
async fn blnk_pr_388_spellings_are_accepted_and_read_back_with_condition_state() {
    let s = setup_on(Server::in_process(None)).await;
    let condition = json!({"field": "balance", "operator": ">", "value": 10});
    let edge = s.monitor(condition.clone(), json!({"trigger": "edge"})).await;
    let level = s.monitor(condition.clone(), json!({"trigger": "level"})).await;
    let default = s.monitor(condition.clone(), json!({})).await;
    assert_eq!((edge["trigger"].as_str(), level["trigger"].as_str()), (Some("edge"), Some("level")));
    assert_eq!(default["trigger"], "every", "Keel keeps Blnk's released behaviour as the default");
    for m in [&edge, &level, &default] {
        assert_eq!(m["condition_state"], false, "armed at creation: {m}");
        assert_eq!(m["action"], "notify");
        assert!(m["condition"].get("reset_value").is_none(), "no re-arm level unless asked: {m}");
    }
    let t1 = s.move_alice(20).await;
    let t2 = s.move_alice(5).await;
    for m in [&edge, &level] {
        let read = s.read(m).await;
        assert_eq!((read["condition_state"].as_bool(), read["state"].as_str()), (Some(true), Some("triggered")));
    }
    assert_eq!(s.history(&edge).await, [fired(&t1)], "edge: once, on the way up");
    assert_eq!(s.history(&level).await, [fired(&t1), fired(&t2)], "level: while it holds");
    let (status, body) = s
        .server
        .post("/balance-monitors", json!({"balance_id": s.alice, "condition": condition, "trigger": "rising"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error_detail"]["details"]["field"], "trigger");
    assert!(body["error"].as_str().unwrap().contains("edge"), "{body}");
    // A list shows the same fields.
    let (_, list) = s.server.get(&format!("/balance-monitors/balances/{}", s.alice)).await;
    assert!(list.as_array().unwrap().iter().all(|m| m["condition_state"].is_boolean() && m["action"] == "notify"));
}

#[tokio::test]
async fn an_edge_monitor_resolves_when_its_condition_turns_false_and_its_history_lists_both() {
    let s = setup_on(Server::in_process(None)).await;
    let low =
        s.monitor(json!({"field": "balance", "operator": "<", "value": 100}), json!({"trigger": "crossing"})).await;
    let level =
        s.monitor(json!({"field": "balance", "operator": "<", "value": 100}), json!({"trigger": "level"})).await;
    let t1 = s.move_alice(50).await; // 50: holds
    let t2 = s.move_alice(100).await; // 150: resolved
    let t3 = s.move_alice(-80).await; // 70: holds again
    assert_eq!(s.history(&low).await, [fired(&t1), resolved(&t2), fired(&t3)]);
    assert_eq!(s.history(&level).await, [fired(&t1), fired(&t3)], "a level monitor never resolves");
    let read = s.read(&low).await;
    assert_eq!((read["trigger_count"].as_i64(), read["condition_state"].as_bool()), (Some(2), Some(true)));
    // The resolve event has the trigger's shape: the monitor as of it, the balance, the transaction.
    let path = format!("/balance-monitors/{}/events", low["monitor_id"].as_str().unwrap());
    let (_, events) = s.server.get(&path).await;
    let resolve = events.as_array().unwrap().iter().find(|e| e["event"] == "balance.monitor.resolved").unwrap();
    assert_eq!(resolve["data"]["condition_state"], false);
    assert_eq!(resolve["data"]["state"], "ok");
    assert_eq!(resolve["data"]["balance"]["balance"], json!(150));
    assert_eq!(resolve["data"]["transaction_id"], t2.as_str());
    assert_eq!(resolve["monitor_id"], low["monitor_id"]);
    // And the events list filters as for any event.
    let (_, all) = s.server.get("/events?limit=100").await;
    assert!(all.as_array().unwrap().iter().any(|e| e["event"] == "balance.monitor.resolved"));
}

#[tokio::test]
async fn a_reset_value_keeps_a_hovering_balance_from_alerting_on_every_wobble() {
    let s = setup_on(Server::in_process(None)).await;
    let condition = json!({"field": "balance", "operator": "<", "value": "1.00", "precision": 100,
        "reset_value": "1.50"});
    let hysteresis = s.monitor(condition, json!({"trigger": "edge"})).await;
    assert_eq!(hysteresis["condition"]["reset_value"], json!(1.5));
    let plain = s.monitor(json!({"field": "balance", "operator": "<", "value": 100}), json!({"trigger": "edge"})).await;
    let t1 = s.move_alice(99).await; // 0.99: both trigger
    let t2 = s.move_alice(2).await; // 1.01: plain resolves; hysteresis stays (below 1.50)
    let t3 = s.move_alice(-3).await; // 0.98: plain alerts again; hysteresis quiet
    let t4 = s.move_alice(51).await; // 1.49: plain resolves
    let t5 = s.move_alice(1).await; // 1.50: hysteresis re-arms
    let t6 = s.move_alice(-60).await; // 0.90: both alert
    assert_eq!(s.history(&hysteresis).await, [fired(&t1), resolved(&t5), fired(&t6)]);
    assert_eq!(
        s.history(&plain).await,
        [fired(&t1), resolved(&t2), fired(&t3), resolved(&t4), fired(&t6)],
        "without a re-arm level every wobble across 1.00 is an alert"
    );
    // An update may remove the level (PUT takes the whole definition) and re-arms the monitor.
    let path = format!("/balance-monitors/{}", hysteresis["monitor_id"].as_str().unwrap());
    let (status, updated) = s
        .server
        .put(
            &path,
            json!({"balance_id": s.alice, "trigger": "edge",
            "condition": {"field": "balance", "operator": "<", "value": 100}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert!(updated["condition"].get("reset_value").is_none(), "{updated}");
    assert_eq!(updated["condition_state"], false);
}

#[tokio::test]
async fn a_reset_value_is_validated_like_value_and_must_mean_something() {
    let s = setup_on(Server::in_process(None)).await;
    let cases = [
        (json!({"operator": ">", "value": 10, "reset_value": 11}), "edge", "at most"),
        (json!({"operator": "<=", "value": 10, "reset_value": 9}), "crossing", "at least"),
        (json!({"operator": "=", "value": 10, "reset_value": 10}), "edge", "needs >, >=, < or <="),
        (json!({"operator": ">", "value": 10, "reset_value": "abc"}), "edge", "condition.reset_value"),
        (json!({"operator": ">", "value": 10, "precision": 100, "reset_value": "9.999"}), "edge", "decimal places"),
        (json!({"operator": ">", "value": 10, "reset_value": 5}), "every", "edge (crossing) monitors"),
        (json!({"operator": ">", "value": 10, "reset_value": 5}), "level", "edge (crossing) monitors"),
    ];
    for (condition, trigger, says) in cases {
        let mut condition = condition;
        condition["field"] = json!("balance");
        let body = json!({"balance_id": s.alice, "condition": condition, "trigger": trigger});
        let (status, answer) = s.server.post("/balance-monitors", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{condition}: {answer}");
        assert_eq!(answer["error_detail"]["code"], "BAL_VALIDATION_ERROR");
        assert_eq!(answer["error_detail"]["details"]["field"], "condition.reset_value", "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{condition}: {answer}");
    }
    let guard = json!({"balance_id": s.alice, "trigger": "edge", "action": "reject",
        "condition": {"field": "balance", "operator": ">", "value": 10, "reset_value": 5}});
    let (status, answer) = s.server.post("/balance-monitors", guard).await;
    assert_eq!(
        (status, answer["error_detail"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("condition.reset_value"))
    );
}

#[tokio::test]
async fn both_events_reach_a_real_receiver_in_commit_order() {
    let receiver = Receiver::start().await;
    let s = setup_on(Server::start_with_args(&["--webhook-url", &receiver.url])).await;
    let monitor =
        s.monitor(json!({"field": "balance", "operator": ">", "value": 10}), json!({"trigger": "edge"})).await;
    let t1 = s.move_alice(11).await;
    let t2 = s.move_alice(-5).await;
    receiver.wait_until_event("balance.monitor.resolved").await;
    let ours: Vec<Value> = receiver
        .received()
        .into_iter()
        .map(|r| r.body)
        .filter(|b| b["data"]["monitor_id"] == monitor["monitor_id"])
        .collect();
    let seen: Vec<(&str, &str)> =
        ours.iter().map(|b| (b["event"].as_str().unwrap(), b["data"]["transaction_id"].as_str().unwrap())).collect();
    assert_eq!(seen, [("balance.monitor", t1.as_str()), ("balance.monitor.resolved", t2.as_str())]);
    assert!(ours[0]["sequence"].as_i64() < ours[1]["sequence"].as_i64(), "in commit order");
}
