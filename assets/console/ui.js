// What every console page uses: the API client (with the key the console was signed in with), an
// exact JSON reader, and small builders for elements, tables, forms and paging. Elements are built
// with textContent, never from HTML strings, so nothing an API answer holds can run as markup.

const KEY = "keel.console.key";

/** The signed-in key (sessionStorage: it is forgotten when the tab closes) and what it may do. */
export const auth = { key: sessionStorage.getItem(KEY), session: null };

export function remember(key) {
  auth.key = key || null;
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** An API answer that was not 2xx: its status and Blnk's error body. */
export class Failure extends Error {
  constructor(status, body) {
    const detail = body && body.error_detail;
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.code = detail && detail.code;
    this.field = detail && detail.details && detail.details.field;
  }
}

// Amounts are integers of any size and JSON numbers: a plain JSON.parse would round those beyond
// 2^53. The reviver keeps the source text of any number that does not survive the trip exactly.
function exact(_key, value, context) {
  if (typeof value === "number" && context && context.source !== undefined && String(value) !== context.source) {
    return context.source;
  }
  return value;
}

export function parseJson(text) {
  return JSON.parse(text, exact);
}

/** Calls the API: `method`, a path with its query, and a body to send as JSON. */
export async function call(method, path, body) {
  const headers = { accept: "application/json" };
  if (auth.key) headers["x-blnk-key"] = auth.key;
  if (body !== undefined) headers["content-type"] = "application/json";
  const answer = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await answer.text();
  let data = null;
  try {
    data = text ? parseJson(text) : null;
  } catch {
    data = text;
  }
  if (!answer.ok) throw new Failure(answer.status, data);
  return data;
}

/** Whether the signed-in key may `action` (read or write) `resource`. */
export function may(resource, action) {
  const allows = auth.session && auth.session.allows[resource];
  return Boolean(allows && allows[action]);
}

/** An element: `h("a", {href: "#/"}, "text", child)`. Attributes starting with `on` are listeners. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** A link to a console page. */
export function link(hash, text) {
  return h("a", { href: hash }, text ?? hash);
}

/** A table: `columns` are `[label, row => cell]`; an empty list says so instead. */
export function table(caption, columns, rows, empty = "Nothing here.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        columns.map(([label]) => h("th", { scope: "col" }, label)),
      ),
    ),
    h(
      "tbody",
      {},
      rows.map((row) =>
        h(
          "tr",
          {},
          columns.map(([, cell]) => h("td", {}, cell(row) ?? "")),
        ),
      ),
    ),
  );
}

/** Definition list of `[term, value]` pairs. */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value ?? "—")]),
  );
}

/** A labelled form control. `control` is an input or a select built by the caller. */
export function field(label, control) {
  const id = control.id || `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

export function select(name, options, chosen) {
  return h(
    "select",
    { name },
    options.map(([value, text]) => h("option", { value, selected: value === (chosen ?? "") }, text)),
  );
}

/** A button that needs `resource:write`: disabled, with the reason, when the key lacks it. */
export function writeButton(resource, text, onclick, attributes = {}) {
  const allowed = may(resource, "write");
  return h(
    "button",
    {
      type: "button",
      ...attributes,
      onclick: allowed ? onclick : undefined,
      disabled: !allowed || Boolean(attributes.disabled),
      title: allowed ? undefined : `This key cannot do this: it needs ${resource}:write`,
    },
    text,
  );
}

/** Where a page shows the outcome of an action: an error (role=alert) or a confirmation. */
export function notice(container, text, kind = "ok") {
  container.replaceChildren(h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text));
}

/** What a failed call means to a person. */
export function explain(error) {
  if (error instanceof Failure) {
    const where = error.field ? ` (${error.field})` : "";
    return `${error.message}${where} — ${error.code || `HTTP ${error.status}`}`;
  }
  return String(error && error.message ? error.message : error);
}

/** Page size of every list; one more is asked for, to know whether there is a next page. */
export const PAGE = 25;

/** Previous/next links for a list at `offset` that got `count` rows (PAGE + 1 means "more"). */
export function pager(route, query, offset, count) {
  const at = (o) => {
    const next = new URLSearchParams(query);
    if (o > 0) next.set("offset", String(o));
    else next.delete("offset");
    const text = next.toString();
    return `#${route}${text ? `?${text}` : ""}`;
  };
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    offset > 0 ? link(at(Math.max(0, offset - PAGE)), "← Newer") : null,
    h("span", {}, `${count ? offset + 1 : 0}–${offset + Math.min(count, PAGE)}`),
    count > PAGE ? link(at(offset + PAGE), "Older →") : null,
  );
}

/** A time as the browser's locale writes it, with the exact RFC 3339 text on hover. */
export function when(text) {
  if (!text) return "—";
  const date = new Date(text);
  return h("time", { datetime: text, title: text }, isNaN(date) ? text : date.toLocaleString());
}

/** A JSON value, indented. */
export function code(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}
