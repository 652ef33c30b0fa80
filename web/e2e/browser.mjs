// One headless Chromium for every scenario, and the page helpers the scenarios share.

import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";

import { ARTIFACTS, token } from "./stack.mjs";

export const TIMEOUT = 20_000;

export function launch() {
  return chromium.launch({
    executablePath: process.env.HERALD_CHROMIUM ?? "/usr/bin/chromium",
    // Local Network Access checks: pages the React scenario serves through Playwright routes
    // count as public, and Chromium would block their WebSocket to the loopback gateway.
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-features=LocalNetworkAccessChecks"],
  });
}

/**
 * Opens the dashboard served by `base` (the gateway, or a proxy in front of it) and records
 * every state the client goes through in `window.__states`. The client learns the gateway's
 * heartbeat from the gateway (`HEARTBEAT_MS` in these tests); `params` may override it.
 */
export async function openDashboard(context, base, params = {}) {
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (err) => page.errors.push(err));
  const q = new URLSearchParams(params);
  await page.goto(`${base}/?${q}#token=${token()}`);
  await page.waitForFunction(() => window.herald !== undefined, null, { timeout: TIMEOUT });
  await page.evaluate(() => {
    window.__states = [window.herald.state];
    window.herald.on("state", (s) => window.__states.push(s));
  });
  return page;
}

export async function waitState(page, state, timeout = TIMEOUT) {
  try {
    await page.waitForFunction((s) => window.herald.state === s, state, { timeout, polling: 50 });
  } catch (err) {
    throw new Error(`${err.message}\n  waiting for state ${state}; the client: ${await describe(page)}`);
  }
}

/** What the client is doing, for failure messages. */
export async function describe(page) {
  try {
    return JSON.stringify(await page.evaluate(() => ({ states: window.__states, stats: window.herald.stats() })));
  } catch (err) {
    return `(page unavailable: ${err.message})`;
  }
}

/** The collections of the page's client, for failure messages. */
export async function describeCollections(page) {
  try {
    return JSON.stringify(
      await page.evaluate(() => ({
        client: { state: window.herald.state, reason: window.herald.reason, cursor: window.herald.cursor, role: window.herald.stats().role, transport: window.herald.stats().transport },
        collections: [...(window.herald.collections ?? [])].map((c) => ({ topic: c.topic, status: c.status, error: c.error, rows: c.items.size, cursor: c.cursor, fromStream: c.fromStream, fetching: Boolean(c.fetching), held: c.rows.held.length })),
      })),
    );
  } catch (err) {
    return `(page unavailable: ${err.message})`;
  }
}

/** Waits until the page received every id in `ids`. */
export async function waitReceived(page, ids, timeout = TIMEOUT) {
  try {
    await page.waitForFunction((want) => want.every((id) => window.heraldReceived.includes(id)), ids, { timeout, polling: 100 });
  } catch (err) {
    const missing = await page.evaluate((want) => want.filter((id) => !window.heraldReceived.includes(id)), ids).catch(() => ids);
    throw new Error(`${err.message}\n  missing ${missing.join(", ")}; the client: ${await describe(page)}`);
  }
}

/** Asserts the page shows each of `ids` exactly once: to the app and in the feed. */
export async function assertOnce(page, ids) {
  const { received, feed } = await page.evaluate(() => ({
    received: window.heraldReceived,
    feed: [...document.querySelectorAll("#feed li")].map((li) => li.dataset.id),
  }));
  for (const [where, list] of [["delivered", received], ["feed", feed]]) {
    for (const id of ids) {
      const n = list.filter((x) => x === id).length;
      if (n !== 1) throw new Error(`event ${id}: ${n} times in the ${where} (want exactly 1)`);
    }
  }
  if (new Set(received).size !== received.length) throw new Error("a duplicate reached the app");
  if (page.errors.length) throw new Error(`page errors: ${page.errors.map(String).join("; ")}`);
}

/** The states the page went through, in order, with consecutive repeats folded. */
export async function states(page) {
  const all = await page.evaluate(() => window.__states);
  return all.filter((s, i) => s !== all[i - 1]);
}

/** Asserts `want` appear in `got` in this order (other states may come between). */
export function assertSequence(got, want) {
  let i = 0;
  for (const s of got) if (s === want[i]) i++;
  if (i < want.length) throw new Error(`states ${got.join(" → ")} do not include ${want.join(" → ")}`);
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: false });
}
