import { assertOnce, openDashboard, screenshot, waitReceived, waitState } from "../browser.mjs";
import { ids, inContext, publishIds, VIEWPORT } from "../page.mjs";
import { Proxy } from "../proxy.mjs";
import { uid } from "../stack.mjs";

export const name = "SSE refused: falls back to WebSocket, then to polling, gets everything, and comes back";

const transport = (page) => page.evaluate(() => window.herald.stats().transport);

export default async function ({ stack, browser }) {
  const proxy = await new Proxy(stack.gatewayUrl).start();
  try {
    await inContext(browser, VIEWPORT, (context) => fallBackAndUp(stack, proxy, context));
  } finally {
    await proxy.stop();
  }
}

/** SSE refused, then WebSocket too: every event arrives on each rung, and SSE comes back. */
async function fallBackAndUp(stack, proxy, context) {
  proxy.refuse.sse = true;
  const page = await openDashboard(context, proxy.url, { upgradeAfter: "4000" });
  const run = uid();

  // SSE answers a plain 503 (not Herald's JSON): the client moves to the WebSocket.
  await page.waitForFunction(() => window.herald.stats().transport === "ws" && window.herald.state === "live");
  const ws = ids(run, "ws", 3);
  await publishIds(stack, ws);
  await waitReceived(page, ws);

  // Now WebSockets are refused too, and the open one is cut: long-poll.
  proxy.refuse.ws = true;
  proxy.cut("ws");
  await waitState(page, "polling");
  if ((await transport(page)) !== "poll") throw new Error("polling state without the poll transport");
  const poll = ids(run, "poll", 4);
  await publishIds(stack, poll);
  await waitReceived(page, poll);
  await screenshot(page, "dashboard-polling");
  if (proxy.refused.sse < 2 || proxy.refused.ws < 2) throw new Error(`refusals ${JSON.stringify(proxy.refused)}`);

  // The proxy lets SSE through again: the client goes back up on its own.
  proxy.refuse.sse = false;
  proxy.refuse.ws = false;
  await page.waitForFunction(() => window.herald.stats().transport === "sse" && window.herald.state === "live", null, { timeout: 30_000 });
  const back = ids(run, "back", 2);
  await publishIds(stack, back);
  await waitReceived(page, back);
  await assertOnce(page, [...ws, ...poll, ...back]);
}
