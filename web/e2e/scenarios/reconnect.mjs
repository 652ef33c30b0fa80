// The app asks for a new connection: the page calls `herald.reconnect()` while events are
// being published, twice. The client drops its connection and connects again at once from its
// cursor, so the page ends with every event exactly once, the gateway holds one connection
// again, and `stats()` and `isConnected()` say what happened.

import { assertOnce, assertSequence, screenshot, states, waitReceived, waitState } from "../browser.mjs";
import { ids as idsOf, oneConnection, publishIds, withLiveDashboard } from "../page.mjs";
import { until } from "../stack.mjs";

export const name = "reconnect() mid-stream: a new connection from the cursor, every event once, counted in stats()";

/** Batches published after the last reconnect() before the publisher stops. */
const AFTER = 5;
/** A bound on the publisher, should the page never get to its reconnects. */
const MAX_BATCHES = 200;

/** Calls reconnect() in the page; returns the counts just before, and when (page time). */
const reconnect = (page) =>
  page.evaluate(() => {
    const before = window.herald.stats();
    window.herald.reconnect();
    return { connects: before.connects, reconnects: before.reconnects, at: Date.now() };
  });

export default function ({ stack, browser }) {
  return withLiveDashboard({ stack, browser }, async ({ page, run }) => {
    const published = [];
    let reconnects = 0;
    const received = (n) => page.evaluate((want) => want.every((id) => window.heraldReceived.includes(id)), published.slice(0, n));
    // Publishes batches of 3 until AFTER batches have gone out after the second reconnect(),
    // never more than two batches ahead of the page: a publisher left to run free can use up
    // MAX_BATCHES before the page gets to its first reconnect() (seen on a quiet machine).
    const publisher = (async () => {
      let after = 0;
      for (let i = 0; after < AFTER; i++) {
        if (i >= MAX_BATCHES) throw new Error(`${MAX_BATCHES} batches published and the page did not reconnect twice`);
        const batch = idsOf(run, `b${i}`, 3);
        await publishIds(stack, batch);
        published.push(...batch);
        if (reconnects >= 2) after++;
        const behind = Math.max(0, published.length - 6);
        await until("the page within two batches of the publisher", () => received(behind));
      }
    })();

    await until("the first events on the page", async () => published.length >= 6 && (await received(6)));
    const first = await reconnect(page);
    reconnects++;
    // The second one while the first new connection may still be opening, once more events came.
    const seen = published.length;
    await until("events after the first reconnect", async () => published.length >= seen + 6 && (await received(seen + 6)));
    const second = await reconnect(page);
    reconnects++;
    await publisher;
    if (reconnects < 2) throw new Error("the publisher stopped before the page reconnected");

    await waitReceived(page, published);
    await waitState(page, "live");
    // Every event once, in publishing order, to the app; the feed shows the newest 50.
    const got = await page.evaluate(() => window.heraldReceived);
    const ours = got.filter((id) => id.startsWith(`${run}-`));
    if (ours.join() !== published.join()) throw new Error(`not each event once, in publishing order: ${ours.join(", ")}`);
    await assertOnce(page, published.slice(-50));

    const s = await page.evaluate(() => ({ ...window.herald.stats(), connected: window.herald.isConnected() }));
    if (!s.connected) throw new Error(`isConnected() is false in state ${s.state}`);
    if (!(s.reconnects >= 2 && s.reconnects >= first.reconnects + 2)) throw new Error(`stats().reconnects ${s.reconnects} (${first.reconnects} before the first reconnect())`);
    if (s.connects !== s.reconnects + 1) throw new Error(`connects ${s.connects} is not reconnects ${s.reconnects} + 1`);
    if (s.eventsReceived < published.length) throw new Error(`eventsReceived ${s.eventsReceived} < ${published.length} published`);
    if (!(s.lastConnected instanceof Date) || s.lastConnected.getTime() < second.at) {
      throw new Error(`stats().lastConnected ${s.lastConnected} is not the connection opened after the last reconnect()`);
    }
    assertSequence(await states(page), ["live", "reconnecting", "live", "reconnecting", "live"]);
    // The dropped connections are gone: the gateway holds this page's one connection.
    await oneConnection(stack);
    await screenshot(page, "dashboard-reconnect");
  });
}
