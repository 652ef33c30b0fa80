// `GET /v1/snapshot` (proto/state.md): the rows of some collections and the cursor they
// reflect, page by page. A collection reads it when the stream does not bring a snapshot —
// a follower tab, a collection opened after the connection, the pages after a long-poll's
// first one — and starts over when the gateway no longer holds the snapshot (410).

import { endpoint } from "./transports.js";

/** The gateway refused a snapshot request: `status`, its error `code`, `retryAfter` (ms). */
export class SnapshotError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || `snapshot request failed (${status})`);
    this.name = "SnapshotError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  /** Whether asking again can help (not a 400 `not_a_collection`, not a 403). */
  get retryable() {
    return !(this.status === 400 || this.status === 403 || this.status === 404);
  }
}

/**
 * One page: `{cursor, topics, more, after?}`. Rejects with a SnapshotError when the gateway
 * refuses, and with the fetch error when it cannot be reached.
 * @param {{ base: string, token: string | null, fetch: Function }} ctx
 * @param {string[]} topics
 * @param {{ cursor?: string | null, after?: string | null, limit?: number | null, signal?: AbortSignal }} [page]
 */
export async function fetchSnapshotPage(ctx, topics, page = {}) {
  const params = { topics: topics.join(","), limit: page.limit ?? undefined };
  if (page.cursor && page.after) Object.assign(params, { cursor: page.cursor, after: page.after });
  const headers = { Accept: "application/json" };
  if (ctx.token) headers.Authorization = `Bearer ${ctx.token}`;
  const res = await ctx.fetch(endpoint(ctx.base, "/v1/snapshot", params), { headers, cache: "no-store", credentials: "same-origin", signal: page.signal });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok || !body || typeof body.cursor !== "string" || typeof body.topics !== "object") {
    const secs = Number(res.headers?.get?.("retry-after"));
    throw new SnapshotError(res.status, body?.error?.code ?? "bad_response", body?.error?.message, Number.isFinite(secs) && secs >= 0 ? secs * 1000 : undefined);
  }
  return body;
}
