// A React app for the browser tests: the real React and ReactDOM of node_modules (their
// CommonJS production builds, wrapped into ES modules here, no network), herald.js from the
// gateway, and react/index.js (`useCollection`) rendering a `leads` table. Playwright serves
// the page and the modules under the gateway's origin (`/e2e-react/…`), so the client talks to
// the gateway same-origin, as an app would.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

import { TIMEOUT } from "./browser.mjs";
import { token, WEB_DIR } from "./stack.mjs";

const require = createRequire(join(WEB_DIR, "package.json"));
const PREFIX = "/e2e-react";

/** The CommonJS modules the bundle defines, by the name `require` asks for. */
const MODULES = {
  scheduler: "scheduler/cjs/scheduler.production.js",
  react: "react/cjs/react.production.js",
  "react-dom": "react-dom/cjs/react-dom.production.js",
  "react-dom/client": "react-dom/cjs/react-dom-client.production.js",
};

/** One ES module holding every CommonJS module, and a `load(name)` that evaluates them once. */
function bundle() {
  const defs = Object.entries(MODULES).map(([name, file]) => {
    const src = readFileSync(join(WEB_DIR, "node_modules", file), "utf8");
    return `${JSON.stringify(name)}: function (module, exports, require) {\n${src}\n}`;
  });
  return [
    'const process = { env: { NODE_ENV: "production" } };',
    `const defs = {\n${defs.join(",\n")}\n};`,
    "const cache = {};",
    "export function load(name) {",
    "  if (cache[name]) return cache[name].exports;",
    "  const module = (cache[name] = { exports: {} });",
    "  defs[name].call(module.exports, module, module.exports, load);",
    "  return module.exports;",
    "}",
  ].join("\n");
}

/** An ES module re-exporting CommonJS module `name` (default and named exports). */
function facade(name) {
  const names = Object.keys(require(name)).filter((k) => /^[A-Za-z_$][\w$]*$/.test(k) && k !== "default");
  return `import { load } from "./bundle.mjs";\nconst m = load(${JSON.stringify(name)});\nexport default m;\nexport const { ${names.join(", ")} } = m;\n`;
}

const APP = `
import { Herald } from "/herald.js";
import { createElement as h, StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { useCollection } from "${PREFIX}/react/index.js";

const q = new URLSearchParams(location.search);
const herald = Herald.connect("", { token: location.hash.slice("#token=".length), topics: ["leads"], transport: q.get("transport") ?? "auto" });
window.herald = herald;
// ?preopen=1: the app opens the collection before the first render, so the first connection
// brings the rows. Without it, the app renders once the connection is live: the hook opens the
// collection after the connection started, and reads GET /v1/snapshot.
if (q.get("preopen") === "1") herald.collection("leads");
window.__statuses = [];
window.__resyncs = 0;
herald.on("resync", () => window.__resyncs++);

function Leads() {
  const { data, isLoading, error, status } = useCollection(herald, "leads");
  window.__renders = (window.__renders ?? 0) + 1;
  if (window.__statuses.at(-1) !== status) window.__statuses.push(status);
  if (status === "live" && window.__liveAt === undefined) window.__liveAt = Math.round(performance.now());
  return h("main", null,
    h("p", { id: "status", "data-status": status }, status),
    isLoading ? h("p", { id: "loading" }, "Loading…") : null,
    error ? h("p", { id: "error" }, error.code) : null,
    h("table", null, h("tbody", { id: "rows" },
      data.map((row) => h("tr", { key: String(row.id), "data-key": String(row.id) },
        h("td", { className: "name" }, row.name ?? ""),
        h("td", { className: "status" }, row.status ?? ""))))));
}

const mount = () => createRoot(document.getElementById("root")).render(h(StrictMode, null, h(Leads)));
if (q.get("preopen") === "1") mount();
else {
  const off = herald.on("state", (s) => {
    if (s !== "live" && s !== "polling") return;
    off();
    mount();
  });
}
`;

const HTML = `<!doctype html><html><head><meta charset="utf-8"><title>leads (React)</title>
<script type="importmap">{"imports":{"react":"${PREFIX}/vendor/react.mjs","react-dom/client":"${PREFIX}/vendor/react-dom-client.mjs"}}</script>
<script type="module" src="${PREFIX}/app.mjs"></script></head><body><div id="root"></div></body></html>`;

let files;

/** The routed files, built once. */
function routed() {
  files ??= new Map([
    [`${PREFIX}/`, ["text/html", HTML]],
    [`${PREFIX}/app.mjs`, ["text/javascript", APP]],
    [`${PREFIX}/react/index.js`, ["text/javascript", readFileSync(join(WEB_DIR, "react", "index.js"), "utf8")]],
    [`${PREFIX}/vendor/bundle.mjs`, ["text/javascript", bundle()]],
    [`${PREFIX}/vendor/react.mjs`, ["text/javascript", facade("react")]],
    [`${PREFIX}/vendor/react-dom-client.mjs`, ["text/javascript", facade("react-dom/client")]],
  ]);
  return files;
}

/**
 * Opens the React app in `context` against the gateway at `base`; resolves once it rendered.
 * `transport`: sse, ws, poll or auto.
 */
export async function openReactApp(context, base, { transport = "auto", preopen = true } = {}) {
  const list = routed();
  await context.route(`${base}${PREFIX}/**`, (route) => {
    const path = new URL(route.request().url()).pathname;
    const file = list.get(path);
    if (!file) return route.fulfill({ status: 404, body: "not found" });
    return route.fulfill({ status: 200, contentType: file[0], body: file[1] });
  });
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (err) => page.errors.push(err));
  page.snapshotRequests = 0;
  page.on("request", (req) => {
    if (new URL(req.url()).pathname === "/v1/snapshot") page.snapshotRequests++;
  });
  await page.goto(`${base}${PREFIX}/?transport=${transport}&preopen=${preopen ? 1 : 0}#token=${token()}`);
  await page.waitForSelector("#status", { timeout: TIMEOUT });
  return page;
}

/** The rows the React table shows: key → {name, status}. */
export function shownRows(page) {
  return page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll("#rows tr")].map((tr) => [tr.dataset.key, { name: tr.querySelector(".name").textContent, status: tr.querySelector(".status").textContent }]),
    ),
  );
}
