import { assertOnce, openDashboard, screenshot, waitReceived, waitState } from "../browser.mjs";
import { Proxy } from "../proxy.mjs";
import { uid } from "../stack.mjs";

export const name = "SSE refused: falls back to WebSocket, then to polling, gets everything, and comes back";

const transport = (page) => page.evaluate(() => window.herald.stats().transport);

export default async function ({ stack, browser }) {
  const proxy = await new Proxy(stack.gatewayUrl).start();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    proxy.refuse.sse = true;
    const page = await openDashboard(context, proxy.url, { upgradeAfter: "4000" });
    const run = uid();

    // SSE answers a plain 503 (not Herald's JSON): the client moves to the WebSocket.
    await page.waitForFunction(() => window.herald.stats().transport === "ws" && window.herald.state === "live");
    const ws = [0, 1, 2].map((i) => `${run}-ws-${i}`);
    await stack.publish(ws.map((id) => ({ id })));
    await waitReceived(page, ws);

    // Now WebSockets are refused too, and the open one is cut: long-poll.
    proxy.refuse.ws = true;
    proxy.cut("ws");
    await waitState(page, "polling");
    if ((await transport(page)) !== "poll") throw new Error("polling state without the poll transport");
    const poll = [0, 1, 2, 3].map((i) => `${run}-poll-${i}`);
    await stack.publish(poll.map((id) => ({ id })));
    await waitReceived(page, poll);
    await screenshot(page, "dashboard-polling");
    if (proxy.refused.sse < 2 || proxy.refused.ws < 2) throw new Error(`refusals ${JSON.stringify(proxy.refused)}`);

    // The proxy lets SSE through again: the client goes back up on its own.
    proxy.refuse.sse = false;
    proxy.refuse.ws = false;
    await page.waitForFunction(() => window.herald.stats().transport === "sse" && window.herald.state === "live", null, { timeout: 30_000 });
    const back = [`${run}-back-0`, `${run}-back-1`];
    await stack.publish(back.map((id) => ({ id })));
    await waitReceived(page, back);
    await assertOnce(page, [...ws, ...poll, ...back]);
  } finally {
    await context.close();
    await proxy.stop();
  }
}
