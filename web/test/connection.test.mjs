// The app's handle on the connection (lib/connection.js): reconnect() resuming from the cursor
// with no gap and no duplicate, the backoff reset, isConnected() in every state, the counts of
// stats(), and a follower tab's reconnect() carried out by the leader. Fake transports and
// fake time (helpers.mjs, tabgroup.mjs).

import assert from "node:assert/strict";
import { test } from "node:test";

import { advance, event, flush, harness, reply, useFakeTime } from "./helpers.mjs";
import { advance as advanceTabs, threeTabs } from "./tabgroup.mjs";

useFakeTime();

test("reconnect() drops the connection and resumes at once from the cursor: no gap, no duplicate", async () => {
  const { h, made, states } = harness();
  await flush();
  const seen = [];
  h.subscribe("*", (e) => seen.push(e.id));
  const first = made[0];
  first.ctx.on.open();
  first.ctx.on.event(event("a"), "2-0000000a");
  first.ctx.on.event(event("b"), "3-0000000a");
  h.reconnect();
  assert.equal(first.stopped, true, "the current connection is dropped now");
  assert.equal(h.state, "reconnecting");
  await flush(); // the token, then the new connection: no timer in between
  assert.equal(made.length, 2, "a new connection at once");
  const second = made[1];
  assert.equal(second.kind, "sse");
  assert.equal(second.ctx.cursor, "3-0000000a", "from the cursor of the last event handed over");
  // What the old connection still had in flight is ignored; the new one replays it.
  first.ctx.on.event(event("c"), "4-0000000a");
  assert.deepEqual(seen, ["a", "b"]);
  second.ctx.on.open();
  assert.equal(h.state, "live");
  second.ctx.on.event(event("b"), "3-0000000a"); // an overlap: dropped
  second.ctx.on.event(event("c"), "4-0000000a");
  second.ctx.on.event(event("d"), "5-0000000a");
  assert.deepEqual(seen, ["a", "b", "c", "d"], "every event once, in order");
  const s = h.stats();
  assert.deepEqual([s.connects, s.reconnects], [2, 1]);
  assert.equal(s.cursor, "5-0000000a");
  assert.equal(s.eventsReceived, 5, "four events and the dropped overlap");
  assert.deepEqual([s.delivered, s.duplicates], [4, 1]);
  assert.deepEqual(
    states.map((x) => x.s),
    ["live", "reconnecting", "live"],
  );
  h.close();
});

test("reconnect() resets the backoff and skips the pending retry", async () => {
  // random() = 0.5: the delay before retry n is half of min(cap, 1000·2ⁿ).
  const { h, made } = harness();
  await flush();
  made[0].ctx.on.open();
  const down = async () => {
    made[made.length - 1].ctx.on.fail({ kind: "network", message: "gateway down" });
    await flush();
  };
  for (let i = 0; i < 4; i++) {
    await down();
    await advance(h.nextRetryIn);
  }
  assert.equal(made.length, 5);
  await down();
  assert.equal(h.nextRetryIn, 8000, "the fifth retry would wait 8 s");
  assert.equal(h.stats().attempt, 5);
  h.reconnect();
  await flush();
  assert.equal(made.length, 6, "connected at once, not after 8 s");
  assert.equal(h.stats().attempt, 0);
  await down();
  assert.equal(h.nextRetryIn, 500, "the next retry starts the backoff over");
  await advance(8000, 500);
  assert.equal(made.length, 7, "the retry reconnect() replaced never fires");
  h.close();
});

test("isConnected() is true only while events arrive live: live or polling", async () => {
  const { h, made } = harness();
  await flush();
  const seen = [];
  const check = () => seen.push([h.state, h.isConnected()]);
  check();
  made[0].ctx.on.open();
  check();
  made[0].ctx.on.control("status", { state: "degraded" }, null);
  check();
  made[0].ctx.on.control("status", { state: "live" }, null);
  made[0].ctx.on.fail({ kind: "network", message: "gateway down" });
  check();
  h.close();
  check();
  assert.deepEqual(seen, [
    ["connecting", false],
    ["live", true],
    ["degraded", false],
    ["reconnecting", false],
    ["offline", false],
  ]);

  const polling = harness({ transport: "poll" });
  await flush();
  polling.made[0].ctx.on.open();
  assert.deepEqual([polling.h.state, polling.h.isConnected()], ["polling", true]);
  polling.h.close();

  const offline = harness({}, { online: false });
  await flush();
  offline.made[0].ctx.on.fail({ kind: "network", message: "no network" });
  await flush();
  assert.deepEqual([offline.h.state, offline.h.isConnected()], ["offline", false]);
  offline.h.close();
});

test("stats(): lastConnected, connects and reconnects count every connection; eventsReceived every arrival", async () => {
  const { h, made } = harness();
  const pick = ({ lastConnected, connects, reconnects, eventsReceived, transport }) => ({ lastConnected, connects, reconnects, eventsReceived, transport });
  await flush();
  assert.deepEqual(
    pick(h.stats()),
    { lastConnected: null, connects: 1, reconnects: 0, eventsReceived: 0, transport: "sse" },
    "the first attempt counts; it is not a connection until it opens",
  );
  await advance(500);
  made[0].ctx.on.open();
  const opened = h.stats().lastConnected;
  assert.ok(opened instanceof Date);
  assert.equal(opened.getTime(), 1_000_500);
  made[0].ctx.on.event(event("a"), "2-0000000a");
  // A failed attempt counts as a reconnect too; lastConnected stays at the last open.
  for (const i of [0, 1]) {
    made[i].ctx.on.fail({ kind: "network", message: "gateway down" });
    await flush();
    await advance(h.nextRetryIn);
  }
  assert.deepEqual([h.stats().connects, h.stats().reconnects], [3, 2]);
  assert.equal(h.stats().lastConnected.getTime(), 1_000_500);
  await advance(1000);
  made[2].ctx.on.open();
  made[2].ctx.on.event(event("a"), "2-0000000a");
  made[2].ctx.on.event(event("b"), "3-0000000a");
  const s = h.stats();
  assert.equal(s.lastConnected.getTime(), Date.now());
  assert.deepEqual([s.eventsReceived, s.delivered, s.cursor, s.state], [3, 2, "3-0000000a", "live"]);
  h.close();
  assert.deepEqual([h.stats().state, h.stats().connects, h.stats().reconnects], ["offline", 3, 2]);
});

test("reconnect() after close() does nothing", async () => {
  const { h, made } = harness();
  await flush();
  h.close();
  h.reconnect();
  await flush();
  assert.equal(made.length, 1);
  assert.equal(h.state, "offline");
});

test("a follower tab's reconnect() makes the leader reconnect; every tab sees the leader's counts", async () => {
  const { tabs, a, b, c, conn } = await threeTabs();
  try {
    assert.equal(b.h.isConnected(), true, "a follower is connected while the leader is live");
    b.h.reconnect();
    await advanceTabs(50);
    assert.equal(b.made.length, 0, "the follower opens no connection of its own");
    assert.equal(conn.stopped, true, "the leader dropped its connection");
    assert.equal(a.made.length, 2);
    const fresh = a.made[1];
    assert.equal(fresh.ctx.cursor, "3-0000000a", "from the cursor");
    assert.equal(b.h.isConnected(), false, "not while the leader reconnects");
    fresh.ctx.on.open();
    fresh.ctx.on.event(event("e2"), "3-0000000a"); // an overlap: dropped
    fresh.ctx.on.event(event("e3"), "4-0000000a");
    await advanceTabs(100);
    for (const t of tabs) {
      assert.deepEqual(t.got, ["e1", "e2", "e3"]);
      assert.equal(t.h.isConnected(), true);
      const s = t.h.stats();
      assert.deepEqual([s.connects, s.reconnects, s.transport, s.cursor], [2, 1, "sse", "4-0000000a"]);
      assert.equal(s.lastConnected.getTime(), a.h.stats().lastConnected.getTime());
    }
    for (const t of tabs) {
      const s = t.h.stats();
      assert.deepEqual([s.eventsReceived, s.delivered, s.duplicates], [4, 3, 1], "the overlap arrived in every tab, and was dropped");
    }

    // A follower that takes over carries the counts on: its connection is a reconnect.
    a.h.close();
    await advanceTabs(100);
    const [next] = [b, c].filter((t) => t.h.stats().role === "leader");
    assert.ok(next, "a new leader");
    assert.deepEqual([next.h.stats().connects, next.h.stats().reconnects], [3, 2]);
  } finally {
    for (const t of tabs) t.h.close();
  }
});

test("reconnect() while the history: n page loads leaves the one first connection to follow it", async () => {
  let answer;
  const page = new Promise((resolve) => {
    answer = resolve;
  });
  const { h, made } = harness({ history: 10 }, { fetch: () => page });
  h.reconnect();
  await flush();
  assert.equal(made.length, 0, "no connection before the page");
  answer(reply(200, { events: [], cursor: "7-0000000a", more: false }));
  await flush();
  assert.equal(made.length, 1);
  assert.equal(made[0].ctx.cursor, "7-0000000a");
  assert.deepEqual([h.stats().connects, h.stats().reconnects], [1, 0]);
  h.close();
});
