// Public mode (docs/gateway.md#public-topics): a tenant's public topics, read without a token
// from `/v1/public/<tenant>/{stream,ws,poll}`. The same client — resume, backoff, fallback,
// tab sharing — over other paths, with no token; the public WebSocket takes its topics,
// cursor and filter in the URL and is never sent a `subscribe`.

/** Checks the public options: `public: true` needs a `tenant` and takes no token. */
export function checkPublic(opts) {
  if (!opts.public) return;
  if (typeof opts.tenant !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(opts.tenant)) {
    throw new TypeError("public: true needs the tenant whose public topics to read (tenant: \"acme\")");
  }
  if (opts.token || opts.getToken) throw new TypeError("public: true reads without a token; drop token and getToken");
}

/** The paths of the three transports: the private ones, or the tenant's public ones. */
export function paths(opts) {
  if (!opts.public) return { stream: "/v1/stream", ws: "/v1/ws", poll: "/v1/poll" };
  const base = `/v1/public/${encodeURIComponent(opts.tenant)}`;
  return { stream: `${base}/stream`, ws: `${base}/ws`, poll: `${base}/poll` };
}
