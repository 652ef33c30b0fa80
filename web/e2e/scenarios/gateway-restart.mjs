import { assertOnce, assertSequence, openDashboard, screenshot, states, waitReceived, waitState } from "../browser.mjs";
import { uid } from "../stack.mjs";

export const name = "gateway killed and restarted: reconnecting → live, every outage event once";

export default async function ({ stack, browser }) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    const page = await openDashboard(context, stack.gatewayUrl);
    await waitState(page, "live");
    const run = uid();
    const before = [0, 1, 2].map((i) => `${run}-before-${i}`);
    await stack.publish(before.map((id) => ({ id })));
    await waitReceived(page, before);

    await stack.gateway.stop("SIGKILL");
    await waitState(page, "reconnecting");
    const during = [0, 1, 2, 3, 4].map((i) => `${run}-outage-${i}`);
    await stack.publish(during.map((id) => ({ id })));
    await screenshot(page, "dashboard-reconnecting");
    await stack.startGateway();
    await waitState(page, "live");
    await waitReceived(page, during);
    const after = [`${run}-after-0`];
    await stack.publish(after.map((id) => ({ id })));
    await waitReceived(page, after);

    await assertOnce(page, [...before, ...during, ...after]);
    assertSequence(await states(page), ["live", "reconnecting", "live"]);
  } finally {
    await context.close();
  }
}
