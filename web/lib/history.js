// History: the latest events of some topics, oldest first, and the cursor to stream on from
// (`GET /v1/history`), so a page opens with context instead of "waiting for the first event".
//
// `h.history(topics, { limit, before, actions, where })` answers the gateway's JSON as it is:
//   { events: [{ cursor, topic, event }, …oldest first], cursor, more }
// `cursor` is where a stream continues after the page with no gap and no repeat; page back
// with `before: page.events[0].cursor` while `more` is true.
//
// With the `history: n` option the client does it by itself before it first connects: it
// hands the newest n events to the app like any other event (oldest first, once, through the
// same dedup), then streams from the page's cursor. A failed history request is reported as an
// `error` and the client connects anyway, from the current position.

import { normalizeFilter } from "./filter.js";

/** The gateway refused a history request (`status`, and its error `code`). */
export class HistoryError extends Error {
  constructor(status, code, message) {
    super(message || `history request failed (${status})`);
    this.name = "HistoryError";
    this.status = status;
    this.code = code;
  }
}

/** The event topics of `topics` (`$stats` is not one). */
function eventTopics(topics) {
  const list = topics == null ? [] : Array.isArray(topics) ? topics : [topics];
  return list.map(String).filter((t) => t && t !== "$stats");
}

/**
 * `GET /v1/history`. `topics` empty: every topic the token grants.
 * @param {{ base: string, token: string | null, fetch: Function }} ctx
 * @param {string[] | string} [topics]
 * @param {{ limit?: number, before?: string | null, actions?: string[] | null, where?: string[] | Record<string, unknown> | null }} [options]
 */
export async function fetchHistory(ctx, topics, options = {}) {
  const q = new URLSearchParams();
  const list = eventTopics(topics);
  if (list.length) q.set("topics", list.join(","));
  if (options.limit != null) q.set("limit", String(options.limit));
  if (options.before) q.set("before", String(options.before));
  const filter = normalizeFilter(options);
  if (filter.actions) q.set("actions", filter.actions.join(","));
  for (const w of filter.where) q.append("where", w);
  const query = q.toString();
  const url = `${String(ctx.base ?? "").replace(/\/+$/, "")}/v1/history${query ? `?${query}` : ""}`;
  const headers = ctx.token ? { Authorization: `Bearer ${ctx.token}` } : {};
  const res = await ctx.fetch(url, { headers, cache: "no-store" });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok || !body || !Array.isArray(body.events)) {
    throw new HistoryError(res.status, body?.error?.code ?? "bad_response", body?.error?.message);
  }
  return body;
}

/**
 * Before the first connection of a client created with `history: n` (and no `cursor`): hands
 * the newest n events to the app, oldest first, and moves the cursor to the page's, so the
 * stream continues right after them.
 * @param {import("./client.js").HeraldClient} client
 */
export async function openWithHistory(client) {
  try {
    const page = await client.history(client.topics, { limit: client.opts.history });
    if (client.closed || client.cursor !== null) return;
    for (const item of page.events) {
      client.advance(item.cursor);
      client.dispatch(item.event, item.cursor);
    }
    client.advance(page.cursor);
  } catch (err) {
    client.emit("error", { kind: "refused", code: err?.code ?? "history_unavailable", status: err?.status, message: String(err?.message ?? err) });
  }
}
