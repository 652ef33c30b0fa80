import { assertOnce, assertSequence, states, waitReceived, waitState } from "../browser.mjs";
import { ids, publishIds, withLiveDashboard } from "../page.mjs";
import { Proxy } from "../proxy.mjs";
import { HEARTBEAT_MS } from "../stack.mjs";

export const name = "tab hidden then visible, and offline then online: resume without loss";

/** Overrides document.visibilityState (headless tabs are always visible) and fires the event. */
function setVisibility(page, state) {
  return page.evaluate((s) => {
    window.__visibility = s;
    if (!window.__visibilityPatched) {
      window.__visibilityPatched = true;
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => window.__visibility });
      Object.defineProperty(document, "hidden", { configurable: true, get: () => window.__visibility === "hidden" });
    }
    document.dispatchEvent(new Event("visibilitychange"));
  }, state);
}

export default async function ({ stack, browser }) {
  // Through a proxy, so the test can make the connection die silently, as a laptop's does
  // when it sleeps: open, but carrying nothing.
  const proxy = await new Proxy(stack.gatewayUrl).start();
  try {
    await withLiveDashboard({ stack, browser }, ({ context, page, run }) => sleepThenOffline(stack, proxy, context, page, run), { url: proxy.url });
  } finally {
    await proxy.stop();
  }
}

/** Hidden, asleep and visible again; then offline and online: every event, once. */
async function sleepThenOffline(stack, proxy, context, page, run) {
  const cdp = await context.newCDPSession(page);

  // ── hidden, asleep, visible ──
  await setVisibility(page, "hidden");
  // A frozen page runs no timers: only the visibility wake-up can notice the dead link.
  await cdp.send("Page.setWebLifecycleState", { state: "frozen" });
  proxy.stall();
  const asleep = ids(run, "asleep", 4);
  await publishIds(stack, asleep);
  // The tab sleeps for longer than the silence budget (this is the scenario, not a sync).
  await new Promise((r) => setTimeout(r, HEARTBEAT_MS * 3));
  await cdp.send("Page.setWebLifecycleState", { state: "active" });
  await setVisibility(page, "visible");
  await waitReceived(page, asleep);
  await waitState(page, "live");

  // ── offline, online (DevTools network emulation) ──
  const net = (offline) =>
    cdp.send("Network.emulateNetworkConditions", { offline, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await cdp.send("Network.enable");
  await net(true);
  await waitState(page, "offline");
  const away = ids(run, "offline", 5);
  await publishIds(stack, away);
  await net(false);
  await waitState(page, "live");
  await waitReceived(page, away);

  await assertOnce(page, [...asleep, ...away]);
  assertSequence(await states(page), ["live", "offline", "live"]);
}
