// `h.collection("leads")`: a live, keyed view of a collection (proto/state.md). It loads the
// whole table once, then follows it over the client's one connection, with no gap and no
// event applied twice: the snapshot and the stream meet at the snapshot's cursor.
//
// Where the snapshot comes from:
//   - the stream itself: a connection opened without a cursor while a collection exists asks
//     for `snapshot=1` (SSE, WebSocket, long-poll), and so does every later one, so the
//     gateway follows a `reset` with a fresh snapshot;
//   - `GET /v1/snapshot`, when the stream will not bring one: a follower tab (the leader's
//     connection is not its own), a collection opened after the connection, the pages after
//     a long-poll's first one, a connection that ended halfway through a snapshot. Events that
//     arrive meanwhile wait, and apply after the snapshot's cursor; a snapshot older than the
//     stream's position when it was asked for is asked for again.
// Status: `loading` (no complete snapshot yet, or a fresh one is on its way after a reset:
// the rows shown are the last ones known), `live`, `stale` (the connection is down: the rows
// are the last ones known, and catch up by themselves).

import { safely } from "./delivery.js";
import { Rows } from "./rows.js";
import { fetchSnapshotPage, SnapshotError } from "./snapshot.js";

/** A collection's statuses. */
export const COLLECTION_STATUSES = Object.freeze(["loading", "live", "stale"]);

/** Retry delays for `GET /v1/snapshot` (full jitter). */
const RETRY = Object.freeze({ first: 250, cap: 10_000 });

/**
 * `client.collection(topic, options)`: checks that the client's connection carries every
 * change of `topic`, and opens the view.
 * @param {import("./client.js").HeraldClient} client
 */
export function openCollection(client, topic, options = {}) {
  if (typeof topic !== "string" || topic === "" || topic === "$stats") throw new TypeError("collection(topic): a topic name");
  if (client.closed) throw new Error("collection(): the client is closed");
  const { topics, filter } = client;
  if (topics.length && !topics.includes(topic) && !topics.includes("*")) {
    throw new TypeError(`collection("${topic}"): the client's topics must include "${topic}"`);
  }
  if (filter.actions || filter.where.length) {
    throw new TypeError(`collection("${topic}"): a client with an actions/where filter misses changes; use one without`);
  }
  return new Collection(client, topic, options);
}

export class Collection {
  /**
   * @param {import("./client.js").HeraldClient} client
   * @param {string} topic
   * @param {{ key?: string, pageSize?: number }} options
   */
  constructor(client, topic, options = {}) {
    this.client = client;
    this.topic = topic;
    this.rows = new Rows(topic, options.key ?? "id");
    this.pageSize = options.pageSize ?? null;
    this.listeners = new Map();
    this.status = "loading";
    this.error = null;
    this.gen = 0; // the snapshot request under way; bumped to forget it
    this.fetching = null;
    this.timer = null;
    this.retries = 0;
    this.closed = false;
    this.afterReset = false;
    // Whether the leader's connection brings the snapshot: it asked for one without a cursor.
    this.fromStream = client.role !== "follower" && client.cursor === null && (!client.transport || client.askedSnapshot === true);
    (client.collections ??= new Set()).add(this);
    this.offs = [
      client.subscribe("*", (event, meta) => this.onEvent(event, meta)),
      client.on("resync", () => this.onReset()),
      client.on("state", () => this.updateStatus()),
    ];
    this.kick();
  }

  /** The rows, key → row (the event's `data`), in snapshot order then arrival order. */
  get items() {
    return this.rows.items;
  }

  /** The key path (the `key` option). */
  get key() {
    return this.rows.path.join(".");
  }

  /** The position the rows reflect. */
  get cursor() {
    return this.rows.cursor;
  }

  /**
   * Listens: `change` ({type: "snapshot"|"upsert"|"delete"|"clear", key, row, previous}),
   * `status` (status), `error` (info). Returns the function that removes the listener.
   */
  on(name, cb) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    const entry = { cb };
    this.listeners.get(name).add(entry);
    return () => this.listeners.get(name)?.delete(entry);
  }

  /** Stops following the collection; the rows stay as they are. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.cancel();
    for (const off of this.offs) off();
    this.client.collections?.delete(this);
    this.listeners.clear();
  }

  // ── what the client tells it (lib/client.js, lib/follow.js) ──────────────────────────

  /** The leader opens a connection; `fresh`: without a cursor, so a snapshot opens it. */
  connecting(fresh) {
    this.rows.dropPartial();
    this.fromStream = fresh;
    this.kick();
  }

  /** This tab stopped leading: the stream it was reading a snapshot from is gone. */
  followed() {
    this.rows.dropPartial();
    this.fromStream = false;
    this.kick();
  }

  /** A snapshot page of the stream (`{cursor, topics, more}`; long-poll: `after` and `poll`). */
  onFrame(frame) {
    if (this.closed || typeof frame?.cursor !== "string") return;
    this.cancel(); // the stream's snapshot replaces one read over HTTP
    this.fromStream = true;
    this.afterReset = false;
    this.rows.unseen = false;
    this.publish(this.rows.page(frame));
    if (frame.more && frame.poll && frame.after) return this.load({ cursor: frame.cursor, after: frame.after });
    if (frame.more) return;
    this.fromStream = false;
    // Not in the stream's snapshot: ask for it alone (its rows, or why not: not_a_collection).
    if (this.rows.unseen) this.kick();
  }

  /** The gateway refused the stream's `snapshot=1`: none of its topics is a collection. */
  refused(failure) {
    this.rows.dropPartial();
    this.fromStream = false;
    this.setError({ status: failure.status, code: failure.code, message: failure.message ?? failure.code, fatal: true });
  }

  /** The stream's cursor moved (a long-poll batch ends there; a follower learns its place). */
  cursorMoved(cursor) {
    if (this.closed) return;
    this.publish(this.rows.mark(cursor));
    this.kick();
  }

  onEvent(event, meta) {
    if (event?.topic !== this.topic || this.error?.fatal) return; // a fatal error holds nothing
    if (this.afterReset && this.fromStream && !this.rows.partial) {
      // The gateway did not follow its reset with a snapshot: read one.
      this.afterReset = false;
      this.fromStream = false;
    }
    this.publish(this.rows.event(event, meta?.position ?? null));
    this.kick();
  }

  onReset() {
    this.cancel();
    this.rows.reset();
    this.afterReset = true;
    // SSE and WebSocket follow a reset with a fresh snapshot; a long-poll reset carries none.
    this.fromStream = this.client.role !== "follower" && this.client.kind !== "poll";
    this.updateStatus();
    this.kick();
  }

  // ── reading `GET /v1/snapshot` ─────────────────────────────────────────────────────────

  /** Reads a snapshot over HTTP if the rows need one and the stream will not bring it. */
  kick() {
    if (this.closed || this.rows.loaded || this.fetching || this.timer || this.error?.fatal) return;
    if (this.fromStream && this.client.role !== "follower") return;
    if (this.client.cursor == null) return; // nothing to check a snapshot against yet
    this.load();
  }

  /**
   * Reads every page of a snapshot. `from`: the pages after a long-poll's first one, into the
   * snapshot under way; without it, a whole snapshot that must cover the stream's position.
   */
  async load(from = null) {
    const gen = ++this.gen;
    const abort = new AbortController();
    this.fetching = { gen, abort };
    const since = this.client.cursor;
    let page = { cursor: from?.cursor ?? null, after: from?.after ?? null };
    const items = new Map();
    let cursor = null;
    try {
      for (;;) {
        const token = await this.client.tokens.current();
        if (gen !== this.gen) return;
        const ctx = { base: this.client.url, token, fetch: this.client.env.fetch };
        const body = await fetchSnapshotPage(ctx, [this.topic], { ...page, limit: this.pageSize, signal: abort.signal });
        if (gen !== this.gen) return;
        cursor = body.cursor;
        if (from) this.publish(this.rows.page({ cursor: body.cursor, topics: body.topics, more: body.more }));
        else for (const [k, row] of Object.entries(body.topics?.[this.topic] ?? {})) items.set(k, row);
        if (!body.more) break;
        if (!body.after) throw new SnapshotError(200, "bad_response", "a snapshot page with more and no after");
        page = { cursor: body.cursor, after: body.after };
      }
      this.fetching = null;
      if (!from && !Rows.covers(cursor, since)) return this.retry({ code: "snapshot_behind", message: "the snapshot is older than the stream" });
      if (!from) this.publish(this.rows.replace(cursor, items));
      this.fromStream = false;
      this.retries = 0;
      this.setError(null);
    } catch (err) {
      if (gen !== this.gen || this.closed) return;
      this.fetching = null;
      this.failed(err, from);
    }
  }

  failed(err, from) {
    if (err?.status === 410) {
      // The gateway no longer holds that snapshot: start again, from the rows' side.
      this.rows.dropPartial();
      this.fromStream = false;
      this.setError(null);
      if (this.retries++ === 0) return this.load();
      return this.retry({ status: 410, code: err.code, message: err.message });
    }
    if (err?.status === 401) this.client.tokens.invalidate();
    const info = { status: err?.status, code: err?.code ?? "unreachable", message: String(err?.message ?? err), retryAfter: err?.retryAfter };
    if (err instanceof SnapshotError && !err.retryable) return this.setError({ ...info, fatal: true });
    if (from) {
      this.rows.dropPartial();
      this.fromStream = false;
    }
    this.retry(info);
  }

  retry(info) {
    this.setError(info);
    const delay = Math.max(info.retryAfter ?? 0, Math.min(RETRY.cap, RETRY.first * 2 ** this.retries++) * this.client.env.random());
    this.timer = this.client.env.setTimeout(() => {
      this.timer = null;
      this.kick();
    }, delay);
  }

  /** Forgets the snapshot request under way (its answer is ignored) and a pending retry. */
  cancel() {
    this.gen++;
    this.fetching?.abort.abort();
    this.fetching = null;
    if (this.timer) this.client.env.clearTimeout(this.timer);
    this.timer = null;
  }

  // ── telling the app ────────────────────────────────────────────────────────────────────

  setError(info) {
    if (info === null && this.error === null) return;
    this.error = info;
    if (info?.fatal) this.rows.held = []; // no snapshot is coming: nothing to hold events for
    if (info) this.emit("error", info);
    this.updateStatus(true);
  }

  publish(changes) {
    for (const change of changes) this.emit("change", change);
    this.updateStatus();
  }

  updateStatus(force = false) {
    if (this.closed) return;
    const status = !this.rows.loaded ? "loading" : this.client.isConnected() ? "live" : "stale";
    if (status === this.status && !force) return;
    this.status = status;
    this.emit("status", status);
  }

  emit(name, ...args) {
    for (const { cb } of [...(this.listeners.get(name) ?? [])]) safely(cb, ...args);
  }
}
