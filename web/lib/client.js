// The Herald client: one state machine that owns backoff, fallback, resume, dedup and tab
// sharing, over the transports of transports.js. What happens when a connection dies (the
// watchdog, the retry delay, the fallback probe) is in recovery.js.
//
//   connecting ──open──► live ◄──status──► degraded          (any state) ──offline──► offline
//        │                 │  ▲                                                       │
//        └──fail──► reconnecting ──open──┘            polling: live over long-poll  online
//                    (backoff with full jitter, forever)                              ▼
//                                                                           reconnect now
//
// Every failure leads back to reconnecting, never to a dead end: the client stops only when
// the app calls close(). What it knows about the server's position is one cursor, handed back
// on every reconnect whatever the transport, and one bounded set of recent event ids that
// drops the rare duplicate (a poll that overlaps an upgrade, a new leader tab's replay).

import { BACKOFF } from "./backoff.js";
import { connectionStats, inheritCounts, isConnected, reconnect } from "./connection.js";
import { openCollection } from "./collection.js";
import { advances } from "./cursor.js";
import { Delivery, safely } from "./delivery.js";
import { filterKey, normalizeFilter } from "./filter.js";
import { FALLBACK_ORDER, Ladder } from "./ladder.js";
import { fetchHistory, openWithHistory } from "./history.js";
import { onTabMessage } from "./follow.js";
import { PresenceBook, presenceOf } from "./presence.js";
import { checkPublic, paths } from "./public.js";
import { armWatchdog, fail, scheduleUpgrade, silenceBudget } from "./recovery.js";
import { TabGroup } from "./tabs.js";
import { TokenKeeper } from "./tokens.js";
import { TRANSPORTS } from "./transports.js";

export { tokenExpiry } from "./tokens.js";

/** Every state the client can be in. */
export const STATES = Object.freeze(["connecting", "live", "degraded", "reconnecting", "polling", "offline"]);

export { FALLBACK_ORDER } from "./ladder.js";

/** Defaults; every one can be overridden in `Herald.connect(url, options)`. */
export const DEFAULTS = Object.freeze({
  token: null,
  getToken: null,
  topics: [],
  actions: null, // server-side filter: only these actions (docs/gateway.md#filters-actions-where)
  where: null, // server-side filter: ["data.status:active"] or { "data.status": "active" }
  transport: "auto",
  cursor: null,
  heartbeat: null, // ms; null: the interval the gateway announces (`heartbeat_ms`), 15 s until then
  silence: 2.5, // heartbeats missed before a connection counts as dead
  backoff: BACKOFF,
  fallbackAfter: 2, // blocked attempts before "auto" tries the next transport
  upgradeAfter: 60_000, // how soon a fallback tries the better transport again
  pollWait: 25, // seconds a long-poll waits for events
  tokenMargin: 30_000, // getToken() is called this long before the token expires
  shareTabs: true,
  dedup: 5000, // event ids remembered for duplicate suppression
  history: 0, // without a cursor: hand the newest n events to the app before streaming on
  presence: false, // receive `presence` messages (h.presence(topic) turns it on)
  public: false, // read the public topics of `tenant` without a token (/v1/public/<tenant>/…)
  tenant: null, // with public: true
});

/** The gateway's default heartbeat, used until it announces its own. */
const DEFAULT_HEARTBEAT = 15_000;

function browserEnv() {
  const g = globalThis;
  return {
    fetch: g.fetch ? (...args) => g.fetch(...args) : undefined,
    WebSocket: g.WebSocket,
    setTimeout: (fn, ms) => g.setTimeout(fn, ms),
    clearTimeout: (t) => g.clearTimeout(t),
    now: () => Date.now(),
    random: () => Math.random(),
    window: typeof window === "undefined" ? null : window,
    document: typeof document === "undefined" ? null : document,
    navigator: g.navigator ?? null,
    locks: g.navigator?.locks ?? null,
    BroadcastChannel: g.BroadcastChannel ?? null,
  };
}

const NAMES = Object.freeze({ sse: "SSE", ws: "WebSocket", poll: "long-poll" });

export class HeraldClient {
  /**
   * @param {string} url  the gateway's base URL ("" = this origin)
   * @param {object} [options]  see DEFAULTS and herald.d.ts
   */
  constructor(url, options = {}) {
    const { env, ...rest } = options;
    this.url = url ?? "";
    this.opts = { ...DEFAULTS, ...rest, backoff: { ...BACKOFF, ...rest.backoff } };
    this.topics = [...new Set(this.opts.topics ?? [])].sort();
    this.filter = normalizeFilter(this.opts);
    this.env = { ...browserEnv(), ...env };
    if (!["auto", ...FALLBACK_ORDER].includes(this.opts.transport)) {
      throw new TypeError(`transport must be auto, sse, ws or poll, not ${this.opts.transport}`);
    }
    checkPublic(this.opts);
    this.listeners = new Map();
    this.presenceBook = new PresenceBook();
    this.on("presence", (data) => this.presenceBook.apply(data));
    this.delivery = new Delivery(this.opts.dedup, () => this.env.now());
    this.state = "connecting";
    this.reason = "starting";
    this.cursor = this.opts.cursor ?? null;
    // The option overrides; otherwise each connection's opening `status` says.
    this.heartbeat = this.opts.heartbeat ?? DEFAULT_HEARTBEAT;
    this.role = "alone";
    this.gen = 0;
    this.attempt = 0;
    this.reconnects = 0;
    this.connects = 0;
    this.lastConnectedAt = null; // when a connection last opened (ms)
    this.started = false; // false while the `history: n` page is read
    this.ladder = new Ladder({ mode: this.opts.transport, fallbackAfter: this.opts.fallbackAfter, upgradeAfter: this.opts.upgradeAfter });
    this.serverLive = true;
    this.transport = null;
    this.kind = null;
    this.opened = false;
    this.hadOpen = false;
    this.lastHeartbeatAt = null;
    this.lastActivity = 0;
    this.remote = null; // the leader's stats, in a follower
    this.timers = {};
    this.closed = false;
    this.tokens = new TokenKeeper(
      { token: this.opts.token, getToken: this.opts.getToken, margin: this.opts.tokenMargin },
      this.env,
      {
        // An open WebSocket takes the new token in place; the others use it on their next
        // request or reconnect.
        refreshed: (token) => this.transport?.refresh?.(token),
        error: (err) => this.emit("error", { kind: "refused", code: "token_unavailable", message: String(err?.message ?? err) }),
      },
    );
    // `history: n`: the newest n events first, then the stream from right after them.
    if (this.opts.history > 0 && this.cursor === null) openWithHistory(this).then(() => this.closed || this.start());
    else this.start();
  }

  // ── public API ────────────────────────────────────────────────────────────────────────

  /**
   * Calls `cb(event, meta)` for events whose topic or CloudEvents type is `typeOrTopic`
   * (`"*"`: every event). Returns the unsubscribe function.
   */
  subscribe(typeOrTopic, cb) {
    if (typeof cb !== "function") throw new TypeError("subscribe(typeOrTopic, cb): cb must be a function");
    return this.delivery.subscribe(String(typeOrTopic), cb);
  }

  /**
   * Listens to the client: `state` (state, info), `resync` ({reason, cursor}), `event`
   * (every event), `error` (each failure, informational), `stats` and other named server
   * messages. Returns the function that removes the listener.
   */
  on(name, cb) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    const entry = { cb };
    this.listeners.get(name).add(entry);
    return () => this.listeners.get(name)?.delete(entry);
  }

  /**
   * `GET /v1/history`: the newest `limit` events of `topics` (default: the client's), oldest
   * first, as `{events: [{cursor, topic, event}], cursor, more}`; `before` pages back; the
   * client's `actions` / `where` filter applies unless `options` names its own. Rejects
   * with a `HistoryError` when the gateway refuses (lib/history.js).
   */
  async history(topics, options = {}) {
    if (this.opts.public) throw new TypeError("history() needs a token: public topics have no history endpoint");
    const token = await this.tokens.current();
    const list = topics == null || (Array.isArray(topics) && topics.length === 0) ? this.topics : topics;
    const opts = { actions: this.filter.actions, where: this.filter.where, ...options };
    return fetchHistory({ base: this.url, token, fetch: this.env.fetch }, list, opts);
  }

  /**
   * The live presence of `topic` (docs/gateway.md#presence): `{count, members, known}` and
   * `on("change", cb)`. Turns presence on for the connection if it was off (a reconnect from
   * the cursor, nothing lost). `members` are empty unless the token has the `presence` claim.
   */
  presence(topic) {
    return presenceOf(this, topic);
  }

  /**
   * Drops the connection now and connects again at once from the cursor, with the backoff
   * reset: no gap, no duplicate. In a follower tab, asks the leader tab (lib/connection.js).
   */
  reconnect() {
    reconnect(this);
  }

  /** Whether events arrive live: state `live`, or `polling` (live over long-poll). */
  isConnected() {
    return isConnected(this);
  }

  /** A snapshot of what the client is doing, for dashboards and tests (lib/connection.js). */
  stats() {
    return connectionStats(this);
  }

  /**
   * A live, keyed view of the collection `topic` (proto/state.md): its rows, loaded once and
   * kept current over this connection (lib/collection.js). `key`: the key path into `data`.
   */
  collection(topic, options) {
    return openCollection(this, topic, options);
  }

  /** Closes the connection (or leaves the tab group) for good. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.gen++;
    this.transport?.stop();
    this.transport = null;
    for (const t of Object.values(this.timers)) if (t) this.env.clearTimeout(t);
    this.timers = {};
    this.tokens.stop();
    this.unlisten?.();
    this.group?.close();
    this.setState("offline", "closed by the app");
  }

  // ── start-up, tabs, browser signals ───────────────────────────────────────────────────

  start() {
    this.started = true;
    this.listenToBrowser();
    if (this.opts.shareTabs && TabGroup.supported(this.env)) {
      this.role = "follower";
      const base = new URL(this.url || "/", this.env.window?.location?.href ?? undefined).href;
      const mode = `${this.opts.public ? `|public:${this.opts.tenant}` : ""}${this.opts.presence ? "|presence" : ""}`;
      this.group = new TabGroup(`herald:${base}|${this.topics.join(",")}${filterKey(this.filter)}${mode}`, this.env, {
        lead: () => this.lead(),
        lost: () => this.lost(),
        message: (m) => onTabMessage(this, m),
        period: () => this.heartbeat,
        silence: this.opts.silence,
        cursor: () => this.cursor,
      });
      this.reason = "waiting for the tab that holds the connection";
      for (const c of this.collections ?? []) c.followed(); // until this tab leads, if it does
      this.group.start();
    } else {
      this.role = "alone";
      this.connect();
    }
  }

  lead() {
    if (this.closed) return;
    const tookOver = this.role === "follower" && this.remote !== null;
    this.role = "leader";
    if (tookOver) {
      inheritCounts(this);
      this.setState("reconnecting", "this tab takes over the shared connection");
    }
    this.connect();
  }

  /** Another tab stole the connection while this one was frozen: follow it from now on. */
  lost() {
    this.gen++; // callbacks of this tab's connection are ignored from now on
    this.transport?.stop();
    this.transport = null;
    this.opened = false;
    for (const t of ["retry", "watchdog", "upgrade"]) this.clearTimer(t);
    this.role = "follower";
    for (const c of this.collections ?? []) c.followed();
  }

  listenToBrowser() {
    const { window: win, document: doc } = this.env;
    const online = () => this.wake("the network is back");
    const offline = () => this.goOffline();
    const visible = () => {
      if (doc?.visibilityState === "visible") this.wake("the tab is visible again");
    };
    win?.addEventListener?.("online", online);
    win?.addEventListener?.("offline", offline);
    doc?.addEventListener?.("visibilitychange", visible);
    this.unlisten = () => {
      win?.removeEventListener?.("online", online);
      win?.removeEventListener?.("offline", offline);
      doc?.removeEventListener?.("visibilitychange", visible);
    };
  }

  isOffline() {
    return this.env.navigator?.onLine === false;
  }

  /** The network came back or the tab woke up: check the connection, or retry right now. */
  wake(why) {
    if (this.closed || this.role === "follower") return;
    if (this.transport && this.opened) {
      if (this.kind !== "poll" && this.env.now() - this.lastActivity > silenceBudget(this)) {
        fail(this, this.gen, { kind: "silent", message: `no heartbeat while asleep (${why})` });
      }
      return;
    }
    if (this.timers.retry) {
      this.attempt = 0;
      this.clearTimer("retry");
      this.setState(this.hadOpen ? "reconnecting" : "connecting", why);
      this.connect();
    }
  }

  goOffline() {
    if (this.closed || this.role === "follower") return;
    fail(this, this.gen, { kind: "network", message: "the browser is offline" });
  }

  // ── connecting ────────────────────────────────────────────────────────────────────────

  async connect() {
    if (this.closed) return;
    this.clearTimer("retry");
    this.clearTimer("watchdog");
    const gen = ++this.gen;
    const kind = this.ladder.kind;
    if (this.connects++ > 0) this.reconnects++;
    this.kind = kind;
    this.opened = false;
    this.sawData = false;
    // A new connection starts live: the gateway opens with `status: degraded` if it is not.
    this.serverLive = true;
    let token;
    try {
      token = await this.tokens.current();
    } catch (err) {
      return fail(this, gen, { kind: "refused", code: "token_unavailable", message: String(err?.message ?? err) });
    }
    if (gen !== this.gen) return;
    // Without a cursor, the gateway opens every stream with its position (SSE: the `id:` of
    // the opening `status`; WebSocket: its `cursor`), so nothing is lost before the first event.
    const ctx = {
      base: this.url,
      topics: this.topics,
      filter: this.filter,
      cursor: this.cursor,
      token,
      heartbeat: this.heartbeat,
      pollWait: this.opts.pollWait,
      snapshot: [...(this.collections ?? [])].some((c) => !c.error?.fatal), // the stream opens with the collections' rows
      paths: paths(this.opts),
      public: this.opts.public,
      presence: this.opts.presence,
      env: this.env,
      on: this.handlers(gen),
    };
    this.askedSnapshot = ctx.snapshot;
    for (const c of this.collections ?? []) c.connecting(ctx.snapshot && ctx.cursor === null);
    const Transport = (this.env.transports ?? TRANSPORTS)[kind];
    this.transport = new Transport(ctx);
    this.startedAt = this.env.now();
    this.lastActivity = this.startedAt;
    this.transport.start();
    if (kind !== "poll") armWatchdog(this, gen);
  }

  handlers(gen) {
    const current = () => gen === this.gen && !this.closed;
    return {
      open: () => current() && this.onOpen(),
      event: (event, cursor) => current() && this.onActivity() && this.deliver(event, cursor),
      cursor: (cursor) => current() && this.advance(cursor),
      control: (name, data, cursor) => current() && this.onActivity() && this.onControl(gen, name, data, cursor),
      alive: () => {
        if (!current()) return;
        this.onActivity();
        this.lastHeartbeatAt = this.env.now();
        this.group?.post({ t: "beat", at: this.lastHeartbeatAt });
      },
      fail: (failure) => current() && fail(this, gen, failure),
    };
  }

  onOpen() {
    this.opened = true;
    this.hadOpen = true;
    this.lastConnectedAt = this.env.now();
    this.lastActivity = this.env.now();
    this.showLive(`${NAMES[this.kind]} connected`);
    if (this.ladder.opened()) scheduleUpgrade(this);
  }

  onActivity() {
    this.lastActivity = this.env.now();
    this.sawData = true;
    // Proof of life after an open: the next failure starts the backoff from the beginning.
    if (this.opened) this.attempt = 0;
    return true;
  }

  showLive(reason) {
    if (!this.serverLive) this.setState("degraded", "the gateway lost its event stream (NATS); events resume when it is back");
    else this.setState(this.kind === "poll" ? "polling" : "live", reason);
  }

  onControl(gen, name, data, cursor) {
    switch (name) {
      case "status":
        this.serverLive = data?.state !== "degraded";
        // The opening status announces the heartbeat and, for a stream opened without a
        // cursor, where it starts.
        if (this.opts.heartbeat == null && Number.isFinite(data?.heartbeat_ms) && data.heartbeat_ms > 0 && data.heartbeat_ms !== this.heartbeat) {
          this.heartbeat = data.heartbeat_ms;
          if (this.timers.watchdog) {
            this.clearTimer("watchdog");
            armWatchdog(this, gen);
          }
        }
        if (cursor) this.advance(cursor);
        if (this.opened) this.showLive(`${NAMES[this.kind]} connected`);
        return;
      case "reset":
        // The cursor could not be resumed (retention, or a recreated stream): continue from
        // the gateway's position and tell the app to refetch its snapshot.
        if (typeof data?.cursor === "string") this.cursor = data.cursor;
        else if (cursor) this.cursor = cursor;
        this.resync({ reason: data?.reason ?? "reset", cursor: this.cursor });
        return;
      case "snapshot":
        // Collection rows, page by page; the last page's cursor is where the stream goes on.
        for (const c of this.collections ?? []) c.onFrame(data);
        if (data && !data.more) this.advance(data.cursor ?? cursor);
        return;
      case "overflow":
        return fail(this, gen, { kind: "closed", code: "overflow", message: "the client fell behind; resuming" });
      case "reconnect":
        return fail(this, gen, { kind: "closed", code: data?.reason ?? "reconnect", message: "the gateway asked to reconnect" });
      default:
        this.emit(name, data);
        this.group?.post({ t: "named", name, data });
    }
  }

  // ── timers (failure, backoff, fallback and the watchdog: recovery.js) ─────────────────

  clearTimer(name) {
    if (this.timers[name]) this.env.clearTimeout(this.timers[name]);
    this.timers[name] = null;
  }

  // ── delivery ──────────────────────────────────────────────────────────────────────────

  advance(cursor) {
    if (cursor && advances(this.cursor, cursor)) {
      this.cursor = cursor;
      if (this.role === "leader") this.group?.post({ t: "cursor", cursor });
      for (const c of this.collections ?? []) c.cursorMoved(cursor);
    }
  }

  deliver(event, cursor) {
    this.advance(cursor);
    if (this.role === "leader") this.group?.post({ t: "event", event, cursor: this.cursor, at: cursor ?? null });
    this.dispatch(event, cursor);
  }

  /**
   * Hands an event to the app once, however many times it arrived. `position`: the event's
   * own cursor when the transport gave one (SSE, WebSocket), null on long-poll.
   */
  dispatch(event, position = null) {
    const meta = { cursor: this.cursor, position: position ?? null };
    if (this.delivery.dispatch(event, meta)) this.emit("event", event, meta);
  }

  resync(info) {
    if (this.role === "leader") this.group?.post({ t: "resync", info });
    this.emit("resync", info);
  }

  setState(state, reason) {
    const changed = state !== this.state || reason !== this.reason;
    this.state = state;
    this.reason = reason;
    if (!changed) return;
    if (this.role === "leader") this.group?.post({ t: "state", state, reason, stats: this.stats() });
    this.emit("state", state, { reason });
  }

  emit(name, ...args) {
    for (const { cb } of [...(this.listeners.get(name) ?? [])]) safely(cb, ...args);
  }
}
