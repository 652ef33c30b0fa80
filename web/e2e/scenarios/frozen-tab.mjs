import { assertOnce, describe, screenshot, waitReceived } from "../browser.mjs";
import { assertOneLeader, ids as idsOf, inContext, oneConnection, openLiveTabs, publishIds, roleOf, rolesOf, TABS_VIEWPORT } from "../page.mjs";
import { HEARTBEAT_MS, until, uid } from "../stack.mjs";

export const name = "3 tabs, the leader hung (a busy loop): another tab takes over within 2.5 heartbeats + a reconnect, no gap, no duplicate; the old leader wakes and steps down";

const TABS = 3;
/** Detection is 2.5 heartbeats of silence; the rest is the lock steal and one reconnect. */
const TAKEOVER_BOUND_MS = 2.5 * HEARTBEAT_MS + 2000;
/**
 * How long the leader hangs. CDP's `Page.setWebLifecycleState` `frozen` is ignored for a
 * visible page in headless Chromium (its timers kept running when tried), so the leader is
 * hung by a busy loop instead: its timers, messages and lock callbacks wait, its lock and its
 * gateway socket stay, and it wakes up by itself once the other tabs have taken over.
 */
const HANG_MS = 8000;

/** Asserts `page` received exactly `ids`, in this order, among the ids of this run. */
async function assertInOrder(page, run, ids) {
  const got = (await page.evaluate(() => window.heraldReceived)).filter((id) => id.startsWith(run));
  if (JSON.stringify(got) !== JSON.stringify(ids)) {
    throw new Error(`received ${got.join(",")}\n  want     ${ids.join(",")}\n  the client: ${await describe(page)}`);
  }
}

export default function ({ stack, browser }) {
  return inContext(browser, TABS_VIEWPORT, async (context) => {
    const pages = await openLiveTabs(context, stack.gatewayUrl, TABS);
    const roles = await rolesOf(pages);
    assertOneLeader(roles);
    const leader = pages[roles.indexOf("leader")];
    const rest = pages.filter((p) => p !== leader);

    const run = uid();
    const ids = (part, n) => idsOf(run, part, n);
    const before = ids("before", 3);
    await publishIds(stack, before);
    for (const p of pages) await waitReceived(p, before);

    // Hang the leader: its tasks stop, its lock and its gateway socket stay.
    await leader.evaluate((ms) => {
      setTimeout(() => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          // hung
        }
      }, 0);
    }, HANG_MS);
    const frozenAt = Date.now();
    const during = ids("during", 3);
    await publishIds(stack, during);

    const next = await until("a follower to take over", async () => {
      const r = await rolesOf(rest);
      return r.includes("leader") ? rest[r.indexOf("leader")] : false;
    }, { ms: 15_000, every: 50 }).catch(async (err) => {
      const groups = await Promise.all(rest.map((p) => p.evaluate(() => {
        const g = window.herald.group;
        return { every: g.every, heardAgo: Date.now() - g.heardAt, takeovers: g.takeovers, timer: Boolean(g.timer), epoch: g.epoch };
      })));
      throw new Error(`${err.message}\n  the followers' tab groups: ${JSON.stringify(groups)}`);
    });
    const tookMs = Date.now() - frozenAt;
    if (tookMs > TAKEOVER_BOUND_MS) throw new Error(`takeover after ${tookMs} ms (bound ${TAKEOVER_BOUND_MS} ms)`);
    console.log(`     takeover after ${tookMs} ms (heartbeat ${HEARTBEAT_MS} ms)`);
    const after = ids("after", 3);
    await publishIds(stack, after);
    for (const p of rest) await waitReceived(p, [...during, ...after]);
    assertOneLeader(await rolesOf(rest), "after the takeover");
    for (const p of rest) await assertInOrder(p, run, [...before, ...during, ...after]);
    await screenshot(next, "dashboard-frozen-leader-replaced");

    // The old leader wakes up: it must notice it was stolen from, step down, and deliver nothing twice.
    await until("the old leader to step down", async () => (await roleOf(leader)) === "follower", { ms: HANG_MS + 10_000, every: 50 });
    console.log(`     the old leader stepped down: ${await leader.evaluate(() => window.herald.group.steppedDown)}`);
    const last = ids("last", 3);
    await publishIds(stack, last);
    for (const p of pages) await waitReceived(p, [...before, ...during, ...after, ...last]);
    await oneConnection(stack);
    assertOneLeader(await rolesOf(pages), "at the end");
    const all = [...before, ...during, ...after, ...last];
    for (const p of rest) await assertInOrder(p, run, all);
    for (const p of pages) await assertOnce(p, all);
  });
}
