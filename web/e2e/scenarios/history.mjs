// A visitor who arrives after the events: the dashboard opens with the latest 50 from
// `GET /v1/history` (oldest first to the app, newest on top in the feed), then a live event
// follows right after them — no gap, no repeat.

import { assertOnce, openDashboard, screenshot, waitReceived, waitState } from "../browser.mjs";
import { VIEWPORT, ids as idsOf, inContext } from "../page.mjs";
import { uid } from "../stack.mjs";

export const name = "a dashboard opened after 60 events shows the latest 50, then live ones, nothing twice";

/** The ids of `reply` (ingest's answer) in stream order. */
const inStreamOrder = (reply) => [...reply.events].sort((a, b) => a.seq - b.seq).map((e) => e.id);

export default async function ({ stack, browser }) {
  const run = uid();
  const stored = inStreamOrder(await stack.publish(idsOf(run, "before", 60).map((id) => ({ id }))));
  const latest = stored.slice(-50);
  await inContext(browser, VIEWPORT, async (context) => {
    const page = await openDashboard(context, stack.gatewayUrl);
    await waitState(page, "live");
    await waitReceived(page, latest);
    const received = await page.evaluate(() => window.heraldReceived);
    if (received.slice(0, 50).join() !== latest.join()) {
      throw new Error(`the page did not open with the latest 50, oldest first: ${received.slice(0, 52).join(", ")}`);
    }
    const feed = () => page.$$eval("#feed li", (lis) => lis.map((li) => li.dataset.id));
    const opened = await feed();
    if (opened.join() !== [...latest].reverse().join()) throw new Error(`the feed does not show the latest 50, newest first: ${opened.join(", ")}`);
    if (!(await page.$eval("#feed-empty", (e) => e.hidden))) throw new Error("the feed still waits for the first event");

    const live = inStreamOrder(await stack.publish(idsOf(run, "live", 2).map((id) => ({ id }))));
    await waitReceived(page, live);
    // The feed keeps 50: the two oldest made room for the live ones.
    await assertOnce(page, [...latest.slice(2), ...live]);
    const after = await page.evaluate(() => window.heraldReceived);
    if (after.join() !== [...latest, ...live].join()) throw new Error(`not exactly the history then the live events: ${after.join(", ")}`);
    const top = await feed();
    if (top.slice(0, 3).join() !== [live[1], live[0], latest[49]].join()) throw new Error(`feed order: ${top.slice(0, 3).join(", ")}`);
    await screenshot(page, "dashboard-history");
  });
}
