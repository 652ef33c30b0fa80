// Which transport to use: with `transport: "auto"`, SSE, then WebSocket, then long-poll.
//
// The ladder moves down only when a transport is *blocked* — something between the browser
// and the gateway refuses it — never because the gateway is down (every transport would
// fail then, and falling back would only trade SSE for polling for no reason). From a lower
// rung it tries the top again after `upgradeAfter`; a failed try goes straight back to the
// rung that worked, and waits twice as long before the next try (up to 10 minutes).

/** The order `transport: "auto"` tries. */
export const FALLBACK_ORDER = Object.freeze(["sse", "ws", "poll"]);

const MAX_UPGRADE_DELAY = 10 * 60_000;

export class Ladder {
  /** @param {{ mode: "auto" | "sse" | "ws" | "poll", fallbackAfter: number, upgradeAfter: number }} opts */
  constructor({ mode, fallbackAfter, upgradeAfter }) {
    this.mode = mode;
    this.fallbackAfter = fallbackAfter;
    this.level = 0;
    this.blocked = { sse: 0, ws: 0, poll: 0 };
    this.upgradeFrom = null;
    this.upgradeDelay = upgradeAfter;
  }

  get auto() {
    return this.mode === "auto";
  }

  /** The transport to connect with. */
  get kind() {
    return this.auto ? FALLBACK_ORDER[this.level] : this.mode;
  }

  /** A connection opened. Returns whether a better transport is worth trying later. */
  opened() {
    this.blocked[this.kind] = 0;
    this.upgradeFrom = null;
    return this.auto && this.level > 0;
  }

  /**
   * A connection failed before opening. Returns whether to reconnect at once on another
   * transport: after a failed upgrade try, or when this one is now known to be blocked.
   */
  failedBeforeOpen(kind, blocked) {
    if (!this.auto) return false;
    if (this.upgradeFrom !== null) {
      this.level = this.upgradeFrom;
      this.upgradeFrom = null;
      this.upgradeDelay = Math.min(this.upgradeDelay * 2, MAX_UPGRADE_DELAY);
      return true;
    }
    if (!blocked) return false;
    if (++this.blocked[kind] >= this.fallbackAfter && this.level < FALLBACK_ORDER.length - 1) {
      this.level++;
      return true;
    }
    return false;
  }

  /** Whether the next failure will be judged as an upgrade try (no need to probe it). */
  get tryingUpgrade() {
    return this.upgradeFrom !== null;
  }

  /** Starts a try of the best transport. */
  tryBest() {
    this.upgradeFrom = this.level;
    this.level = 0;
    this.blocked = { sse: 0, ws: 0, poll: 0 };
  }
}
