// Blnk's official TypeScript SDK (@blnkfinance/blnk-typescript 1.3.0), unchanged, against a real Keel.
//
// Usage: NODE_PATH=path/to/node_modules node blnk_typescript_smoke.js path/to/keel
// Starts keel on a free port with a fresh SQLite file and a webhook receiver, then calls ledgers,
// balances, transactions and every balance monitor method the way Blnk's docs show them.

const { spawn } = require("child_process");
const http = require("http");
const os = require("os");
const path = require("path");
const fs = require("fs");
const readline = require("readline");
const { randomUUID } = require("crypto");
const { BlnkInit } = require("@blnkfinance/blnk-typescript");

let checks = 0;
function check(condition, what, detail) {
  if (!condition) throw new Error(`${what}: ${JSON.stringify(detail)}`);
  checks += 1;
}

function expect(response, status, what) {
  check(response.status === status, `${what}: expected ${status}, got ${response.status}`, response);
  return response.data;
}

async function main() {
  const received = [];
  const hook = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push(JSON.parse(body));
      res.writeHead(200).end();
    });
  });
  await new Promise((r) => hook.listen(0, "127.0.0.1", r));
  const hookUrl = `http://127.0.0.1:${hook.address().port}/hook`;

  const db = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "keel-ts-")), "keel.db");
  const keel = spawn(process.argv[2], ["serve", "--bind", "127.0.0.1", "--port", "0", "--database", `sqlite://${db}`,
    "--api-key", "sdk-key", "--webhook-url", hookUrl, "--tokenization-secret", "0123456789abcdef0123456789abcdef"],
    { stdio: ["ignore", "pipe", "inherit"] });
  const baseUrl = await new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: keel.stdout });
    lines.on("line", (line) => {
      const at = line.indexOf("listening on ");
      if (at >= 0) resolve(`http://${line.slice(at + 13).trim()}`);
    });
    keel.on("exit", () => reject(new Error("keel exited")));
  });

  try {
    const blnk = await BlnkInit("sdk-key", { baseUrl });
    const { Ledgers, LedgerBalances, Transactions, BalanceMonitor, Metadata, Hooks, Search, Identity } = blnk;
    const postHook = expect(await Hooks.create({ name: "audit", url: hookUrl, type: "POST_TRANSACTION", active: true,
      timeout: 5, retry_count: 2 }), 201, "hook");
    check(postHook.id.startsWith("hook_") && postHook.timeout === 5, "hook created", postHook);
    const ledger = expect(await Ledgers.create({ name: "Customer Savings Account", meta_data: { project_owner: "keel" } }), 201, "ledger");
    check(ledger.ledger_id.startsWith("ldg_"), "ledger id", ledger);
    const balance = expect(await LedgerBalances.create({ ledger_id: ledger.ledger_id, currency: "USD" }), 201, "balance");
    const other = expect(await LedgerBalances.create({ ledger_id: ledger.ledger_id, currency: "USD" }), 201, "balance");

    const monitor = expect(await BalanceMonitor.create({
      balance_id: balance.balance_id,
      condition: { field: "balance", operator: ">", value: 1000, precision: 100 },
      description: "Tier 1 Account",
      call_back_url: hookUrl,
    }), 201, "monitor");
    check(monitor.condition.precise_value === 100000, "precise_value", monitor);
    check(expect(await BalanceMonitor.get(monitor.monitor_id), 200, "get monitor").monitor_id === monitor.monitor_id, "get", monitor);
    check(expect(await BalanceMonitor.list(), 200, "list monitors").length === 1, "list", null);
    const updated = expect(await BalanceMonitor.update(monitor.monitor_id, {
      balance_id: balance.balance_id,
      condition: { field: "balance", operator: ">", value: 500, precision: 100 },
      description: "Tier 1 Account",
      call_back_url: hookUrl,
    }), 200, "update monitor");
    check(updated.condition.precise_value === 50000, "updated precise_value", updated);

    const funded = expect(await Transactions.create({
      amount: 750, reference: `ref_${randomUUID()}`, currency: "USD", precision: 100, source: "@World",
      destination: balance.balance_id, description: "funding", skip_queue: true,
    }), 201, "funding");
    check(funded.status === "APPLIED" && funded.precise_amount === 75000, "applied", funded);
    check(expect(await LedgerBalances.get(balance.balance_id), 200, "balance").balance === 75000, "balance moved", null);
    check(expect(await Transactions.getByReference(funded.reference), 200, "by ref").transaction_id === funded.transaction_id, "by ref", null);
    const preview = expect(await Transactions.create({
      amount: 10, reference: `ref_${randomUUID()}`, currency: "USD", precision: 100, source: balance.balance_id,
      destination: other.balance_id, description: "preview", dry_run: true,
    }), 200, "dry run");
    check(preview.dry_run === true && preview.would_apply === true && preview.precise_amount === "1000", "dry run", preview);
    check(expect(await LedgerBalances.get(balance.balance_id), 200, "balance").balance === 75000, "a dry run moves nothing", null);
    const bulk = expect(await Transactions.createBulk({ atomic: true, skip_queue: true, transactions: [1, 2].map((i) => ({
      amount: 1, reference: `ref_${randomUUID()}`, currency: "USD", precision: 100, source: balance.balance_id,
      destination: other.balance_id, description: `bulk ${i}`,
    })) }), 201, "bulk");
    check(bulk.status === "applied" && bulk.transaction_count === 2, "bulk applied", bulk);
    const bulkPreview = expect(await Transactions.createBulk({ atomic: true, skip_queue: true, dry_run: true,
      transactions: [1, 10000000].map((amount) => ({
        amount, reference: `ref_${randomUUID()}`, currency: "USD", precision: 100, source: balance.balance_id,
        destination: other.balance_id, description: "bulk preview",
      })) }), 200, "bulk dry run");
    check(bulkPreview.would_apply === false && bulkPreview.results[1].rejection.code === "TXN_INSUFFICIENT_FUNDS",
      "bulk dry run names the item", bulkPreview);
    const heldBatch = expect(await Transactions.createBulk({ inflight: true, skip_queue: true, transactions: [1, 2].map(() => ({
      amount: 1, reference: `ref_${randomUUID()}`, currency: "USD", precision: 100, source: balance.balance_id,
      destination: other.balance_id, description: "held",
    })) }), 201, "inflight bulk");
    const batchCommit = expect(await Transactions.updateStatus(heldBatch.batch_id, { status: "commit" }), 200, "commit batch");
    check(batchCommit.status === "APPLIED", "a batch is committed by its id", batchCommit);
    const batchRefund = expect(await Transactions.refund(heldBatch.batch_id, { skip_queue: true }), 201, "refund batch");
    check(batchRefund.source === other.balance_id, "a batch is refunded by its id", batchRefund);
    check(expect(await LedgerBalances.get(balance.balance_id), 200, "balance").balance === 74800, "batch refunded", null);
    const held = expect(await Transactions.create({
      amount: 10, reference: `ref_${randomUUID()}`, currency: "USD", precision: 100, source: balance.balance_id,
      destination: other.balance_id, description: "hold", inflight: true, skip_queue: true,
    }), 201, "inflight");
    const committed = expect(await Transactions.updateStatus(held.transaction_id, { status: "commit" }), 200, "commit");
    check(committed.precise_amount === 1000, "committed", committed);
    const tagged = expect(await Metadata.update(committed.transaction_id, { meta_data: { invoice: "INV-1" } }), 200, "metadata");
    check(tagged.meta_data.invoice === "INV-1", "metadata merged", tagged);
    expect(await Transactions.refund(committed.transaction_id, { skip_queue: true }), 201, "refund");

    for (let i = 0; i < 200 && !received.some((e) => e.event === "balance.monitor"); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const event = received.find((e) => e.event === "balance.monitor");
    check(event && event.data.monitor_id === monitor.monitor_id, "monitor webhook", received);
    check(event.data.balance.balance === 75000, "snapshot", event);

    for (let i = 0; i < 200 && !received.some((e) => e.hook_type === "POST_TRANSACTION"); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const call = received.find((e) => e.hook_type === "POST_TRANSACTION");
    check(call && call.data.transaction_id === call.transaction_id, "a POST_TRANSACTION hook's call", received);
    // Filters, as the SDK sends them: the ledger's balances, with a count.
    const found = expect(await Search.filter({ filters: [
      { field: "ledger_id", operator: "eq", value: ledger.ledger_id },
      { field: "balance", operator: "gte", value: 0 }], include_count: true }, "balances"), 200, "filter");
    check(found.total_count === found.data.length && found.data.length >= 1, "filter count", found);
    check(found.data.every((b) => b.ledger_id === ledger.ledger_id), "filtered balances", found);
    const usd = expect(await Search.filter({ filters: [{ field: "currency", operator: "in", values: ["USD"] }],
      sort_by: "amount", sort_order: "asc", limit: 5 }, "transactions"), 200, "filter transactions");
    check(usd.length >= 1 && usd.length <= 5 && usd.every((t) => t.currency === "USD"), "filtered transactions", usd);
    // Identities: created, linked to a balance, tokenized and read back, as the SDK sends them.
    const person = expect(await Identity.create({ identity_type: "individual", first_name: "Ada", last_name: "Obi",
      email_address: "ada@example.com", dob: "1990-05-17T00:00:00Z" }), 201, "identity");
    const pid = person.identity_id;
    check(expect(await Identity.get(pid), 200, "get identity").first_name === "Ada", "identity read", null);
    check(expect(await Identity.list(), 200, "identities").some((i) => i.identity_id === pid), "identity listed", null);
    expect(await Identity.update(pid, { identity_type: "individual", first_name: "Ada", last_name: "Obi-Eze",
      email_address: "ada@example.com" }), 200, "update identity");
    expect(await LedgerBalances.updateIdentity(balance.balance_id, { identity_id: pid }), 200, "link identity");
    expect(await Identity.tokenizeField(pid, "email_address"), 200, "tokenize field");
    expect(await Identity.tokenize(pid, { fields: ["first_name"] }), 200, "tokenize");
    const tokenized = expect(await Identity.getTokenizedFields(pid), 200, "tokenized fields").tokenized_fields;
    check(tokenized.length === 2 && tokenized.includes("first_name"), "tokenized fields", tokenized);
    const opened = expect(await Identity.detokenizeField(pid, "email_address"), 200, "detokenize field");
    check(opened.value === "ada@example.com", "detokenized", opened);
    const fields = expect(await Identity.detokenize(pid, { fields: ["first_name"] }), 200, "detokenize");
    check(fields.fields.first_name === "Ada", "detokenized fields", fields);
    const people = expect(await Search.filter({ filters: [{ field: "last_name", operator: "eq", value: "Obi-Eze" }] },
      "identities"), 200, "filter identities");
    check(people.length === 1 && people[0].identity_id === pid, "filtered identities", people);
    const then = expect(await LedgerBalances.getAt(balance.balance_id, { timestamp: "2030-01-01T00:00:00Z" }), 200, "at");
    const current = expect(await LedgerBalances.get(balance.balance_id), 200, "balance");
    check(then.balance.balance === current.balance, "balance at a later instant", [then, current]);
    const early = expect(await LedgerBalances.getAt(balance.balance_id, { timestamp: "2000-01-01T00:00:00Z",
      from_source: true }), 200, "early");
    check(early.balance.balance === 0 && early.from_source === true, "balance before any transaction", early);
    const snap = expect(await LedgerBalances.createSnapshot({ batch_size: 500 }), 200, "snapshots");
    check(snap.message === "Snapshotting in progress. should be completed shortly", "snapshots started", snap);
    let hits = [];
    for (const deadline = Date.now() + 10000; Date.now() < deadline && hits.length === 0;) {
      hits = expect(await Search.search({ q: "Obi-Eze", query_by: "first_name,last_name" }, "identities"), 200,
        "search").hits;
      await new Promise((r) => setTimeout(r, 50));
    }
    check(hits.length === 1 && hits[0].document.identity_id === pid, "search found the identity", hits);
    const dollars = expect(await Search.search({ q: "*", filter_by: "currency:=USD", sort_by: "amount:desc", per_page: 3 },
      "transactions"), 200, "search transactions");
    check(dollars.found >= 1 && typeof dollars.hits[0].document.created_at === "number", "search documents", dollars);
    const reindex = expect(await Search.startReindex({ batch_size: 100 }), 200, "reindex");
    check(reindex.message === "Reindex operation started", "reindex started", reindex);
    const progress = expect(await Search.getReindexStatus(), 200, "reindex status");
    check(["in_progress", "completed"].includes(progress.status), "reindex progress", progress);
    const hooks = expect(await Hooks.list({ type: "POST_TRANSACTION" }), 200, "list hooks");
    check(hooks.length === 1 && hooks[0].id === postHook.id, "hooks by type", hooks);
    const changed = expect(await Hooks.update(postHook.id, { name: "audit-2", url: hookUrl, type: "PRE_TRANSACTION",
      active: false, timeout: 5, retry_count: 1 }), 200, "update hook");
    check(changed.type === "PRE_TRANSACTION" && changed.retry_count === 1, "hook replaced", changed);
    check(expect(await Hooks.get(postHook.id), 200, "get hook").name === "audit-2", "hook read", null);
    const gone = expect(await Hooks.delete(postHook.id), 200, "delete hook");
    check(gone.message === "hook deleted successfully", "hook delete message", gone);

    const deleted = expect(await BalanceMonitor.delete(monitor.monitor_id), 200, "delete monitor");
    check(deleted.message === "BalanceMonitor deleted successfully", "delete message", deleted);
    check((await BalanceMonitor.get(monitor.monitor_id)).status === 404, "deleted is gone", null);
    console.log(`blnk-typescript: ${checks} passed, 0 failed`);
  } finally {
    keel.kill("SIGTERM");
    hook.close();
  }
}

main().catch((error) => {
  console.error(error);
  console.log(`blnk-typescript: ${checks} passed, 1 failed`);
  process.exit(1);
});
