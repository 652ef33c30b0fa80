// One connection per browser, not per tab.
//
// Tabs of one origin that connect to the same gateway with the same topics form a group.
// The Web Locks API elects the leader: every tab asks for the same exclusive lock, the
// browser grants it to one, and when that tab closes (or crashes) it grants it to the next in
// line — no heartbeats, no timeouts, no split brain. The leader owns the connection and
// relays what it receives over a `BroadcastChannel`; followers keep the cursor it relays, so
// the next leader resumes exactly where the last one stopped.
//
// Without Web Locks or BroadcastChannel (old browsers, workers, Node) every tab leads alone.

export class TabGroup {
  /**
   * @param {string} name  the lock and channel name
   * @param {{ locks?: LockManager, BroadcastChannel?: typeof BroadcastChannel }} env
   * @param {{ lead: () => void, message: (msg: any) => void }} on
   */
  constructor(name, env, on) {
    this.name = name;
    this.env = env;
    this.on = on;
    this.leader = false;
    this.closed = false;
  }

  /** Whether tabs can share a connection here. */
  static supported(env) {
    return Boolean(env.locks && typeof env.locks.request === "function" && env.BroadcastChannel);
  }

  start() {
    if (!TabGroup.supported(this.env)) {
      this.becomeLeader();
      return;
    }
    this.channel = new this.env.BroadcastChannel(this.name);
    this.channel.onmessage = (e) => {
      if (!this.closed) this.on.message(e.data);
    };
    this.abort = new AbortController();
    this.env.locks
      .request(this.name, { mode: "exclusive", signal: this.abort.signal }, () => {
        if (this.closed) return undefined;
        this.becomeLeader();
        // Hold the lock until this tab closes the client or goes away.
        return new Promise((resolve) => {
          this.release = resolve;
        });
      })
      .catch(() => {
        // Aborted while waiting in line: the client was closed.
      });
  }

  becomeLeader() {
    this.leader = true;
    this.on.lead();
  }

  post(msg) {
    if (!this.channel || this.closed) return;
    try {
      this.channel.postMessage(msg);
    } catch {
      // a message that cannot be cloned is dropped, never thrown at the app
    }
  }

  close() {
    this.closed = true;
    this.abort?.abort();
    this.release?.();
    this.channel?.close();
  }
}
