import { assertOnce, screenshot, waitReceived } from "../browser.mjs";
import { ids as idsOf, withLiveDashboard } from "../page.mjs";
import { until } from "../stack.mjs";

export const name = "events published through ingest appear on the page";

export default function ({ stack, browser }) {
  return withLiveDashboard({ stack, browser }, async ({ page, run }) => {
    const people = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Barbara Liskov", "Edsger Dijkstra", "Margaret Hamilton"];
    const ids = idsOf(run, "live", people.length);
    await stack.publish(people.slice(0, 4).map((name, i) => ({ id: ids[i], name, action: i === 3 ? "update" : "insert" })));
    await stack.publish([{ id: ids[4], topic: "deals", action: "created", data: { id: 77, title: `Deal with ${people[4]}` } }]);
    // And a Sequin CDC webhook, the way real Sequin sends it.
    await stack.sequin(ids[5], { id: 6, name: people[5], status: "new" });
    await waitReceived(page, ids);
    await assertOnce(page, ids);
    // The newest is on top.
    const first = await page.$eval("#feed li", (li) => li.dataset.id);
    if (first !== ids[5]) throw new Error(`newest event not first: ${first}`);
    // Counted from the feed, then from the aggregator's documents as they arrive: either way
    // the stream holds exactly these events, so the counter settles there.
    const total = () => page.$eval('[data-counter="Events"] .value', (e) => Number(e.textContent));
    await until(`the Events counter to show ${ids.length}`, async () => (await total()) === ids.length, { ms: 10_000 }).catch(async (err) => {
      throw new Error(`${err.message}: it shows ${await total()}`);
    });
    await screenshot(page, "dashboard-live");
  });
}
