import { assertOnce, assertSequence, screenshot, states, waitReceived, waitState } from "../browser.mjs";
import { ids, publishIds, withLiveDashboard } from "../page.mjs";

export const name = "gateway killed and restarted: reconnecting → live, every outage event once";

export default function ({ stack, browser }) {
  return withLiveDashboard({ stack, browser }, async ({ page, run }) => {
    const before = ids(run, "before", 3);
    await publishIds(stack, before);
    await waitReceived(page, before);

    await stack.gateway.stop("SIGKILL");
    await waitState(page, "reconnecting");
    const during = ids(run, "outage", 5);
    await publishIds(stack, during);
    await screenshot(page, "dashboard-reconnecting");
    await stack.startGateway();
    await waitState(page, "live");
    await waitReceived(page, during);
    const after = ids(run, "after", 1);
    await publishIds(stack, after);
    await waitReceived(page, after);

    await assertOnce(page, [...before, ...during, ...after]);
    assertSequence(await states(page), ["live", "reconnecting", "live"]);
  });
}
