//! Ledger-wide monitors (issue 18): one monitor on a `ledger_id` watches every balance of that
//! ledger, present and future, optionally narrowed by `currency` and by the balances' `meta_data`,
//! with each balance's own state (an edge rule triggers and resolves per balance). Every kind
//! works as a rule: notifications, guards (a floor for every wallet), velocity windows (a daily
//! limit per wallet) and automatic transfers (a sweep of every wallet). Over HTTP, on SQLite, or on
//! PostgreSQL when the suite runs there.

mod common;

use common::{monitor_signals, unique, Server, TestDatabase};
use keel::engine::Clock;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A new ledger in a new currency, and `n` balances in it.
async fn ledger_with(server: &Server, n: usize) -> (String, String, Vec<String>) {
    let (currency, ledger) = (common::unique_currency(), server.ledger("rules").await);
    let mut balances = Vec::new();
    for _ in 0..n {
        balances.push(server.balance(&ledger, &currency).await);
    }
    (ledger, currency, balances)
}

async fn rule(server: &Server, body: Value) -> Value {
    let (status, rule) = server.post("/balance-monitors", body).await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    rule
}

async fn pay(server: &Server, source: &str, destination: &str, amount: u64, currency: &str) -> (StatusCode, Value) {
    let body = json!({"precise_amount": amount, "currency": currency, "source": source,
        "destination": destination, "reference": unique("r"), "skip_queue": true, "allow_overdraft": true});
    server.post("/transactions", body).await
}

fn id(t: &Value) -> String {
    t["transaction_id"].as_str().unwrap().to_string()
}

/// The monitors `GET /balance-monitors/balances/{id}` lists: the rule's instance there.
async fn instance(server: &Server, balance: &str, rule: &Value) -> Value {
    let (status, listed) = server.get(&format!("/balance-monitors/balances/{balance}")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let found = listed.as_array().unwrap().iter().find(|m| m["monitor_id"] == rule["monitor_id"]).cloned();
    found.unwrap_or_else(|| panic!("{balance} lists {}: {listed}", rule["monitor_id"]))
}

#[tokio::test]
async fn a_rule_watches_every_balance_of_its_ledger_present_and_future_each_with_its_own_state() {
    let server = Server::in_process(None);
    let (ledger, currency, old) = ledger_with(&server, 1).await;
    let elsewhere = server.balance(&server.ledger("other").await, &currency).await;
    let rule = rule(
        &server,
        json!({"ledger_id": ledger, "trigger": "edge", "description": "big",
        "condition": {"field": "balance", "operator": ">", "value": 100}}),
    )
    .await;
    assert_eq!((rule["ledger_id"].as_str(), rule["balance_id"].as_str()), (Some(ledger.as_str()), Some("")));
    let new = server.balance(&ledger, &currency).await; // created after the rule
    let t1 = id(&pay(&server, "@World", &old[0], 150, &currency).await.1);
    let t2 = id(&pay(&server, "@World", &new, 150, &currency).await.1);
    pay(&server, "@World", &old[0], 10, &currency).await; // still over: an edge rule stays quiet
    pay(&server, "@World", &elsewhere, 500, &currency).await; // another ledger: not watched
    let t3 = id(&pay(&server, &old[0], "@World", 100, &currency).await.1); // 60: resolves, for old only
    let history = common::monitor_history(&server, &rule).await;
    let seen: Vec<(&str, &str, &str)> = history
        .iter()
        .map(|e| {
            let balance = e["data"]["balance_id"].as_str().unwrap();
            (e["event"].as_str().unwrap(), e["transaction_id"].as_str().unwrap(), balance)
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("balance.monitor", t1.as_str(), old[0].as_str()),
            ("balance.monitor", t2.as_str(), new.as_str()),
            ("balance.monitor.resolved", t3.as_str(), old[0].as_str()),
        ]
    );
    assert_eq!(history[1]["data"]["balance"]["balance"], json!(150), "the event shows the balance it is about");
    // Each balance's own state, and the rule's summary over all of them.
    let (on_old, on_new) = (instance(&server, &old[0], &rule).await, instance(&server, &new, &rule).await);
    assert_eq!((on_old["state"].as_str(), on_old["trigger_count"].as_i64()), (Some("ok"), Some(1)));
    assert_eq!((on_new["state"].as_str(), on_new["condition_state"].as_bool()), (Some("triggered"), Some(true)));
    assert_eq!(on_new["ledger_id"], json!(ledger));
    let (_, summary) = server.get(&format!("/balance-monitors/{}", rule["monitor_id"].as_str().unwrap())).await;
    assert_eq!((summary["state"].as_str(), summary["trigger_count"].as_i64()), (Some("triggered"), Some(2)));
    let (_, listed) = server.get("/balance-monitors?limit=100").await;
    assert!(listed.as_array().unwrap().iter().any(|m| m["monitor_id"] == rule["monitor_id"]), "{listed}");
    let (_, elsewhere_listed) = server.get(&format!("/balance-monitors/balances/{elsewhere}")).await;
    assert_eq!(elsewhere_listed, json!([]));
}

#[tokio::test]
async fn currency_and_balance_metadata_narrow_a_rule_and_a_metadata_change_brings_a_balance_in() {
    let server = Server::in_process(None);
    let (ledger, currency) = (server.ledger("tiers").await, common::unique_currency());
    let other_currency = common::unique_currency();
    let with = |currency: &str, tier: &str| {
        let meta_data = json!({"tier": tier, "region": "eu"});
        json!({"ledger_id": ledger, "currency": currency, "meta_data": meta_data})
    };
    let gold = server.create("/balances", with(&currency, "gold")).await["balance_id"].clone();
    let silver = server.create("/balances", with(&currency, "silver")).await["balance_id"].clone();
    let gold_elsewhere = server.create("/balances", with(&other_currency, "gold")).await["balance_id"].clone();
    let rule = rule(
        &server,
        json!({"ledger_id": ledger, "currency": currency, "balance_meta_data": {"tier": "gold"},
        "condition": {"field": "credit_balance", "operator": ">=", "value": 10}}),
    )
    .await;
    assert_eq!(
        (rule["currency"].as_str(), &rule["balance_meta_data"]),
        (Some(currency.as_str()), &json!({"tier": "gold"}))
    );
    let s = |v: &Value| v.as_str().unwrap().to_string();
    let t_gold = id(&pay(&server, "@World", &s(&gold), 10, &currency).await.1);
    pay(&server, "@World", &s(&silver), 10, &currency).await;
    pay(&server, "@World", &s(&gold_elsewhere), 10, &other_currency).await;
    assert_eq!(monitor_signals(&server, &rule).await, [("balance.monitor".to_string(), t_gold.clone())]);
    // Silver becomes gold: the next movement is watched.
    let (status, _) = server.post(&format!("/{}/metadata", s(&silver)), json!({"meta_data": {"tier": "gold"}})).await;
    assert_eq!(status, StatusCode::OK);
    let t_silver = id(&pay(&server, "@World", &s(&silver), 1, &currency).await.1);
    assert_eq!(monitor_signals(&server, &rule).await.last().unwrap().1, t_silver);
}

#[tokio::test]
async fn a_ledger_wide_guard_is_a_floor_for_every_wallet_including_new_ones() {
    let server = Server::in_process(None);
    let (ledger, currency, wallets) = ledger_with(&server, 2).await;
    let floor = rule(
        &server,
        json!({"ledger_id": ledger, "action": "reject",
        "condition": {"field": "balance", "operator": "<", "value": -50}}),
    )
    .await;
    let newcomer = server.balance(&ledger, &currency).await;
    for wallet in wallets.iter().chain([&newcomer]) {
        assert_eq!(pay(&server, wallet, "@World", 50, &currency).await.0, StatusCode::CREATED, "down to the floor");
        let (status, refused) = pay(&server, wallet, "@World", 1, &currency).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(refused["error_detail"]["code"], "TXN_REJECTED_BY_MONITOR", "{refused}");
        assert_eq!(refused["error_detail"]["details"]["monitor_id"], floor["monitor_id"], "{refused}");
        let (_, balance) = server.get(&format!("/balances/{wallet}")).await;
        assert_eq!(balance["balance"], json!(-50), "nothing moved");
    }
}

#[tokio::test]
async fn a_ledger_wide_daily_limit_counts_each_wallet_on_its_own() {
    let clock = Clock::manual(1_800_000_000_000);
    let server = Server::in_process_on_clock(None, clock);
    let (ledger, currency, wallets) = ledger_with(&server, 2).await;
    for wallet in &wallets {
        pay(&server, "@World", wallet, 10_000, &currency).await;
    }
    let limit = rule(
        &server,
        json!({"ledger_id": ledger, "action": "reject",
        "condition": {"field": "debit_volume", "operator": ">", "value": 500, "window": "24h"}}),
    )
    .await;
    let (a, b) = (&wallets[0], &wallets[1]);
    assert_eq!(pay(&server, a, "@World", 400, &currency).await.0, StatusCode::CREATED);
    assert_eq!(pay(&server, b, "@World", 500, &currency).await.0, StatusCode::CREATED, "b's own limit");
    assert_eq!(pay(&server, a, "@World", 101, &currency).await.0, StatusCode::BAD_REQUEST, "a: 501 in a day");
    assert_eq!(pay(&server, a, "@World", 100, &currency).await.0, StatusCode::CREATED, "a: exactly 500");
    clock.advance(24 * 3_600_000 - 1);
    assert_eq!(pay(&server, b, "@World", 1, &currency).await.0, StatusCode::BAD_REQUEST, "still the same day");
    clock.advance(1);
    assert_eq!(pay(&server, b, "@World", 500, &currency).await.0, StatusCode::CREATED, "a new day for b");
    assert_eq!(pay(&server, a, "@World", 100, &currency).await.0, StatusCode::CREATED, "a's 400 left the window");
    let (_, summary) = server.get(&format!("/balance-monitors/{}", limit["monitor_id"].as_str().unwrap())).await;
    assert_eq!(summary["condition"]["window"], "24h");
}

#[tokio::test]
async fn a_ledger_wide_sweep_moves_each_wallets_excess_to_savings() {
    let server = Server::in_process(None);
    let (ledger, currency, wallets) = ledger_with(&server, 2).await;
    let savings = server.balance(&server.ledger("savings").await, &currency).await;
    let sweep = rule(
        &server,
        json!({"ledger_id": ledger, "currency": currency, "action": "transfer",
        "condition": {"field": "balance", "operator": ">", "value": 1000},
        "transfer": {"destination": savings, "amount": "excess", "description": "sweep"}}),
    )
    .await;
    pay(&server, "@World", &wallets[0], 1_500, &currency).await;
    pay(&server, "@World", &wallets[1], 1_200, &currency).await;
    for (wallet, left) in [(&wallets[0], 1000), (&wallets[1], 1000)] {
        let (_, balance) = server.get(&format!("/balances/{wallet}")).await;
        assert_eq!(balance["balance"], json!(left), "{balance}");
    }
    let (_, saved) = server.get(&format!("/balances/{savings}")).await;
    assert_eq!(saved["balance"], json!(700));
    let (_, listed) = server.get(&format!("/balance-monitors/{}", sweep["monitor_id"].as_str().unwrap())).await;
    assert_eq!(listed["trigger_count"], json!(2));
}

#[tokio::test]
async fn updating_a_rule_re_arms_it_everywhere_and_deleting_it_stops_it() {
    let server = Server::in_process(None);
    let (ledger, currency, wallets) = ledger_with(&server, 2).await;
    let condition = |value: i64| json!({"field": "balance", "operator": ">", "value": value});
    let rule = rule(&server, json!({"ledger_id": ledger, "trigger": "crossing", "condition": condition(100)})).await;
    let path = format!("/balance-monitors/{}", rule["monitor_id"].as_str().unwrap());
    pay(&server, "@World", &wallets[0], 150, &currency).await;
    assert_eq!(instance(&server, &wallets[0], &rule).await["state"], "triggered");
    let (status, updated) =
        server.put(&path, json!({"ledger_id": ledger, "trigger": "crossing", "condition": condition(120)})).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let on_first = instance(&server, &wallets[0], &rule).await;
    assert_eq!((on_first["state"].as_str(), on_first["trigger_count"].as_i64()), (Some("ok"), Some(1)), "re-armed");
    let t = id(&pay(&server, "@World", &wallets[0], 1, &currency).await.1); // 151 > 120: fires again
    assert_eq!(monitor_signals(&server, &rule).await.last().unwrap().1, t);
    // A rule stays a rule of its ledger.
    let (status, refused) = server.put(&path, json!({"balance_id": wallets[1], "condition": condition(1)})).await;
    assert_eq!(
        (status, refused["error_detail"]["details"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("balance_id"))
    );
    assert_eq!(monitor_signals(&server, &rule).await.len(), 2);
    let (status, _) = server.request("DELETE", &path, None).await;
    assert_eq!(status, StatusCode::OK);
    pay(&server, "@World", &wallets[1], 500, &currency).await;
    assert_eq!(server.get(&path).await.0, StatusCode::NOT_FOUND);
    let (_, listed) = server.get(&format!("/balance-monitors/balances/{}", wallets[1])).await;
    assert_eq!(listed, json!([]), "no instance left");
    let (_, events) = server.get("/events?limit=1000").await;
    let of_rule = events.as_array().unwrap().iter().filter(|e| e["monitor_id"] == rule["monitor_id"]).count();
    assert_eq!(of_rule, 2, "nothing after the delete");
}

#[tokio::test]
async fn bad_rules_are_refused_naming_the_field() {
    let server = Server::in_process(None);
    let (ledger, currency, wallets) = ledger_with(&server, 1).await;
    let condition = json!({"field": "balance", "operator": ">", "value": 1});
    let cases = [
        (json!({"ledger_id": ledger, "balance_id": wallets[0], "condition": condition}), "ledger_id"),
        (json!({"balance_id": wallets[0], "currency": currency, "condition": condition}), "currency"),
        (json!({"balance_id": wallets[0], "balance_meta_data": {"a": 1}, "condition": condition}), "balance_meta_data"),
        (json!({"ledger_id": "ldg_missing", "condition": condition}), "ledger_id"),
        (json!({"ledger_id": ledger, "currency": "U S D", "condition": condition}), "currency"),
        (json!({"condition": condition}), "balance_id"),
        (
            json!({"ledger_id": ledger, "action": "transfer", "condition": condition,
                "transfer": {"destination": wallets[0], "amount": "excess"}}),
            "currency",
        ),
    ];
    for (body, field) in cases {
        let (status, refused) = server.post("/balance-monitors", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {refused}");
        assert_eq!(refused["error_detail"]["details"]["field"], field, "{body}: {refused}");
    }
}

#[tokio::test]
async fn a_rules_state_per_balance_survives_a_restart_and_is_stored_only_where_it_acted() {
    let database = TestDatabase::new();
    let server = Server::start_on(&database.url, &[]);
    let (ledger, currency, wallets) = ledger_with(&server, 20).await;
    let rule = rule(
        &server,
        json!({"ledger_id": ledger, "trigger": "edge",
        "condition": {"field": "balance", "operator": ">", "value": 100}}),
    )
    .await;
    for wallet in &wallets {
        pay(&server, "@World", wallet, 50, &currency).await; // evaluated, still armed: nothing stored
    }
    pay(&server, "@World", &wallets[3], 100, &currency).await;
    drop(server);
    let server = Server::start_on(&database.url, &[]);
    pay(&server, "@World", &wallets[3], 100, &currency).await; // still over: no second trigger
    assert_eq!(monitor_signals(&server, &rule).await.len(), 1);
    let (_, summary) = server.get(&format!("/balance-monitors/{}", rule["monitor_id"].as_str().unwrap())).await;
    assert_eq!(summary["trigger_count"], json!(1));
    assert_eq!(database.count("SELECT COUNT(*) FROM ledger_monitor_states"), 1, "one row: the balance it acted on");
}
