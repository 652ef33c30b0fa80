// The React hook against the real stack: `useCollection(herald, "leads")` renders the table
// from the stream's snapshot (or `GET /v1/snapshot`), follows inserts, updates and deletes in
// place, and comes through a gateway SIGKILL (events published during the outage) and a reset
// (a resume cursor the gateway cannot honour: a fresh snapshot) with no missing and no stale
// row — the table equals the model of what was published, and `GET /v1/snapshot`. Over SSE,
// WebSocket and long-poll.

import { assertSequence, describeCollections, screenshot, TIMEOUT } from "../browser.mjs";
import { inContext, VIEWPORT } from "../page.mjs";
import { openReactApp, shownRows } from "../react-page.mjs";
import { uid, until } from "../stack.mjs";

export const name = "React useCollection: snapshot, live updates and deletes, gateway SIGKILL and reset, no missing or stale row";

/** The rows of a model, as the table shows them: key → {name, status}. */
const expect = (model) => Object.fromEntries([...model].map(([k, r]) => [k, { name: r.name, status: r.status }]));

/** Publishes changes and applies them to `model` (key → row). */
async function change(stack, model, list) {
  await stack.publish(list.map(([action, row], i) => ({ id: `${uid()}-${i}`, action, data: row })));
  for (const [action, row] of list) {
    if (action === "delete") model.delete(String(row.id));
    else if (action === "truncate") model.clear();
    else model.set(String(row.id), row);
  }
}

/** Waits until the table equals the model; names what differs when it does not. */
async function tableEquals(page, model, what) {
  const want = JSON.stringify(expect(model), Object.keys(expect(model)).sort());
  try {
    await until(what, async () => {
      const got = await shownRows(page);
      return JSON.stringify(got, Object.keys(got).sort()) === want;
    }, { ms: TIMEOUT, every: 100 });
  } catch (err) {
    const got = await shownRows(page).catch(() => ({}));
    const missing = Object.keys(expect(model)).filter((k) => !(k in got));
    const extra = Object.keys(got).filter((k) => !model.has(k));
    const stale = Object.keys(got).filter((k) => model.has(k) && JSON.stringify(got[k]) !== JSON.stringify(expect(model)[k] ?? null));
    throw new Error(`${err.message}\n  missing ${missing.join(",") || "none"}; extra ${extra.join(",") || "none"}; stale ${stale.join(",") || "none"}\n  ${await describeCollections(page)}`);
  }
}

/** The table also equals what the gateway serves. */
async function equalsSnapshot(stack, model) {
  const { rows } = await stack.snapshot(["leads"]);
  const got = Object.fromEntries(Object.entries(rows.leads).map(([k, r]) => [k, { name: r.name, status: r.status }]));
  const want = expect(model);
  if (JSON.stringify(got, Object.keys(got).sort()) !== JSON.stringify(want, Object.keys(want).sort())) {
    throw new Error(`GET /v1/snapshot differs from the model: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`);
  }
}

async function basics({ stack, browser }, transport, preopen, model, run) {
  await inContext(browser, VIEWPORT, async (context) => {
    const page = await openReactApp(context, stack.gatewayUrl, { transport, preopen });
    await tableEquals(page, model, `the ${transport} table to show the snapshot`);
    const { renders, liveAt } = await page.evaluate(() => ({ renders: window.__renders, liveAt: window.__liveAt }));
    console.log(`     ${transport}${preopen ? "" : " (hook opened late: GET /v1/snapshot)"}: ${model.size} rows rendered ${liveAt} ms after navigation, ${renders} renders, ${page.snapshotRequests} GET /v1/snapshot`);
    // Opened with the app: the stream brought the rows (long-poll: its first page, and the
    // rest — none here — over HTTP). Opened by the hook's effect: GET /v1/snapshot.
    if (preopen && transport !== "poll" && page.snapshotRequests !== 0) throw new Error(`${transport}: ${page.snapshotRequests} GET /v1/snapshot, want the stream's snapshot`);
    if (!preopen && page.snapshotRequests < Math.ceil(model.size / 1000)) throw new Error(`${transport}: ${page.snapshotRequests} GET /v1/snapshot for ${model.size} rows opened after the connection`);
    if (transport === "poll" && page.snapshotRequests < Math.ceil(model.size / 1000) - 1) throw new Error(`poll: ${page.snapshotRequests} GET /v1/snapshot pages after the answer's first, for ${model.size} rows`);
    const t = `${run}-${transport}`;
    await change(stack, model, [
      ["insert", { id: `${t}-a`, name: "Ada", status: "new" }],
      ["insert", { id: `${t}-b`, name: "Barbara", status: "new" }],
      ["update", { id: `${t}-a`, name: "Ada", status: "contacted" }],
      ["delete", { id: `${run}-0` }],
    ]);
    await tableEquals(page, model, `the ${transport} table to follow inserts, an update and a delete`);
    if (page.errors.length) throw new Error(`page errors: ${page.errors.map(String).join("; ")}`);
  });
}

export default async function ({ stack, browser }) {
  try {
    await scenario({ stack, browser });
  } finally {
    // The next scenarios open dashboards (8 tabs, a frozen leader): leave them a small table.
    await stack.publish([{ id: `${uid()}-clear`, action: "truncate", data: {} }]).catch(() => {});
  }
}

async function scenario({ stack, browser }) {
  const run = uid();
  const model = new Map();
  // Start from a known table: truncate, then 2500 rows the page will get in its snapshot —
  // three pages of the gateway's 1000 (long-poll: the first in its answer, two over HTTP).
  await change(stack, model, [["truncate", { id: "-" }]]);
  const ROWS = 2500;
  for (let at = 0; at < ROWS; at += 500) {
    await change(stack, model, Array.from({ length: 500 }, (_, i) => ["insert", { id: `${run}-${at + i}`, name: `Lead ${at + i}`, status: "new" }]));
  }
  await until(`the gateway's snapshot to hold the ${ROWS} rows`, async () => Object.keys((await stack.snapshot(["leads"])).rows.leads).length === ROWS);

  await basics({ stack, browser }, "ws", true, model, run);
  await basics({ stack, browser }, "poll", true, model, run);
  await basics({ stack, browser }, "sse", false, model, run);

  await inContext(browser, VIEWPORT, async (context) => {
    const page = await openReactApp(context, stack.gatewayUrl, { transport: "sse" });
    await tableEquals(page, model, "the table to show the snapshot");
    const marked = await page.evaluate(() => {
      const tr = document.querySelector("#rows tr[data-key]");
      tr.__kept = true; // the same element after an update: the row changed in place
      return tr.dataset.key;
    });
    await change(stack, model, [
      ["update", { ...model.get(marked), status: "qualified" }],
      ["insert", { id: `${run}-new`, name: "Grace", status: "new" }],
      ["delete", { id: `${run}-3` }],
      ["upsert", { id: `${run}-4`, name: "Lead 4 renamed", status: "won" }],
    ]);
    await tableEquals(page, model, "the table to follow updates and deletes");
    const kept = await page.evaluate((k) => document.querySelector(`#rows tr[data-key="${k}"]`).__kept === true, marked);
    if (!kept) throw new Error("the updated row was re-created, not changed in place");

    // The gateway dies; changes keep coming; it comes back: the table catches up by cursor.
    await stack.gateway.stop("SIGKILL");
    await page.waitForFunction(() => window.herald.state !== "live", null, { timeout: TIMEOUT });
    await page.waitForSelector('#status[data-status="stale"]', { timeout: TIMEOUT });
    await change(stack, model, [
      ["update", { id: `${run}-5`, name: "Lead 5", status: "lost" }],
      ["delete", { id: `${run}-6` }],
      ["insert", { id: `${run}-outage`, name: "Alan", status: "new" }],
    ]);
    await screenshot(page, "react-collection-stale");
    await stack.startGateway();
    await tableEquals(page, model, "the table to catch up after the gateway restart");
    await page.waitForSelector('#status[data-status="live"]', { timeout: TIMEOUT });
    const reconnected = await page.evaluate(() => window.herald.stats().reconnects);
    if (reconnected < 1) throw new Error("no reconnect seen");

    // A reset: the gateway dies again, changes are published, and the page comes back with a
    // cursor the gateway cannot resume (ahead of the stream): it resets and sends a fresh
    // snapshot, which must hold what was published meanwhile.
    await stack.gateway.stop("SIGKILL");
    await page.waitForSelector('#status[data-status="stale"]', { timeout: TIMEOUT });
    await change(stack, model, [
      ["update", { id: `${run}-7`, name: "Lead 7", status: "contacted" }],
      ["delete", { id: `${run}-8` }],
      ["insert", { id: `${run}-reset`, name: "Edsger", status: "new" }],
    ]);
    await page.evaluate(() => {
      const [seq, epoch] = window.herald.cursor.split("-");
      window.herald.cursor = `${Number(seq) + 1_000_000}-${epoch}`;
    });
    await stack.startGateway();
    await page.waitForFunction(() => window.__resyncs > 0, null, { timeout: TIMEOUT });
    await tableEquals(page, model, "the table to equal the model after the reset");
    await change(stack, model, [["update", { id: `${run}-9`, name: "Lead 9", status: "won" }]]);
    await tableEquals(page, model, "the table to follow the stream after the reset");
    await equalsSnapshot(stack, model);
    assertSequence(await page.evaluate(() => window.__statuses), ["loading", "live", "stale", "live", "stale", "live"]);
    await screenshot(page, "react-collection");
    if (page.errors.length) throw new Error(`page errors: ${page.errors.map(String).join("; ")}`);
  });
}
