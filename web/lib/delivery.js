// Handing events to the app: each event once (by CloudEvents `source` + `id`, however many
// times it arrived), to the callbacks subscribed to its topic, its type, or `*`.

import { eventKey, RecentSet } from "./cursor.js";

/** Calls `cb` and reports, never rethrows, what it throws: one bad callback stops nothing. */
export function safely(cb, ...args) {
  try {
    cb(...args);
  } catch (err) {
    if (typeof globalThis.reportError === "function") globalThis.reportError(err);
    else console.error(err);
  }
}

export class Delivery {
  constructor(capacity, now) {
    this.seen = new RecentSet(capacity);
    this.now = now;
    this.subscriptions = new Map();
    this.delivered = 0;
    this.duplicates = 0;
    this.lastEvent = null;
    this.lastEventAt = null;
  }

  subscribe(key, cb) {
    if (!this.subscriptions.has(key)) this.subscriptions.set(key, new Set());
    const entry = { cb }; // a wrapper, so one function subscribed twice is two subscriptions
    this.subscriptions.get(key).add(entry);
    return () => this.subscriptions.get(key)?.delete(entry);
  }

  /** Hands `event` to its subscribers unless it was seen before; returns whether it did. */
  dispatch(event, meta) {
    const key = eventKey(event);
    if (key !== null && !this.seen.add(key)) {
      this.duplicates++;
      return false;
    }
    this.delivered++;
    this.lastEventAt = this.now();
    this.lastEvent = { id: event?.id, type: event?.type, topic: event?.topic, cursor: meta.cursor };
    const keys = new Set(["*", event?.topic, event?.type].filter((k) => k != null));
    for (const k of keys) {
      for (const { cb } of [...(this.subscriptions.get(k) ?? [])]) safely(cb, event, meta);
    }
    return true;
  }
}
