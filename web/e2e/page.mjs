// What the scenarios start with, written once: a fresh browser context that is closed whatever
// happens, the dashboard open and live in it, the event ids of one run, and the tab-group
// checks (who leads, one gateway connection for every tab).

import { openDashboard, waitState } from "./browser.mjs";
import { uid, until } from "./stack.mjs";

/** The viewport of a one-tab scenario. */
export const VIEWPORT = Object.freeze({ width: 1280, height: 800 });
/** The viewport of a scenario with many tabs. */
export const TABS_VIEWPORT = Object.freeze({ width: 1100, height: 700 });

/** Runs `body(context)` in a fresh browser context, closed afterwards whatever happens. */
export async function inContext(browser, viewport, body) {
  const context = await browser.newContext({ viewport });
  try {
    return await body(context);
  } finally {
    await context.close();
  }
}

/**
 * Runs `body({ context, page, run })` with the dashboard open at `url` (default: the gateway)
 * and live, in a fresh context; `run` is a prefix unique to this run for the event ids.
 */
export function withLiveDashboard({ stack, browser }, body, { url = stack.gatewayUrl } = {}) {
  return inContext(browser, VIEWPORT, async (context) => {
    const page = await openDashboard(context, url);
    await waitState(page, "live");
    return body({ context, page, run: uid() });
  });
}

/** `n` event ids of one phase of a run: `<run>-<phase>-0`, `<run>-<phase>-1`, … */
export function ids(run, phase, n) {
  return Array.from({ length: n }, (_, i) => `${run}-${phase}-${i}`);
}

/** Publishes one event per id through ingest (the other fields are the stack's defaults). */
export function publishIds(stack, list) {
  return stack.publish(list.map((id) => ({ id })));
}

/** Opens `n` tabs of the dashboard at `url` in `context` and waits until each one is live. */
export async function openLiveTabs(context, url, n) {
  const pages = [];
  for (let i = 0; i < n; i++) pages.push(await openDashboard(context, url));
  for (const p of pages) await p.waitForFunction(() => window.herald.state === "live");
  return pages;
}

/** The tab-group role of one page's client: `leader`, `follower` or `alone`. */
export const roleOf = (page) => page.evaluate(() => window.herald.stats().role);

/** The role of each page, in order. */
export const rolesOf = (pages) => Promise.all(pages.map(roleOf));

/** Asserts exactly one of `roles` is `leader`; `when` names the moment in the message. */
export function assertOneLeader(roles, when) {
  if (roles.filter((r) => r === "leader").length !== 1) throw new Error(`roles${when ? ` ${when}` : ""}: ${roles.join(",")}`);
}

/** Waits until the gateway holds exactly one client connection; returns the counts. */
export function oneConnection(stack) {
  return until("exactly one gateway connection", async () => {
    const c = await stack.connections();
    return c.sse + c.ws + c.poll === 1 ? c : false;
  });
}
