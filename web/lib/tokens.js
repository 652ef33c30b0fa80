// Tokens: a fixed one, or `getToken()` called before the first connection and again ahead of
// each JWT's `exp`, so a reconnect never waits for a token and never sends an expired one.

/** The `exp` of a JWT in milliseconds, or null when it is not a JWT with one. */
export function tokenExpiry(token) {
  try {
    const part = String(token).split(".")[1];
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const exp = JSON.parse(json).exp;
    return typeof exp === "number" ? exp * 1000 : null;
  } catch {
    return null;
  }
}

export class TokenKeeper {
  /**
   * @param {{ token?: string | null, getToken?: (() => string | Promise<string>) | null, margin: number }} source
   * @param {{ setTimeout: Function, clearTimeout: Function, now: () => number }} env
   * @param {{ refreshed: (token: string) => void, error: (err: unknown) => void }} on
   */
  constructor(source, env, on) {
    this.source = source;
    this.env = env;
    this.on = on;
    this.token = typeof source.getToken === "function" ? null : (source.token ?? null);
    this.expires = null;
    this.issued = null;
    this.timer = null;
  }

  /** The token to connect with, fetching one if there is none or it is about to expire. */
  async current() {
    if (typeof this.source.getToken !== "function") return this.token;
    if (this.token && (this.expires === null || this.expires - this.env.now() > this.margin())) return this.token;
    this.set(await this.source.getToken());
    return this.token;
  }

  /** The gateway refused the token: fetch another before the next attempt. */
  invalidate() {
    if (typeof this.source.getToken === "function") this.token = null;
  }

  /** How long before expiry the next token is fetched: 30 s, or half a short token's life. */
  margin() {
    if (this.expires === null || this.issued === null) return this.source.margin;
    return Math.min(this.source.margin, (this.expires - this.issued) / 2);
  }

  set(token) {
    this.token = token;
    this.expires = tokenExpiry(token);
    this.issued = this.env.now();
    this.stop();
    if (this.expires === null) return;
    const wait = Math.max(0, this.expires - this.margin() - this.env.now());
    this.timer = this.env.setTimeout(async () => {
      this.timer = null;
      try {
        this.set(await this.source.getToken());
        this.on.refreshed(this.token);
      } catch (err) {
        this.on.error(err);
      }
    }, wait);
  }

  stop() {
    if (this.timer) this.env.clearTimeout(this.timer);
    this.timer = null;
  }
}
