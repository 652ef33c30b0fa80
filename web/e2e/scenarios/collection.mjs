// The dashboard's live tables: the `leads` and `services` collections next to the feed, loaded
// with the stream's opening snapshot, then changed row by row in place (a row element that
// updates is the same element), deleted rows removed; and a page opened afterwards starts
// from the snapshot with the same rows.

import { describeCollections, openDashboard, screenshot, TIMEOUT } from "../browser.mjs";
import { withLiveDashboard } from "../page.mjs";
import { until } from "../stack.mjs";

export const name = "dashboard tables: leads and services from collections, rows changed in place";

/** key → the cells of the dashboard's table in panel `id`. */
const tableOf = (page, id) =>
  page.evaluate((panel) => Object.fromEntries([...document.querySelectorAll(`#${panel} tbody tr`)].map((tr) => [tr.dataset.key, [...tr.children].map((td) => td.textContent)])), id);

export default function ({ stack, browser }) {
  return withLiveDashboard({ stack, browser }, async ({ context, page, run }) => {
    await page.waitForSelector('#leads-panel[data-status="live"]', { timeout: TIMEOUT }).catch(async (err) => {
      throw new Error(`${err.message}\n  ${await describeCollections(page)}`);
    });
    const id = (n) => `${run}-t${n}`;
    await stack.publish([
      { id: `${run}-e1`, action: "insert", data: { id: id(1), name: "Ada", company: "Initech", status: "new" } },
      { id: `${run}-e2`, action: "insert", data: { id: id(2), name: "Grace", company: "Globex", status: "new" } },
      { id: `${run}-e3`, topic: "services", action: "upsert", data: { name: `svc-${run}`, status: "up", latency_ms: 12 } },
    ]);
    await until("the tables to show the new rows", async () => {
      const leads = await tableOf(page, "leads-panel");
      const services = await tableOf(page, "services-panel");
      return leads[id(1)]?.[1] === "Ada" && leads[id(2)] && services[`svc-${run}`]?.[1] === "up";
    });
    await page.evaluate((k) => {
      document.querySelector(`#leads-panel tr[data-key="${k}"]`).__kept = true;
    }, id(1));
    await stack.publish([
      { id: `${run}-e4`, action: "update", data: { id: id(1), name: "Ada", company: "Initech", status: "qualified" } },
      { id: `${run}-e5`, action: "delete", data: { id: id(2) } },
      { id: `${run}-e6`, topic: "services", action: "upsert", data: { name: `svc-${run}`, status: "degraded", latency_ms: 480 } },
    ]);
    await until("the tables to change in place", async () => {
      const leads = await tableOf(page, "leads-panel");
      const services = await tableOf(page, "services-panel");
      return leads[id(1)]?.[3] === "qualified" && !(id(2) in leads) && services[`svc-${run}`]?.[1] === "degraded";
    });
    const kept = await page.evaluate((k) => document.querySelector(`#leads-panel tr[data-key="${k}"]`).__kept === true, id(1));
    if (!kept) throw new Error("the updated row was re-created, not changed in place");

    // The whole table equals the gateway's snapshot, and so does a page opened now.
    const want = Object.fromEntries(Object.entries((await stack.snapshot(["leads"])).rows.leads).map(([k, r]) => [k, r.status ?? ""]));
    const statuses = async (p) => Object.fromEntries(Object.entries(await tableOf(p, "leads-panel")).map(([k, cells]) => [k, cells[3]]));
    const same = (a, b) => JSON.stringify(a, Object.keys(a).sort()) === JSON.stringify(b, Object.keys(b).sort());
    await until("the leads table to equal GET /v1/snapshot", async () => same(await statuses(page), want));
    const fresh = await openDashboard(context, stack.gatewayUrl);
    await fresh.waitForSelector('#leads-panel[data-status="live"]', { timeout: TIMEOUT }).catch(async (err) => {
      throw new Error(`${err.message}\n  ${await describeCollections(fresh)}`);
    });
    await until("a fresh page's table to equal GET /v1/snapshot", async () => same(await statuses(fresh), want));
    await screenshot(page, "dashboard-tables");
  });
}
