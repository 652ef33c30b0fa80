// The client's state machine under fake timers: backoff bounds, never giving up, silence
// detection, dedup across reconnects, resume by cursor, resync, fallback and upgrade, wake-ups
// and token refresh. The transports are fakes the tests drive (helpers.mjs).

import assert from "node:assert/strict";
import { mock, test } from "node:test";

import { advance, event, flush, harness, reply, useFakeTime } from "./helpers.mjs";

useFakeTime();

test("connects over SSE first, resuming from the position the gateway opens with", async () => {
  const { h, made, fetched, states } = harness();
  await flush();
  assert.equal(made.length, 1);
  assert.equal(made[0].kind, "sse");
  assert.equal(fetched.length, 0, "no extra request to learn the cursor");
  assert.equal(made[0].ctx.cursor, null);
  assert.equal(h.state, "connecting");
  made[0].ctx.on.open();
  // The opening status: SSE carries the head cursor as its `id:`.
  made[0].ctx.on.control("status", { state: "live", heartbeat_ms: 15000 }, "1-0000000a");
  assert.equal(h.state, "live");
  assert.deepEqual(states.map((s) => s.s), ["live"]);
  assert.equal(h.cursor, "1-0000000a");
  // A failure before any event resumes from there.
  made[0].ctx.on.fail({ kind: "closed", message: "gateway killed" });
  await advance(1000);
  assert.equal(made[1].ctx.cursor, "1-0000000a");
  h.close();
});

test("the heartbeat the gateway announces sets the silence budget; the option overrides it", async () => {
  const { h, made } = harness();
  await flush();
  made[0].ctx.on.open();
  made[0].ctx.on.control("status", { state: "live", heartbeat_ms: 1000 }, null);
  await advance(2400);
  assert.equal(made.length, 1);
  await advance(700);
  assert.equal(made[0].stopped, true, "2.5 announced heartbeats of silence: dead");
  h.close();

  const pinned = harness({ heartbeat: 60_000 });
  await flush();
  pinned.made[0].ctx.on.open();
  pinned.made[0].ctx.on.control("status", { state: "live", heartbeat_ms: 1000 }, null);
  await advance(10_000, 1000);
  assert.equal(pinned.made.length, 1, "the option wins over the announcement");
  assert.equal(pinned.made[0].stopped, undefined);
  pinned.h.close();
});

test("after a 401 or token expiry, SSE reopens with a fresh token and the last cursor", async () => {
  let n = 0;
  const getToken = async () => `token-${++n}`;
  const { h, made } = harness({ getToken });
  await flush();
  assert.equal(made[0].ctx.token, "token-1");
  made[0].ctx.on.open();
  made[0].ctx.on.event(event("a"), "5-0000000a");
  made[0].ctx.on.control("reconnect", { reason: "token_expired" }, null);
  await advance(100);
  assert.equal(made.length, 2, "at once");
  assert.equal(made[1].ctx.token, "token-2", "a fresh token");
  assert.equal(made[1].ctx.cursor, "5-0000000a", "resuming after the last event");
  made[1].ctx.on.fail({ kind: "refused", status: 401, code: "token_expired", message: "expired" });
  await advance(2000);
  assert.equal(made.length, 3);
  assert.equal(made[2].ctx.token, "token-3");
  assert.equal(made[2].ctx.cursor, "5-0000000a");
  h.close();
});

test("never gives up: retries for a day, first retry within 1 s, no delay above 30 s", async () => {
  const { h, made } = harness({}, { random: () => 0.999999 });
  await flush();
  const starts = [];
  let failures = 0;
  const day = 24 * 3600 * 1000;
  const t0 = Date.now();
  while (Date.now() - t0 < day) {
    const t = made[made.length - 1];
    if (!t.failed) {
      t.failed = true;
      starts.push(Date.now());
      t.ctx.on.fail({ kind: "network", message: "connection refused" });
      failures++;
      await flush();
      assert.equal(h.state, "connecting");
    }
    await advance(1000, 1000);
  }
  const gaps = starts.slice(1).map((t, i) => t - starts[i]);
  assert.ok(gaps[0] <= 1000, `first retry after ${gaps[0]} ms`);
  assert.ok(Math.max(...gaps) <= 30_000 + 1000, `longest gap ${Math.max(...gaps)} ms`);
  assert.ok(failures > 2000, `only ${failures} attempts in a day`);
  assert.equal(made[made.length - 1].kind, "sse", "network errors are not a reason to leave SSE");
  h.close();
});

test("backoff restarts after a connection proves alive", async () => {
  const { h, made } = harness({}, { random: () => 0.999999 });
  await flush();
  for (let i = 0; i < 6; i++) {
    made[made.length - 1].ctx.on.fail({ kind: "network", message: "down" });
    await flush();
    await advance(h.nextRetryIn + 1, 500);
  }
  assert.equal(h.nextRetryIn, 29_999);
  const t = made[made.length - 1];
  t.ctx.on.open();
  t.ctx.on.alive();
  t.ctx.on.fail({ kind: "closed", message: "gateway killed" });
  await flush();
  assert.equal(h.state, "reconnecting");
  assert.ok(h.nextRetryIn < 1000, `retry after ${h.nextRetryIn} ms`);
  h.close();
});

test("a connection silent for 2.5 heartbeats is dead; heartbeats keep it alive", async () => {
  const { h, made } = harness({ heartbeat: 1000 });
  await flush();
  const t = made[0];
  t.ctx.on.open();
  for (let i = 0; i < 10; i++) {
    await advance(1000);
    t.ctx.on.alive();
  }
  assert.equal(made.length, 1, "heartbeats every interval keep the connection");
  assert.equal(h.state, "live");
  await advance(2400);
  assert.equal(made.length, 1);
  await advance(700);
  assert.equal(t.stopped, true, "no heartbeat for 2.5 intervals: the connection is dropped");
  assert.equal(h.state, "reconnecting");
  assert.match(h.reason, /no heartbeat/);
  await advance(1000);
  assert.equal(made.length, 2, "and replaced");
  h.close();
});

test("a quiet WebSocket is probed before it is declared dead", async () => {
  const { h, made } = harness({ heartbeat: 1000, transport: "ws" });
  await flush();
  made[0].ctx.on.open();
  await advance(1500);
  assert.ok(made[0].probes >= 1);
  made[0].ctx.on.alive(); // the answer
  await advance(1000);
  assert.equal(made.length, 1);
  h.close();
});

test("resumes from the last cursor and delivers each event once across reconnects", async () => {
  const { h, made } = harness();
  await flush();
  const seen = [];
  h.subscribe("leads", (e) => seen.push(e.id));
  const all = [];
  h.subscribe("*", (e) => all.push(e.id));
  const first = made[0];
  first.ctx.on.open();
  first.ctx.on.event(event("a"), "2-0000000a");
  first.ctx.on.event(event("b"), "3-0000000a");
  first.ctx.on.event(event("x", "deals"), "4-0000000a");
  first.ctx.on.fail({ kind: "closed", message: "gateway killed" });
  await advance(1000);
  const second = made[1];
  assert.equal(second.ctx.cursor, "4-0000000a", "resumes after the last event");
  second.ctx.on.open();
  second.ctx.on.event(event("b"), "3-0000000a"); // a replayed duplicate
  second.ctx.on.event(event("c"), "5-0000000a");
  assert.deepEqual(seen, ["a", "b", "c"]);
  assert.deepEqual(all, ["a", "b", "x", "c"]);
  assert.equal(h.stats().cursor, "5-0000000a", "a late duplicate never moves the cursor back");
  assert.equal(h.stats().duplicates, 1);
  assert.equal(h.stats().reconnects, 1);
  // Callbacks of the dead connection are ignored.
  first.ctx.on.event(event("zombie"), "9-0000000a");
  assert.deepEqual(seen, ["a", "b", "c"]);
  h.close();
});

test("subscribe by CloudEvents type and unsubscribe", async () => {
  const { h, made } = harness();
  await flush();
  const got = [];
  const off = h.subscribe("herald.leads.insert", (e) => got.push(e.id));
  made[0].ctx.on.open();
  made[0].ctx.on.event(event("a"), "2-0000000a");
  off();
  made[0].ctx.on.event(event("b"), "3-0000000a");
  assert.deepEqual(got, ["a"]);
  h.close();
});

test("reset: resync event, cursor moves to the gateway's position", async () => {
  const { h, made } = harness();
  await flush();
  const resyncs = [];
  h.on("resync", (info) => resyncs.push(info));
  made[0].ctx.on.open();
  made[0].ctx.on.control("reset", { reason: "out_of_retention", cursor: "900-0000000b" }, "900-0000000b");
  assert.deepEqual(resyncs, [{ reason: "out_of_retention", cursor: "900-0000000b" }]);
  assert.equal(h.stats().cursor, "900-0000000b");
  h.close();
});

test("degraded while the gateway has lost NATS, live again after", async () => {
  const { h, made } = harness();
  await flush();
  made[0].ctx.on.open();
  made[0].ctx.on.control("status", { state: "degraded" });
  assert.equal(h.state, "degraded");
  made[0].ctx.on.control("status", { state: "live" });
  assert.equal(h.state, "live");
  // Degraded, then the connection drops: the next gateway says nothing if it is live.
  made[0].ctx.on.control("status", { state: "degraded" });
  made[0].ctx.on.fail({ kind: "closed", message: "gateway killed" });
  await advance(1000);
  made[1].ctx.on.open();
  assert.equal(h.state, "live");
  h.close();
});

test("draining and token expiry reconnect at once; overflow too", async () => {
  const { h, made } = harness();
  await flush();
  made[0].ctx.on.open();
  made[0].ctx.on.alive();
  made[0].ctx.on.control("reconnect", { reason: "draining" });
  await flush();
  await advance(1);
  assert.equal(made.length, 2);
  assert.equal(h.nextRetryIn, 0);
  h.close();
});

test("auto: SSE blocked → WebSocket → long-poll, then back up when SSE works again", async () => {
  const { h, made, states } = harness({ upgradeAfter: 60_000 });
  await flush();
  const kinds = () => made.map((t) => t.kind).join(",");
  // A proxy answers 503 without Herald's JSON body: SSE does not get through.
  for (let i = 0; i < 2; i++) {
    made[made.length - 1].ctx.on.fail({ kind: "blocked", status: 503, message: "proxy" });
    await advance(1000);
  }
  assert.equal(kinds(), "sse,sse,ws");
  // The WebSocket cannot open, while plain HTTP reaches the gateway.
  for (let i = 0; i < 2; i++) {
    made[made.length - 1].ctx.on.fail({ kind: "network", message: "WebSocket closed (1006)" });
    await advance(3000);
  }
  assert.equal(kinds(), "sse,sse,ws,ws,poll");
  const poll = made[made.length - 1];
  poll.ctx.on.open();
  assert.equal(h.state, "polling");
  poll.ctx.on.event(event("p1"), null);
  poll.ctx.on.cursor("7-0000000a");
  // After upgradeAfter, SSE is tried again from the same cursor; it still fails: back to
  // polling at once, no backoff.
  await advance(60_000, 1000);
  assert.equal(made[made.length - 1].kind, "sse");
  assert.equal(made[made.length - 1].ctx.cursor, "7-0000000a");
  made[made.length - 1].ctx.on.fail({ kind: "blocked", status: 503, message: "proxy" });
  await advance(10);
  assert.equal(made[made.length - 1].kind, "poll");
  made[made.length - 1].ctx.on.open();
  // Next try (later: the interval doubles) succeeds and stays.
  await advance(120_000, 1000);
  const up = made[made.length - 1];
  assert.equal(up.kind, "sse");
  up.ctx.on.open();
  assert.equal(h.state, "live");
  for (let i = 0; i < 60; i++) {
    await advance(5000, 5000);
    up.ctx.on.alive();
  }
  assert.equal(made[made.length - 1], up, "no more upgrades once on the best transport");
  assert.ok(states.some((s) => s.s === "polling"));
  h.close();
});

test("auto: a gateway that is down is not a blocked transport", async () => {
  const { h, made } = harness({}, { fetch: async () => Promise.reject(new TypeError("refused")) });
  await flush();
  for (let i = 0; i < 5; i++) {
    made[made.length - 1].ctx.on.fail({ kind: "network", message: "refused" });
    await advance(40_000, 1000);
  }
  assert.ok(made.every((t) => t.kind === "sse"));
  // Herald itself refusing (503 not_ready while it starts) is not "blocked" either.
  made[made.length - 1].ctx.on.fail({ kind: "refused", status: 503, code: "not_ready", retryAfter: 1000 });
  await advance(2000);
  made[made.length - 1].ctx.on.fail({ kind: "refused", status: 503, code: "not_ready", retryAfter: 1000 });
  await advance(2000);
  assert.ok(made.every((t) => t.kind === "sse"));
  h.close();
});

test("offline: waits; online and visibility reconnect immediately", async () => {
  const { h, made, window, document, navigator } = harness({}, { random: () => 0.999999 });
  await flush();
  made[0].ctx.on.open();
  navigator.onLine = false;
  window.dispatchEvent(new Event("offline"));
  await flush();
  assert.equal(h.state, "offline");
  assert.equal(made[0].stopped, true);
  // Many failures later the backoff is long…
  for (let i = 0; i < 8; i++) {
    await advance(h.nextRetryIn + 1, 1000);
    made[made.length - 1].ctx.on.fail({ kind: "network", message: "offline" });
    await flush();
  }
  assert.ok(h.nextRetryIn > 20_000);
  const before = made.length;
  navigator.onLine = true;
  window.dispatchEvent(new Event("online"));
  await flush();
  assert.equal(made.length, before + 1, "…but `online` reconnects now");
  made[made.length - 1].ctx.on.fail({ kind: "network", message: "flaky" });
  await flush();
  assert.ok(h.nextRetryIn < 1000, "and the backoff starts over");
  const n = made.length;
  document.dispatchEvent(new Event("visibilitychange"));
  await flush();
  assert.equal(made.length, n + 1, "a tab becoming visible reconnects now");
  h.close();
});

test("a tab that slept through its heartbeats reconnects as soon as it is visible", async () => {
  const { h, made, document } = harness({ heartbeat: 1000 });
  await flush();
  made[0].ctx.on.open();
  // Timers of a hidden tab are throttled: fake it by moving the clock without running them.
  mock.timers.setTime(Date.now() + 60_000);
  document.dispatchEvent(new Event("visibilitychange"));
  await flush();
  assert.equal(made[0].stopped, true);
  assert.match(h.reason, /asleep/);
  h.close();
});

test("getToken is called ahead of expiry; a WebSocket gets the new token in place", async () => {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  let n = 0;
  const getToken = async () => {
    n++;
    return `${b64({ alg: "HS256" })}.${b64({ exp: Math.floor(Date.now() / 1000) + 120, n })}.sig`;
  };
  const { h, made } = harness({ getToken, transport: "ws", tokenMargin: 30_000, heartbeat: 3_600_000 });
  await flush();
  assert.equal(n, 1);
  made[0].ctx.on.open();
  await advance(89_000, 1000);
  assert.equal(n, 1);
  await advance(2000, 1000);
  assert.equal(n, 2, "a new token 30 s before expiry");
  const payload = JSON.parse(Buffer.from(made[0].refreshed.split(".")[1], "base64url").toString());
  assert.equal(payload.n, 2, "the open WebSocket was handed the new token");
  assert.equal(made.length, 1, "without reconnecting");
  h.close();
});

test("401 from Herald keeps retrying (a token may come), with backoff", async () => {
  const { h, made } = harness({ token: "bad" });
  await flush();
  for (let i = 0; i < 3; i++) {
    made[made.length - 1].ctx.on.fail({ kind: "refused", status: 401, code: "invalid_token", message: "invalid token" });
    await advance(8000, 1000);
  }
  assert.equal(made.length, 4);
  assert.match(h.reason, /invalid_token/);
  h.close();
});

test("close() stops everything for good", async () => {
  const { h, made } = harness();
  await flush();
  made[0].ctx.on.fail({ kind: "network", message: "down" });
  h.close();
  await advance(120_000, 10_000);
  assert.equal(made.length, 1);
  assert.equal(h.state, "offline");
});
