//! Balance monitors: the whole API, validation, every operator and field, precision edge
//! cases, both trigger modes, updates and deletes taking effect at once, and which transactions
//! fire (every kind of movement; never a rejected one). Through the app in this process, except
//! the callback-host rules, which deliver to a real receiver from a real server.

mod common;

use common::invariants::big;
use common::receiver::Receiver;
use common::{unique, unique_currency, wait_for, Server, TestDatabase};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Setup {
    server: Server,
    currency: String,
    alice: String,
    bob: String,
}

/// An app with two balances, in this process (`Server::in_process`): these tests read monitor
/// events through the API; the tests that deliver webhooks start real servers of their own.
async fn setup() -> Setup {
    let server = Server::in_process(None);
    let currency = unique_currency();
    let ledger = server.ledger("monitored").await;
    let alice = server.balance(&ledger, &currency).await;
    let bob = server.balance(&ledger, &currency).await;
    Setup { server, currency, alice, bob }
}

impl Setup {
    async fn monitor(&self, balance: &str, field: &str, op: &str, value: Value, extra: Value) -> Value {
        let mut body = json!({"balance_id": balance, "condition": {"field": field, "operator": op, "value": value},
            "description": "test monitor"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        self.server.create("/balance-monitors", body).await
    }

    async fn pay(&self, source: &str, destination: &str, amount: u64, extra: Value) -> Value {
        let mut body = json!({"precise_amount": amount, "currency": self.currency, "source": source,
            "destination": destination, "reference": unique("m"), "skip_queue": true});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        self.server.create("/transactions", body).await
    }

    async fn events(&self, monitor: &Value) -> Vec<Value> {
        let (status, events) =
            self.server.get(&format!("/balance-monitors/{}/events", monitor["monitor_id"].as_str().unwrap())).await;
        assert_eq!(status, StatusCode::OK, "{events}");
        events.as_array().unwrap().clone()
    }

    /// The transactions the monitor triggered on (`balance.monitor`; resolve events left out).
    async fn fired_on(&self, monitor: &Value) -> Vec<String> {
        let events = self.events(monitor).await;
        let triggers = events.iter().filter(|e| e["event"] == "balance.monitor");
        let mut ids: Vec<String> = triggers.map(|e| e["transaction_id"].as_str().unwrap().to_string()).collect();
        ids.reverse(); // the endpoint lists newest first
        ids
    }
}

fn id(v: &Value) -> String {
    v["transaction_id"].as_str().or(v["monitor_id"].as_str()).unwrap().to_string()
}

#[tokio::test]
async fn monitors_are_created_read_listed_updated_and_deleted() {
    let s = setup().await;
    let created = s
        .monitor(
            &s.alice,
            "debit_balance",
            ">",
            json!(1000),
            json!({"condition": {"field": "debit_balance", "operator": ">",
            "value": 1000, "precision": 100}, "call_back_url": "https://example.com/hook", "meta_data": {"tier": "1"}}),
        )
        .await;
    let mid = created["monitor_id"].as_str().unwrap();
    assert!(mid.starts_with("mon_"), "{created}");
    assert_eq!(created["balance_id"], s.alice.as_str());
    assert_eq!(
        created["condition"],
        json!({"field": "debit_balance", "operator": ">", "value": 1000, "precision": 100, "precise_value": 100000})
    );
    assert_eq!(created["description"], "test monitor");
    assert_eq!(created["call_back_url"], "https://example.com/hook");
    assert_eq!(created["meta_data"], json!({"tier": "1"}));
    assert_eq!((created["trigger"].as_str(), created["state"].as_str()), (Some("every"), Some("ok")));
    assert_eq!((created["trigger_count"].as_i64(), created["last_triggered_at"].is_null()), (Some(0), true));

    assert_eq!(s.server.get(&format!("/balance-monitors/{mid}")).await, (StatusCode::OK, created.clone()));
    assert_eq!(s.server.get("/balance-monitors").await.1, json!([created.clone()]));
    assert_eq!(s.server.get(&format!("/balance-monitors/balances/{}", s.alice)).await.1, json!([created.clone()]));
    assert_eq!(s.server.get(&format!("/balance-monitors/balances/{}", s.bob)).await, (StatusCode::OK, json!([])));

    let update = json!({"balance_id": s.bob,
        "condition": {"field": "balance", "operator": "<=", "value": 2.5, "precision": 1000},
        "description": "moved", "trigger": "crossing"});
    let (status, updated) = s.server.put(&format!("/balance-monitors/{mid}"), update).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["condition"]["precise_value"], json!(2500), "precise_value is recomputed");
    assert_eq!((updated["balance_id"].as_str(), updated["trigger"].as_str()), (Some(s.bob.as_str()), Some("crossing")));
    assert_eq!(updated["created_at"], created["created_at"]);
    assert_eq!(s.server.get(&format!("/balance-monitors/{mid}")).await.1, updated);
    assert_eq!(s.server.get(&format!("/balance-monitors/balances/{}", s.alice)).await.1, json!([]));

    let (status, deleted) = s.server.request("DELETE", &format!("/balance-monitors/{mid}"), None).await;
    assert_eq!((status, deleted), (StatusCode::OK, json!({"message": "BalanceMonitor deleted successfully"})));
    for (method, body) in [
        ("GET", None),
        ("PUT", Some(json!({"balance_id": s.bob, "condition": {"field": "balance", "operator": ">", "value": 1}}))),
        ("DELETE", None),
        ("GET", None),
    ] {
        let (status, answer) = s.server.request(method, &format!("/balance-monitors/{mid}"), body).await;
        assert_eq!(
            (status, answer["error_detail"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("BAL_MONITOR_NOT_FOUND")),
            "{method}"
        );
    }
    let (status, answer) = s.server.get(&format!("/balance-monitors/{mid}/events")).await;
    assert_eq!(
        (status, answer["error_detail"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("BAL_MONITOR_NOT_FOUND"))
    );
}

#[tokio::test]
async fn bad_monitors_are_400_naming_the_field() {
    let s = setup().await;
    let ok = json!({"field": "balance", "operator": ">", "value": 1});
    let with = |key: &str, value: Value| {
        let mut c = ok.clone();
        c[key] = value;
        json!({"balance_id": s.alice, "condition": c})
    };
    let cases = vec![
        (json!({"condition": ok}), "balance_id"),
        (json!({"balance_id": "", "condition": ok}), "balance_id"),
        (json!({"balance_id": "bln_missing", "condition": ok}), "balance_id"),
        (json!({"balance_id": 7, "condition": ok}), "balance_id"),
        (json!({"balance_id": s.alice}), "condition"),
        (with("field", json!("balanse")), "condition.field"),
        (with("field", json!("available_balance")), "condition.field"),
        (with("operator", json!("=>")), "condition.operator"),
        (with("operator", json!("==")), "condition.operator"),
        (with("value", json!("abc")), "condition.value"),
        (with("value", json!(null)), "condition.value"),
        (with("value", json!(true)), "condition.value"),
        (with("precision", json!(3)), "condition.precision"),
        (with("precision", json!("1e99")), "condition.precision"),
        (
            json!({"balance_id": s.alice,
                "condition": {"field": "balance", "operator": ">", "value": 0.001, "precision": 100}}),
            "condition.value",
        ),
        (json!({"balance_id": s.alice, "condition": ok, "trigger": "sometimes"}), "trigger"),
        (json!({"balance_id": s.alice, "condition": ok, "call_back_url": "ftp://example.com"}), "call_back_url"),
        (json!({"balance_id": s.alice, "condition": ok, "call_back_url": "not a url"}), "call_back_url"),
    ];
    for (body, field) in cases {
        let (status, answer) = s.server.post("/balance-monitors", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_eq!(answer["error_detail"]["code"], "BAL_VALIDATION_ERROR", "{body} → {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], field, "{body} → {answer}");
        assert!(answer["error"].as_str().unwrap().contains(field.rsplit('.').next().unwrap()), "{answer}");
    }
    assert_eq!(s.server.get("/balance-monitors").await.1, json!([]), "nothing was created");
    let good = s.monitor(&s.alice, "balance", ">", json!(1), json!({})).await;
    let (status, answer) = s
        .server
        .put(&format!("/balance-monitors/{}", good["monitor_id"].as_str().unwrap()), with("operator", json!("~")))
        .await;
    assert_eq!(
        (status, answer["error_detail"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("condition.operator"))
    );
}

#[tokio::test]
async fn every_fires_on_each_transaction_crossing_only_on_the_way_up() {
    let s = setup().await;
    let every = s.monitor(&s.alice, "balance", ">", json!(10), json!({})).await;
    let crossing = s.monitor(&s.alice, "balance", ">", json!(10), json!({"trigger": "crossing"})).await;
    assert_eq!(crossing["trigger"], "crossing");
    s.pay("@World", &s.alice, 5, json!({})).await; // 5: false
    let t2 = s.pay("@World", &s.alice, 10, json!({})).await; // 15: true (crosses)
    let t3 = s.pay("@World", &s.alice, 1, json!({})).await; // 16: still true
    s.pay(&s.alice, &s.bob, 10, json!({})).await; // 6: false
    let t5 = s.pay("@World", &s.alice, 20, json!({})).await; // 26: crosses again
    assert_eq!(s.fired_on(&every).await, [id(&t2), id(&t3), id(&t5)]);
    assert_eq!(s.fired_on(&crossing).await, [id(&t2), id(&t5)]);
    let resolves: Vec<Value> =
        s.events(&crossing).await.into_iter().filter(|e| e["event"] == "balance.monitor.resolved").collect();
    assert_eq!(resolves.len(), 1, "crossing resolved once, on the way down: {resolves:?}");
    let (_, every_now) = s.server.get(&format!("/balance-monitors/{}", id(&every))).await;
    assert_eq!((every_now["trigger_count"].as_i64(), every_now["state"].as_str()), (Some(3), Some("triggered")));
    assert!(every_now["last_triggered_at"].as_str().unwrap().ends_with('Z'));
    let (_, crossing_now) = s.server.get(&format!("/balance-monitors/{}", id(&crossing))).await;
    assert_eq!(crossing_now["trigger_count"], json!(2));
    let latest = &s.events(&every).await[0];
    assert_eq!(latest["event"], "balance.monitor");
    assert_eq!(latest["data"]["balance"]["balance"], json!(26), "the balance as it stood right after t5");
    assert_eq!(latest["data"]["monitor_id"], id(&every).as_str());
    assert_eq!(latest["status"], "no_target", "no URL anywhere: recorded, not delivered");
}

#[tokio::test]
async fn every_operator_on_every_field_matches_a_direct_evaluation() {
    let s = setup().await;
    s.pay("@World", &s.alice, 1000, json!({})).await;
    s.pay(&s.alice, &s.bob, 300, json!({})).await;
    // After the next transaction (alice → bob, 70 held): alice's fields are:
    let after = [
        ("balance", 700i64),
        ("credit_balance", 1000),
        ("debit_balance", 300),
        ("inflight_balance", -70),
        ("inflight_credit_balance", 0),
        ("inflight_debit_balance", 70),
    ];
    let operators = [(">", 0usize), ("<", 1), ("=", 2), ("!=", 3), (">=", 4), ("<=", 5)];
    let mut expected = Vec::new();
    for (field, value) in after {
        for (op, _) in operators {
            for threshold in [value - 1, value, value + 1] {
                let monitor = s.monitor(&s.alice, field, op, json!(threshold), json!({})).await;
                let holds = match op {
                    ">" => value > threshold,
                    "<" => value < threshold,
                    "=" => value == threshold,
                    "!=" => value != threshold,
                    ">=" => value >= threshold,
                    _ => value <= threshold,
                };
                expected.push((monitor, holds, format!("{field} {op} {threshold}")));
            }
        }
    }
    let held = s.pay(&s.alice, &s.bob, 70, json!({"inflight": true})).await;
    for (monitor, holds, what) in &expected {
        let fired = s.fired_on(monitor).await;
        assert_eq!(fired.contains(&id(&held)), *holds, "{what}: fired on {fired:?}");
    }
}

#[tokio::test]
async fn thresholds_are_exact_with_precision() {
    let s = setup().await;
    let tenth = s
        .monitor(
            &s.alice,
            "balance",
            "=",
            json!(0.1),
            json!({"condition": {"field": "balance", "operator": "=", "value": 0.1, "precision": 100}}),
        )
        .await;
    assert_eq!(tenth["condition"]["precise_value"], json!(10));
    assert_eq!(tenth["condition"]["value"].to_string(), "0.1");
    let huge = s
        .monitor(
            &s.alice,
            "credit_balance",
            ">=",
            json!(0),
            json!({"condition": {"field": "credit_balance", "operator": ">=",
            "value": "1234567890123456789012345678.9", "precision": 100}}),
        )
        .await;
    assert_eq!(huge["condition"]["precise_value"].to_string(), "123456789012345678901234567890");
    let zero = s.monitor(&s.alice, "balance", ">", json!(0), json!({})).await;
    let t = s.pay("@World", &s.alice, 10, json!({})).await;
    assert_eq!(s.fired_on(&tenth).await, [id(&t)], "10 minor units = 0.1 × 100 exactly");
    assert_eq!(s.fired_on(&zero).await, [id(&t)]);
    assert!(s.fired_on(&huge).await.is_empty());
    let raw = format!(
        r#"{{"precise_amount": 123456789012345678901234567880, "currency": "{}", "source": "@World",
            "destination": "{}", "reference": "{}", "skip_queue": true}}"#,
        s.currency,
        s.alice,
        unique("h")
    );
    let answer = s.server.send("POST", "/transactions", &[], raw.into_bytes()).await.unwrap();
    assert_eq!(answer.status, StatusCode::CREATED);
    let t2: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(s.fired_on(&huge).await, [id(&t2)], "credit 123456789012345678901234567890 ≥ the threshold exactly");
    assert_eq!(
        big(&s.events(&huge).await[0]["data"]["balance"]["credit_balance"]).to_string(),
        "123456789012345678901234567890"
    );
}

#[tokio::test]
async fn updates_and_deletes_take_effect_on_the_next_transaction() {
    let s = setup().await;
    let m = s.monitor(&s.alice, "credit_balance", ">", json!(100), json!({})).await;
    let mid = id(&m);
    s.pay("@World", &s.alice, 50, json!({})).await; // 50: not > 100
    let (status, _) = s
        .server
        .put(
            &format!("/balance-monitors/{mid}"),
            json!({"balance_id": s.alice,
        "condition": {"field": "credit_balance", "operator": ">", "value": 60}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let t2 = s.pay("@World", &s.alice, 20, json!({})).await; // 70 > 60
    assert_eq!(s.fired_on(&m).await, [id(&t2)]);
    s.server.request("DELETE", &format!("/balance-monitors/{mid}"), None).await;
    s.pay("@World", &s.alice, 20, json!({})).await;
    let (_, all) = s.server.get("/events?limit=1000").await;
    let for_m: Vec<&Value> = all.as_array().unwrap().iter().filter(|e| e["monitor_id"] == mid.as_str()).collect();
    assert_eq!(for_m.len(), 1, "no event after the delete: {for_m:?}");
}

#[tokio::test]
async fn a_monitor_moved_to_another_balance_watches_only_the_new_one() {
    // Both balances have moved money (and so had their monitors read) before the move.
    let s = setup().await;
    let m = s.monitor(&s.alice, "credit_balance", ">", json!(0), json!({})).await;
    let t1 = s.pay("@World", &s.alice, 5, json!({})).await;
    s.pay("@World", &s.bob, 5, json!({})).await;
    let moved = json!({"balance_id": s.bob, "condition": {"field": "credit_balance", "operator": ">", "value": 0}});
    let (status, body) = s.server.put(&format!("/balance-monitors/{}", id(&m)), moved).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s.pay("@World", &s.alice, 5, json!({})).await; // alice is no longer watched
    let t3 = s.pay("@World", &s.bob, 5, json!({})).await;
    assert_eq!(s.fired_on(&m).await, [id(&t1), id(&t3)]);
    let (_, stored) = s.server.get(&format!("/balance-monitors/{}", id(&m))).await;
    assert_eq!(stored["trigger_count"], 2, "{stored}");
}

#[tokio::test]
async fn a_monitor_created_just_before_a_transaction_fires_on_it() {
    let s = setup().await;
    for round in 0..20 {
        let m = s.monitor(&s.alice, "credit_balance", ">", json!(round), json!({})).await;
        let t = s.pay("@World", &s.alice, 1, json!({})).await;
        assert_eq!(s.fired_on(&m).await, [id(&t)], "round {round}");
        s.server.request("DELETE", &format!("/balance-monitors/{}", id(&m)), None).await;
    }
}

#[tokio::test]
async fn inflight_commit_void_refund_and_queued_transactions_fire_rejected_ones_do_not() {
    let s = setup().await;
    s.pay("@World", &s.alice, 1000, json!({})).await;
    let held = s.monitor(&s.bob, "inflight_credit_balance", ">", json!(0), json!({})).await;
    let debit = s.monitor(&s.alice, "debit_balance", ">", json!(0), json!({})).await;
    let bob_has = s.monitor(&s.bob, "balance", ">", json!(0), json!({})).await;

    let hold = s.pay(&s.alice, &s.bob, 100, json!({"inflight": true})).await;
    let (_, commit) = s
        .server
        .put(&format!("/transactions/inflight/{}", id(&hold)), json!({"status": "commit", "precise_amount": 40}))
        .await;
    let (_, void) = s.server.put(&format!("/transactions/inflight/{}", id(&hold)), json!({"status": "void"})).await;
    let (status, refund) = s.server.post(&format!("/refund-transaction/{}", id(&commit)), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    let queued = s.pay(&s.alice, &s.bob, 5, json!({"skip_queue": false})).await;
    wait_for(&s.server, &format!("/transactions/{}", id(&queued)), |t| t["status"] == "APPLIED").await;
    let (status, _) = s
        .server
        .post(
            "/transactions",
            json!({"precise_amount": 1_000_000, "currency": s.currency, "source": s.alice,
        "destination": s.bob, "reference": unique("r"), "skip_queue": true}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let rejected = s.pay(&s.alice, &s.bob, 1_000_000, json!({"skip_queue": false})).await;
    wait_for(&s.server, &format!("/transactions/{}", id(&rejected)), |t| t["status"] == "REJECTED").await;

    // bob's inflight credit: 100 after the hold, 60 after the commit, 0 after the void.
    assert_eq!(s.fired_on(&held).await, [id(&hold), id(&commit)]);
    // alice's debit is 0 until the commit, then > 0 on every later transaction that touches her.
    assert_eq!(s.fired_on(&debit).await, [id(&commit), id(&void), id(&refund), id(&queued)]);
    // bob's balance: 40 after the commit, 40 at the void, 0 after the refund, 5 after the queued one.
    assert_eq!(s.fired_on(&bob_has).await, [id(&commit), id(&void), id(&queued)]);
}

#[tokio::test]
async fn call_back_url_hosts_can_be_restricted_to_an_allow_list() {
    let server = Server::start_with_args(&["--callback-allowed-hosts", "hooks.example.com,127.0.0.1"]);
    let currency = unique_currency();
    let balance = server.balance(&server.ledger("l").await, &currency).await;
    let condition = json!({"field": "balance", "operator": ">", "value": 1});
    let body = |url: &str| json!({"balance_id": balance, "condition": condition, "call_back_url": url});
    for allowed in ["https://hooks.example.com/keel", "http://127.0.0.1:9000/hook", "https://HOOKS.example.com/x"] {
        let (status, answer) = server.post("/balance-monitors", body(allowed)).await;
        assert_eq!(status, StatusCode::CREATED, "{allowed}: {answer}");
    }
    for refused in
        ["https://evil.example.net/steal", "http://169.254.169.254/latest/meta-data", "http://localhost:9000/hook"]
    {
        let (status, answer) = server.post("/balance-monitors", body(refused)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}: {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], "call_back_url");
    }
}

#[tokio::test]
async fn a_monitor_written_before_the_allow_list_cannot_deliver_outside_it() {
    let receiver = Receiver::start().await;
    let database = TestDatabase::new();
    let server = Server::start_on(&database.url, &[]);
    let currency = unique_currency();
    let balance = server.balance(&server.ledger("l").await, &currency).await;
    let monitor = server
        .create(
            "/balance-monitors",
            json!({"balance_id": balance, "condition": {"field": "credit_balance", "operator": ">", "value": 0},
                   "call_back_url": receiver.url}),
        )
        .await;
    assert!(server.stop());

    // The operator narrows the list; the monitor stored earlier still names 127.0.0.1.
    let server = Server::start_on(&database.url, &["--callback-allowed-hosts", "hooks.example.com"]);
    let (status, _) = server.transfer("@World", &balance, 5, &currency).await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("/balance-monitors/{}/events", monitor["monitor_id"].as_str().unwrap());
    let history = wait_for(&server, &path, |e| e.as_array().is_some_and(|l| l.len() == 1)).await;
    let event_id = history[0]["event_id"].as_str().unwrap().to_string();
    let event = wait_for(&server, &format!("/events/{event_id}"), |e| e["status"] == "failed").await;
    assert!(event["last_error"].as_str().unwrap().contains("127.0.0.1"), "{event}");
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 1, "refused once, not retried: {event}");
    assert_eq!(event["deliveries"][0]["status_code"], serde_json::Value::Null, "nothing was sent: {event}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(receiver.received().is_empty(), "the receiver outside the list got nothing");
}
