// Presence (docs/gateway.md#presence): who is connected to a topic, across every gateway.
//
// A connection opened with `presence: true` (or once `h.presence(topic)` is first called,
// which reconnects from the cursor with it: nothing is lost) receives `presence` messages:
// per presence topic, a snapshot (`snapshot: true`, `joined` = every member) and then each
// change (`joined`, `left`, `count`). This book keeps the current state of every topic seen,
// so a view made later starts from what is known; `members` stay empty unless the token has
// the claim `presence: true` (the count is always there).

/** The live presence of one topic: `count`, `members`, and `on("change", cb)`. */
export class PresenceView {
  constructor(topic, book) {
    this.topic = topic;
    this.book = book;
    this.listeners = new Set();
  }

  /** Connected users now (each once, whatever its connections and gateways). */
  get count() {
    return this.book.state(this.topic).count;
  }

  /** Their ids (`sub`s), sorted; empty without the `presence` claim. */
  get members() {
    return [...this.book.state(this.topic).members].sort();
  }

  /** Whether a snapshot has arrived since the connection opened. */
  get known() {
    return this.book.state(this.topic).known;
  }

  /**
   * `change`: `cb({topic, count, members, joined, left})` after every snapshot and change.
   * Returns the function that removes the listener.
   */
  on(name, cb) {
    if (name !== "change") throw new TypeError(`a presence view emits "change", not ${name}`);
    if (typeof cb !== "function") throw new TypeError("on(\"change\", cb): cb must be a function");
    const entry = { cb };
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  emit(change) {
    for (const { cb } of [...this.listeners]) {
      try {
        cb(change);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

/** Every topic's presence as the client's `presence` messages tell it. */
export class PresenceBook {
  constructor() {
    this.topics = new Map();
    this.views = new Map();
  }

  state(topic) {
    if (!this.topics.has(topic)) this.topics.set(topic, { count: 0, members: new Set(), known: false });
    return this.topics.get(topic);
  }

  /** The one view of `topic`. */
  view(topic) {
    if (!this.views.has(topic)) this.views.set(topic, new PresenceView(topic, this));
    return this.views.get(topic);
  }

  /** Applies one `presence` message; malformed ones are ignored. */
  apply(data) {
    if (!data || typeof data.topic !== "string" || !Number.isInteger(data.count)) return;
    const joined = Array.isArray(data.joined) ? data.joined.filter((s) => typeof s === "string") : [];
    const left = Array.isArray(data.left) ? data.left.filter((s) => typeof s === "string") : [];
    const s = this.state(data.topic);
    if (data.snapshot === true) s.members = new Set(joined);
    else {
      for (const sub of joined) s.members.add(sub);
      for (const sub of left) s.members.delete(sub);
    }
    s.count = data.count;
    s.known = true;
    const view = this.views.get(data.topic);
    view?.emit({ topic: data.topic, count: s.count, members: [...s.members].sort(), joined, left });
  }
}

/**
 * `h.presence(topic)`: the live view of `topic`. Turns presence on for the client's
 * connection if it was off (a reconnect from the cursor).
 */
export function presenceOf(client, topic) {
  if (typeof topic !== "string" || topic === "") throw new TypeError("presence(topic): a topic name");
  if (!client.opts.presence) {
    client.opts.presence = true;
    if (client.started && client.role !== "follower") client.reconnect();
  }
  return client.presenceBook.view(topic);
}
