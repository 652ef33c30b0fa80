// A leader tab that is frozen rather than closed keeps its Web Lock. These tests play three
// tabs over a fake LockManager (one holder, a FIFO queue, `ifAvailable`, `steal` rejecting the
// old holder's request with an AbortError) and a fake BroadcastChannel, under fake timers.
// Freezing a tab holds back everything the browser would run in it — its timers, the
// messages it receives, its lock promises — until it is thawed (or drops the messages).

import assert from "node:assert/strict";
import { test } from "node:test";

import { advance as advanceBy, event, flush, harness, useFakeTime } from "./helpers.mjs";

useFakeTime();

/** Advances fake time in steps of 50 ms, finer than the tab group's timers. */
const advance = (ms) => advanceBy(ms, 50);

/** A tab's event loop: runs now, or later if the tab is frozen. */
class Loop {
  constructor() {
    this.frozen = false;
    this.drop = false;
    this.held = [];
  }

  run(fn, { message = false } = {}) {
    if (!this.frozen) return fn();
    if (message && this.drop) return undefined;
    this.held.push(fn);
    return undefined;
  }

  thaw() {
    this.frozen = false;
    for (const fn of this.held.splice(0)) fn();
  }
}

class FakeLocks {
  constructor() {
    this.queues = new Map();
  }

  /** The LockManager one tab sees: its promises settle on its own loop. */
  for(loop) {
    return { request: (name, opts, cb) => this.request(name, opts, cb, loop) };
  }

  request(name, opts, cb, loop) {
    return new Promise((resolve, reject) => {
      const q = this.queues.get(name) ?? [];
      this.queues.set(name, q);
      const entry = { cb, granted: false, done: false };
      entry.resolve = (v) => loop.run(() => resolve(v));
      entry.reject = (e) => loop.run(() => reject(e));
      if (opts.ifAvailable && q.length > 0) {
        Promise.resolve(cb(null)).then(entry.resolve, entry.reject);
        return;
      }
      opts.signal?.addEventListener("abort", () => {
        if (entry.granted) return;
        q.splice(q.indexOf(entry), 1);
        entry.reject(new DOMException("aborted", "AbortError"));
      });
      if (opts.steal) {
        const held = q[0]?.granted ? q.shift() : null;
        if (held) {
          held.done = true;
          held.reject(new DOMException("stolen", "AbortError"));
        }
        q.unshift(entry);
      } else {
        q.push(entry);
      }
      this.pump(name, loop);
    });
  }

  pump(name) {
    const q = this.queues.get(name);
    const head = q[0];
    if (!head || head.granted) return;
    head.granted = true;
    Promise.resolve(head.cb({ name })).then((v) => {
      if (head.done) return; // stolen: the lock already went to the thief
      q.shift();
      head.resolve(v);
      this.pump(name);
    });
  }

  holder(name) {
    return this.queues.get(name)?.[0]?.granted ?? false;
  }
}

/** BroadcastChannels of one origin; each delivers on its tab's loop, never to itself. */
function channels(latency) {
  const open = new Set();
  return (loop) =>
    class {
      constructor(name) {
        this.name = name;
        this.onmessage = null;
        open.add(this);
      }
      postMessage(data) {
        const copy = structuredClone(data);
        for (const other of open) {
          if (other === this || other.name !== this.name) continue;
          const deliver = () => other.loop.run(() => other.onmessage?.({ data: copy }), { message: true });
          // Tabs are processes: a message takes a moment, during which both followers may act.
          if (latency > 0) setTimeout(deliver, latency);
          else queueMicrotask(deliver);
        }
      }
      close() {
        open.delete(this);
      }
      get loop() {
        return loop;
      }
    };
}

function group(latency = 0) {
  const locks = new FakeLocks();
  const channel = channels(latency);
  const tab = () => {
    const loop = new Loop();
    const env = {
      locks: locks.for(loop),
      BroadcastChannel: channel(loop),
      setTimeout: (fn, ms) => setTimeout(() => loop.run(fn), ms),
    };
    const t = harness({ shareTabs: true, env });
    t.loop = loop;
    t.got = [];
    t.h.subscribe("*", (e) => t.got.push(e.id));
    return t;
  };
  return { locks, tab };
}

/** Three tabs; the first leads over a live connection with a 1 s heartbeat and relays e1, e2. */
async function threeTabs({ latency = 0 } = {}) {
  const g = group(latency);
  const tabs = [g.tab(), g.tab(), g.tab()];
  await advance(50);
  const [a, b, c] = tabs;
  assert.equal(a.h.stats().role, "leader");
  const conn = a.made[0];
  conn.ctx.on.open();
  conn.ctx.on.control("status", { state: "live", heartbeat_ms: 1000 }, "1-0000000a");
  conn.ctx.on.event(event("e1"), "2-0000000a");
  conn.ctx.on.event(event("e2"), "3-0000000a");
  await advance(1100);
  assert.deepEqual([b.got, c.got], [["e1", "e2"], ["e1", "e2"]]);
  return { ...g, tabs, a, b, c, conn };
}

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
