// Keel Console: signs in with an API key, then routes by the URL's fragment (`#/balances/bln_…`)
// to a page of pages.js. Every read and write goes through Keel's API (ui.js `call`), with the key.

import { auth, call, explain, field, Failure, h, remember } from "./ui.js";
import { routes } from "./pages.js";

const main = document.getElementById("page");
let shown = 0; // which navigation is current: a slow page must not replace a newer one

/** Finds the page for the fragment and renders it. */
async function route() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const parts = (path || "/").split("/").filter(Boolean);
  const params = new URLSearchParams(query);
  const turn = ++shown;
  for (const [pattern, page] of routes) {
    const names = pattern.split("/").filter(Boolean);
    if (names.length !== parts.length) continue;
    const values = {};
    const fits = names.every((name, i) =>
      name.startsWith(":") ? ((values[name.slice(1)] = decodeURIComponent(parts[i])), true) : name === parts[i],
    );
    if (!fits) continue;
    markCurrent(names[0] || "");
    const content = h("div", { class: "loading", "aria-busy": "true" }, "Loading…");
    main.replaceChildren(content);
    try {
      const built = await page({ ...values, query: params, path: `/${parts.join("/")}` });
      if (turn !== shown) return;
      main.replaceChildren(built);
    } catch (error) {
      if (turn !== shown) return;
      if (error instanceof Failure && error.status === 401) return signIn("This key is no longer accepted.");
      main.replaceChildren(h("h1", {}, "Something went wrong"), h("p", { role: "alert" }, explain(error)));
    }
    const heading = main.querySelector("h1");
    if (heading) document.title = `${heading.textContent} — Keel Console`;
    main.focus({ preventScroll: true });
    return;
  }
  main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, "No console page has this address."));
}

function markCurrent(section) {
  for (const a of document.querySelectorAll("header nav a")) {
    const target = a.getAttribute("href").replace(/^#\/?/, "");
    if (target === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

/** Asks Keel who the key is; with no key configured on the server, anyone is. */
async function start() {
  try {
    auth.session = await call("GET", "/console/session");
  } catch (error) {
    if (error instanceof Failure && error.status === 401) {
      return signIn(auth.key ? "This key is not accepted." : null);
    }
    main.replaceChildren(h("h1", {}, "Keel is not answering"), h("p", { role: "alert" }, explain(error)));
    return;
  }
  showWho();
  route();
}

function showWho() {
  const who = document.getElementById("who");
  const session = auth.session;
  const name =
    session.key === "none" ? "open server (no key)" : session.key === "master" ? "master key" : `key “${session.name}”`;
  const readOnly = !Object.values(session.allows).some((a) => a.write);
  const signOut = () => {
    remember(null);
    location.reload();
  };
  who.replaceChildren(h("span", {}, `Signed in: ${name}${readOnly ? " · read-only" : ""}`));
  if (session.key !== "none") who.append(h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"));
}

function signIn(problem) {
  remember(null);
  const input = h("input", { type: "password", name: "key", autocomplete: "current-password", required: true });
  const form = h(
    "form",
    { class: "sign-in" },
    h("h1", {}, "Sign in"),
    h(
      "p",
      {},
      "Use a Keel API key: the master key, or a scoped key (a read-only key sees everything and changes nothing).",
    ),
    problem ? h("p", { class: "notice error", role: "alert" }, problem) : null,
    field("API key", input),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    remember(input.value.trim());
    window.addEventListener("hashchange", () => auth.session && route());
    // The fragment is the route, so the skip link moves the focus itself instead of changing it.
    document.querySelector(".skip").addEventListener("click", (event) => {
      event.preventDefault();
      main.focus();
    });
    start();
  });
  main.replaceChildren(form);
  input.focus();
}

window.addEventListener("hashchange", () => auth.session && route());
// The fragment is the route, so the skip link moves the focus itself instead of changing it.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
start();
