// Tabs sharing one connection: Node's real BroadcastChannel (same-named channels in one
// process talk to each other, as tabs of one origin do) and a LockManager fake with the Web
// Locks semantics the client relies on: one holder, a FIFO queue, release when the holder's
// promise settles, abort while queued.

import assert from "node:assert/strict";
import { test } from "node:test";

import { event, harness } from "./helpers.mjs";

class FakeLocks {
  constructor() {
    this.queues = new Map();
  }

  request(name, opts, cb) {
    return new Promise((resolve, reject) => {
      const q = this.queues.get(name) ?? [];
      this.queues.set(name, q);
      const entry = { cb, resolve, granted: false };
      opts.signal?.addEventListener("abort", () => {
        if (entry.granted) return;
        q.splice(q.indexOf(entry), 1);
        reject(new Error("AbortError"));
      });
      q.push(entry);
      this.pump(name);
    });
  }

  pump(name) {
    const q = this.queues.get(name);
    const head = q[0];
    if (!head || head.granted) return;
    head.granted = true;
    Promise.resolve(head.cb()).then((v) => {
      q.shift();
      head.resolve(v);
      this.pump(name);
    });
  }
}

async function until(what, check, ms = 2000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("one tab connects, the others share its events; the next leader resumes from the shared cursor", async () => {
  const locks = new FakeLocks();
  const tab = () => {
    const t = harness({ shareTabs: true, env: { locks, BroadcastChannel } });
    t.got = [];
    t.h.subscribe("*", (e) => t.got.push(e.id));
    return t;
  };
  const [a, b, c] = [tab(), tab(), tab()];
  try {
    await until("a leader", () => a.made.length === 1);
    assert.equal(a.h.stats().role, "leader");
    assert.equal(b.made.length + c.made.length, 0, "followers open no connection");
    assert.equal(b.h.stats().role, "follower");

    const conn = a.made[0];
    conn.ctx.on.open();
    await until("followers to see live", () => b.h.state === "live" && c.h.state === "live");
    assert.equal(b.h.stats().transport, "sse");
    conn.ctx.on.event(event("e1"), "2-0000000a");
    conn.ctx.on.event(event("e2"), "3-0000000a");
    await until("followers to get the events", () => b.got.length === 2 && c.got.length === 2);
    assert.equal(c.h.stats().cursor, "3-0000000a");

    // The leader tab closes: the next in line takes over, from the cursor the tabs shared.
    a.h.close();
    await until("a new leader", () => b.made.length === 1);
    assert.equal(b.h.stats().role, "leader");
    assert.equal(c.made.length, 0);
    const next = b.made[0];
    assert.equal(next.ctx.cursor, "3-0000000a");
    next.ctx.on.open();
    next.ctx.on.event(event("e2"), "3-0000000a"); // replayed overlap: dropped
    next.ctx.on.event(event("e3"), "4-0000000a");
    await until("the last follower to get e3", () => c.got.includes("e3"));
    assert.deepEqual(b.got, ["e1", "e2", "e3"]);
    assert.deepEqual(c.got, ["e1", "e2", "e3"]);
    assert.equal(c.h.state, "live");
  } finally {
    for (const t of [a, b, c]) t.h.close();
  }
});
