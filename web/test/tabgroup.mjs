// Tabs of one origin under fake timers, for the tab-group tests: a fake LockManager (one
// holder, a FIFO queue, `ifAvailable`, `steal` rejecting the old holder's request with an
// AbortError) and a fake BroadcastChannel. Each tab runs on its own loop, which a test can
// freeze: that holds back everything the browser would run in it — its timers, the messages it
// receives, its lock promises — until it is thawed (or drops the messages).

import assert from "node:assert/strict";

import { advance as advanceBy, event, harness } from "./helpers.mjs";

/** Advances fake time in steps of 50 ms, finer than the tab group's timers. */
export const advance = (ms) => advanceBy(ms, 50);

/** A tab's event loop: runs now, or later if the tab is frozen. */
export class Loop {
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

export class FakeLocks {
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
export function channels(latency) {
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

export function group(latency = 0) {
  const locks = new FakeLocks();
  const channel = channels(latency);
  /** A tab: `options` and `extra` as harness() takes them (client options; fetch). */
  const tab = (options = {}, extra = {}) => {
    const loop = new Loop();
    const env = {
      locks: locks.for(loop),
      BroadcastChannel: channel(loop),
      setTimeout: (fn, ms) => setTimeout(() => loop.run(fn), ms),
    };
    const t = harness({ shareTabs: true, ...options, env }, extra);
    t.loop = loop;
    t.got = [];
    t.h.subscribe("*", (e) => t.got.push(e.id));
    return t;
  };
  return { locks, tab };
}

/** Three tabs; the first leads over a live connection with a 1 s heartbeat and relays e1, e2. */
export async function threeTabs({ latency = 0 } = {}) {
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
