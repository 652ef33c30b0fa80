import { assertOnce, assertSequence, screenshot, states, waitReceived, waitState } from "../browser.mjs";
import { ids, publishIds, withLiveDashboard } from "../page.mjs";

export const name = "NATS restarted: degraded, then live; nothing missing";

export default function ({ stack, browser }) {
  return withLiveDashboard({ stack, browser }, async ({ page, run }) => {
    const before = ids(run, "pre", 3);
    await publishIds(stack, before);

    await stack.nats.stop("SIGKILL");
    await waitState(page, "degraded");
    await screenshot(page, "dashboard-degraded");
    await stack.startNats();
    await waitState(page, "live", 30_000);
    // Ingest answers 503 until it has NATS back; publish retries like a producer.
    const after = ids(run, "post", 4);
    await publishIds(stack, after);
    await waitReceived(page, [...before, ...after]);
    await assertOnce(page, [...before, ...after]);
    assertSequence(await states(page), ["live", "degraded", "live"]);
  });
}
