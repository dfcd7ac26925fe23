//! A balance's past over HTTP, on the suite's backend: `GET /balances/{id}/at` at random instants
//! and `GET /balances/{id}/history` over ranges, both against a reference summing the log
//! (backdated transactions, held and committed ones included).

mod common;

use common::{unique, unique_currency, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A balance and its partner moved 40 times at random, some backdated, some held and committed.
async fn moved_balance(server: &Server) -> (String, String, Vec<Value>) {
    let ledger = server.ledger("history").await;
    let currency = unique_currency();
    let (alice, bob) = (server.balance(&ledger, &currency).await, server.balance(&ledger, &currency).await);
    let mut rng = fastrand::Rng::with_seed(5);
    for i in 0..40 {
        let (source, destination) = if rng.bool() { (&alice, &bob) } else { (&bob, &alice) };
        let mut body = json!({"precise_amount": rng.u64(1..1000), "currency": currency, "source": source,
            "destination": destination, "reference": unique("h"), "allow_overdraft": true, "skip_queue": true});
        if rng.u8(..3) == 0 {
            body["effective_date"] = json!(format!("2024-0{}-1{}T12:00:00Z", rng.u8(1..10), rng.u8(0..10)));
        }
        if i % 7 == 0 {
            body["inflight"] = json!(true);
        }
        let created = server.create("/transactions", body).await;
        if i % 14 == 0 {
            let id = created["transaction_id"].as_str().unwrap();
            server.put(&format!("/transactions/inflight/{id}"), json!({"status": "commit"})).await;
        }
    }
    let (_, log) = server.get("/transactions?limit=1000&sort_order=asc").await;
    (alice, currency, log.as_array().unwrap().clone())
}

/// Every instant as rows write it (microseconds), so instants compare as text.
fn micros(s: &str) -> String {
    if s.contains('.') {
        s.to_string()
    } else {
        s.replace('Z', ".000000Z")
    }
}

fn effective(t: &Value) -> String {
    micros(t["effective_date"].as_str().or(t["created_at"].as_str()).unwrap())
}

/// The reference: (credit, debit) of `balance`'s APPLIED transactions effective by `at`.
fn settled(log: &[Value], balance: &str, at: &str) -> (i64, i64) {
    let sum = |side: &str| -> i64 {
        log.iter()
            .filter(|t| t["status"] == "APPLIED" && t[side] == json!(balance) && effective(t) <= micros(at))
            .map(|t| t["precise_amount"].as_i64().unwrap())
            .sum()
    };
    (sum("destination"), sum("source"))
}

/// `GET /balances/{id}/at`: at random instants, the settled totals of the transactions effective by
/// then (backdated ones included), as a reference summing the log says.
#[tokio::test]
async fn a_balance_at_any_instant_is_the_sum_of_what_was_effective_by_then() {
    let server = Server::start();
    let (alice, currency, log) = moved_balance(&server).await;
    let mut instants: Vec<String> = log.iter().map(|t| t["created_at"].as_str().unwrap().to_string()).collect();
    instants.extend(["2024-01-01T00:00:00Z", "2024-05-15T00:00:00Z", "2030-01-01T00:00:00Z"].map(String::from));
    for at in instants {
        let (status, answer) = server.get(&format!("/balances/{alice}/at?timestamp={at}")).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (credit, debit) = settled(&log, &alice, &at);
        let expected = json!({"balance": credit - debit, "credit_balance": credit, "debit_balance": debit,
            "currency": currency, "balance_id": alice});
        assert_eq!(answer["balance"], expected, "at {at}");
    }
    let (_, now) = server.get(&format!("/balances/{alice}/at")).await;
    let (_, current) = server.get(&format!("/balances/{alice}")).await;
    assert_eq!(now["balance"]["balance"], current["balance"], "now is the balance as it stands");
    let (status, bad) = server.get(&format!("/balances/{alice}/at?timestamp=yesterday")).await;
    assert_eq!(
        (status, bad["error_detail"]["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("BAL_INVALID_TIMESTAMP"))
    );
}

#[tokio::test]
async fn a_balance_over_a_range_is_each_point_the_log_says() {
    let server = Server::start();
    let (alice, _, log) = moved_balance(&server).await;
    let mut moves: Vec<&Value> = log
        .iter()
        .filter(|t| t["status"] == "APPLIED" && (t["source"] == json!(alice) || t["destination"] == json!(alice)))
        .collect();
    moves.sort_by_key(|t| effective(t)); // stable: ties keep the log's order
    for (from, to) in
        [("2024-03-01T00:00:00Z", "2024-08-01T00:00:00Z"), ("2024-01-01T00:00:00Z", "2031-01-01T00:00:00Z")]
    {
        let (status, answer) = server.get(&format!("/balances/{alice}/history?from={from}&to={to}")).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (credit, debit) = settled(&log, &alice, from);
        assert_eq!(
            answer["start"],
            json!({"balance": credit - debit, "credit_balance": credit, "debit_balance": debit})
        );
        let expected: Vec<&&Value> =
            moves.iter().filter(|t| effective(t) > micros(from) && effective(t) <= micros(to)).collect();
        let points = answer["points"].as_array().unwrap();
        assert_eq!(points.len(), expected.len(), "{from}..{to}");
        for (point, t) in points.iter().zip(&expected) {
            assert_eq!(point["transaction_id"], t["transaction_id"]);
            let (credit, debit) = settled(&log, &alice, &effective(t));
            // Ties at one instant: the point after the last of them has them all.
            let last_at_instant = expected.iter().rev().find(|u| effective(u) == effective(t)).unwrap();
            if last_at_instant["transaction_id"] == t["transaction_id"] {
                assert_eq!(
                    (point["credit_balance"].clone(), point["debit_balance"].clone()),
                    (json!(credit), json!(debit))
                );
            }
        }
        assert_eq!(answer["has_more"], false);
    }
    let (_, first_two) = server.get(&format!("/balances/{alice}/history?limit=2")).await;
    assert_eq!((first_two["points"].as_array().unwrap().len(), first_two["has_more"].clone()), (2, json!(true)));
    let (status, _) = server.get(&format!("/balances/{alice}/history?limit=0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
