// The console's pages. Each takes the route's values (`id`, `query`) and returns the page's element;
// every list is paged and filtered by the server (PAGE rows a request), so a page stays fast on a
// ledger of millions. Writes are the API's own requests, offered only where the key may make them.

import { balanceChart } from "./chart.js";
import {
  PAGE,
  auth,
  call,
  code,
  explain,
  facts,
  field,
  h,
  link,
  may,
  notice,
  pager,
  select,
  table,
  when,
  writeButton,
} from "./ui.js";

/** Fields a monitor's condition can name whose totals the balance history has (the chart draws those). */
const CHARTED = ["balance", "credit_balance", "debit_balance"];
const FIELDS = [
  "balance",
  "credit_balance",
  "debit_balance",
  "inflight_balance",
  "inflight_credit_balance",
  "inflight_debit_balance",
  "debit_volume",
  "credit_volume",
  "transaction_count",
];
const OPERATORS = [">", ">=", "<", "<=", "=", "!="];

const enc = encodeURIComponent;
const offsetOf = (query) => Math.max(0, Number.parseInt(query.get("offset") || "0", 10) || 0);

/** A list request for the page at `offset` of `path` with `params` (one more row than shown). */
async function listPage(path, params, offset) {
  const query = new URLSearchParams(params);
  query.set("limit", String(PAGE + 1));
  if (offset) query.set("offset", String(offset));
  return call("GET", `${path}?${query}`);
}

/**
 * The "more filters" box: Blnk's own `field_operator=value` pairs joined by `&`
 * (`amount_gte=1000&meta_data.order_eq=42`), passed to the API as they are; it refuses a wrong one
 * with a 400 naming it, which the page shows.
 */
function moreFilters(query, params) {
  for (const [name, value] of new URLSearchParams(query.get("filters") || "")) params[name] = value;
  return params;
}

const moreField = (query) =>
  field(
    "More filters (field_operator=value, joined by &)",
    h("input", { name: "filters", value: query.get("filters") || "", size: 32 }),
  );

/** A list's filter form: `fields`, the "more filters" box and `button`; submitting it makes its
 * non-empty fields the page's address (`#route?…`), which the list reads. */
function filterForm(label, route, query, button, fields) {
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": label },
    fields,
    moreField(query),
    h("button", { type: "submit" }, button),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new URLSearchParams(new FormData(form));
    for (const [k, v] of [...data]) if (!v) data.delete(k);
    location.hash = `#${route}?${data}`;
  });
  return form;
}

async function countOf(path) {
  const answer = await call("GET", `${path}${path.includes("?") ? "&" : "?"}limit=1&include_count=true`);
  return answer.total_count;
}

const condition = (m) => {
  const c = m.condition || {};
  const window = c.window ? ` over ${c.window}` : "";
  return `${c.field} ${c.operator} ${c.value}${window}`;
};
/** What a monitor watches: its balance, every balance a rule covers, or a rule's one balance (as a balance's page lists it). */
function watched(m) {
  if (!m.balance_id) return `ledger ${m.ledger_id} (every balance it covers)`;
  const balance = link(`#/balances/${m.balance_id}`, m.balance_id);
  return m.ledger_id ? h("span", {}, balance, ` (a rule of ledger ${m.ledger_id})`) : balance;
}
const stateBadge = (state) => h("span", { class: `badge ${state}` }, state);

// --- Overview -----------------------------------------------------------------------------------

/** The last `/metrics` reading, to turn counters into rates on the next. */
let lastReading = null;

function readMetrics(text) {
  const reading = { at: performance.now() / 1000, transactions: 0, pending: null, lag: [] };
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-z_]+)(\{[^}]*\})?\s+(\S+)$/);
    if (!match) continue;
    const [, name, labels = "", value] = match;
    if (name === "keel_transactions_total") reading.transactions += Number(value);
    if (name === "keel_outbox_pending_events") reading.pending = Number(value);
    if (name === "keel_webhook_delivery_lag_seconds_bucket") {
      const le = labels.match(/le="([^"]+)"/);
      if (le) reading.lag.push([le[1] === "+Inf" ? Infinity : Number(le[1]), Number(value)]);
    }
  }
  return reading;
}

/** The bucket bound under which `q` of the deliveries' lag fell (as Prometheus' histogram_quantile). */
function quantile(buckets, q) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!total) return null;
  const bound = buckets.find(([, count]) => count >= q * total);
  return bound ? bound[0] : null;
}

const seconds = (s) =>
  s === null ? "—" : s === Infinity ? "> largest bucket" : `≤ ${s < 1 ? `${s * 1000} ms` : `${s} s`}`;

async function metricsSection() {
  if (!may("metrics", "read")) return h("p", { class: "empty" }, "This key has no metrics:read scope.");
  const response = await fetch("/metrics", { headers: auth.key ? { "x-blnk-key": auth.key } : {} });
  const reading = readMetrics(await response.text());
  const previous = lastReading;
  lastReading = reading;
  const rate =
    previous && reading.at > previous.at
      ? `${((reading.transactions - previous.transactions) / (reading.at - previous.at)).toFixed(1)} /s`
      : "measuring… (refreshes every 5 s)";
  return facts([
    ["Transactions recorded by this process", String(reading.transactions)],
    ["Throughput (since the last refresh)", rate],
    ["Events waiting for delivery (outbox)", reading.pending === null ? "—" : String(reading.pending)],
    ["Webhook lag, p50", seconds(quantile(reading.lag, 0.5))],
    ["Webhook lag, p99", seconds(quantile(reading.lag, 0.99))],
  ]);
}

async function overview() {
  const count = async (resource, path) => (may(resource, "read") ? String(await countOf(path)) : "—");
  const [ledgers, balances, transactions, monitors, triggered, pending, failed] = await Promise.all([
    count("ledgers", "/ledgers"),
    count("balances", "/balances"),
    count("transactions", "/transactions"),
    count("balance-monitors", "/balance-monitors"),
    count("balance-monitors", "/balance-monitors?state_eq=triggered"),
    count("events", "/events?status=pending"),
    count("events", "/events?status=failed"),
  ]);
  const metrics = h("section", { "aria-labelledby": "metrics-h" }, h("h2", { id: "metrics-h" }, "Throughput and lag"));
  metrics.append(await metricsSection());
  const refresh = async () => {
    if (!metrics.isConnected) return;
    metrics.replaceChildren(metrics.firstChild, await metricsSection().catch((e) => h("p", {}, explain(e))));
    setTimeout(refresh, 5000);
  };
  setTimeout(refresh, 5000);
  const tile = (label, value, href) => h("a", { class: "tile", href }, h("span", { class: "n" }, value), label);
  return h(
    "div",
    {},
    h("h1", {}, "Overview"),
    h(
      "div",
      { class: "tiles" },
      tile("ledgers", ledgers, "#/balances"),
      tile("balances", balances, "#/balances"),
      tile("transactions", transactions, "#/transactions"),
      tile("monitors", monitors, "#/monitors"),
      tile("monitors triggered", triggered, "#/monitors?state=triggered"),
      tile("events pending", pending, "#/events?status=pending"),
      tile("events failed", failed, "#/events?status=failed"),
    ),
    metrics,
  );
}

// --- Balances -----------------------------------------------------------------------------------

const BALANCE_FINDERS = [
  ["", "Any"],
  ["balance_id", "Balance id"],
  ["indicator", "Indicator"],
  ["ledger_id", "Ledger id"],
  ["currency", "Currency"],
  ["meta_data", "Metadata key"],
];

async function balances({ query }) {
  const by = query.get("by") || "";
  const value = query.get("value") || "";
  const metaKey = query.get("key") || "";
  const params = {};
  if (by === "meta_data" && metaKey && value) params[`meta_data.${metaKey}_eq`] = value;
  else if (by && by !== "meta_data" && value) params[`${by}_eq`] = value;
  const offset = offsetOf(query);
  const rows = await listPage("/balances", moreFilters(query, params), offset);
  const form = filterForm("Find balances", "/balances", query, "Find", [
    field("Find by", select("by", BALANCE_FINDERS, by)),
    field("Metadata key (for Metadata)", h("input", { name: "key", value: metaKey })),
    field("Value", h("input", { name: "value", value, type: "search" })),
  ]);
  const shown = rows.slice(0, PAGE);
  return h(
    "div",
    {},
    h("h1", {}, "Balances"),
    form,
    table(
      "Balances, newest first",
      [
        ["Balance", (b) => link(`#/balances/${b.balance_id}`, b.balance_id)],
        ["Indicator", (b) => b.indicator || ""],
        ["Ledger", (b) => b.ledger_id],
        ["Currency", (b) => b.currency],
        ["Balance (minor units)", (b) => h("span", { class: "num" }, b.balance)],
        ["Credit", (b) => h("span", { class: "num" }, b.credit_balance)],
        ["Debit", (b) => h("span", { class: "num" }, b.debit_balance)],
        ["Created", (b) => when(b.created_at)],
      ],
      shown,
      "No balance matches.",
    ),
    pager("/balances", query, offset, rows.length),
  );
}

const RANGES = [
  ["1d", "Last 24 hours", 86400],
  ["7d", "Last 7 days", 7 * 86400],
  ["30d", "Last 30 days", 30 * 86400],
  ["all", "Since it was created", null],
];

async function balance({ id, query }) {
  const range = RANGES.find(([key]) => key === query.get("range")) || RANGES[1];
  // Its own monitors and the ledger-wide rules that cover it, each with this balance's state.
  const [b, monitors, recent] = await Promise.all([
    call("GET", `/balances/${enc(id)}`),
    call("GET", `/balance-monitors/balances/${enc(id)}`),
    call("GET", `/transactions?balance_id_eq=${enc(id)}&limit=10`),
  ]);
  const since = range[2] ? `&from=${enc(new Date(Date.now() - range[2] * 1000).toISOString())}` : "";
  const history = await call("GET", `/balances/${enc(id)}/history?limit=2000${since}`);
  // A range reaching back before the balance existed is drawn from its creation, or from its first
  // movement if that took effect earlier (a backdated transaction): nothing moved before.
  const time = (text) => new Date(text).getTime();
  const first = history.points.length ? time(history.points[0].at) : Infinity;
  const drawnFrom = Math.max(time(history.from), Math.min(time(b.created_at), first));
  history.from = new Date(drawnFrom).toISOString();
  const triggers = await Promise.all(
    monitors.map((m) => call("GET", `/balance-monitors/${enc(m.monitor_id)}/events?limit=200`)),
  );
  const lines = [];
  const marks = [];
  const start = new Date(history.from).getTime();
  // A trigger is marked where its transaction took effect (the chart's time), else when it committed.
  const effective = new Map(history.points.map((p) => [p.transaction_id, p.at]));
  monitors.forEach((m, i) => {
    const c = m.condition || {};
    if (!CHARTED.includes(c.field)) return;
    lines.push({
      label: `${m.description || m.monitor_id}: ${c.field} ${c.operator} ${c.precise_value}`,
      value: c.precise_value,
    });
    // A rule's newest 200 triggers are of all its balances: this balance's are marked.
    for (const e of triggers[i]) {
      if (e.event !== "balance.monitor" || !e.data || !e.data.balance || e.data.balance.balance_id !== b.balance_id)
        continue;
      const at = effective.get(e.transaction_id) || e.created_at;
      if (new Date(at).getTime() < start) continue;
      marks.push({ label: m.monitor_id, at, value: e.data.balance[c.field], transaction: e.transaction_id });
    }
  });
  const rangeNav = h(
    "nav",
    { class: "ranges", "aria-label": "Chart range" },
    RANGES.map(([key, text]) =>
      h(
        "a",
        { href: `#/balances/${enc(id)}?range=${key}`, "aria-current": key === range[0] ? "true" : undefined },
        text,
      ),
    ),
  );
  const width = Math.min(1100, Math.max(320, document.getElementById("page").clientWidth - 40));
  return h(
    "div",
    {},
    h("h1", {}, `Balance ${b.indicator || b.balance_id}`),
    facts([
      ["Balance id", b.balance_id],
      ["Ledger", b.ledger_id],
      ["Currency", b.currency],
      ["Balance (minor units)", String(b.balance)],
      ["Credit balance", String(b.credit_balance)],
      ["Debit balance", String(b.debit_balance)],
      ["Inflight balance", String(b.inflight_balance)],
      ["Identity", b.identity_id || "—"],
      ["Metadata", JSON.stringify(b.meta_data || {})],
      ["Created", when(b.created_at)],
    ]),
    h("h2", {}, "Over time"),
    rangeNav,
    balanceChart(history, lines, marks, width),
    history.has_more
      ? h("p", { class: "notice" }, "The range holds more movements than the chart shows: pick a shorter one.")
      : null,
    table("Thresholds drawn", [["Threshold", (l) => l.label]], lines, "No threshold drawn."),
    table(
      "Triggers marked",
      [
        ["When", (m) => when(m.at)],
        ["Monitor", (m) => link(`#/monitors/${m.label}`, m.label)],
        ["Value then", (m) => String(m.value)],
        ["Transaction", (m) => (m.transaction ? link(`#/transactions/${m.transaction}`, m.transaction) : "")],
      ],
      marks,
      "No trigger in this range.",
    ),
    h("h2", {}, "Monitors"),
    h(
      "p",
      {},
      writeButton(
        "balance-monitors",
        "New monitor on this balance",
        () => (location.hash = `#/monitors/new?balance_id=${enc(id)}`),
      ),
    ),
    monitorTable(monitors),
    h("h2", {}, "Recent transactions"),
    transactionTable(recent),
    h("p", {}, link(`#/transactions?balance_id=${enc(id)}`, "All transactions of this balance")),
  );
}

// --- Monitors -----------------------------------------------------------------------------------

function monitorTable(rows) {
  return table(
    "Monitors",
    [
      ["Monitor", (m) => link(`#/monitors/${m.monitor_id}`, m.description || m.monitor_id)],
      ["Watches", watched],
      ["Condition", condition],
      ["Trigger", (m) => m.trigger],
      ["Action", (m) => m.action || "notify"],
      ["State", (m) => stateBadge(m.state)],
      ["Triggers", (m) => String(m.trigger_count)],
      ["Last trigger", (m) => when(m.last_triggered_at)],
    ],
    rows,
    "No monitor.",
  );
}

async function monitors({ query }) {
  const params = {};
  for (const [name, filter] of [
    ["state", "state_eq"],
    ["field", "field_eq"],
    ["ledger_id", "ledger_id_eq"],
  ]) {
    if (query.get(name)) params[filter] = query.get(name);
  }
  const offset = offsetOf(query);
  const rows = await listPage("/balance-monitors", moreFilters(query, params), offset);
  const form = filterForm("Filter monitors", "/monitors", query, "Filter", [
    field(
      "State",
      select(
        "state",
        [
          ["", "Any"],
          ["ok", "ok"],
          ["triggered", "triggered"],
        ],
        query.get("state"),
      ),
    ),
    field("Field", select("field", [["", "Any"], ...FIELDS.map((f) => [f, f])], query.get("field"))),
    field("Ledger id", h("input", { name: "ledger_id", value: query.get("ledger_id") || "" })),
  ]);
  return h(
    "div",
    {},
    h("h1", {}, "Monitors"),
    h(
      "p",
      {},
      writeButton("balance-monitors", "New monitor", () => (location.hash = "#/monitors/new")),
    ),
    form,
    monitorTable(rows.slice(0, PAGE)),
    pager("/monitors", query, offset, rows.length),
  );
}

async function monitor({ id, query }) {
  const offset = offsetOf(query);
  const [m, history] = await Promise.all([
    call("GET", `/balance-monitors/${enc(id)}`),
    listPage(`/balance-monitors/${enc(id)}/events`, {}, offset),
  ]);
  const status = h("div", { "aria-live": "polite" });
  const remove = async () => {
    if (!confirm(`Delete monitor ${m.monitor_id}? Its history stays in /events.`)) return;
    try {
      await call("DELETE", `/balance-monitors/${enc(id)}`);
      location.hash = "#/monitors";
    } catch (error) {
      notice(status, explain(error), "error");
    }
  };
  const c = m.condition || {};
  return h(
    "div",
    {},
    h("h1", {}, `Monitor ${m.description || m.monitor_id}`),
    status,
    h(
      "p",
      { class: "actions" },
      writeButton("balance-monitors", "Edit", () => (location.hash = `#/monitors/${enc(id)}/edit`)),
      writeButton("balance-monitors", "Delete", remove, { class: "danger" }),
    ),
    facts([
      ["Monitor id", m.monitor_id],
      ["Watches", watched(m)],
      ["Condition", condition(m)],
      ["Threshold (minor units)", c.precise_value === undefined ? "—" : String(c.precise_value)],
      ["Trigger", m.trigger],
      ["Action", m.action || "notify"],
      ["State", stateBadge(m.state)],
      ["Triggers", String(m.trigger_count)],
      ["Last trigger", when(m.last_triggered_at)],
      ["Callback URL", m.call_back_url || "— (the server's webhook endpoints)"],
      ["Created", when(m.created_at)],
    ]),
    h("h2", {}, "History"),
    table(
      "Each trigger, newest first, with the balance as it stood right after its transaction",
      [
        ["When", (e) => link(`#/events/${e.event_id}`, when(e.created_at))],
        ["Event", (e) => e.event],
        ["Transaction", (e) => (e.transaction_id ? link(`#/transactions/${e.transaction_id}`, e.transaction_id) : "")],
        ["Balance then", (e) => (e.data && e.data.balance ? String(e.data.balance.balance) : "")],
        ["Credit then", (e) => (e.data && e.data.balance ? String(e.data.balance.credit_balance) : "")],
        ["Debit then", (e) => (e.data && e.data.balance ? String(e.data.balance.debit_balance) : "")],
        ["Delivery", (e) => stateBadge(e.status)],
      ],
      history.slice(0, PAGE),
      "It has not triggered yet.",
    ),
    pager(`/monitors/${enc(id)}`, query, offset, history.length),
  );
}

/** Create (`/monitors/new`) or edit (`/monitors/{id}/edit`): the same body as clients send. */
async function monitorForm({ id, query }) {
  const existing = id ? await call("GET", `/balance-monitors/${enc(id)}`) : null;
  const c = (existing && existing.condition) || {};
  const input = (name, value, attributes = {}) => h("input", { name, value: value ?? "", ...attributes });
  const form = h(
    "form",
    { class: "monitor-form" },
    h("h1", {}, existing ? `Edit monitor ${existing.monitor_id}` : "New monitor"),
    h("div", { "aria-live": "polite", class: "status" }),
    field(
      "Balance id",
      input("balance_id", existing ? existing.balance_id : query.get("balance_id"), {
        disabled: Boolean(existing),
      }),
    ),
    field(
      "Or a ledger id (a rule for every balance of the ledger)",
      input("ledger_id", existing && existing.ledger_id, {
        disabled: Boolean(existing),
      }),
    ),
    field(
      "Currency (with a ledger id)",
      input("currency", existing && existing.currency, { disabled: Boolean(existing) }),
    ),
    field(
      "Field",
      select(
        "field",
        FIELDS.map((f) => [f, f]),
        c.field || "balance",
      ),
    ),
    field(
      "Operator",
      select(
        "operator",
        OPERATORS.map((o) => [o, o]),
        c.operator || ">",
      ),
    ),
    field(
      "Value (major units, exact)",
      input("value", c.value, { required: true, inputmode: "decimal", pattern: "-?[0-9]+(\\.[0-9]+)?" }),
    ),
    field("Precision", input("precision", c.precision ?? 100, { inputmode: "numeric" })),
    field("Window (debit_volume, credit_volume, transaction_count: 1h, 24h, 7d…)", input("window", c.window)),
    field(
      "Trigger",
      select(
        "trigger",
        [
          ["every", "every (level)"],
          ["crossing", "crossing (edge)"],
        ],
        existing ? existing.trigger : "crossing",
      ),
    ),
    field(
      "Re-arm level (crossing, optional; major units)",
      input("reset_value", c.reset_value, { inputmode: "decimal" }),
    ),
    field(
      "Action",
      select(
        "action",
        [
          ["notify", "notify"],
          ["reject", "reject (a guard)"],
          ...(existing && existing.action === "transfer" ? [["transfer", "transfer (kept as it is)"]] : []),
        ],
        existing ? existing.action : "notify",
      ),
    ),
    field("Description", input("description", existing && existing.description)),
    field("Callback URL (optional)", input("call_back_url", existing && existing.call_back_url, { type: "url" })),
    h("button", { type: "submit", disabled: !may("balance-monitors", "write") }, existing ? "Save" : "Create"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    // What the form does not show is sent back as it was, so an edit changes only what it shows.
    const body = existing ? carried(existing) : {};
    // What it watches is fixed once made (the inputs are disabled, so not in `data`).
    for (const name of ["balance_id", "ledger_id", "currency"]) if (data[name]) body[name] = data[name];
    // Value and precision go as strings: Keel reads them exactly, where a JS number could round.
    const condition = {
      ...(body.condition || {}),
      field: data.field,
      operator: data.operator,
      value: data.value,
      precision: data.precision,
    };
    for (const name of ["window", "reset_value"]) {
      if (data[name]) condition[name] = data[name];
      else delete condition[name];
    }
    body.condition = condition;
    body.action = data.action;
    body.trigger = data.trigger;
    body.description = data.description;
    body.call_back_url = data.call_back_url;
    try {
      const saved = await call(
        existing ? "PUT" : "POST",
        existing ? `/balance-monitors/${enc(id)}` : "/balance-monitors",
        body,
      );
      location.hash = `#/monitors/${saved.monitor_id}`;
    } catch (error) {
      notice(form.querySelector(".status"), explain(error), "error");
    }
  });
  return form;
}

/** A monitor's read, as the create body that would make it again (for an edit). */
function carried(m) {
  const body = {};
  for (const name of ["balance_id", "ledger_id", "currency", "balance_meta_data", "meta_data", "action", "transfer"]) {
    if (m[name] !== undefined && m[name] !== null && m[name] !== "") body[name] = m[name];
  }
  const c = m.condition || {};
  body.condition = {};
  for (const name of ["field", "operator", "value", "precision", "reset_value", "window"]) {
    if (c[name] !== undefined && c[name] !== null)
      body.condition[name] = typeof c[name] === "number" ? String(c[name]) : c[name];
  }
  return body;
}

// --- Events -------------------------------------------------------------------------------------

const STATUSES = ["pending", "delivered", "failed", "no_target"];

async function events({ query }) {
  const status = query.get("status") || "";
  const offset = offsetOf(query);
  const [rows, ...counts] = await Promise.all([
    listPage("/events", status ? { status } : {}, offset),
    ...STATUSES.map((s) => countOf(`/events?status=${s}`)),
  ]);
  const outcome = h("div", { "aria-live": "polite" });
  const redeliverAll = async (button) => {
    button.disabled = true;
    try {
      let total = 0;
      for (;;) {
        const answer = await call("POST", "/events/redeliver-failed");
        total += answer.redelivered;
        if (!answer.remaining || !answer.redelivered) break;
      }
      notice(outcome, `${total} failed event(s) are pending again.`);
    } catch (error) {
      notice(outcome, explain(error), "error");
    }
    button.disabled = false;
  };
  const tabs = h(
    "nav",
    { class: "ranges", "aria-label": "Delivery status" },
    h("a", { href: "#/events", "aria-current": status ? undefined : "true" }, "All"),
    STATUSES.map((s, i) =>
      h(
        "a",
        { href: `#/events?status=${s}`, "aria-current": s === status ? "true" : undefined },
        `${s} (${counts[i]})`,
      ),
    ),
  );
  const all = writeButton("events", "Redeliver all failed", (e) => redeliverAll(e.currentTarget), {
    disabled: !may("events", "write") || counts[2] === 0,
  });
  return h(
    "div",
    {},
    h("h1", {}, "Events"),
    tabs,
    h("p", { class: "actions" }, all),
    outcome,
    table(
      "The outbox, newest first",
      [
        ["Event", (e) => link(`#/events/${e.event_id}`, e.event_id)],
        ["Type", (e) => e.event],
        ["Status", (e) => stateBadge(e.status)],
        ["Attempts", (e) => String(e.attempts)],
        ["Last error", (e) => e.last_error || ""],
        ["Created", (e) => when(e.created_at)],
      ],
      rows.slice(0, PAGE),
      "No event.",
    ),
    pager("/events", query, offset, rows.length),
  );
}

async function eventPage({ id }) {
  const e = await call("GET", `/events/${enc(id)}`);
  const outcome = h("div", { "aria-live": "polite" });
  const redeliver = async (event) => {
    event.currentTarget.disabled = true;
    try {
      await call("POST", `/events/${enc(id)}/redeliver`);
      notice(outcome, "Pending again: it will be delivered in a moment.");
      setTimeout(
        () => location.hash === `#/events/${id}` && window.dispatchEvent(new HashChangeEvent("hashchange")),
        1500,
      );
    } catch (error) {
      notice(outcome, explain(error), "error");
    }
  };
  return h(
    "div",
    {},
    h("h1", {}, `Event ${e.event}`),
    outcome,
    h("p", { class: "actions" }, writeButton("events", "Redeliver", redeliver)),
    facts([
      ["Event id (webhook-id)", e.event_id],
      ["Status", stateBadge(e.status)],
      ["Attempts", String(e.attempts)],
      ["Last error", e.last_error || "—"],
      ["Delivered", when(e.delivered_at)],
      ["Monitor", e.monitor_id ? link(`#/monitors/${e.monitor_id}`, e.monitor_id) : "—"],
      ["Transaction", e.transaction_id ? link(`#/transactions/${e.transaction_id}`, e.transaction_id) : "—"],
      ["Created", when(e.created_at)],
    ]),
    h("h2", {}, "Delivery attempts"),
    table(
      "Every attempt, oldest first",
      [
        ["#", (a) => String(a.attempt)],
        ["At", (a) => when(a.attempted_at)],
        ["HTTP status", (a) => (a.status_code === null || a.status_code === undefined ? "—" : String(a.status_code))],
        ["Error", (a) => a.error || ""],
        ["Duration", (a) => `${a.duration_ms} ms`],
        ["Endpoint", (a) => a.endpoint_id || "server / callback URL"],
      ],
      e.deliveries || [],
      "No attempt yet.",
    ),
    h("h2", {}, "Body (data)"),
    code(e.data),
  );
}

// --- Transactions -------------------------------------------------------------------------------

function transactionTable(rows) {
  return table(
    "Transactions, newest first",
    [
      ["Transaction", (t) => link(`#/transactions/${t.transaction_id}`, t.reference || t.transaction_id)],
      ["Status", (t) => stateBadge(t.status)],
      ["Amount", (t) => h("span", { class: "num" }, `${t.amount} ${t.currency}`)],
      ["Source", (t) => (String(t.source).startsWith("bln_") ? link(`#/balances/${t.source}`, t.source) : t.source)],
      [
        "Destination",
        (t) =>
          String(t.destination).startsWith("bln_") ? link(`#/balances/${t.destination}`, t.destination) : t.destination,
      ],
      ["Created", (t) => when(t.created_at)],
    ],
    rows,
    "No transaction.",
  );
}

const TRANSACTION_FILTERS = [
  ["status", "Status"],
  ["currency", "Currency"],
  ["reference", "Reference"],
  ["balance_id", "Balance id (either side)"],
  ["source", "Source"],
  ["destination", "Destination"],
  ["parent_transaction", "Parent transaction"],
];

async function transactions({ query }) {
  const params = {};
  for (const [name] of TRANSACTION_FILTERS) if (query.get(name)) params[`${name}_eq`] = query.get(name);
  if (query.get("after")) params.created_at_gte = query.get("after");
  if (query.get("before")) params.created_at_lte = query.get("before");
  const offset = offsetOf(query);
  const rows = await listPage("/transactions", moreFilters(query, params), offset);
  const statuses = ["", "QUEUED", "APPLIED", "INFLIGHT", "VOID", "REJECTED", "SCHEDULED", "COMMIT"];
  const form = filterForm("Filter transactions", "/transactions", query, "Filter", [
    field(
      "Status",
      select(
        "status",
        statuses.map((s) => [s, s || "Any"]),
        query.get("status"),
      ),
    ),
    TRANSACTION_FILTERS.slice(1).map(([name, label]) =>
      field(label, h("input", { name, value: query.get(name) || "" })),
    ),
    field("Created from (RFC 3339)", h("input", { name: "after", value: query.get("after") || "" })),
    field("Created until (RFC 3339)", h("input", { name: "before", value: query.get("before") || "" })),
  ]);
  return h(
    "div",
    {},
    h("h1", {}, "Transactions"),
    form,
    transactionTable(rows.slice(0, PAGE)),
    pager("/transactions", query, offset, rows.length),
  );
}

async function transaction({ id }) {
  const t = await call("GET", `/transactions/${enc(id)}`);
  const children = await call("GET", `/transactions?parent_transaction_eq=${enc(t.transaction_id)}&limit=100`);
  const side = (v) => (String(v).startsWith("bln_") ? link(`#/balances/${v}`, v) : v);
  return h(
    "div",
    {},
    h("h1", {}, `Transaction ${t.reference || t.transaction_id}`),
    facts([
      ["Transaction id", t.transaction_id],
      ["Status", stateBadge(t.status)],
      ["Amount", `${t.amount} ${t.currency}`],
      ["Precise amount (minor units)", String(t.precise_amount)],
      ["Precision", String(t.precision)],
      ["Source", side(t.source)],
      ["Destination", side(t.destination)],
      ["Reference", t.reference],
      ["Description", t.description || "—"],
      ["Parent", t.parent_transaction ? link(`#/transactions/${t.parent_transaction}`, t.parent_transaction) : "—"],
      ["Inflight", String(t.inflight)],
      ["Created", when(t.created_at)],
      ["Effective", when(t.effective_date)],
      ["Metadata", JSON.stringify(t.meta_data || {})],
    ]),
    h("h2", {}, "Children (commits, voids, refunds, split legs)"),
    transactionTable(children),
  );
}

/** Route patterns, tried in order (`:name` takes one segment). */
export const routes = [
  ["/", overview],
  ["/balances", balances],
  ["/balances/:id", balance],
  ["/monitors", monitors],
  ["/monitors/new", monitorForm],
  ["/monitors/:id", monitor],
  ["/monitors/:id/edit", monitorForm],
  ["/events", events],
  ["/events/:id", eventPage],
  ["/transactions", transactions],
  ["/transactions/:id", transaction],
];
