//! The ledger's invariants, checked from outside over HTTP:
//! - per currency, `balance` and `inflight_balance` sum to zero over all balances (double entry);
//! - each balance's `balance` = credit − debit and `inflight_balance` = inflight credit − debit;
//! - replaying the transaction log from zero gives every balance's four totals exactly.
//!
//! The replay is written here from the contract, independently of the engine's code.

use super::Server;
use num_bigint::BigInt;
use serde_json::Value;
use std::collections::HashMap;

pub fn big(v: &Value) -> BigInt {
    v.to_string().trim_matches('"').parse().unwrap_or_else(|_| panic!("{v} is not an integer"))
}

pub async fn all(server: &Server, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let (status, page) = server.get(&format!("{path}?limit=1000&offset={}&sort_order=asc", out.len())).await;
        assert!(status.is_success(), "GET {path}: {page}");
        let page = page.as_array().expect("a list").clone();
        let done = page.len() < 1000;
        out.extend(page);
        if done {
            return out;
        }
    }
}

#[derive(Default, Debug, PartialEq, Clone)]
struct Totals {
    credit: BigInt,
    debit: BigInt,
    inflight_credit: BigInt,
    inflight_debit: BigInt,
}

/// Asserts every invariant for `currency`; returns how many transactions were replayed.
// tidy: long because it is the one list of invariants the suites re-check, each a few lines
pub async fn assert_ledger_invariants(server: &Server, currency: &str) -> usize {
    let balances: Vec<Value> =
        all(server, "/balances").await.into_iter().filter(|b| b["currency"] == currency).collect();
    let mut sum = BigInt::from(0);
    let mut inflight_sum = BigInt::from(0);
    let mut by_indicator = HashMap::new();
    for b in &balances {
        assert_eq!(big(&b["balance"]), big(&b["credit_balance"]) - big(&b["debit_balance"]), "{b}");
        assert_eq!(
            big(&b["inflight_balance"]),
            big(&b["inflight_credit_balance"]) - big(&b["inflight_debit_balance"]),
            "{b}"
        );
        sum += big(&b["balance"]);
        inflight_sum += big(&b["inflight_balance"]);
        if b["indicator"] != "" {
            by_indicator
                .insert(b["indicator"].as_str().unwrap().to_string(), b["balance_id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(sum, BigInt::from(0), "balances of {currency} must sum to zero");
    assert_eq!(inflight_sum, BigInt::from(0), "inflight balances of {currency} must sum to zero");

    let transactions: Vec<Value> =
        all(server, "/transactions").await.into_iter().filter(|t| t["currency"] == currency).collect();
    let by_id: HashMap<&str, &Value> =
        transactions.iter().map(|t| (t["transaction_id"].as_str().unwrap(), t)).collect();
    let resolve = |party: &Value| {
        let party = party.as_str().unwrap();
        by_indicator.get(party).cloned().unwrap_or_else(|| party.to_string())
    };
    let mut replayed: HashMap<String, Totals> = HashMap::new();
    for t in &transactions {
        let amount = big(&t["precise_amount"]);
        let (src, dst) = (resolve(&t["source"]), resolve(&t["destination"]));
        // A split's legs name the split as their parent, which is not a transaction of its own:
        // such a leg replays as an ordinary transaction.
        let parent = t["parent_transaction"].as_str().filter(|p| by_id.contains_key(p)).unwrap_or_default();
        let parent_was_inflight = !parent.is_empty() && by_id[parent]["inflight"] == true;
        let status = t["status"].as_str().unwrap();
        enum Effect {
            None,
            Transfer,
            Hold,
            Commit,
            Release,
        }
        let effect = match status {
            "SCHEDULED" | "QUEUED" | "REJECTED" => Effect::None,
            "APPLIED" if parent_was_inflight => Effect::Commit,
            "APPLIED" => Effect::Transfer,
            "VOID" if !parent.is_empty() => Effect::Release,
            "INFLIGHT" | "COMMIT" | "VOID" => Effect::Hold,
            other => panic!("unknown status {other}"),
        };
        let mut s = replayed.remove(&src).unwrap_or_default();
        let d = replayed.entry(dst.clone()).or_default();
        match effect {
            Effect::None => {}
            Effect::Transfer => {
                s.debit += &amount;
                d.credit += &amount;
            }
            Effect::Hold => {
                s.inflight_debit += &amount;
                d.inflight_credit += &amount;
            }
            Effect::Commit => {
                s.inflight_debit -= &amount;
                d.inflight_credit -= &amount;
                s.debit += &amount;
                d.credit += &amount;
            }
            Effect::Release => {
                s.inflight_debit -= &amount;
                d.inflight_credit -= &amount;
            }
        }
        replayed.insert(src, s);
    }
    for b in &balances {
        let expected = replayed.remove(b["balance_id"].as_str().unwrap()).unwrap_or_default();
        let actual = Totals {
            credit: big(&b["credit_balance"]),
            debit: big(&b["debit_balance"]),
            inflight_credit: big(&b["inflight_credit_balance"]),
            inflight_debit: big(&b["inflight_debit_balance"]),
        };
        assert_eq!(actual, expected, "balance {} differs from the replay of its transactions", b["balance_id"]);
    }
    assert!(
        replayed.values().all(|t| *t == Totals::default()),
        "transactions touch balances that do not exist: {replayed:?}"
    );
    transactions.len()
}
