import { assertOnce, assertSequence, openDashboard, screenshot, states, waitReceived, waitState } from "../browser.mjs";
import { uid } from "../stack.mjs";

export const name = "NATS restarted: degraded, then live; nothing missing";

export default async function ({ stack, browser }) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    const page = await openDashboard(context, stack.gatewayUrl);
    await waitState(page, "live");
    const run = uid();
    const before = [0, 1, 2].map((i) => `${run}-pre-${i}`);
    await stack.publish(before.map((id) => ({ id })));

    await stack.nats.stop("SIGKILL");
    await waitState(page, "degraded");
    await screenshot(page, "dashboard-degraded");
    await stack.startNats();
    await waitState(page, "live", 30_000);
    // Ingest answers 503 until it has NATS back; publish retries like a producer.
    const after = [0, 1, 2, 3].map((i) => `${run}-post-${i}`);
    await stack.publish(after.map((id) => ({ id })));
    await waitReceived(page, [...before, ...after]);
    await assertOnce(page, [...before, ...after]);
    assertSequence(await states(page), ["live", "degraded", "live"]);
  } finally {
    await context.close();
  }
}
