// One connection per browser, not per tab.
//
// Tabs of one origin that connect to the same gateway with the same topics form a group.
// The Web Locks API elects the leader: every tab asks for the same exclusive lock, the
// browser grants it to one, and when that tab closes (or crashes) it grants it to the next in
// line. The leader owns the connection and relays what it receives over a `BroadcastChannel`;
// followers keep the cursor it relays, so the next leader resumes exactly where the last one
// stopped.
//
// A leader that is frozen rather than closed (a suspended tab, a hung script) keeps its lock,
// so the lock alone cannot hand over. The leader therefore says `alive` on the channel every
// heartbeat, and anything it relays counts as well. A follower that hears nothing for
// `silence` heartbeats (2.5 by default) takes over: one follower at a time (a second lock,
// taken only if free, picks it) steals the lock with `{ steal: true }` and connects from the
// last cursor relayed. Every leader message carries the leader's term (`epoch`, newer terms
// are larger), so when the old leader wakes up the tabs ignore what it still relays, and it
// steps down as soon as its lock request rejects (stolen) or it hears a newer term, whichever
// comes first. A tab that steps down asks the leader for the recent events it missed.
// A follower whose app calls `reconnect()` asks the leader too (`t: "reconnect"`).
//
// Without Web Locks or BroadcastChannel (old browsers, workers, Node) every tab leads alone.

import { advances } from "./cursor.js";

/** Recent relayed events a leader keeps for a tab that steps down or wakes up late. */
const RECENT = 1000;

/** Messages only a leader sends; each carries its `epoch` and `from`. */
const LEADER_MESSAGES = new Set(["alive", "beat", "event", "cursor", "state", "resync", "named", "catchup"]);

export class TabGroup {
  /**
   * @param {string} name  the lock and channel name
   * @param {{ locks?: LockManager, BroadcastChannel?: typeof BroadcastChannel, setTimeout: Function, clearTimeout: Function, now: () => number, random?: () => number }} env
   * @param {{ lead: () => void, lost: () => void, message: (msg: any) => void, period: () => number, silence: number, cursor: () => string | null }} on
   */
  constructor(name, env, on) {
    this.name = name;
    this.env = env;
    this.on = on;
    this.id = `${env.now().toString(36)}-${Math.floor((env.random ?? Math.random)() * 1e9).toString(36)}`;
    this.leader = false;
    this.closed = false;
    this.epoch = 0; // the newest leader term this tab has heard of (its own when leading)
    this.top = ""; // the id of the tab leading that term
    this.heardAt = env.now();
    this.every = null; // the leader's announced heartbeat
    this.recent = [];
    this.timer = null;
    this.takeovers = 0;
  }

  /** Whether tabs can share a connection here. */
  static supported(env) {
    return Boolean(env.locks && typeof env.locks.request === "function" && env.BroadcastChannel);
  }

  start() {
    if (!TabGroup.supported(this.env)) {
      this.leader = true;
      this.on.lead();
      return;
    }
    this.channel = new this.env.BroadcastChannel(this.name);
    this.channel.onmessage = (e) => this.receive(e.data);
    this.queue();
    this.watch();
    this.hello();
  }

  /** Asks the leader for its state and for the events after this tab's cursor. */
  hello() {
    this.send({ t: "hello", from: this.id, cursor: this.on.cursor() });
  }

  /** Waits in line for the lock. */
  queue() {
    this.abort = new AbortController();
    this.acquire({ mode: "exclusive", signal: this.abort.signal });
  }

  /**
   * Requests the lock; once granted, leads until closed or stolen from. Resolves when the
   * request is granted or given up.
   */
  acquire(opts) {
    let granted = false;
    return new Promise((settled) => {
      this.env.locks
        .request(this.name, opts, () => {
          if (this.closed) return settled();
          granted = true;
          this.becomeLeader();
          settled();
          // Hold the lock until this tab closes the client, goes away, or is stolen from.
          return new Promise((resolve) => {
            this.release = resolve;
          });
        })
        .catch(() => {
          settled();
          // Not granted: aborted while waiting in line (closed, or this tab took over).
          // Granted: another tab stole the lock while this one was frozen.
          if (granted && this.leader && !this.closed) this.stepDown("its lock was stolen");
          // A steal the browser refused: back in line rather than out of it.
          else if (!granted && opts.steal && !this.leader && !this.closed) this.queue();
        });
    });
  }

  becomeLeader() {
    if (this.leader || this.closed) return;
    this.leader = true;
    this.epoch = Math.max(this.env.now(), this.epoch + 1);
    this.top = this.id;
    this.clearTimer();
    this.on.lead();
    this.post({ t: "alive", every: this.on.period() });
    this.beat();
  }

  /** Another tab leads now: stop relaying, follow it, and queue for the lock again. */
  stepDown(why) {
    if (!this.leader || this.closed) return;
    this.leader = false;
    this.steppedDown = why;
    this.release = null;
    this.clearTimer();
    this.on.lost();
    this.heardAt = this.env.now();
    this.queue();
    this.watch();
    this.hello();
  }

  /** The leader's heartbeat on the channel, independent of the connection's. */
  beat() {
    this.clearTimer();
    const every = this.on.period();
    this.beatEvery = every;
    this.timer = this.env.setTimeout(() => {
      this.timer = null;
      if (!this.leader || this.closed) return;
      this.post({ t: "alive", every });
      this.beat();
    }, every);
  }

  budget() {
    return (this.every ?? this.on.period()) * this.on.silence;
  }

  /** A follower's watchdog: fires when the leader has been silent for the whole budget. */
  watch() {
    this.clearTimer();
    if (this.leader || this.closed || !this.channel) return;
    const due = this.heardAt + this.budget();
    this.timer = this.env.setTimeout(() => {
      this.timer = null;
      if (this.leader || this.closed) return;
      const now = this.env.now();
      // This tab itself slept through the budget (frozen, throttled): its own queue may hold
      // the leader's messages. Give the leader a fresh budget instead of stealing.
      if (now - due > this.budget()) this.heardAt = now;
      if (now - this.heardAt >= this.budget()) this.takeOver();
      else this.watch();
    }, Math.max(this.budget() / 10, due - this.env.now()));
  }

  /** Steals the lock from a silent leader; only the follower holding `<name>:takeover` does. */
  takeOver() {
    this.env.locks
      .request(`${this.name}:takeover`, { ifAvailable: true }, async (lock) => {
        if (!lock || this.leader || this.closed) return;
        if (this.env.now() - this.heardAt < this.budget()) return; // the leader spoke meanwhile
        this.takeovers++;
        this.abort?.abort(); // leave the line: this tab holds the lock from now on
        await this.acquire({ mode: "exclusive", steal: true });
      })
      .catch(() => {})
      .finally(() => {
        if (!this.leader && !this.closed) this.watch();
      });
  }

  receive(m) {
    if (this.closed || !m || typeof m !== "object") return;
    if (m.t === "hello" || m.t === "reconnect") {
      // A follower's request: only the leader, who holds the connection, answers.
      if (this.leader && m.t === "hello") this.greet(m);
      else if (this.leader) this.on.message(m);
      return;
    }
    if (!LEADER_MESSAGES.has(m.t)) return;
    const epoch = Number(m.epoch) || 0;
    if (epoch < this.epoch || (epoch === this.epoch && m.from !== this.top && String(m.from) < this.top)) {
      return; // an older leader that has not noticed yet: what it relays is covered by the new one
    }
    if (m.from !== this.top || epoch !== this.epoch) {
      this.epoch = epoch;
      this.top = m.from;
      if (this.leader) this.stepDown("a newer leader spoke"); // it took over while this tab was frozen
    }
    if (this.leader) return;
    this.heardAt = this.env.now();
    if (m.t === "alive") {
      if (Number.isFinite(m.every) && m.every > 0 && m.every !== this.every) {
        this.every = m.every;
        this.watch(); // the budget changed: re-arm for the new one
      }
      return;
    }
    if (m.t === "catchup" && m.to !== this.id) return;
    this.on.message(m);
  }

  /**
   * Answers a new or returning tab: the leader's heartbeat (so its silence budget is right at
   * once, not after the next periodic `alive` — until then it would wait 2.5 default
   * heartbeats, 37.5 s, before replacing a leader that hangs), the state, and the events it
   * may have missed.
   */
  greet(m) {
    this.post({ t: "alive", every: this.on.period() });
    this.on.message({ t: "hello" });
    if (typeof m.cursor !== "string") return;
    const events = this.recent.filter((r) => advances(m.cursor, r.cursor));
    if (events.length) this.post({ t: "catchup", to: m.from, events });
  }

  /** Relays a message to the followers (a leader only). */
  post(msg) {
    if (!this.channel || this.closed || !this.leader) return;
    if (msg.t === "event") {
      this.recent.push({ event: msg.event, cursor: msg.cursor, at: msg.at ?? null });
      if (this.recent.length > RECENT) this.recent.shift();
    }
    this.send({ ...msg, epoch: this.epoch, from: this.id });
    if (msg.t !== "alive" && this.on.period() !== this.beatEvery) {
      // The gateway announced another heartbeat: tell the followers their new budget now.
      this.post({ t: "alive", every: this.on.period() });
      this.beat();
    }
  }

  send(msg) {
    if (!this.channel || this.closed) return;
    try {
      this.channel.postMessage(msg);
    } catch {
      // a message that cannot be cloned is dropped, never thrown at the app
    }
  }

  clearTimer() {
    if (this.timer) this.env.clearTimeout(this.timer);
    this.timer = null;
  }

  close() {
    this.closed = true;
    this.clearTimer();
    this.abort?.abort();
    this.release?.();
    this.channel?.close();
  }
}
