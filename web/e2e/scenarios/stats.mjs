// The dashboard's counters from the stats-aggregator: `GET /v1/stats` at start, then live
// `$stats` documents over the page's own connection, including the `leads by status` bars.

import { openDashboard, screenshot } from "../browser.mjs";
import { withLiveDashboard } from "../page.mjs";
import { until } from "../stack.mjs";

export const name = "dashboard counters: exact counts from the stats-aggregator, live, with leads by status";

export default function ({ stack, browser }) {
  return withLiveDashboard({ stack, browser }, async ({ context, page, run }) => {
    // Status values of this run only, so the bars can be checked exactly.
    const won = `won-${run}`;
    const lost = `lost-${run}`;
    const statuses = [won, won, lost];
    await stack.publish(statuses.map((status, i) => ({ id: `${run}-stats-${i}`, data: { id: `${run}-${i}`, status } })));

    const bar = (value) =>
      page.evaluate((v) => document.querySelector(`[data-group="leads.status"] [data-value="${v}"] b`)?.textContent ?? null, value);
    await until("the leads-by-status bars to show this run's counts", async () => (await bar(won)) === "2" && (await bar(lost)) === "1", { ms: 15_000 });
    const source = await page.$eval("#counter-source", (e) => e.textContent);
    if (!source.includes("stats-aggregator")) throw new Error(`the counters are not from the aggregator: "${source}"`);

    // The page shows what the gateway serves: the Events card is the sum of the documents.
    const want = async () => (await stack.statsSnapshot()).stats.reduce((n, s) => n + s.doc.total, 0);
    const shown = () => page.$eval('[data-counter="Events"] .value', (e) => Number(e.textContent));
    await until("the Events card to equal the aggregator's totals", async () => (await shown()) === (await want()), { ms: 15_000 });

    // A page opened now starts from the snapshot, before any new event.
    const fresh = await openDashboard(context, stack.gatewayUrl);
    await until("a fresh page to show the counts from the snapshot", async () =>
      fresh.evaluate((v) => document.querySelector(`[data-group="leads.status"] [data-value="${v}"] b`)?.textContent === "2", won),
    );
    await screenshot(page, "dashboard-stats");
  });
}
