// A plain `new EventSource(url)` — no herald.js — against the real gateway: the browser's own
// reconnection (after the gateway's `retry:` hint, with `Last-Event-ID`) is enough to get
// every event missed while the gateway was SIGKILLed and restarted, once, in order.

import { TIMEOUT } from "../browser.mjs";
import { ids as idsOf, publishIds } from "../page.mjs";
import { token, uid, until } from "../stack.mjs";

export const name = "plain EventSource: gateway killed and restarted, missed events replayed by Last-Event-ID";

export default async function ({ stack, browser }) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    // Any page of the gateway's origin will do: the stream is same-origin, no CORS.
    await page.goto(`${stack.gatewayUrl}/herald.js`);
    await page.evaluate((jwt) => {
      window.got = [];
      window.opens = 0;
      window.statusIds = [];
      const es = new EventSource(`/v1/stream?access_token=${encodeURIComponent(jwt)}`);
      es.onopen = () => window.opens++;
      es.onmessage = (m) => window.got.push({ id: JSON.parse(m.data).id, cursor: m.lastEventId });
      // The opening `status` carries the head cursor as its id: lastEventId is set before
      // the first event, so even a drop before it loses nothing.
      es.addEventListener("status", (m) => window.statusIds.push(m.lastEventId));
      window.es = es;
    }, token());
    await page.waitForFunction(() => window.statusIds.length > 0, null, { timeout: TIMEOUT });
    const head = await page.evaluate(() => window.statusIds[0]);
    if (!/^\d+-[0-9a-f]{8}$/.test(head)) throw new Error(`the opening status has no cursor id: ${JSON.stringify(head)}`);

    const run = uid();
    const ids = (phase, n) => idsOf(run, phase, n);
    const received = async (want) =>
      until(`the EventSource to receive ${want.length} event(s)`, () =>
        page.evaluate((w) => w.every((id) => window.got.some((g) => g.id === id)), want),
      );
    const before = ids("before", 3);
    await publishIds(stack, before);
    await received(before);

    await stack.gateway.stop("SIGKILL");
    const during = ids("outage", 5);
    await publishIds(stack, during);
    await stack.startGateway();
    await received(during);
    const after = ids("after", 2);
    await publishIds(stack, after);
    await received(after);

    const { got, opens, readyState } = await page.evaluate(() => ({ got: window.got, opens: window.opens, readyState: window.es.readyState }));
    const mine = got.map((g) => g.id).filter((id) => id.startsWith(run));
    const want = [...before, ...during, ...after];
    if (JSON.stringify(mine) !== JSON.stringify(want)) {
      throw new Error(`received ${mine.join(", ")}\n  want exactly ${want.join(", ")} (no gap, no duplicate, in order)`);
    }
    const seqs = got.map((g) => Number(g.cursor.split("-")[0]));
    if (seqs.some((s, i) => i > 0 && s <= seqs[i - 1])) throw new Error(`cursors not increasing: ${got.map((g) => g.cursor).join(", ")}`);
    if (opens < 2) throw new Error(`the EventSource opened ${opens} time(s); it should have reconnected by itself`);
    if (readyState !== 1) throw new Error(`the EventSource is not open (readyState ${readyState})`);
    await page.evaluate(() => window.es.close());
  } finally {
    await context.close();
  }
}
