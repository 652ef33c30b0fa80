// The three ways to reach a Herald gateway, behind one small interface.
//
// A transport is started with the cursor to resume from and reports back through `ctx.on`:
//   open()                 the server accepted the connection
//   event(event, cursor)   a CloudEvent (cursor is null on long-poll: see `cursor`)
//   cursor(cursor)         where the next request resumes (long-poll; SSE: an id without data)
//   control(name, data)    status · reset · overflow · reconnect · $stats …
//   alive()                any sign of life (heartbeat, probe answer, poll answer)
//   fail(failure)          the connection is over; the client decides what next
// It never retries by itself: backoff, fallback and resume live in the client, in one place.
//
// A failure says what kind of trouble it was, because the client reacts differently:
//   network  the server could not be reached (it is down, or we are offline)
//   refused  Herald answered with a JSON error (401, 403, 429, 503 not_ready…): the route works
//   blocked  something answered, but not with this transport (a proxy's 503, a buffering
//            proxy that never lets a byte through, a WebSocket that cannot upgrade)
//   closed   an open connection ended
//   silent   the client's watchdog saw no heartbeat for too long (reported by the client)

import { filterFrame, filterParams } from "./filter.js";
import { SseParser } from "./sse.js";

/** Builds `<base><path>?<params>`; `base` may be empty (same origin); an array value repeats. */
export function endpoint(base, path, params = {}) {
  const url = new URL(String(base ?? "").replace(/\/+$/, "") + path, globalThis.location?.href);
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) for (const item of v) url.searchParams.append(k, String(item));
    else if (v != null && v !== "") url.searchParams.set(k, String(v));
  }
  return url.toString();
}

/** Reads a refusal: Herald's `{"error":{"code","message"}}` body, or someone else's answer. */
export async function describeResponse(res) {
  const retryAfter = parseRetryAfter(res.headers.get("retry-after"));
  let body = null;
  try {
    if ((res.headers.get("content-type") ?? "").includes("json")) body = await res.json();
  } catch {
    body = null;
  }
  const err = body && typeof body === "object" ? body.error : null;
  if (err && typeof err.code === "string") {
    return { kind: "refused", status: res.status, code: err.code, message: err.message ?? err.code, retryAfter };
  }
  return { kind: "blocked", status: res.status, message: `the server answered ${res.status}, and not as Herald`, retryAfter };
}

function parseRetryAfter(value) {
  if (!value) return undefined;
  const secs = Number(value);
  return Number.isFinite(secs) && secs >= 0 ? secs * 1000 : undefined;
}

function topicsParam(topics) {
  return topics && topics.length ? topics.join(",") : undefined;
}

/** Server-sent events over `fetch` (see sse.js for why not `EventSource`). */
export class SseTransport {
  static kind = "sse";

  constructor(ctx) {
    this.ctx = ctx;
    this.abort = new AbortController();
    this.stopped = false;
  }

  start() {
    this.run().catch((err) => this.fail({ kind: "network", message: `cannot reach the gateway (${err?.message ?? err})` }));
  }

  stop() {
    this.stopped = true;
    this.abort.abort();
  }

  fail(failure) {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    this.ctx.on.fail(failure);
  }

  async run() {
    const { base, topics, cursor, token, env, on } = this.ctx;
    const headers = { Accept: "text/event-stream" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (cursor) headers["Last-Event-ID"] = cursor;
    let res;
    try {
      // The cursor goes as `Last-Event-ID` and as `since` (a proxy may drop the header).
      const params = { topics: topicsParam(topics), since: cursor, snapshot: this.ctx.snapshot ? 1 : undefined, presence: this.ctx.presence ? 1 : undefined, ...filterParams(this.ctx.filter) };
      res = await env.fetch(endpoint(base, this.ctx.paths?.stream ?? "/v1/stream", params), {
        headers,
        cache: "no-store",
        credentials: "same-origin",
        signal: this.abort.signal,
      });
    } catch (err) {
      return this.fail({ kind: "network", message: `cannot reach the gateway (${err?.message ?? err})` });
    }
    if (this.stopped) return;
    if (!res.ok) return this.fail(await describeResponse(res));
    if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream") || !res.body) {
      return this.fail({ kind: "blocked", status: res.status, message: "the answer is not an event stream" });
    }
    on.open();
    const parser = new SseParser({
      comment: () => on.alive(),
      retry: () => on.alive(),
      id: (id) => !this.stopped && on.cursor(id),
      message: (m) => this.dispatch(m),
    });
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (this.stopped) return;
        if (done) return this.fail({ kind: "closed", message: "the gateway ended the stream" });
        parser.push(decoder.decode(value, { stream: true }));
      }
    } catch (err) {
      return this.fail({ kind: "closed", message: `the connection dropped (${err?.message ?? err})` });
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  dispatch(m) {
    if (this.stopped) return;
    let data;
    try {
      data = JSON.parse(m.data);
    } catch {
      return; // not ours to interpret; the next frame will tell
    }
    if (m.event === "message") this.ctx.on.event(data, m.id ?? null);
    else this.ctx.on.control(m.event, data, m.id ?? null);
  }
}

/** WebSocket, subprotocol `herald.v1` (proto/websocket.md). */
export class WsTransport {
  static kind = "ws";

  constructor(ctx) {
    this.ctx = ctx;
    this.stopped = false;
    this.opened = false;
  }

  start() {
    const { base, token, env, topics, cursor, filter } = this.ctx;
    const presence = this.ctx.presence ? 1 : undefined;
    // The public WebSocket is read-only: topics, cursor and filter go in the URL.
    const params = this.ctx.public
      ? { topics: topicsParam(topics), since: cursor, presence, ...filterParams(filter) }
      : { access_token: token, presence };
    const url = endpoint(base, this.ctx.paths?.ws ?? "/v1/ws", params).replace(/^http/, "ws");
    try {
      this.ws = new env.WebSocket(url, "herald.v1");
    } catch (err) {
      queueMicrotask(() => this.fail({ kind: "blocked", message: String(err?.message ?? err) }));
      return;
    }
    this.ws.onopen = () => this.onOpen();
    this.ws.onmessage = (m) => this.onMessage(m.data);
    this.ws.onclose = (e) =>
      this.fail({
        kind: this.opened ? "closed" : "network",
        message: this.opened
          ? `the WebSocket closed (${e.code}${e.reason ? ` ${e.reason}` : ""})`
          : `the WebSocket did not open (${e.code})`,
      });
  }

  onOpen() {
    if (this.stopped) return;
    this.opened = true;
    const { topics, cursor, filter } = this.ctx;
    if (!this.ctx.public) this.send({ op: "subscribe", topics: topics ?? [], ...(cursor ? { since: cursor } : {}), ...(this.ctx.snapshot ? { snapshot: true } : {}), ...filterFrame(filter) });
    this.ctx.on.open();
  }

  onMessage(text) {
    if (this.stopped) return;
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    this.ctx.on.alive();
    if (msg.type === "event") return this.ctx.on.event(msg.event, msg.cursor ?? null);
    if (msg.type === "pong") return; // the answer to probe(): alive() above is all it means
    if (msg.type === "cursor") return this.ctx.on.cursor(msg.cursor); // past filtered-out events
    if (msg.type === "error") {
      // An error refused our subscription: the connection carries nothing.
      return this.fail({ kind: "refused", code: msg.code, message: msg.message ?? msg.code });
    }
    this.ctx.on.control(msg.type, msg, msg.cursor ?? null);
  }

  /** Asks the server for a reply (`{"op":"ping"}` → `pong`), so a dead connection shows. */
  probe() {
    if (!this.opened || this.stopped) return;
    this.send({ op: "ping" });
  }

  /** Extends the session with a fresh token. */
  refresh(token) {
    if (this.opened && !this.stopped) this.send({ op: "refresh", token });
  }

  send(frame) {
    try {
      this.ws.send(JSON.stringify(frame));
    } catch {
      // the close event follows
    }
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    try {
      this.ws?.close(1000, "bye");
    } catch {
      // already closing
    }
  }

  fail(failure) {
    if (this.stopped) return;
    this.stop();
    this.ctx.on.fail(failure);
  }
}

/** Long-poll: the last resort, lossless through the cursor each answer carries. */
export class PollTransport {
  static kind = "poll";

  constructor(ctx) {
    this.ctx = ctx;
    this.cursor = ctx.cursor;
    this.stopped = false;
    this.opened = false;
  }

  start() {
    this.loop().catch((err) => this.fail({ kind: "network", message: String(err?.message ?? err) }));
  }

  stop() {
    this.stopped = true;
    this.abort?.abort();
    if (this.timer) this.ctx.env.clearTimeout(this.timer);
  }

  fail(failure) {
    if (this.stopped) return;
    this.stop();
    this.ctx.on.fail(failure);
  }

  async loop() {
    const { base, topics, env, on, pollWait, heartbeat } = this.ctx;
    while (!this.stopped) {
      this.abort = new AbortController();
      // A poll that outlives its `wait` by more than the silence budget is a dead connection.
      // The first request does not wait: it proves the route works (the client shows
      // "polling" at once) and learns the cursor; the next ones wait for events.
      const wait = this.opened ? pollWait : 0;
      this.timer = env.setTimeout(() => this.abort.abort(), wait * 1000 + heartbeat * 2.5);
      const headers = { Accept: "application/json" };
      if (this.ctx.token) headers.Authorization = `Bearer ${this.ctx.token}`;
      let res;
      let body;
      try {
        res = await env.fetch(
          endpoint(base, this.ctx.paths?.poll ?? "/v1/poll", { topics: topicsParam(topics), since: this.cursor, wait, snapshot: this.ctx.snapshot ? 1 : undefined, ...filterParams(this.ctx.filter) }),
          { headers, cache: "no-store", credentials: "same-origin", signal: this.abort.signal },
        );
        if (res.ok) body = await res.json();
      } catch (err) {
        if (this.stopped) return;
        const timedOut = this.abort.signal.aborted;
        return this.fail({
          kind: timedOut ? "silent" : "network",
          message: timedOut ? "the long-poll got no answer in time" : `cannot reach the gateway (${err?.message ?? err})`,
        });
      } finally {
        env.clearTimeout(this.timer);
      }
      if (this.stopped) return;
      if (!res.ok) return this.fail(await describeResponse(res));
      if (!body || !Array.isArray(body.events) || typeof body.cursor !== "string") {
        return this.fail({ kind: "blocked", status: res.status, message: "the answer is not a Herald poll" });
      }
      if (!this.opened) {
        this.opened = true;
        on.open();
      }
      on.alive();
      on.control("status", { state: body.state === "degraded" ? "degraded" : "live" }, null);
      if (body.reset) on.control("reset", body.reset, body.reset.cursor ?? null);
      // Collection rows (`snapshot=1`): the first page; the others are read from /v1/snapshot.
      if (body.snapshot) on.control("snapshot", { ...body.snapshot, cursor: body.cursor, poll: true }, body.cursor);
      for (const doc of Array.isArray(body.stats) ? body.stats : []) on.control("stats", doc, null);
      for (const event of body.events) {
        if (this.stopped) return;
        on.event(event, null);
      }
      if (this.stopped) return;
      this.cursor = body.cursor;
      on.cursor(body.cursor);
    }
  }

  /** A token for the next request. */
  refresh(token) {
    this.ctx.token = token;
  }
}

/** The transports by name. */
export const TRANSPORTS = Object.freeze({ sse: SseTransport, ws: WsTransport, poll: PollTransport });
