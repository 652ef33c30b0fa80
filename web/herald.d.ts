// Types of herald-client (herald.js). The runtime is dependency-free JavaScript; these
// declarations are the contract.

/** A Herald event: a CloudEvents 1.0 envelope with Herald's extension attributes. */
export interface HeraldEvent<D = unknown> {
  specversion: "1.0";
  id: string;
  source: string;
  type: string;
  time?: string;
  datacontenttype?: string;
  data?: D;
  tenant: string;
  topic: string;
  action: string;
  /** CDC updates: the previous values of the changed columns. */
  changes?: Record<string, unknown> | null;
  [extension: string]: unknown;
}

export type HeraldState = "connecting" | "live" | "degraded" | "reconnecting" | "polling" | "offline";
export type TransportName = "sse" | "ws" | "poll";

/** Why a connection ended. Informational: the client always reconnects by itself. */
export interface Failure {
  kind: "network" | "refused" | "blocked" | "closed" | "silent";
  /** Herald's error code (`not_ready`, `token_expired`, …) or the server's reason. */
  code?: string;
  /** The HTTP status, when there was an answer. */
  status?: number;
  message?: string;
  /** The server's `Retry-After`, in milliseconds. */
  retryAfter?: number;
}

export interface ResyncInfo {
  /** `out_of_retention`, `epoch_mismatch`, … */
  reason: string;
  /** Where the stream continues from. */
  cursor: string | null;
}

export interface EventMeta {
  /** The client's cursor once this event was received. */
  cursor: string | null;
  /** The event's own cursor when the transport gave one (SSE, WebSocket); null on long-poll. */
  position?: string | null;
}

/**
 * `stats()`. In a tab group the connection is the leader tab's: in a follower tab, `state`,
 * `transport`, `lastConnected`, `connects`, `reconnects` and `attempt` are the leader's (as it
 * last relayed them, with each state change); the event counts are always this tab's own.
 */
export interface HeraldStats {
  /** The current state, as `client.state`: `close()` leaves it `offline`. */
  state: HeraldState;
  reason: string;
  /** The transport of the current (or last) connection attempt; null before the first. */
  transport: TransportName | null;
  /**
   * The newest cursor: the position after the last event handed over (or the position the
   * gateway opened the stream at). Every reconnect, `reconnect()` included, resumes after it.
   */
  cursor: string | null;
  /**
   * When a connection last opened (the gateway accepted it: SSE's response, the WebSocket's
   * open, long-poll's first answer); null until one has. It keeps its value while the client
   * reconnects, so `now - lastConnected` is how long the current connection has been up only
   * while `isConnected()`.
   */
  lastConnected: Date | null;
  /**
   * Connections attempted, the first included, whether or not they opened: the first one, and
   * each new one after a failure, a gateway's request, `reconnect()`, a transport fallback or
   * upgrade. A tab that takes over from a leader tab carries the group's count on.
   */
  connects: number;
  /**
   * Connections attempted after the first one (`connects - 1`, never below 0): every
   * reconnect, whatever caused it — a retry that failed again counts once more.
   */
  reconnects: number;
  /** Failed attempts since the connection was last healthy (the backoff exponent). */
  attempt: number;
  /**
   * Events that reached this tab — over its connection, relayed by the leader tab, or in the
   * `history: n` page — including the duplicates dropped: `delivered + duplicates`.
   */
  eventsReceived: number;
  lastEvent: { id: string; type: string; topic: string; cursor: string | null } | null;
  /** `Date.now()` of the last event / the last sign of life from the server. */
  lastEventAt: number | null;
  lastHeartbeatAt: number | null;
  /** Events handed to the app (once each), and duplicates dropped. */
  delivered: number;
  duplicates: number;
  /** `leader`: this tab holds the connection for the others; `follower`: it shares one. */
  role: "alone" | "leader" | "follower";
}

/** A live stats document: the same shape as one answer of `GET /v1/stats`. */
export interface StatsMessage {
  topic: string;
  /** The position the document reflects. */
  cursor: string;
  /** The document (`proto/stats.schema.json`): total, by_action, rows, group_by, rates… */
  doc: Record<string, unknown>;
}

/** One event of a history page: the CloudEvent, its cursor and topic. */
export interface HistoryItem<D = unknown> {
  /** The event's cursor (its SSE `id:`). */
  cursor: string;
  topic: string;
  event: HeraldEvent<D>;
}

/** `GET /v1/history`: the newest events of some topics, oldest first. */
export interface HistoryPage<D = unknown> {
  events: HistoryItem<D>[];
  /**
   * Where a stream continues after this page with no gap and no repeat (pass it as the
   * `cursor` option). Without `before`: the stream position at the moment of reading; with
   * `before`: the position just before it.
   */
  cursor: string;
  /** Older events of these topics exist: page back with `before: events[0].cursor`. */
  more: boolean;
}

/**
 * A server-side filter (docs/gateway.md#filters-actions-where), applied to live events and to
 * every resume alike.
 */
export interface HeraldFilter {
  /** Only events with one of these actions (at most 16). Empty or null: every action. */
  actions?: string[] | string | null;
  /**
   * Conditions that must all hold (at most 4): `"path:value"` strings such as
   * `"data.status:active"`, or an object `{ "data.status": "active", "data.n": 5 }`. A string
   * field must equal the value's text, a number must equal it numerically (`5` matches 5, 5.0
   * and "5"), `true` / `false` / `null` match themselves; objects, arrays and missing fields
   * never match.
   */
  where?: string[] | Record<string, string | number | boolean | null> | null;
}

export interface HistoryOptions extends HeraldFilter {
  /** Events per page, 1–500. Default 50. */
  limit?: number;
  /** Only events strictly before this cursor (the cursor of the oldest event held). */
  before?: string | null;
}

/** The gateway refused a history request. */
export declare class HistoryError extends Error {
  readonly status: number;
  /** Herald's error code: `topic_forbidden`, `out_of_retention`, `epoch_mismatch`, … */
  readonly code: string;
}

/** A token, or a JWT whose `exp` tells the client when to fetch the next one. */
export type TokenSource = () => string | Promise<string>;

/** `actions` and `where` filter on the server, on every transport (SSE, WebSocket, long-poll). */
export interface HeraldOptions extends HeraldFilter {
  /** A gateway JWT. Use `getToken` instead for tokens that expire. */
  token?: string | null;
  /** Called before the first connection and again ahead of each token's `exp`. */
  getToken?: TokenSource | null;
  /**
   * Topics to receive; empty = every topic the token grants. `"$stats"` adds live stats
   * documents (the `stats` listener) of every topic the token grants; alone, it receives no
   * events.
   */
  topics?: string[];
  /** `auto` (default): SSE, then WebSocket, then long-poll when one is blocked. */
  transport?: "auto" | TransportName;
  /** Resume after this cursor (e.g. the one a snapshot was taken at). */
  cursor?: string | null;
  /**
   * Overrides the heartbeat interval in ms. Default: the interval the gateway announces in
   * the opening `status` of every stream (`heartbeat_ms`; 15000 until it does).
   */
  heartbeat?: number;
  /**
   * Heartbeats missed before a connection counts as dead, and before a follower tab takes over
   * from a leader tab that went silent (frozen or hung). Default 2.5.
   */
  silence?: number;
  /** Backoff bounds in ms: the delay before retry n is uniform in [0, min(cap, base·2ⁿ)). */
  backoff?: { base?: number; cap?: number };
  /** Blocked attempts before `auto` tries the next transport. Default 2. */
  fallbackAfter?: number;
  /** How soon, in ms, a fallback tries the better transport again. Default 60000. */
  upgradeAfter?: number;
  /** Seconds a long-poll waits for events. Default 25. */
  pollWait?: number;
  /** Fetch the next token this many ms before expiry. Default 30000. */
  tokenMargin?: number;
  /**
   * Share one connection between the tabs of this origin. Default true. A leader tab silent
   * for `silence` heartbeats is replaced (Web Locks `steal`); it steps down when it wakes.
   */
  shareTabs?: boolean;
  /** Event ids remembered for duplicate suppression. Default 5000. */
  dedup?: number;
  /**
   * Without `cursor`: before connecting, hand the newest n events of the topics to the app
   * (oldest first, like any other event), then stream on from right after them — no gap, no
   * repeat. Default 0 (start from the current position).
   */
  history?: number;
  /**
   * Receive `presence` messages (docs/gateway.md#presence) for the presence topics in scope.
   * Default false; `presence(topic)` turns it on (a reconnect from the cursor). With
   * `shareTabs`, pass it here so every tab's shared connection asks for it.
   */
  presence?: boolean;
  /**
   * Read the public topics of `tenant` without a token (`/v1/public/<tenant>/…`,
   * docs/gateway.md#public-topics). Needs `tenant`; refuses `token` and `getToken`;
   * `history()` is not available.
   */
  public?: boolean;
  /** With `public: true`: the tenant whose public topics to read. */
  tenant?: string | null;
}

/** A `presence` message: a topic's count and who joined and left (names need the claim). */
export interface PresenceMessage {
  topic: string;
  count: number;
  joined: string[];
  left: string[];
  /** `joined` is every member (the first message of a connection, or after falling behind). */
  snapshot?: true;
}

/** One change of a topic's presence, as `PresenceView` reports it. */
export interface PresenceChange {
  topic: string;
  count: number;
  /** Everyone connected now, sorted (empty without the token's `presence` claim). */
  members: string[];
  joined: string[];
  left: string[];
}

/** The live presence of one topic: `h.presence(topic)`. */
export interface PresenceView {
  readonly topic: string;
  /** Connected users now, each counted once across connections and gateways. */
  readonly count: number;
  /** Their ids (`sub`s), sorted; empty unless the token has the claim `presence: true`. */
  readonly members: string[];
  /** Whether the gateway has sent this topic's snapshot yet. */
  readonly known: boolean;
  on(name: "change", cb: (change: PresenceChange) => void): Unsubscribe;
}

export type Unsubscribe = () => void;

export declare class HeraldClient {
  constructor(url: string, options?: HeraldOptions);
  readonly state: HeraldState;
  readonly reason: string;
  /**
   * Calls `cb` for each event whose topic or CloudEvents `type` is `typeOrTopic` (`"*"`: all),
   * once, in stream order.
   */
  subscribe<D = unknown>(typeOrTopic: string, cb: (event: HeraldEvent<D>, meta: EventMeta) => void): Unsubscribe;
  on(name: "state", cb: (state: HeraldState, info: { reason: string }) => void): Unsubscribe;
  /** The cursor could not be resumed: refetch your snapshot, the stream continues after it. */
  on(name: "resync", cb: (info: ResyncInfo) => void): Unsubscribe;
  on(name: "event", cb: (event: HeraldEvent, meta: EventMeta) => void): Unsubscribe;
  on(name: "error", cb: (failure: Failure) => void): Unsubscribe;
  /** A stats document (with `"$stats"` among the topics): `{topic, cursor, doc}`. */
  on(name: "stats", cb: (message: StatsMessage) => void): Unsubscribe;
  /** A presence change (with `presence: true`): see `presence(topic)` for the tallied view. */
  on(name: "presence", cb: (message: PresenceMessage) => void): Unsubscribe;
  /** Other named server messages. */
  on(name: string, cb: (data: any) => void): Unsubscribe;
  /**
   * The live presence of `topic`: count and (with the token's `presence` claim) members, and
   * `on("change")`. Turns presence on for the connection if it was off.
   */
  presence(topic: string): PresenceView;
  /**
   * `GET /v1/history`: the newest `limit` events of `topics` (default: the client's topics),
   * oldest first, and the cursor to stream on from; filtered by the client's `actions` /
   * `where` unless `options` names its own. Rejects with a `HistoryError`.
   */
  history<D = unknown>(topics?: string[] | string | null, options?: HistoryOptions): Promise<HistoryPage<D>>;
  /**
   * Drops the current connection now and connects again at once, from the cursor: whatever
   * the old connection had not handed over yet comes on the new one (no gap) and what it had is
   * dropped if it comes again (no duplicate). The backoff starts over, and a pending retry is
   * replaced. In a follower tab it asks the leader tab, which holds the connection, to do it.
   * Does nothing after `close()`, or before the first connection (`history: n` still loading).
   */
  reconnect(): void;
  /**
   * Whether events arrive as they are published: true in the states `live` and `polling` (live
   * over long-poll); false while `connecting`, `reconnecting`, `degraded` (the gateway lost its
   * event stream) or `offline` (including after `close()`). In a follower tab: the leader's.
   */
  isConnected(): boolean;
  /** A snapshot of the connection and of what this tab received. */
  stats(): HeraldStats;
  /**
   * A live, keyed view of the collection `topic` (proto/state.md), loaded once and kept
   * current over this connection. The client's topics must include `topic` (or be empty /
   * `*`), and the client must have no `actions` / `where` filter; otherwise it throws.
   */
  collection<R = Record<string, unknown>>(topic: string, options?: CollectionOptions): Collection<R>;
  /** Closes the connection (or leaves the tab group) for good. */
  close(): void;
}

export declare const Herald: {
  connect(url: string, options?: HeraldOptions): HeraldClient;
};
export default Herald;

export declare const STATES: readonly HeraldState[];
export declare const FALLBACK_ORDER: readonly TransportName[];
export declare const DEFAULTS: Readonly<Required<Omit<HeraldOptions, "token" | "getToken" | "cursor">>>;
export declare const BACKOFF: Readonly<{ base: number; cap: number }>;
export declare function backoffDelay(attempt: number, opts?: { base?: number; cap?: number; random?: () => number }): number;
export declare function tokenExpiry(token: string): number | null;
export declare function parseCursor(cursor: string): { seq: number; epoch: string } | null;
export declare function advances(current: string | null, next: string | null): boolean;
export declare function eventKey(event: Pick<HeraldEvent, "id" | "source">): string | null;
export declare class RecentSet {
  constructor(capacity?: number);
  add(key: string): boolean;
  has(key: string): boolean;
  readonly size: number;
}
export declare class SseParser {
  constructor(handlers: {
    message?: (m: { event: string; data: string; id: string | undefined }) => void;
    comment?: (text: string) => void;
    retry?: (ms: number) => void;
  });
  push(text: string): void;
}

// ── Collections (lib/collection.js, proto/state.md) ─────────────────────────────────────────

export interface CollectionOptions {
  /**
   * The dotted path into each event's `data` that holds the row key, as the server's
   * `[state.collections.<tenant>.<topic>] key`. Default `"id"`.
   */
  key?: string;
  /** Rows per `GET /v1/snapshot` page (the gateway's default: 1000, at most 10000). */
  pageSize?: number;
}

/**
 * `loading`: no complete snapshot yet, or a fresh one is on its way after a reset (`items`
 * holds the last rows known); `live`: the rows are current and follow the stream; `stale`: the
 * connection is down (reconnecting, offline, degraded) — the rows are the last ones known and
 * catch up by themselves when it is back.
 */
export type CollectionStatus = "loading" | "live" | "stale";

/** One change of a collection's rows. */
export interface CollectionChange<R = Record<string, unknown>> {
  /** `snapshot`: every row was replaced (key, row, previous are null); `clear`: a truncate/reset. */
  type: "snapshot" | "upsert" | "delete" | "clear";
  key: string | null;
  /** The new row (`upsert`), else null. */
  row: R | null;
  /** The row before the change (`upsert` of an existing key, `delete`), else null. */
  previous: R | null;
}

/** Why the rows could not be loaded (yet): a refused or failed `GET /v1/snapshot`. */
export interface CollectionError {
  status?: number;
  /** `not_a_collection`, `topic_forbidden`, `snapshot_behind`, `unreachable`, … */
  code: string;
  message: string;
  /** Asking again cannot help (400, 403): the collection stops trying. */
  fatal?: boolean;
}

export declare class Collection<R = Record<string, unknown>> {
  readonly topic: string;
  /** The rows: key → row (the `data` of the event that wrote it), snapshot order then arrival order. */
  readonly items: Map<string, R>;
  readonly status: CollectionStatus;
  /** The last failure to load the rows, or null; retried by itself unless `fatal`. */
  readonly error: CollectionError | null;
  /** The stream position the rows reflect. */
  readonly cursor: string | null;
  on(name: "change", cb: (change: CollectionChange<R>) => void): Unsubscribe;
  on(name: "status", cb: (status: CollectionStatus) => void): Unsubscribe;
  on(name: "error", cb: (error: CollectionError) => void): Unsubscribe;
  /** Stops following the collection; the rows stay as they are. */
  close(): void;
}

/** The gateway refused a `GET /v1/snapshot` request. */
export declare class SnapshotError extends Error {
  readonly status: number;
  readonly code: string;
  /** The gateway's `Retry-After`, in ms. */
  readonly retryAfter?: number;
}
export declare const COLLECTION_STATUSES: readonly CollectionStatus[];
