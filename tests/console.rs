//! The console (`/console`) in a real headless browser: Debian's Chromium, driven by Playwright
//! (`tests/console/console_browser.cjs`), against a real `keel serve` filled through the API, with a
//! real webhook receiver. The script signs in with a read-only key and the master key, finds a
//! balance, reads its chart's thresholds and triggers, creates, edits and deletes a monitor,
//! redelivers failed events, checks each main page against WCAG 2 AA with axe-core, and checks
//! that no request leaves the machine; this test then checks
//! what the clicks did through the API.
//!
//! Needs `node`, `chromium` (`/usr/bin/chromium`, or `KEEL_TEST_CHROMIUM`) and npm's
//! `playwright-core` and `axe-core` (installed into `target/console-node` on first use). `.ci/run` installs
//! Chromium; without it the test says so and passes only outside CI (`CI` unset).

mod common;

use common::receiver::{Mode, Receiver};
use common::Server;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MASTER: &str = "console-master-key";
/// The npm packages the script uses: Playwright's driver (no browser download) and axe-core, the
/// accessibility rules it checks each page with.
const PACKAGES: [&str; 2] = ["playwright-core@1.65.2", "axe-core@4.14.1"];

/// What the browser test runs with.
struct Browser {
    chromium: PathBuf,
    modules: PathBuf,
}

/// Finds Chromium and node, and installs Playwright's driver (no browser download) if missing.
/// `None` (with the reason printed) outside CI when something is missing; in CI, a failure.
fn browser() -> Option<Browser> {
    let missing = |what: String| {
        assert!(std::env::var_os("CI").is_none(), "the console's browser test needs {what} (.ci/run installs it)");
        eprintln!("SKIPPED: the console's browser test needs {what}");
        None
    };
    let chromium =
        std::env::var_os("KEEL_TEST_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.exists() {
        return missing(format!("Chromium at {} (apt-get install chromium)", chromium.display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return missing("node".into());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-node");
    let modules = root.join("node_modules");
    let installed = |package: &str| modules.join(package.split('@').next().unwrap()).join("package.json").exists();
    if !PACKAGES.iter().all(|p| installed(p)) {
        std::fs::create_dir_all(&root).expect("target/console-node");
        let npm = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&root)
            .args(PACKAGES)
            .status();
        if !npm.is_ok_and(|s| s.success()) {
            return missing(format!("npm's {}", PACKAGES.join(" and ")));
        }
    }
    Some(Browser { chromium, modules })
}

/// A request with the master key.
async fn call(server: &Server, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
    let headers = [("x-blnk-key", MASTER), ("content-type", "application/json")];
    let answer = server.send(method, path, &headers, body).await.expect("a valid request");
    (answer.status, serde_json::from_str(&answer.body).unwrap_or(Value::Null))
}

async fn create(server: &Server, path: &str, body: Value) -> Value {
    let (status, value) = call(server, "POST", path, Some(body.clone())).await;
    assert!(status.is_success(), "POST {path} {body} → {status} {value}");
    value
}

/// A transfer, effective `days_ago` days ago (the chart plots effective time).
async fn transfer(server: &Server, reference: &str, (source, destination): (&str, &str), amount: u64, days_ago: u64) {
    let (_, to) = call(server, "GET", &format!("/balances/{destination}"), None).await;
    let at = std::time::SystemTime::now() - Duration::from_secs(days_ago * 86_400 + 3_600);
    let effective = humantime::format_rfc3339_seconds(at).to_string();
    let body = json!({"precise_amount": amount, "currency": to["currency"], "source": source,
        "destination": destination, "reference": reference, "skip_queue": true, "effective_date": effective});
    create(server, "/transactions", body).await;
}

/// How many events have `status` (`/events?include_count=true`).
async fn events_with(server: &Server, status: &str) -> u64 {
    let (_, page) = call(server, "GET", &format!("/events?status={status}&limit=1&include_count=true"), None).await;
    page["total_count"].as_u64().expect("a count")
}

/// A ledger with a gold balance whose monitor triggered twice and resolved once, and a ledger-wide
/// rule over gold balances that triggered once, each event failed at its receiver; a silver balance
/// with a committed hold. Answers the ledger, the gold balance,
/// its monitor and the monitor's first event.
async fn fill(server: &Server, hook: &Receiver) -> [String; 4] {
    let currency = "USD"; // the server's database is the test's own
    let ledger = create(server, "/ledgers", json!({"name": "Console wallets"})).await["ledger_id"].clone();
    // Markup in what the API holds is shown as text, never run (`window.pwned` stays unset).
    let note = "<img src=x onerror=\"window.pwned=1\">";
    let balance =
        |tier: &str| json!({"ledger_id": ledger, "currency": currency, "meta_data": {"tier": tier, "note": note}});
    let gold = create(server, "/balances", balance("gold")).await["balance_id"].as_str().unwrap().to_string();
    let silver = create(server, "/balances", balance("silver")).await["balance_id"].as_str().unwrap().to_string();
    let monitor = create(
        server,
        "/balance-monitors",
        json!({"balance_id": gold, "description": "Wallet above 50", "trigger": "crossing", "call_back_url": hook.url,
            "condition": {"field": "balance", "operator": ">", "value": 50, "precision": 100}}),
    )
    .await["monitor_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A ledger-wide rule that covers the gold balance (and not the silver one).
    let rule = json!({"ledger_id": ledger, "currency": currency, "balance_meta_data": {"tier": "gold"},
        "description": "Gold above 65", "trigger": "crossing", "call_back_url": hook.url,
        "condition": {"field": "balance", "operator": ">", "value": 65, "precision": 100}});
    create(server, "/balance-monitors", rule).await;
    transfer(server, "console-fund-1", ("@World", &gold), 3000, 6).await;
    transfer(server, "console-fund-2", ("@World", &gold), 3000, 5).await; // 60.00: triggers
    transfer(server, "console-spend", (&gold, &silver), 4000, 3).await; // 20.00: resolves
    transfer(server, "console-fund-3", ("@World", &gold), 5000, 1).await; // 70.00: triggers again, and the rule
    let hold = json!({"precise_amount": 900, "currency": currency, "source": "@World", "destination": silver,
        "reference": "console-hold", "skip_queue": true, "inflight": true});
    let hold = create(server, "/transactions", hold).await["transaction_id"].as_str().unwrap().to_string();
    let commit = json!({"status": "commit", "precise_amount": 400});
    let (status, body) = call(server, "PUT", &format!("/transactions/inflight/{hold}"), Some(commit)).await;
    assert!(status.is_success(), "{body}");
    // Each of the monitor's three events and the rule's one fails at the receiver (two attempts each).
    for _ in 0..400 {
        if events_with(server, "failed").await >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events_with(server, "failed").await, 4, "the monitors' events failed");
    let (_, history) = call(server, "GET", &format!("/balance-monitors/{monitor}/events?sort_order=asc"), None).await;
    let first = history[0]["event_id"].as_str().unwrap().to_string();
    [ledger.as_str().unwrap().to_string(), gold, monitor, first]
}

// tidy: long because it is one scenario: fill, run the browser, check what it did
#[tokio::test(flavor = "multi_thread")]
async fn the_console_shows_the_ledger_and_changes_it_only_through_the_api() {
    let Some(browser) = browser() else { return };
    let hook = Receiver::start().await;
    hook.set_mode(Mode::Status(500));
    let server = Server::start_with_args(&[
        "--api-key",
        MASTER,
        "--webhook-max-attempts",
        "2",
        "--webhook-retry-base-ms",
        "20",
        "--webhook-retry-max-ms",
        "40",
    ]);
    let [ledger, balance, monitor, failed] = fill(&server, &hook).await;
    let viewer = create(&server, "/api-keys", json!({"name": "viewer", "owner": "ops", "scopes": ["*:read"]})).await;
    hook.set_mode(Mode::Ok);
    let delivered_before = hook.received().len();

    let screenshots = std::env::var("KEEL_CONSOLE_SCREENSHOTS").ok();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/console_browser.cjs");
    let run = tokio::task::spawn_blocking({
        let (base, viewer) = (server.base.clone(), viewer["key"].as_str().unwrap().to_string());
        let (ledger, balance, monitor, failed) = (ledger.clone(), balance.clone(), monitor.clone(), failed.clone());
        move || {
            let mut command = Command::new("node");
            command
                .arg(script)
                .env("NODE_PATH", &browser.modules)
                .env("CHROMIUM", &browser.chromium)
                .env("KEEL_BASE", base)
                .env("KEEL_MASTER", MASTER)
                .env("KEEL_VIEWER", viewer)
                .env("LEDGER_ID", ledger)
                .env("BALANCE_ID", balance)
                .env("MONITOR_ID", monitor)
                .env("FAILED_EVENT_ID", failed);
            if let Some(dir) = screenshots {
                command.env("SCREENSHOTS", dir);
            }
            command.output().expect("node runs")
        }
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "the browser script failed:\n{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("a JSON summary");
    assert_eq!(summary["outside"], json!([]), "no request left the machine");

    // The monitor the console created, edited and deleted is gone; the one it only looked at is as it was.
    let created = summary["created_monitor"].as_str().expect("the console created a monitor");
    let (status, _) = call(&server, "GET", &format!("/balance-monitors/{created}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted through the console");
    let (_, watched) = call(&server, "GET", &format!("/balance-monitors/{monitor}"), None).await;
    assert_eq!(watched["state"], "triggered");
    assert_eq!(watched["trigger_count"], 2);
    // Every failed event was redelivered from the console and reached the receiver, the one sent
    // on its own first.
    let arrived = hook.wait_for(delivered_before + 4).await;
    let ids: Vec<&str> = arrived[delivered_before..].iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids[0], failed, "the event redelivered on its own page arrived first");
    assert_eq!(events_with(&server, "failed").await, 0);
    for _ in 0..200 {
        if events_with(&server, "delivered").await == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events_with(&server, "delivered").await, 4);

    // The guard the console made refuses what it should: 20.00 out of a balance of the ledger.
    let guard = summary["guard"].as_str().expect("the console created a guard");
    let (_, rule) = call(&server, "GET", &format!("/balance-monitors/{guard}"), None).await;
    assert_eq!(
        (&rule["ledger_id"], &rule["currency"], &rule["action"]),
        (&json!(ledger), &json!("USD"), &json!("reject"))
    );
    assert_eq!(rule["condition"]["window"], "24h", "{rule}");
    let (_, gold) = call(&server, "GET", &format!("/balances/{balance}"), None).await;
    let spend = json!({"precise_amount": 2000, "currency": "USD", "source": balance, "destination": "@World",
        "reference": "console-over-limit", "skip_queue": true});
    let (status, refused) = call(&server, "POST", "/transactions", Some(spend)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused.to_string().contains(guard), "the refusal names the guard: {refused}");
    let (_, after) = call(&server, "GET", &format!("/balances/{balance}"), None).await;
    assert_eq!(after["balance"], gold["balance"], "nothing moved");
}

/// What the console's script relies on, over HTTP without a browser: the page and its files are
/// public, the session tells each key what it may do, and the events' counts and bulk redelivery.
#[tokio::test]
async fn the_console_routes_answer_what_the_page_relies_on() {
    let server = Server::in_process(Some(MASTER));
    for path in ["/console", "/console/assets/console.js", "/console/assets/uPlot.iife.min.js", "/docs"] {
        let answer = server.send("GET", path, &[], Vec::new()).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{path} needs no key");
    }
    let page = server.send("GET", "/console", &[], Vec::new()).await.unwrap();
    assert!(!page.body.contains("http://") && !page.body.contains("https://"), "the page loads nothing from elsewhere");
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    let missing = server.send("GET", "/console/assets/../Cargo.toml", &[], Vec::new()).await.unwrap();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let anonymous = server.send("GET", "/console/session", &[], Vec::new()).await.unwrap();
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "the session says nothing without a key");

    let (status, master) = call(&server, "GET", "/console/session", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(master["key"], "master");
    assert_eq!(master["allows"]["events"], json!({"read": true, "write": true}));
    let viewer = create(&server, "/api-keys", json!({"name": "viewer", "owner": "ops", "scopes": ["*:read"]})).await;
    let key = viewer["key"].as_str().unwrap();
    let answer = server.send("GET", "/console/session", &[("x-blnk-key", key)], Vec::new()).await.unwrap();
    let session: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(session["key"], "scoped");
    assert_eq!(session["name"], "viewer");
    assert_eq!(session["allows"]["balance-monitors"], json!({"read": true, "write": false}));
    let refused = server.send("POST", "/events/redeliver-failed", &[("x-blnk-key", key)], Vec::new()).await.unwrap();
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "a read-only key redelivers nothing");

    let (_, counted) = call(&server, "GET", "/events?include_count=true&limit=1", None).await;
    assert!(counted["data"].is_array() && counted["total_count"].is_u64(), "{counted}");
    let (status, wrong) = call(&server, "GET", "/events?include_count=maybe", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong["error_detail"]["details"]["field"], "include_count");
    let (status, none_failed) = call(&server, "POST", "/events/redeliver-failed", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none_failed, json!({"redelivered": 0, "remaining": 0}));
}

/// Without a key on the server, the console opens at once: the session says everything is allowed.
#[tokio::test]
async fn an_open_server_needs_no_sign_in() {
    let server = Server::in_process(None);
    let answer = server.send("GET", "/console/session", &[], Vec::new()).await.unwrap();
    let session: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(session["key"], "none");
    assert_eq!(session["allows"]["transactions"]["write"], true);
}
