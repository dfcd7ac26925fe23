// The console in a real headless Chromium (Playwright), against a real Keel that tests/console.rs
// started and filled. Every step asserts; the last line printed is a JSON summary the Rust test
// checks against the API. Any request to anywhere but the server fails the run.
//
// Environment: KEEL_BASE, KEEL_MASTER, KEEL_VIEWER (a read-only key), LEDGER_ID, BALANCE_ID, MONITOR_ID,
// FAILED_EVENT_ID, CHROMIUM (the browser's path), SCREENSHOTS (a folder, optional).

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { chromium } = require("playwright-core");

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is set`);
  return value;
};
const base = env("KEEL_BASE");
const shots = process.env.SCREENSHOTS;
const outside = [];
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const errors = [];

/**
 * Checks the page with axe-core (WCAG 2 A and AA rules: labels, names, contrast, structure); any
 * violation fails the run, with what and where.
 */
async function accessible(page, what) {
  // Evaluated through DevTools rather than added as a script: the console's Content-Security-Policy
  // (scripts from the server only) is on, as users have it, and would refuse a script tag.
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] });
    return result.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
  assert.deepEqual(violations, [], `${what} meets WCAG 2 AA as axe-core checks it`);
}

async function shoot(page, name) {
  await accessible(page, name);
  if (!shots) return;
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: false });
}

/** A fresh browser context (its own sessionStorage): every request is checked to stay local. */
async function open(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.origin === base || url.protocol === "data:") return route.continue();
    outside.push(url.href);
    return route.abort();
  });
  const page = await context.newPage();
  page.on("pageerror", (error) => errors.push(error.message));
  // The page's own Content-Security-Policy must not refuse anything the console itself does.
  page.on("console", (message) => /Content Security Policy/.test(message.text()) && errors.push(message.text()));
  return { context, page };
}

async function signIn(page, key) {
  await page.goto(`${base}/console`);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
}

// Waits (up to 10 s) until `rows` counts `n`, then asserts it. A filtered list is drawn when its
// answer comes, over the unfiltered one, which may already show the rows looked for: so the count
// is awaited, not a row.
async function rowsBecome(rows, n, what) {
  const deadline = Date.now() + 10000;
  let count = await rows.count();
  while (count !== n && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    count = await rows.count();
  }
  assert.equal(count, n, what);
}

async function go(page, hash, heading) {
  await page.goto(`${base}/console${hash}`);
  await page.getByRole("heading", { level: 1, name: heading }).waitFor();
}

async function readOnly(browser) {
  const { context, page } = await open(browser);
  await signIn(page, env("KEEL_VIEWER"));
  assert.match(await page.locator("#who").innerText(), /read-only/);
  // A monitor: visible, with every write button disabled.
  await go(page, `#/monitors/${env("MONITOR_ID")}`, /^Monitor/);
  for (const name of ["Edit", "Delete"]) {
    assert.equal(
      await page.getByRole("button", { name }).isDisabled(),
      true,
      `${name} is disabled for a read-only key`,
    );
  }
  await go(page, "#/events?status=failed", "Events");
  assert.equal(await page.getByRole("button", { name: "Redeliver all failed" }).isDisabled(), true);
  await go(page, `#/events/${env("FAILED_EVENT_ID")}`, /^Event/);
  assert.equal(await page.getByRole("button", { name: "Redeliver" }).isDisabled(), true);
  await go(page, `#/balances/${env("BALANCE_ID")}`, /^Balance/);
  assert.equal(await page.getByRole("button", { name: "New monitor on this balance" }).isDisabled(), true);
  // The server refuses it too: a disabled button is a courtesy, the scope is the rule.
  const status = await page.evaluate(
    async ([id, key]) =>
      (await fetch(`/events/${id}/redeliver`, { method: "POST", headers: { "x-blnk-key": key } })).status,
    [env("FAILED_EVENT_ID"), env("KEEL_VIEWER")],
  );
  assert.equal(status, 403);
  await context.close();
}

async function overview(page) {
  const tile = async (label) => Number(await page.locator(".tile", { hasText: label }).locator(".n").innerText());
  assert.ok((await tile("balances")) >= 3, "the balances are counted");
  assert.ok((await tile("monitors triggered")) >= 1);
  assert.ok((await tile("events failed")) >= 1, "the failed events are counted");
  await page.getByText("Webhook lag, p99").waitFor();
  // From the keyboard alone: a page, once shown, has the focus, and Tab goes on into it; the skip
  // link (the first stop from the top) moves the focus to the page without changing the route.
  assert.equal(await page.evaluate(() => document.activeElement.id), "page");
  await page.keyboard.press("Tab");
  assert.match(await page.evaluate(() => document.activeElement.textContent), /ledgers$/);
  await page.locator(".skip").focus();
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "page");
  assert.ok((await page.evaluate(() => location.hash)) !== "#page", "the route stays");
  await shoot(page, "overview");
}

async function findBalance(page) {
  await go(page, "#/balances", "Balances");
  await page.getByLabel("Find by").selectOption("meta_data");
  await page.getByLabel("Metadata key (for Metadata)").fill("tier");
  await page.getByLabel("Value", { exact: true }).fill("gold");
  await page.getByRole("button", { name: "Find" }).click();
  await rowsBecome(page.locator("tbody tr"), 1, "only the gold balance matches");
  const row = page.getByRole("link", { name: env("BALANCE_ID") });
  await row.waitFor();
  await row.click();
  await page.getByRole("heading", { level: 1, name: /^Balance/ }).waitFor();
  const chart = page.locator("figure.chart");
  await page.waitForFunction(() => document.querySelector("figure.chart")?.dataset.markers !== undefined);
  assert.equal(await chart.getAttribute("data-thresholds"), "2", "the monitor's and the rule's thresholds are drawn");
  assert.equal(await chart.getAttribute("data-markers"), "3", "each trigger of either is marked");
  assert.ok(await page.locator("canvas").first().isVisible(), "the chart is drawn");
  assert.match(await page.locator(".facts").innerText(), /<img src=x onerror/, "markup is shown as text");
  assert.equal(await page.evaluate(() => window.pwned), undefined, "and never run");
  const marked = page.getByRole("table", { name: "Triggers marked" });
  assert.equal(await marked.locator("tbody tr").count(), 3);
  assert.match(await page.getByRole("table", { name: "Monitors" }).innerText(), /Gold above 65/);
  await shoot(page, "balance");
}

async function triggeredMonitor(page) {
  await go(page, "#/monitors?state=triggered", "Monitors");
  const link = page.getByRole("link", { name: "Wallet above 50" });
  await link.click();
  await page.getByRole("heading", { level: 1, name: "Monitor Wallet above 50" }).waitFor();
  assert.match(await page.locator(".facts").innerText(), /triggered/);
  const history = page.getByRole("table").locator("tbody tr");
  assert.ok((await history.count()) >= 3, "both triggers and the resolve are in its history");
  await shoot(page, "monitor");
}

async function editMonitors(page) {
  await go(page, `#/monitors/new?balance_id=${env("BALANCE_ID")}`, "New monitor");
  await page.getByLabel("Field", { exact: true }).selectOption("debit_balance");
  await page.getByLabel("Operator").selectOption(">=");
  await page.getByLabel("Value (major units, exact)").fill("12345678901234567.89");
  await page.getByLabel("Description").fill("Console made");
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { level: 1, name: "Monitor Console made" }).waitFor();
  const created = page.url().split("/").pop();
  assert.match(await page.locator(".facts").innerText(), /debit_balance >= 12345678901234567\.89/);
  await page.getByRole("button", { name: "Edit" }).click();
  await page.getByRole("heading", { level: 1, name: /^Edit monitor/ }).waitFor();
  await page.getByLabel("Value (major units, exact)").fill("75.5");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("heading", { level: 1, name: "Monitor Console made" }).waitFor();
  await page.getByText("debit_balance >= 75.5").waitFor();
  // A refusal is shown, naming the field, and changes nothing.
  await go(page, `#/monitors/${created}/edit`, /^Edit monitor/);
  await page.getByLabel("Value (major units, exact)").fill("1.001");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("alert").waitFor();
  assert.match(await page.getByRole("alert").innerText(), /value/);
  await go(page, `#/monitors/${created}`, "Monitor Console made");
  page.once("dialog", (dialog) => dialog.accept());
  await page.getByRole("button", { name: "Delete" }).click();
  await page.getByRole("heading", { level: 1, name: "Monitors" }).waitFor();
  // A ledger-wide velocity guard: at most 10.00 out of any USD balance of the ledger a day.
  await go(page, "#/monitors/new", "New monitor");
  await page.getByLabel("Or a ledger id").fill(env("LEDGER_ID"));
  await page.getByLabel("Currency (with a ledger id)").fill("USD");
  await page.getByLabel("Field", { exact: true }).selectOption("debit_volume");
  await page.getByLabel("Value (major units, exact)").fill("10");
  await page.getByLabel("Window").fill("24h");
  await page.getByLabel("Action", { exact: true }).selectOption("reject");
  await page.getByLabel("Description").fill("Daily limit");
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { level: 1, name: "Monitor Daily limit" }).waitFor();
  assert.match(await page.locator(".facts").innerText(), /debit_volume > 10 over 24h/);
  return [created, page.url().split("/").pop()];
}

async function redeliver(page) {
  await go(page, "#/events?status=failed", "Events");
  await shoot(page, "events");
  await go(page, `#/events/${env("FAILED_EVENT_ID")}`, /^Event/);
  const attempts = page.getByRole("table", { name: "Every attempt, oldest first" });
  assert.ok((await attempts.locator("tbody tr").count()) >= 2, "each failed attempt is listed");
  assert.match(await attempts.innerText(), /500/);
  await shoot(page, "event");
  await page.getByRole("button", { name: "Redeliver" }).click();
  await page.getByText("Pending again").waitFor();
  // The page reads the event again; delivered once the receiver (now answering 200) took it.
  for (let i = 0; ; i++) {
    await page.waitForTimeout(500);
    await go(page, `#/events/${env("FAILED_EVENT_ID")}`, /^Event/);
    if ((await page.locator(".facts .badge").first().innerText()) === "delivered") break;
    assert.ok(i < 40, "the redelivered event is delivered within 20 s");
  }
  await go(page, "#/events?status=failed", "Events");
  await page.getByRole("button", { name: "Redeliver all failed" }).click();
  await page.getByText(/failed event\(s\) are pending again/).waitFor();
}

async function transactions(page) {
  await go(page, "#/transactions?status=APPLIED", "Transactions");
  assert.ok((await page.locator("tbody tr").count()) >= 4);
  await page.getByRole("link", { name: "console-fund-1" }).click();
  await page.getByRole("heading", { level: 1, name: "Transaction console-fund-1" }).waitFor();
  // Blnk's own filters, typed as the API takes them; a wrong one is refused, naming it.
  await go(page, "#/transactions", "Transactions");
  await page.getByLabel("More filters").fill("precise_amount_gte=5000");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForFunction(() => location.hash.includes("filters="));
  await rowsBecome(page.locator("tbody tr"), 1, "only the 50.00 funding is that large");
  await page.getByRole("link", { name: "console-fund-3" }).waitFor();
  await go(page, "#/transactions?filters=colour_eq%3Dred", "Something went wrong");
  assert.match(await page.getByRole("alert").innerText(), /colour/);
  await go(page, "#/transactions?reference=console-hold", "Transactions");
  await page.getByRole("link", { name: "console-hold" }).click();
  await page.getByRole("heading", { level: 1, name: "Transaction console-hold" }).waitFor();
  const children = page.getByRole("table", { name: "Transactions, newest first" }).locator("tbody tr");
  await rowsBecome(children, 1, "the hold's commit is its child");
  await shoot(page, "transaction");
}

async function reference(browser) {
  const { context, page } = await open(browser);
  await page.goto(`${base}/docs`);
  await page.locator(".opblock").first().waitFor({ timeout: 20000 });
  assert.ok((await page.locator(".opblock").count()) > 50, "every route is listed");
  await page.getByText("A double-entry ledger server").first().waitFor();
  await context.close();
}

async function main() {
  const browser = await chromium.launch({
    executablePath: env("CHROMIUM"),
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    await readOnly(browser);
    const { context, page } = await open(browser);
    await signIn(page, env("KEEL_MASTER"));
    await overview(page);
    await findBalance(page);
    await triggeredMonitor(page);
    const [created, guard] = await editMonitors(page);
    await transactions(page);
    await redeliver(page);
    await context.close();
    await reference(browser);
    assert.deepEqual(outside, [], "no request leaves the machine");
    assert.deepEqual(errors, [], "no page threw, and its policy refused nothing");
    console.log(JSON.stringify({ created_monitor: created, guard, outside }));
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
