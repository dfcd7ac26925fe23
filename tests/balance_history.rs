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

/// `POST /balances-snapshots`: a snapshot at the start of each day after one a balance moved on, and
/// `GET /balances/{id}/at` read from them equals the log's sum at every instant (day boundaries
/// and a microsecond either side included), as `from_source` does; a transaction backdated behind
/// the snapshots afterwards brings them up to date in its own commit (H1, checked by `keel check`).
#[tokio::test]
async fn snapshots_answer_what_the_log_says_and_stay_exact_under_backdated_writes() {
    let server = Server::start();
    let (alice, currency, log) = moved_balance(&server).await;
    let bob = log.iter().flat_map(|t| [&t["source"], &t["destination"]]).find(|b| **b != json!(alice)).unwrap();
    let bob = bob.as_str().unwrap().to_string();
    for bad in ["batch_size=0", "batch_size=ten", "bogus=1"] {
        let (status, answer) = server.post(&format!("/balances-snapshots?{bad}"), json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], json!(bad.split('=').next().unwrap()), "{answer}");
    }
    let (status, answer) = server.post("/balances-snapshots?batch_size=1", json!({})).await;
    assert_eq!(
        (status, answer),
        (StatusCode::OK, json!({"message": "Snapshotting in progress. should be completed shortly"}))
    );

    // The days each balance moved on before today's horizon (both move on every transaction's day).
    let horizon = humantime::format_rfc3339(std::time::SystemTime::now() - std::time::Duration::from_secs(600));
    let today = &horizon.to_string()[..10];
    let days: std::collections::BTreeSet<String> = log
        .iter()
        .filter(|t| t["status"] == "APPLIED")
        .map(|t| effective(t)[..10].to_string())
        .filter(|day| day.as_str() < today)
        .collect();
    assert!(days.len() > 5, "the log spans many days: {days:?}");
    let checked = wait_for_check(&server, 2 * days.len()).await;
    assert!(checked.contains("every invariant holds"), "{checked}");

    let reads_equal_the_log = |log: Vec<Value>| {
        let (server, alice, bob, currency) = (&server, alice.clone(), bob.clone(), currency.clone());
        async move {
            let mut instants: Vec<String> = vec!["2023-12-31T23:59:59Z".into(), "2030-01-01T00:00:00Z".into()];
            for t in log.iter().filter(|t| t["status"] == "APPLIED") {
                let day = &effective(t)[..10];
                instants.push(effective(t));
                instants.push(format!("{day}T00:00:00Z"));
                instants.push(format!("{day}T23:59:59.999999Z"));
            }
            for balance in [&alice, &bob] {
                for at in &instants {
                    let (credit, debit) = settled(&log, balance, at);
                    let expected = json!({"balance": credit - debit, "credit_balance": credit, "debit_balance": debit,
                        "currency": currency, "balance_id": balance});
                    for source in ["false", "true"] {
                        let path = format!("/balances/{balance}/at?timestamp={at}&from_source={source}");
                        let (status, answer) = server.get(&path).await;
                        assert_eq!((status, &answer["balance"]), (StatusCode::OK, &expected), "{path}");
                    }
                }
            }
        }
    };
    reads_equal_the_log(log).await;

    // Behind every snapshot: each one after it grows by it, in the transaction's own commit.
    server
        .create(
            "/transactions",
            json!({"precise_amount": 77, "currency": currency, "source": alice,
            "destination": bob, "reference": unique("late"), "allow_overdraft": true, "skip_queue": true,
            "effective_date": "2024-01-05T08:00:00Z"}),
        )
        .await;
    let (_, log) = server.get("/transactions?limit=1000&sort_order=asc").await;
    reads_equal_the_log(log.as_array().unwrap().clone()).await;
    let checked = wait_for_check(&server, 2 * days.len()).await;
    assert!(checked.contains("every invariant holds"), "{checked}");
}

/// Runs `keel check` on the server's database until it has checked `snapshots` snapshots (taken in
/// the background); what it printed then.
async fn wait_for_check(server: &Server, snapshots: usize) -> String {
    let wanted = format!("{snapshots} snapshots checked");
    for _ in 0..100 {
        let (ok, printed) = common::keel(&["check", "--database", &server.database_url]);
        if printed.contains(&wanted) {
            assert!(ok, "{printed}");
            return printed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("keel check never counted {wanted}");
}
