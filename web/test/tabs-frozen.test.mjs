// A leader tab that is frozen rather than closed keeps its Web Lock. These tests play three
// tabs over a fake LockManager (one holder, a FIFO queue, `ifAvailable`, `steal` rejecting the
// old holder's request with an AbortError) and a fake BroadcastChannel, under fake timers
// (tabgroup.mjs).
// Freezing a tab holds back everything the browser would run in it — its timers, the
// messages it receives, its lock promises — until it is thawed (or drops the messages).

import assert from "node:assert/strict";
import { test } from "node:test";

import { event, useFakeTime } from "./helpers.mjs";
import { advance, group, threeTabs } from "./tabgroup.mjs";

useFakeTime();

const leaders = (tabs) => tabs.filter((t) => t.h.stats().role === "leader");

test("a frozen leader is replaced within 2.5 heartbeats, from the last relayed cursor, by one tab", async () => {
  // With a channel latency, both followers' watchdogs fire before either hears the other.
  const { tabs, a, b, c } = await threeTabs({ latency: 20 });
  try {
    a.loop.frozen = true;
    await advance(2300);
    assert.equal(b.made.length + c.made.length, 0, "no takeover while the budget lasts");
    await advance(400);
    const next = leaders([b, c]);
    assert.equal(next.length, 1, "exactly one follower takes over");
    const [n] = next;
    assert.equal(n.made.length, 1);
    assert.equal(n.made[0].ctx.cursor, "3-0000000a", "resumes from the last relayed cursor");
    assert.equal(b.h.group.takeovers + c.h.group.takeovers, 1, "one steal, not one per follower");
    assert.equal(b.made.length + c.made.length, 1, "one new connection");
    n.made[0].ctx.on.open();
    n.made[0].ctx.on.event(event("e2"), "3-0000000a"); // the replay's overlap
    n.made[0].ctx.on.event(event("e3"), "4-0000000a");
    await advance(100);
    for (const t of [b, c]) assert.deepEqual(t.got, ["e1", "e2", "e3"]);
    assert.equal(b.h.state, "live");
    assert.equal(c.h.state, "live");
  } finally {
    for (const t of tabs) t.h.close();
  }
});

test("a tab that just joined knows the leader's heartbeat at once: a leader frozen right after is replaced within 2.5 heartbeats", async () => {
  const g = group();
  const a = g.tab();
  await advance(50);
  const conn = a.made[0];
  conn.ctx.on.open();
  conn.ctx.on.control("status", { state: "live", heartbeat_ms: 1000 }, "1-0000000a");
  await advance(2000);
  // Join right after the leader's periodic `alive`, so the next one is almost a second away.
  const post = a.h.group.post.bind(a.h.group);
  let alive = false;
  a.h.group.post = (m) => {
    if (m.t === "alive") alive = true;
    return post(m);
  };
  while (!alive) await advance(50);
  const b = g.tab();
  await advance(100);
  try {
    assert.equal(b.h.group.budget(), 2500, "the greeting carries the leader's heartbeat");
    a.loop.frozen = true;
    await advance(2700);
    assert.equal(b.h.stats().role, "leader", "the new tab took over");
  } finally {
    for (const t of [a, b]) t.h.close();
  }
});

test("a leader that is alive but cannot reach the gateway is not stolen from", async () => {
  const { tabs, b, c, conn } = await threeTabs();
  try {
    conn.ctx.on.fail({ kind: "network", message: "gateway down" });
    await advance(10_000);
    assert.equal(b.made.length + c.made.length, 0, "its own heartbeat on the channel keeps the followers in line");
    assert.equal(b.h.state, "reconnecting");
  } finally {
    for (const t of tabs) t.h.close();
  }
});

for (const drop of [false, true]) {
  test(`the old leader wakes up, steps down and delivers nothing twice (channel messages ${drop ? "dropped" : "held"} while frozen)`, async () => {
    const { tabs, a, b, c, conn } = await threeTabs();
    try {
      a.loop.frozen = true;
      a.loop.drop = drop;
      await advance(2700);
      const [n] = leaders([b, c]);
      const fresh = n.made[0];
      fresh.ctx.on.open();
      fresh.ctx.on.event(event("e3"), "4-0000000a");
      fresh.ctx.on.event(event("e4"), "5-0000000a");
      await advance(100);

      // The old leader thaws; its stale connection still has e3 buffered.
      a.loop.thaw();
      conn.ctx.on.event(event("e3"), "4-0000000a");
      await advance(100);
      assert.equal(a.h.stats().role, "follower", "it stepped down");
      assert.equal(conn.stopped, true, "and closed its connection");
      assert.equal(a.made.length, 1);
      fresh.ctx.on.event(event("e5"), "6-0000000a");
      await advance(100);
      for (const t of [a, b, c]) assert.deepEqual(t.got, ["e1", "e2", "e3", "e4", "e5"], "every tab: each event once, in order");
      assert.equal(leaders(tabs).length, 1);

      // The old leader is back in line: when the new one closes, a tab leads again.
      n.h.close();
      await advance(100);
      assert.equal(leaders(tabs.filter((t) => t !== n)).length, 1);
    } finally {
      for (const t of tabs) t.h.close();
    }
  });
}

test("a follower that was frozen itself gives the leader a fresh budget instead of stealing", async () => {
  const { tabs, b } = await threeTabs();
  try {
    // Frozen with its messages dropped: when it thaws, its watchdog runs before it hears anything.
    b.loop.frozen = true;
    b.loop.drop = true;
    await advance(10_000);
    b.loop.thaw();
    await advance(100);
    assert.equal(b.h.stats().role, "follower");
    assert.equal(b.made.length, 0);
  } finally {
    for (const t of tabs) t.h.close();
  }
});
