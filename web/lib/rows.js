// A collection's rows and the rules that move them (proto/state.md), with no I/O: the
// accumulation of snapshot pages, the events after a snapshot's cursor, and what arrives while
// a snapshot is on its way. lib/collection.js wires it to the client and the network.
//
// Positions: an event from SSE or a WebSocket carries its own cursor (`position`), so an event
// at or before the rows' cursor is dropped (the snapshot has it, or it is a duplicate). A
// long-poll answer carries one cursor for its whole batch: its events arrive without a
// position and wait for the batch's cursor (`mark`). A batch that ends at or before the rows'
// cursor is dropped; any other batch is applied whole — the rules are last-writer-wins per
// key, so replaying a batch that began before the snapshot's cursor ends in the state at the
// batch's cursor.

import { advances } from "./cursor.js";

/** What an event's `action` does to its collection (`herald_core::state::Change`). */
export const CHANGES = Object.freeze({
  insert: "upsert",
  update: "upsert",
  read: "upsert",
  upsert: "upsert",
  delete: "delete",
  truncate: "clear",
  reset: "clear",
});

/** The longest row key, in bytes. */
export const MAX_KEY_BYTES = 256;

const encoder = new TextEncoder();

/** Splits a key path (`"id"`, `"record.pk"`); throws on an empty segment or more than 8. */
export function parseKeyPath(path) {
  const segments = String(path ?? "").split(".");
  if (segments.length > 8 || segments.some((s) => s === "")) {
    throw new TypeError(`key must be a dotted path of 1 to 8 non-empty segments, not ${JSON.stringify(path)}`);
  }
  return segments;
}

/**
 * The row key at `path` in `data`, as the server computes it: a string as is, a number or
 * boolean in its JSON form; null when there is nothing usable (missing, null, "", an object,
 * an array, longer than 256 bytes).
 */
export function rowKey(data, path) {
  let at = data;
  for (const segment of path) {
    if (at === null || typeof at !== "object" || Array.isArray(at) || !Object.hasOwn(at, segment)) return null;
    at = at[segment];
  }
  let key;
  if (typeof at === "string") key = at;
  else if (typeof at === "number" && Number.isFinite(at)) key = String(at);
  else if (typeof at === "boolean") key = String(at);
  else return null;
  if (key === "" || encoder.encode(key).length > MAX_KEY_BYTES) return null;
  return key;
}

/** The rows of one collection, and what is held back until a snapshot arrives. */
export class Rows {
  /**
   * @param {string} topic
   * @param {string} key  the key path into `data`
   */
  constructor(topic, key = "id") {
    this.topic = topic;
    this.path = parseKeyPath(key);
    /** @type {Map<string, any>} */
    this.items = new Map();
    this.cursor = null; // the position the rows reflect
    this.loaded = false; // a complete snapshot was applied (and no reset since)
    this.held = []; // what arrived while not loaded: {event, position} | {mark}
    this.pending = []; // long-poll events waiting for their batch's cursor
    this.partial = null; // {cursor, items}: a snapshot arriving over the stream, page by page
  }

  /** Whether events wait for a snapshot instead of changing the rows. */
  get waiting() {
    return !this.loaded || this.partial !== null;
  }

  /**
   * An event of the stream; `position` is its cursor when the transport gave one (SSE,
   * WebSocket), null on long-poll. Returns the changes made.
   */
  event(event, position) {
    if (event?.topic !== this.topic) return [];
    if (this.waiting) {
      this.held.push({ event, position });
      return [];
    }
    return this.applyAt(event, position);
  }

  /** The stream's cursor moved to `cursor` (a long-poll batch ended there). */
  mark(cursor) {
    if (this.waiting) {
      // Only a batch of long-poll events needs its cursor.
      if (this.held.length && this.held[this.held.length - 1].event) this.held.push({ mark: cursor });
      return [];
    }
    return this.flush(cursor);
  }

  /**
   * One page of a snapshot that came over the stream (`{cursor, topics, more}`). The first
   * page drops what was held: the stream's snapshot comes before every later event. Returns
   * the changes made (one `snapshot` change on the last page).
   */
  page(frame) {
    if (!this.partial || this.partial.cursor !== frame.cursor) {
      this.partial = { cursor: frame.cursor, items: new Map(), seen: false };
      this.held = [];
      this.pending = [];
    }
    const rows = frame.topics?.[this.topic];
    if (rows && typeof rows === "object") {
      this.partial.seen = true;
      for (const [k, row] of Object.entries(rows)) this.partial.items.set(k, row);
    }
    if (frame.more) return [];
    const { cursor, items, seen } = this.partial;
    this.partial = null;
    if (seen) return this.replace(cursor, items);
    // A snapshot of other collections, without this one: it changes nothing here.
    this.unseen = true;
    if (!this.loaded) return [];
    const held = this.held;
    this.held = [];
    return held.flatMap((h) => (h.event ? this.applyAt(h.event, h.position) : this.flush(h.mark)));
  }

  /** Abandons a snapshot half received over the stream (its connection ended). */
  dropPartial() {
    this.partial = null;
  }

  /**
   * A complete snapshot at `cursor`: the rows become `items`, then what was held applies
   * (each event after `cursor` once). Returns the changes.
   */
  replace(cursor, items) {
    const changes = [{ type: "snapshot", key: null, row: null, previous: null }];
    this.items = items;
    this.cursor = cursor;
    this.loaded = true;
    this.partial = null;
    this.pending = [];
    const held = this.held;
    this.held = [];
    for (const h of held) changes.push(...(h.event ? this.applyAt(h.event, h.position) : this.flush(h.mark)));
    return changes;
  }

  /**
   * Whether a snapshot read over HTTP at `cursor` covers the stream up to `from` (the stream's
   * cursor when it was asked for): if not, the events in between are lost to it.
   */
  static covers(cursor, from) {
    return from == null || !advances(cursor, from);
  }

  /** The stream was reset: keep showing the rows, hold events until the next snapshot. */
  reset() {
    this.loaded = false;
    this.held = [];
    this.pending = [];
    this.partial = null;
  }

  applyAt(event, position) {
    if (!position) {
      this.pending.push(event);
      return [];
    }
    if (this.cursor && !advances(this.cursor, position)) return []; // in the snapshot, or seen
    this.cursor = position;
    return this.apply(event);
  }

  flush(cursor) {
    if (!this.pending.length) return [];
    const batch = this.pending;
    this.pending = [];
    if (this.cursor && !advances(this.cursor, cursor)) return []; // the rows are past this batch
    this.cursor = cursor;
    return batch.flatMap((e) => this.apply(e));
  }

  /** One event's change (the table in proto/state.md). */
  apply(event) {
    const change = CHANGES[event?.action];
    if (change === "clear") {
      if (this.items.size === 0) return [];
      this.items = new Map();
      return [{ type: "clear", key: null, row: null, previous: null }];
    }
    if (!change) return [];
    const key = rowKey(event.data, this.path);
    if (key === null) return [];
    const previous = this.items.get(key) ?? null;
    if (change === "delete") {
      if (!this.items.has(key)) return [];
      this.items.delete(key);
      return [{ type: "delete", key, row: null, previous }];
    }
    this.items.set(key, event.data);
    return [{ type: "upsert", key, row: event.data, previous }];
  }
}
