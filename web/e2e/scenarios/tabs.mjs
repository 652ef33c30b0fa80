import { assertOnce, screenshot, waitReceived } from "../browser.mjs";
import { assertOneLeader, ids, inContext, oneConnection, openLiveTabs, publishIds, rolesOf, TABS_VIEWPORT } from "../page.mjs";
import { uid } from "../stack.mjs";

export const name = "8 tabs of one origin: one gateway connection, every tab gets every event, leader closing loses nothing";

const TABS = 8;

export default function ({ stack, browser }) {
  return inContext(browser, TABS_VIEWPORT, async (context) => {
    const pages = await openLiveTabs(context, stack.gatewayUrl, TABS);
    await oneConnection(stack);
    const roles = await rolesOf(pages);
    assertOneLeader(roles);

    const run = uid();
    const first = ids(run, "tabs", 5);
    await publishIds(stack, first);
    for (const p of pages) await waitReceived(p, first);

    // Close the leader; publish while another tab takes over.
    const leader = pages[roles.indexOf("leader")];
    await screenshot(leader, "dashboard-tab-leader");
    await leader.close();
    const rest = pages.filter((p) => p !== leader);
    const second = ids(run, "takeover", 5);
    await publishIds(stack, second);
    for (const p of rest) await waitReceived(p, second);
    await oneConnection(stack);
    assertOneLeader(await rolesOf(rest), "after");
    for (const p of rest) await assertOnce(p, [...first, ...second]);
    await screenshot(rest[0], "dashboard-tab-follower");
  });
}
