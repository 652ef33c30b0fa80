// Browser tests: the real stack (nats-server, herald-ingest, herald-gateway, herald-stats as
// processes, started by `herald-launch`) and one headless Chromium, driven by playwright-core. Prints `N passed, N failed`; exits 1 on
// any failure. Screenshots and service logs go to e2e/artifacts/.
//
//   npm run e2e                 every scenario
//   npm run e2e -- tabs live    scenarios whose file name contains one of the words
//
// Env: HERALD_NATS_SERVER (default <repo>/.venv/bin/nats-server), HERALD_CHROMIUM (default
// /usr/bin/chromium), HERALD_E2E_NO_BUILD=1 to skip `cargo build`.

import { rmSync } from "node:fs";

import { launch } from "./browser.mjs";
import { ARTIFACTS, Stack } from "./stack.mjs";

// In order of what matters most, and so a scenario that restarts a service runs late.
const SCENARIOS = ["live", "stats", "history", "collection", "react-collection", "public-presence", "private-notes", "reconnect", "gateway-restart", "plain-eventsource", "fallback", "tabs", "frozen-tab", "nats-restart", "sleep-offline"];
const PER_SCENARIO_MS = 120_000;

async function main() {
  const filter = process.argv.slice(2);
  const chosen = SCENARIOS.filter((s) => filter.length === 0 || filter.some((f) => s.includes(f)));
  rmSync(ARTIFACTS, { recursive: true, force: true });
  Stack.build();
  const stack = new Stack();
  let browser;
  let passed = 0;
  let failed = 0;
  try {
    await stack.start();
    browser = await launch();
    for (const file of chosen) {
      const mod = await import(`./scenarios/${file}.mjs`);
      const started = Date.now();
      let timer;
      try {
        await Promise.race([
          mod.default({ stack, browser }),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out after ${PER_SCENARIO_MS / 1000} s`)), PER_SCENARIO_MS);
          }),
        ]);
        passed++;
        console.log(`ok   ${file}: ${mod.name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      } catch (err) {
        failed++;
        console.log(`FAIL ${file}: ${mod.name}\n     ${String(err?.stack ?? err).split("\n").join("\n     ")}`);
      } finally {
        clearTimeout(timer);
      }
      // A scenario that failed mid-outage must not break the next one.
      await stack.restore();
    }
  } catch (err) {
    failed++;
    console.log(`FAIL set-up: ${err?.stack ?? err}`);
  } finally {
    await browser?.close().catch(() => {});
    await stack.stop().catch(() => {});
  }
  console.log(`${passed} passed, ${failed} failed`);
  console.log(`artifacts: ${ARTIFACTS}`);
  process.exit(failed === 0 && passed === chosen.length ? 0 : 1);
}

main();
