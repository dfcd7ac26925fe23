//! Automatic transfers (issue 18): a monitor with `action: "transfer"` records a transfer when it
//! triggers, in the same commit as the transaction that triggered it: a sweep of the excess above a
//! threshold, a top-up of the shortfall below a floor, a fixed amount. A refused one (no funds, a
//! guard, a chain too long) moves nothing and is a `balance.monitor.action_failed` event; the
//! triggering transaction stands; the books balance after every action. Through the app in this
//! process, on SQLite or PostgreSQL.

mod common;

use common::invariants::assert_ledger_invariants;
use common::{unique, unique_currency, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Setup {
    server: Server,
    currency: String,
    ledger: String,
    wallet: String,
    savings: String,
}

async fn setup() -> Setup {
    let server = Server::in_process(None);
    let currency = unique_currency();
    let ledger = server.ledger("actions").await;
    let wallet = server.balance(&ledger, &currency).await;
    let savings = server.balance(&ledger, &currency).await;
    Setup { server, currency, ledger, wallet, savings }
}

impl Setup {
    async fn monitor(&self, balance: &str, condition: Value, extra: Value) -> Value {
        let mut body = json!({"balance_id": balance, "condition": condition, "action": "transfer"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        self.server.create("/balance-monitors", body).await
    }

    async fn pay(&self, source: &str, destination: &str, amount: i64) -> Value {
        let body = json!({"precise_amount": amount, "currency": self.currency, "source": source,
            "destination": destination, "reference": unique("a"), "skip_queue": true, "precision": 100});
        self.server.create("/transactions", body).await
    }

    async fn balance_of(&self, id: &str) -> i64 {
        let (_, b) = self.server.get(&format!("/balances/{id}")).await;
        b["balance"].as_i64().unwrap()
    }

    /// The events of `monitor`, oldest first: (event, data).
    async fn events(&self, monitor: &Value) -> Vec<(String, Value)> {
        let history = common::monitor_history(&self.server, monitor).await;
        history.into_iter().map(|e| (e["event"].as_str().unwrap().to_string(), e["data"].clone())).collect()
    }

    /// The transactions an automatic transfer of `monitor` recorded.
    async fn automatic(&self, monitor: &Value) -> Vec<Value> {
        let (_, all) = self.server.get("/transactions?limit=100&sort_order=asc").await;
        let id = &monitor["monitor_id"];
        all.as_array().unwrap().iter().filter(|t| &t["meta_data"]["monitor_id"] == id).cloned().collect()
    }
}

#[tokio::test]
async fn a_sweep_moves_the_excess_in_the_same_commit_as_the_deposit() {
    let s = setup().await;
    let sweep = s
        .monitor(
            &s.wallet,
            json!({"field": "balance", "operator": ">", "value": 100, "precision": 100}),
            json!({"trigger": "edge", "transfer": {"destination": s.savings, "amount": "excess",
                "description": "sweep to savings"}}),
        )
        .await;
    assert_eq!(sweep["action"], "transfer");
    assert_eq!(
        sweep["transfer"],
        json!({"destination": s.savings, "amount": "excess",
        "description": "sweep to savings", "allow_overdraft": false})
    );
    let deposit = s.pay("@World", &s.wallet, 15_000).await; // 150.00
    assert_eq!((s.balance_of(&s.wallet).await, s.balance_of(&s.savings).await), (10_000, 5_000));
    let swept = s.automatic(&sweep).await;
    assert_eq!(swept.len(), 1, "{swept:?}");
    let t = &swept[0];
    assert_eq!((t["precise_amount"].as_i64(), t["status"].as_str()), (Some(5_000), Some("APPLIED")));
    assert_eq!((t["source"].as_str(), t["destination"].as_str()), (Some(s.wallet.as_str()), Some(s.savings.as_str())));
    assert_eq!(t["meta_data"]["triggered_by"], deposit["transaction_id"]);
    assert_eq!(t["description"], "sweep to savings");
    assert_eq!(t["created_at"], deposit["created_at"], "the same batch, the same commit");
    // The sweep's own movement is evaluated like any other: it resolved the edge monitor.
    let events = s.events(&sweep).await;
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["balance.monitor", "balance.monitor.resolved"]);
    assert_eq!(events[0].1["balance"]["balance"], json!(15_000), "the trigger shows the balance that triggered it");
    assert_eq!(events[1].1["transaction_id"], t["transaction_id"]);
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn a_top_up_restores_a_floor_and_a_failed_one_is_an_event_not_a_refusal() {
    let s = setup().await;
    let funding = s.server.balance(&s.ledger, &s.currency).await;
    s.pay("@World", &funding, 2_000).await;
    s.pay("@World", &s.wallet, 5_000).await;
    let floor = s
        .monitor(
            &s.wallet,
            json!({"field": "balance", "operator": "<", "value": 20, "precision": 100}),
            json!({"transfer": {"source": funding, "amount": "shortfall"}}),
        )
        .await;
    s.pay(&s.wallet, &s.savings, 4_500).await; // 5.00 left: topped up by 15.00
    assert_eq!((s.balance_of(&s.wallet).await, s.balance_of(&funding).await), (2_000, 500));
    // Funding holds 5.00: the next top-up (20.00) cannot be made. The spend stands; an event says why.
    let spend = s.pay(&s.wallet, &s.savings, 2_000).await;
    assert_eq!(spend["status"], "APPLIED");
    assert_eq!((s.balance_of(&s.wallet).await, s.balance_of(&funding).await), (0, 500), "nothing moved by it");
    let events = s.events(&floor).await;
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["balance.monitor", "balance.monitor", "balance.monitor.action_failed"]);
    let failed = &events[2].1;
    assert_eq!(failed["error"]["code"], "TXN_INSUFFICIENT_FUNDS", "{failed}");
    assert_eq!(failed["transaction_id"], spend["transaction_id"]);
    assert_eq!(s.automatic(&floor).await.len(), 1);
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn a_chain_of_actions_is_bounded_and_the_books_still_balance() {
    let s = setup().await;
    let third = s.server.balance(&s.ledger, &s.currency).await;
    // A → savings → third → A, a fixed 1.00 each time one comes to hold more than 0: a cycle.
    let ring = [(&s.wallet, &s.savings), (&s.savings, &third), (&third, &s.wallet)];
    let mut monitors = Vec::new();
    for (from, to) in ring {
        let condition = json!({"field": "balance", "operator": ">", "value": 0, "precision": 100});
        let transfer = json!({"trigger": "edge", "transfer": {"destination": to, "amount": 1}});
        monitors.push(s.monitor(from, condition, transfer).await);
    }
    // 1.00 goes round: wallet → savings → third → wallet, which crosses again and would send it on
    // a fourth time: refused, three deep is the most.
    s.pay("@World", &s.wallet, 100).await;
    let made: usize = automatic_count(&s, &monitors).await;
    assert_eq!(made, 3, "three deep, no further");
    let failed = s.events(&monitors[0]).await;
    let last = failed.iter().find(|(kind, _)| kind == "balance.monitor.action_failed").expect("the fourth failed");
    assert!(last.1["error"]["message"].as_str().unwrap().contains("3 deep"), "{}", last.1);
    assert_eq!(
        (s.balance_of(&s.wallet).await, s.balance_of(&s.savings).await, s.balance_of(&third).await),
        (100, 0, 0)
    );
    assert_ledger_invariants(&s.server, &s.currency).await;
}

async fn automatic_count(s: &Setup, monitors: &[Value]) -> usize {
    let mut made = 0;
    for m in monitors {
        made += s.automatic(m).await.len();
    }
    made
}

#[tokio::test]
async fn an_atomic_bulk_request_is_applied_whole_before_its_actions_run() {
    let s = setup().await;
    s.pay("@World", &s.wallet, 10_000).await;
    s.monitor(
        &s.wallet,
        json!({"field": "balance", "operator": ">", "value": 50, "precision": 100}),
        json!({"transfer": {"destination": s.savings, "amount": "excess"}}),
    )
    .await;
    // The first item would trigger a sweep of the wallet's excess (it is a deposit); the second
    // spends 90.00 of the wallet's 100.00, which a sweep made in between would leave it without.
    let item = |source: &str, destination: &str, amount: i64| {
        json!({"precise_amount": amount, "precision": 100, "currency": s.currency, "source": source,
            "destination": destination, "reference": unique("b")})
    };
    let other = s.server.balance(&s.ledger, &s.currency).await;
    let body = json!({"atomic": true, "skip_queue": true,
        "transactions": [item("@World", &s.wallet, 100), item(&s.wallet, &other, 9_000)]});
    let (status, answer) = s.server.post("/transactions/bulk", body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // Applied whole (101.00 − 90.00 = 11.00, nothing above 50.00 to sweep after it).
    assert_eq!((s.balance_of(&s.wallet).await, s.balance_of(&other).await), (1_100, 9_000));
    assert_eq!(s.balance_of(&s.savings).await, 0);
    assert_ledger_invariants(&s.server, &s.currency).await;
}

#[tokio::test]
async fn automatic_transfers_are_validated_naming_the_field() {
    let s = setup().await;
    let foreign = s.server.balance(&s.ledger, &unique_currency()).await;
    let balance_gt = json!({"field": "balance", "operator": ">", "value": 1});
    let to = |destination: &str, amount: Value| json!({"destination": destination, "amount": amount});
    let cases = [
        (json!({"condition": balance_gt, "action": "transfer"}), "transfer", "needs a transfer"),
        (
            json!({"condition": balance_gt, "transfer": {"destination": s.savings, "amount": 1}}),
            "transfer",
            "goes with",
        ),
        (
            json!({"condition": balance_gt, "action": "transfer",
            "transfer": {"source": s.savings, "destination": s.savings, "amount": 1}}),
            "transfer",
            "not both",
        ),
        (
            json!({"condition": balance_gt, "action": "transfer", "transfer": to("bln_nope", json!(1))}),
            "transfer.destination",
            "does not exist",
        ),
        (
            json!({"condition": balance_gt, "action": "transfer", "transfer": to("@Savings", json!(1))}),
            "transfer.destination",
            "balance id",
        ),
        (
            json!({"condition": balance_gt, "action": "transfer", "transfer": {"destination": foreign, "amount": 1}}),
            "transfer.destination",
            "holds",
        ),
        (
            json!({"condition": balance_gt, "action": "transfer", "transfer": {"source": s.wallet, "amount": 1}}),
            "transfer.source",
            "another balance",
        ),
        (
            json!({"condition": balance_gt, "action": "transfer", "transfer": {"source": s.savings,
            "amount": "excess"}}),
            "transfer.amount",
            "excess",
        ),
        (
            json!({"condition": {"field": "balance", "operator": "<", "value": 1}, "action": "transfer",
            "transfer": {"destination": s.savings, "amount": "shortfall"}}),
            "transfer.amount",
            "shortfall",
        ),
        (
            json!({"condition": balance_gt, "action": "transfer", "transfer": {"destination": s.savings, "amount": 0}}),
            "transfer.amount",
            "more than 0",
        ),
        (
            json!({"condition": balance_gt, "action": "transfer", "transfer": {"destination": s.savings}}),
            "transfer.amount",
            "required",
        ),
        (
            json!({"condition": {"field": "transaction_count", "operator": ">", "value": 1, "window": "1h"},
            "action": "transfer", "transfer": {"destination": s.savings, "amount": 1}}),
            "transfer.amount",
            "count",
        ),
    ];
    for (body, field, says) in cases {
        let mut body = body;
        body["balance_id"] = json!(s.wallet);
        let (status, answer) = s.server.post("/balance-monitors", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], field, "{body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
}

/// A dry run shows what the request would leave, automatic transfers included, and makes none.
#[tokio::test]
async fn dry_runs_include_the_automatic_transfers_a_request_would_set_off() {
    let s = setup().await;
    let sweep = s
        .monitor(
            &s.wallet,
            json!({"field": "balance", "operator": ">", "value": 10, "precision": 100}),
            json!({"transfer": {"destination": s.savings, "amount": "excess"}}),
        )
        .await;
    let deposit = |amount: i64| {
        json!({"precise_amount": amount, "precision": 100, "currency": s.currency, "source": "@World",
            "destination": s.wallet, "reference": unique("d"), "skip_queue": true})
    };
    let resulting = |preview: &Value| {
        let balances = preview["balances"].as_array().unwrap();
        let wallet = balances.iter().find(|b| b["balance_id"] == s.wallet.as_str()).unwrap();
        wallet["resulting_balance"].as_str().unwrap().to_string()
    };
    let mut one = deposit(2_500);
    one["dry_run"] = json!(true);
    let (status, preview) = s.server.post("/transactions", one).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(resulting(&preview), "1000", "25.00 in, 15.00 swept: {preview}");
    let body = json!({"transactions": [deposit(500), deposit(700)], "skip_queue": true, "dry_run": true});
    let (status, preview) = s.server.post("/transactions/bulk", body).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(resulting(&preview), "1000", "both in, the excess swept after the request: {preview}");
    assert!(s.automatic(&sweep).await.is_empty(), "a dry run makes no transfer");
    assert_eq!((s.balance_of(&s.wallet).await, s.balance_of(&s.savings).await), (0, 0));
}
