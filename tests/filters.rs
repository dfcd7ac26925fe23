//! Blnk's list filters over HTTP (`GET /transactions?status_eq=APPLIED`, `POST /balances/filter`),
//! on the suite's backend: random data, then random filters of every operator on every field,
//! each answered as a reference evaluation over the whole unfiltered list says it must be; sorting,
//! paging with counts, and refusals that name the parameter.

mod common;

use common::Server;
use num_bigint::BigInt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::cmp::Ordering;
use std::collections::HashMap;

/// A list's fields.
type Fields = &'static [(&'static str, Kind)];

/// A field as the test sees it: its name and how the reference reads and compares it.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Number,
    Instant,
    Meta,
}

const LEDGER_FIELDS: &[(&str, Kind)] =
    &[("ledger_id", Kind::Text), ("name", Kind::Text), ("created_at", Kind::Instant), ("meta_data.tier", Kind::Meta)];

const BALANCE_FIELDS: &[(&str, Kind)] = &[
    ("balance_id", Kind::Text),
    ("ledger_id", Kind::Text),
    ("identity_id", Kind::Text),
    ("indicator", Kind::Text),
    ("currency", Kind::Text),
    ("balance", Kind::Number),
    ("credit_balance", Kind::Number),
    ("debit_balance", Kind::Number),
    ("inflight_balance", Kind::Number),
    ("inflight_credit_balance", Kind::Number),
    ("inflight_debit_balance", Kind::Number),
    ("created_at", Kind::Instant),
    ("meta_data.tier", Kind::Meta),
    ("meta_data.score", Kind::Meta),
];

const TRANSACTION_FIELDS: &[(&str, Kind)] = &[
    ("transaction_id", Kind::Text),
    ("parent_transaction", Kind::Text),
    ("amount", Kind::Number),
    ("precise_amount", Kind::Number),
    ("precision", Kind::Number),
    ("currency", Kind::Text),
    ("source", Kind::Text),
    ("destination", Kind::Text),
    ("balance_id", Kind::Text),
    ("indicator", Kind::Text),
    ("reference", Kind::Text),
    ("status", Kind::Text),
    ("description", Kind::Text),
    ("created_at", Kind::Instant),
    ("effective_date", Kind::Instant),
    ("meta_data.k", Kind::Meta),
    ("meta_data.tag", Kind::Meta),
    ("meta_data.flag", Kind::Meta),
];

/// The data: every item of each list, oldest first, and what the reference needs besides.
struct World {
    ledgers: Vec<Value>,
    balances: Vec<Value>,
    transactions: Vec<Value>,
    /// `@World`-style indicators by `(indicator, currency)`: a transaction's `source` as written.
    indicator_ids: HashMap<(String, String), String>,
    /// Balance id → indicator ('' for none).
    indicator_of: HashMap<String, String>,
}

/// Three ledgers and eight wallets in two currencies, some with an identity or metadata.
async fn ledgers_and_wallets(server: &Server) -> Vec<(String, &'static str)> {
    let names = ["Savings Main", "savings backup", "Ops_100%"];
    let mut ledger_ids = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let meta = if i == 2 { json!({}) } else { json!({"tier": (["gold", "silver"][i]), "n": 5 * (i + 1)}) };
        let ledger = server.create("/ledgers", json!({"name": name, "meta_data": meta})).await;
        ledger_ids.push(ledger["ledger_id"].as_str().unwrap().to_string());
    }
    let currencies = ["USD", "EUR"];
    let mut wallets: Vec<(String, &'static str)> = Vec::new();
    for i in 0..8 {
        let currency = currencies[i % 2];
        let mut body = json!({"ledger_id": ledger_ids[i % 3], "currency": currency});
        if i % 3 == 0 {
            body["identity_id"] = json!(format!("idt_{i}"));
        }
        if i % 2 == 1 {
            body["meta_data"] = json!({"tier": (["gold", "bronze"][i % 4 / 2]), "score": i * 7});
        }
        let balance = server.create("/balances", body).await;
        wallets.push((balance["balance_id"].as_str().unwrap().to_string(), currency));
    }
    wallets
}

async fn build_world(server: &Server, rng: &mut fastrand::Rng) -> World {
    let wallets = ledgers_and_wallets(server).await;
    let descriptions = ["rent", "Rent payment", "", "fee_1", "100% refund"];
    let mut inflight = Vec::new();
    for i in 0..40 {
        let (destination, currency) = wallets[rng.usize(..wallets.len())].clone();
        let source = match rng.u8(..4) {
            0 => "@World".to_string(),
            1 => "@Fees".to_string(),
            _ => wallets
                .iter()
                .filter(|(w, c)| *c == currency && *w != destination)
                .nth(rng.usize(..3))
                .unwrap()
                .0
                .clone(),
        };
        let precision = [1, 100, 1000][rng.usize(..3)];
        let mut body = json!({
            "precise_amount": rng.u64(1..5000), "precision": precision, "currency": currency,
            "source": source, "destination": destination, "reference": format!("ref-{i}-{}", rng.u32(..)),
            "description": descriptions[rng.usize(..descriptions.len())], "allow_overdraft": true,
            "skip_queue": true,
        });
        let mut meta = serde_json::Map::new();
        if rng.bool() {
            meta.insert("k".into(), json!(rng.i64(-5..20)));
        }
        if rng.bool() {
            meta.insert("tag".into(), json!(["alpha", "Beta", "gamma_1"][rng.usize(..3)]));
        }
        if rng.u8(..4) == 0 {
            meta.insert("flag".into(), json!(rng.bool()));
        }
        body["meta_data"] = Value::Object(meta);
        if rng.u8(..4) == 0 {
            body["effective_date"] = json!(format!("2024-0{}-1{}T10:00:00Z", rng.u8(1..10), rng.u8(0..10)));
        }
        if rng.u8(..5) == 0 {
            body["inflight"] = json!(true);
        }
        let created = server.create("/transactions", body.clone()).await;
        if body["inflight"] == json!(true) {
            inflight.push(created["transaction_id"].as_str().unwrap().to_string());
        }
    }
    // Children: a partial commit, a void.
    for (i, id) in inflight.iter().take(2).enumerate() {
        let body = if i == 0 { json!({"status": "commit"}) } else { json!({"status": "void"}) };
        let (status, answer) = server.put(&format!("/transactions/inflight/{id}"), body).await;
        assert!(status.is_success(), "{answer}");
    }
    let everything = |path: &'static str| async move {
        let (status, items) = server.get(&format!("/{path}?limit=1000&sort_order=asc")).await;
        assert_eq!(status, StatusCode::OK, "{items}");
        items.as_array().unwrap().clone()
    };
    let (ledgers, balances, transactions) =
        (everything("ledgers").await, everything("balances").await, everything("transactions").await);
    let mut indicator_ids = HashMap::new();
    let mut indicator_of = HashMap::new();
    for b in &balances {
        let (id, indicator) = (text(b, "balance_id"), text(b, "indicator"));
        if !indicator.is_empty() {
            indicator_ids.insert((indicator.clone(), text(b, "currency")), id.clone());
        }
        indicator_of.insert(id, indicator);
    }
    World { ledgers, balances, transactions, indicator_ids, indicator_of }
}

fn text(item: &Value, field: &str) -> String {
    item[field].as_str().unwrap_or_default().to_string()
}

/// An exact decimal: digits and how many of them are after the point.
fn decimal(text: &str) -> (BigInt, u32) {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    (format!("{int}{frac}").parse().unwrap(), frac.len() as u32)
}

fn compare_decimals(a: &str, b: &str) -> Ordering {
    let ((a, sa), (b, sb)) = (decimal(a), decimal(b));
    let scale = sa.max(sb);
    let widen = |n: BigInt, s: u32| n * num_traits::pow(BigInt::from(10), (scale - s) as usize);
    widen(a, sa).cmp(&widen(b, sb))
}

/// What the reference compares for `field` of `item`: `None` when the field is not set.
fn field_value(world: &World, item: &Value, field: &str) -> Option<String> {
    if let Some(key) = field.strip_prefix("meta_data.") {
        return match &item["meta_data"][key] {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        };
    }
    let resolved = |written: String| {
        let key = (written.clone(), text(item, "currency"));
        world.indicator_ids.get(&key).cloned().unwrap_or(written)
    };
    let value = match field {
        "source" | "destination" => resolved(text(item, field)),
        "effective_date" => item[field].as_str().map_or_else(|| text(item, "created_at"), str::to_string),
        _ => match &item[field] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Null => String::new(),
            other => panic!("{field}: {other}"),
        },
    };
    Some(value).filter(|v| !v.is_empty())
}

/// SQL's LIKE: `%` any run, `_` one character, `\` escapes.
fn like(text: &str, pattern: &str, any_case: bool) -> bool {
    let fold = |s: &str| if any_case { s.to_lowercase() } else { s.to_string() };
    let (t, p): (Vec<char>, Vec<char>) = (fold(text).chars().collect(), fold(pattern).chars().collect());
    fn go(t: &[char], p: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('%') => (0..=t.len()).any(|i| go(&t[i..], &p[1..])),
            Some('_') => !t.is_empty() && go(&t[1..], &p[1..]),
            Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && go(&t[1..], &p[2..]),
            Some(c) => t.first() == Some(c) && go(&t[1..], &p[1..]),
        }
    }
    go(&t, &p)
}

/// One filter: its query parameter, its JSON form, and the reference's verdict on an item.
struct Filter {
    field: &'static str,
    op: &'static str,
    /// The query parameter's value.
    raw: String,
    json: Value,
}

impl Filter {
    fn matches(&self, world: &World, kind: Kind, item: &Value) -> bool {
        let virtual_balance = |pred: &dyn Fn(&str) -> bool| {
            ["source", "destination"].iter().any(|f| field_value(world, item, f).is_some_and(|id| pred(&id)))
        };
        if self.field == "balance_id" && item.get("transaction_id").is_some() {
            return match self.op {
                "eq" => virtual_balance(&|id| id == self.raw),
                "ne" => !virtual_balance(&|id| id == self.raw),
                "in" => virtual_balance(&|id| self.raw.split(',').any(|v| v == id)),
                other => panic!("{other}"),
            };
        }
        if self.field == "indicator" && item.get("transaction_id").is_some() {
            let of = |id: &str| world.indicator_of.get(id).cloned().unwrap_or_default();
            return match self.op {
                "eq" => virtual_balance(&|id| of(id) == self.raw),
                "ne" => !virtual_balance(&|id| of(id) == self.raw),
                "like" => virtual_balance(&|id| like(&of(id), &self.raw, false)),
                "isnull" => !virtual_balance(&|id| !of(id).is_empty()),
                "isnotnull" => virtual_balance(&|id| !of(id).is_empty()),
                other => panic!("{other}"),
            };
        }
        if self.field == "effective_date" && matches!(self.op, "isnull" | "isnotnull") {
            return item["effective_date"].is_null() == (self.op == "isnull");
        }
        let Some(value) = field_value(world, item, self.field) else {
            return self.op == "isnull";
        };
        let stored_number = self.field.strip_prefix("meta_data.").is_some_and(|k| item["meta_data"][k].is_number());
        let ordering_op = matches!(self.op, "gt" | "gte" | "lt" | "lte" | "between");
        // Metadata orders as numbers, and only numbers; matching compares text.
        let order = |other: &str| -> Option<Ordering> {
            match kind {
                Kind::Number => Some(compare_decimals(&value, other)),
                Kind::Meta if ordering_op => stored_number.then(|| compare_decimals(&value, other)),
                _ => Some(value.as_str().cmp(other)),
            }
        };
        let equal = |other: &str| match kind {
            Kind::Number => order(other) == Some(Ordering::Equal),
            _ => value == other,
        };
        match self.op {
            "eq" => equal(&self.raw),
            "ne" => !equal(&self.raw),
            "in" => self.raw.split(',').any(equal),
            "gt" => order(&self.raw) == Some(Ordering::Greater),
            "gte" => order(&self.raw).is_some_and(|o| o != Ordering::Less),
            "lt" => order(&self.raw) == Some(Ordering::Less),
            "lte" => order(&self.raw).is_some_and(|o| o != Ordering::Greater),
            "between" => {
                let (low, high) = self.raw.split_once('|').unwrap();
                order(low).is_some_and(|o| o != Ordering::Less) && order(high).is_some_and(|o| o != Ordering::Greater)
            }
            "like" => like(&value, &self.raw, false),
            "ilike" => like(&value, &self.raw, true),
            "isnull" => false,
            "isnotnull" => true,
            other => panic!("{other}"),
        }
    }
}

/// A random filter on `field`, its values drawn from the data (so that some items match).
fn random_filter(rng: &mut fastrand::Rng, world: &World, items: &[Value], field: &'static str, kind: Kind) -> Filter {
    let virtual_field = matches!(field, "balance_id" | "indicator") && items[0].get("transaction_id").is_some();
    let pick = |rng: &mut fastrand::Rng| -> String {
        let item = &items[rng.usize(..items.len())];
        let side = if rng.bool() { "source" } else { "destination" };
        let picked = match field {
            "balance_id" if virtual_field => field_value(world, item, side),
            "indicator" if virtual_field => {
                field_value(world, item, side).and_then(|id| world.indicator_of.get(&id).cloned())
            }
            _ => field_value(world, item, field),
        };
        picked.filter(|v| !v.is_empty()).unwrap_or_else(|| "none".to_string())
    };
    let ops: &[&str] = match kind {
        _ if virtual_field && field == "balance_id" => &["eq", "ne", "in"],
        _ if virtual_field => &["eq", "ne", "like", "isnull", "isnotnull"],
        Kind::Text => &["eq", "ne", "in", "gt", "lte", "between", "like", "ilike", "isnull", "isnotnull"],
        Kind::Number => &["eq", "ne", "in", "gt", "gte", "lt", "lte", "between"],
        Kind::Instant => &["eq", "ne", "in", "gt", "gte", "lt", "lte", "between", "isnull", "isnotnull"],
        Kind::Meta => &["eq", "ne", "in", "gt", "gte", "lt", "lte", "between", "like", "ilike", "isnull", "isnotnull"],
    };
    let op = ops[rng.usize(..ops.len())];
    let value = |rng: &mut fastrand::Rng| -> String {
        let mut v = pick(rng);
        let numeric =
            kind == Kind::Number || (kind == Kind::Meta && matches!(op, "gt" | "gte" | "lt" | "lte" | "between"));
        if numeric && !is_decimal(&v) {
            v = rng.i64(-5..20).to_string();
        }
        v
    };
    let raw = match op {
        "in" => (0..rng.usize(1..4)).map(|_| value(rng)).collect::<Vec<_>>().join(","),
        "between" => {
            let (a, b) = (value(rng), value(rng));
            let ordered = match kind {
                Kind::Number | Kind::Meta => compare_decimals(&a, &b) != Ordering::Greater,
                _ => a <= b,
            };
            if ordered {
                format!("{a}|{b}")
            } else {
                format!("{b}|{a}")
            }
        }
        "like" | "ilike" => {
            let v = value(rng);
            let cut: String = v.chars().take(rng.usize(1..=v.chars().count().max(1))).collect();
            let escaped = cut.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            let flipped = if rng.bool() { escaped.to_uppercase() } else { escaped };
            format!("{flipped}%")
        }
        "isnull" | "isnotnull" => "true".to_string(),
        _ => value(rng),
    };
    let json_value = |v: &str| -> Value {
        if kind == Kind::Number && rng_free_number(v) {
            serde_json::from_str(v).unwrap()
        } else {
            json!(v)
        }
    };
    let json = match op {
        "in" => json!({"field": field, "operator": op, "values": raw.split(',').map(json_value).collect::<Vec<_>>()}),
        "between" => {
            let (a, b) = raw.split_once('|').unwrap();
            json!({"field": field, "operator": op, "values": [json_value(a), json_value(b)]})
        }
        "isnull" | "isnotnull" => json!({"field": field, "operator": op}),
        _ => json!({"field": field, "operator": op, "value": json_value(&raw)}),
    };
    Filter { field, op, raw, json }
}

fn rng_free_number(v: &str) -> bool {
    serde_json::from_str::<Value>(v).is_ok_and(|v| v.is_number())
}

/// `-12`, `3.5`: what the test's numbers look like.
fn is_decimal(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty() && !frac.is_empty() && (int.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
}

/// `text` percent-encoded for a query string.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ids(items: &Value, key: &str) -> Vec<String> {
    items.as_array().unwrap_or_else(|| panic!("not a list: {items}")).iter().map(|i| text(i, key)).collect()
}

#[tokio::test]
async fn every_operator_on_every_field_answers_as_the_reference_evaluation() {
    let seed = std::env::var("KEEL_FILTER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    eprintln!("KEEL_FILTER_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let server = Server::start();
    let world = build_world(&server, &mut rng).await;
    let lists: [(&str, &str, &[Value], Fields); 3] = [
        ("ledgers", "ledger_id", &world.ledgers, LEDGER_FIELDS),
        ("balances", "balance_id", &world.balances, BALANCE_FIELDS),
        ("transactions", "transaction_id", &world.transactions, TRANSACTION_FIELDS),
    ];
    let mut queries = 0;
    for (path, key, items, fields) in lists {
        for &(field, kind) in fields {
            for _ in 0..12 {
                let mut filters: Vec<Filter> =
                    (0..rng.usize(1..3)).map(|_| random_filter(&mut rng, &world, items, field, kind)).collect();
                if rng.u8(..3) == 0 {
                    let (other, other_kind) = fields[rng.usize(..fields.len())];
                    filters.push(random_filter(&mut rng, &world, items, other, other_kind));
                }
                let any = rng.u8(..3) == 0;
                let kind_of = |f: &Filter| fields.iter().find(|(n, _)| *n == f.field).unwrap().1;
                let expected: Vec<String> = items
                    .iter()
                    .rev()
                    .filter(|item| {
                        let mut each = filters.iter().map(|f| f.matches(&world, kind_of(f), item));
                        if any {
                            each.any(|m| m)
                        } else {
                            each.all(|m| m)
                        }
                    })
                    .map(|item| text(item, key))
                    .collect();
                let params: Vec<String> =
                    filters.iter().map(|f| format!("{}_{}={}", f.field, f.op, encode(&f.raw))).collect();
                let or = if any { "&logical_operator=or" } else { "" };
                let url = format!("/{path}?limit=1000&{}{or}", params.join("&"));
                let (status, answer) = server.get(&url).await;
                assert_eq!(status, StatusCode::OK, "GET {url} → {answer}");
                assert_eq!(ids(&answer, key), expected, "GET {url} (seed {seed})");
                let body = json!({
                    "filters": filters.iter().map(|f| f.json.clone()).collect::<Vec<_>>(),
                    "logical_operator": if any { "or" } else { "and" }, "limit": 1000, "include_count": true,
                });
                let (status, answer) = server.post(&format!("/{path}/filter"), body.clone()).await;
                assert_eq!(status, StatusCode::OK, "POST {path}/filter {body} → {answer}");
                assert_eq!(ids(&answer["data"], key), expected, "POST {path}/filter {body} (seed {seed})");
                assert_eq!(answer["total_count"], json!(expected.len()), "{body}");
                queries += 1;
            }
        }
    }
    eprintln!("{queries} random filters, each by query string and by body, answered as the reference");
}

#[tokio::test]
async fn sorting_and_paging_follow_the_field_and_the_count() {
    let mut rng = fastrand::Rng::with_seed(7);
    let server = Server::start();
    let world = build_world(&server, &mut rng).await;
    for (field, kind) in [("amount", Kind::Number), ("description", Kind::Text), ("effective_date", Kind::Instant)] {
        for order in ["asc", "desc"] {
            let (status, page) =
                server.get(&format!("/transactions?sort_by={field}&sort_order={order}&limit=1000")).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let values: Vec<String> =
                page.as_array().unwrap().iter().map(|t| field_value(&world, t, field).unwrap_or_default()).collect();
            for pair in values.windows(2) {
                let ordering = match kind {
                    Kind::Number => compare_decimals(&pair[0], &pair[1]),
                    _ => pair[0].cmp(&pair[1]),
                };
                let wrong = if order == "asc" { Ordering::Greater } else { Ordering::Less };
                assert_ne!(ordering, wrong, "sort_by={field}&sort_order={order}: {:?}", pair);
            }
        }
    }
    // Pages of 7 with a count: together, the whole filtered list, in order.
    let (_, all) = server.get("/transactions?status_eq=APPLIED&limit=1000").await;
    let all = ids(&all, "transaction_id");
    let mut paged = Vec::new();
    for offset in (0..all.len() + 7).step_by(7) {
        let body = json!({"filters": [{"field": "status", "operator": "eq", "value": "APPLIED"}],
            "limit": 7, "offset": offset, "include_count": true});
        let (status, page) = server.post("/transactions/filter", body).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total_count"], json!(all.len()));
        paged.extend(ids(&page["data"], "transaction_id"));
    }
    assert_eq!(paged, all);
    // A child is found by its parent, as Blnk's clients find them.
    let parent = world.transactions.iter().find(|t| !text(t, "parent_transaction").is_empty()).expect("a child");
    let (_, children) =
        server.get(&format!("/transactions?parent_transaction_eq={}", text(parent, "parent_transaction"))).await;
    assert!(ids(&children, "transaction_id").contains(&text(parent, "transaction_id")), "{children}");
}

#[tokio::test]
async fn refused_filters_name_the_parameter() {
    let server = Server::start();
    let cases: &[(&str, &str)] = &[
        ("/transactions?nope_eq=1", "nope_eq"),
        ("/transactions?status=APPLIED", "status"),
        ("/transactions?amount_gt=ten", "amount_gt"),
        ("/transactions?amount_like=1%25", "amount_like"),
        ("/transactions?created_at_gte=yesterday", "created_at_gte"),
        ("/transactions?status_between=A", "status_between"),
        ("/transactions?meta_data.1x_eq=a", "meta_data.1x_eq"),
        ("/transactions?balance_id_gt=a", "balance_id_gt"),
        ("/balances?amount_eq=1", "amount_eq"),
        ("/ledgers?name_eq=a&logical_operator=xor", "logical_operator"),
        ("/ledgers?sort_by=colour", "sort_by"),
        ("/transactions?sort_by=balance_id", "sort_by"),
        ("/ledgers?include_count=maybe", "include_count"),
        ("/ledgers?identity_id_isnull=false", "identity_id_isnull"),
    ];
    for (url, param) in cases {
        let (status, body) = server.get(url).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["error_detail"]["code"], "GEN_VALIDATION_ERROR", "{url}: {body}");
        assert_eq!(body["error_detail"]["details"]["field"], *param, "{url}: {body}");
        assert_eq!(body["errors"][0]["param"], *param, "{url}: {body}");
    }
    let many: Vec<String> = (0..21).map(|i| format!("reference_ne=r{i}")).collect();
    let (status, body) = server.get(&format!("/transactions?{}", many.join("&"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let bodies = [
        (json!({"filters": [{"field": "amount", "operator": "zz", "value": 1}]}), "filters[0]"),
        (json!({"filters": [{"field": "status", "operator": "in", "value": "A"}]}), "filters[0]"),
        (json!({"filters": [{"field": "status", "operator": "eq", "value": {"a": 1}}]}), "filters[0]"),
        (json!({"filters": [], "sortby": "amount"}), "sortby"),
        (json!({"filters": [], "sort_order": "up"}), "sort_order"),
    ];
    for (body, field) in bodies {
        let (status, answer) = server.post("/transactions/filter", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error_detail"]["details"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = server.post("/transactions/filter", json!({"filters": [{"field": "x"}]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

#[tokio::test]
async fn monitors_of_both_kinds_are_filtered_as_one_list() {
    let server = Server::start();
    let (currency, ids) = common::parties(&server, 2).await;
    let (alice, bob) = (&ids[1], &ids[2]);
    let (_, alice_balance) = server.get(&format!("/balances/{alice}")).await;
    let ledger = text(&alice_balance, "ledger_id");
    let monitor = |balance: &str, field: &str, value: u64| {
        let condition = json!({"field": field, "operator": ">", "value": value});
        json!({ "balance_id": balance, "condition": condition })
    };
    let fires = server.create("/balance-monitors", monitor(alice, "credit_balance", 5)).await;
    let quiet = server.create("/balance-monitors", monitor(bob, "debit_balance", 1_000_000)).await;
    let rule = server
        .create(
            "/balance-monitors",
            json!({"ledger_id": ledger, "currency": currency, "trigger": "edge",
                "condition": {"field": "credit_balance", "operator": ">", "value": 1}}),
        )
        .await;
    let (status, _) = server.transfer("@World", alice, 1000, &currency).await;
    assert_eq!(status, StatusCode::CREATED);
    let ids_of = |answer: &Value| -> Vec<String> {
        let items = answer.as_array().or_else(|| answer["data"].as_array()).unwrap();
        let mut ids: Vec<String> = items.iter().map(|m| text(m, "monitor_id")).collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<&Value>| {
        v.sort_by_key(|m| text(m, "monitor_id"));
        v.iter().map(|m| text(m, "monitor_id")).collect::<Vec<_>>()
    };
    let cases = [
        (format!("state_eq=triggered&ledger_id_eq={ledger}"), sorted(vec![&fires, &rule])),
        (format!("ledger_id_eq={ledger}"), sorted(vec![&fires, &quiet, &rule])),
        (format!("balance_id_eq={bob}"), sorted(vec![&quiet])),
        (format!("balance_id_isnull=true&ledger_id_eq={ledger}"), sorted(vec![&rule])),
        (format!("field_eq=debit_balance&currency_eq={currency}"), sorted(vec![&quiet])),
        (format!("trigger_in=edge,crossing&ledger_id_eq={ledger}"), sorted(vec![&rule])),
        (format!("trigger_count_gte=1&ledger_id_eq={ledger}"), sorted(vec![&fires, &rule])),
        (format!("last_triggered_at_isnull=true&ledger_id_eq={ledger}"), sorted(vec![&quiet])),
    ];
    for (query, expected) in cases {
        let (status, answer) = server.get(&format!("/balance-monitors?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {answer}");
        assert_eq!(ids_of(&answer), expected, "{query}");
    }
    let body = json!({"filters": [{"field": "ledger_id", "operator": "eq", "value": ledger},
        {"field": "state", "operator": "eq", "value": "ok"}], "include_count": true});
    let (_, answer) = server.post("/balance-monitors/filter", body).await;
    assert_eq!((ids_of(&answer), answer["total_count"].clone()), (sorted(vec![&quiet]), json!(1)));
    let (status, refused) = server.get("/balance-monitors?colour_eq=red").await;
    assert_eq!((status, refused["errors"][0]["param"].clone()), (StatusCode::BAD_REQUEST, json!("colour_eq")));
}
