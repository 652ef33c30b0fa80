// A client over fake transports, a fake fetch and fake browser signals, for the state-machine
// tests. Time is node:test's mock timers (setTimeout and Date), driven by each test.

import { afterEach, beforeEach, mock } from "node:test";

import { HeraldClient } from "../herald.js";

/** Every test of the calling file runs on mock setTimeout and Date, starting at 1 000 000 ms. */
export function useFakeTime() {
  beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());
}

/** Advances fake time by `ms` in steps of `step`, letting promises settle between steps. */
export async function advance(ms, step = 100) {
  for (let t = 0; t < ms; t += step) {
    mock.timers.tick(Math.min(step, ms - t));
    await flush();
  }
}

/** Lets every pending promise settle (setImmediate is not mocked). */
export const flush = () => new Promise((resolve) => setImmediate(resolve));

/** A minimal fetch Response. */
export function reply(status, body, headers = {}) {
  const h = new Map(Object.entries({ "content-type": "application/json", ...headers }));
  return { ok: status >= 200 && status < 300, status, headers: { get: (k) => h.get(k.toLowerCase()) ?? null }, json: async () => body };
}

/**
 * Builds a client whose transports are recorded in `made`; each fake exposes the ctx the
 * client gave it, so a test can play the server: `t.ctx.on.open()`, `t.ctx.on.event(…)`.
 */
export function harness(options = {}, { fetch, random = () => 0.5, online = true } = {}) {
  const made = [];
  const fake = (kind) =>
    class {
      static kind = kind;
      constructor(ctx) {
        this.kind = kind;
        this.ctx = ctx;
        this.probes = 0;
        made.push(this);
      }
      start() {
        this.started = true;
      }
      stop() {
        this.stopped = true;
      }
      probe() {
        this.probes++;
      }
      refresh(token) {
        this.refreshed = token;
      }
    };
  const window = new EventTarget();
  const document = Object.assign(new EventTarget(), { visibilityState: "visible" });
  const navigator = { onLine: online };
  const fetched = [];
  const env = {
    transports: { sse: fake("sse"), ws: fake("ws"), poll: fake("poll") },
    fetch: async (url, init) => {
      fetched.push({ url, init });
      return fetch ? fetch(url, init) : reply(200, { events: [], cursor: "1-0000000a", state: "live" });
    },
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (t) => clearTimeout(t),
    now: () => Date.now(),
    random,
    window,
    document,
    navigator,
    locks: null,
    BroadcastChannel: null,
  };
  const h = new HeraldClient("http://gw.test", { shareTabs: false, ...options, env: { ...env, ...options.env } });
  const states = [];
  h.on("state", (s, { reason }) => states.push({ s, reason }));
  return { h, made, env, window, document, navigator, fetched, states, last: () => made[made.length - 1] };
}

/** A CloudEvent as the gateway sends it. */
export function event(id, topic = "leads", extra = {}) {
  return { specversion: "1.0", id, source: "test", type: `herald.${topic}.insert`, topic, action: "insert", data: { id }, ...extra };
}
