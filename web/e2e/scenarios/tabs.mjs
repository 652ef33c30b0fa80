import { assertOnce, screenshot, openDashboard, waitReceived } from "../browser.mjs";
import { until, uid } from "../stack.mjs";

export const name = "8 tabs of one origin: one gateway connection, every tab gets every event, leader closing loses nothing";

const TABS = 8;

async function oneConnection(stack) {
  return until("exactly one gateway connection", async () => {
    const c = await stack.connections();
    return c.sse + c.ws + c.poll === 1 ? c : false;
  });
}

export default async function ({ stack, browser }) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  try {
    const pages = [];
    for (let i = 0; i < TABS; i++) pages.push(await openDashboard(context, stack.gatewayUrl));
    for (const p of pages) await p.waitForFunction(() => window.herald.state === "live");
    await oneConnection(stack);
    const roles = await Promise.all(pages.map((p) => p.evaluate(() => window.herald.stats().role)));
    if (roles.filter((r) => r === "leader").length !== 1) throw new Error(`roles: ${roles.join(",")}`);

    const run = uid();
    const first = [0, 1, 2, 3, 4].map((i) => `${run}-tabs-${i}`);
    await stack.publish(first.map((id) => ({ id })));
    for (const p of pages) await waitReceived(p, first);

    // Close the leader; publish while another tab takes over.
    const leader = pages[roles.indexOf("leader")];
    await screenshot(leader, "dashboard-tab-leader");
    await leader.close();
    const rest = pages.filter((p) => p !== leader);
    const second = [0, 1, 2, 3, 4].map((i) => `${run}-takeover-${i}`);
    await stack.publish(second.map((id) => ({ id })));
    for (const p of rest) await waitReceived(p, second);
    await oneConnection(stack);
    const newRoles = await Promise.all(rest.map((p) => p.evaluate(() => window.herald.stats().role)));
    if (newRoles.filter((r) => r === "leader").length !== 1) throw new Error(`roles after: ${newRoles.join(",")}`);
    for (const p of rest) await assertOnce(p, [...first, ...second]);
    await screenshot(rest[0], "dashboard-tab-follower");
  } finally {
    await context.close();
  }
}
