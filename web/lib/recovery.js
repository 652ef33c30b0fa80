// How the client notices that a connection is dead and comes back: the watchdog that counts
// missed heartbeats, the failure path (stop the transport, tell the app, wait with backoff),
// the probe that tells "this transport is blocked" from "the gateway is down", and the timer
// that tries the better transport again after a fallback.
//
// Each function takes the HeraldClient whose state it moves, as follow.js does; the client
// owns the state, this module owns the decisions.

import { backoffDelay } from "./backoff.js";
import { endpoint } from "./transports.js";

/** Failures after which the first retry is immediate: the gateway asked for a new connection. */
const IMMEDIATE = new Set(["draining", "token_expired", "replay_failed", "overflow"]);

/** A failure as the state's reason: `code: message`, without repeating the code. */
function describe(failure) {
  const message = failure.message ?? failure.kind;
  return failure.code && !message.includes(failure.code) ? `${failure.code}: ${message}` : message;
}

/**
 * Ends the connection of generation `gen` after `failure`, tells the app (`error`), and
 * schedules the next attempt: at once, or after a backoff delay that honours `Retry-After`.
 * @param {import("./client.js").HeraldClient} client
 */
export async function fail(client, gen, failure) {
  if (gen !== client.gen || client.closed) return;
  const wasOpen = client.opened;
  const kind = client.kind;
  const failedGen = ++client.gen; // callbacks of the failed connection are ignored from now on
  client.transport?.stop();
  client.transport = null;
  client.opened = false;
  for (const t of ["retry", "watchdog", "upgrade"]) client.clearTimer(t);
  client.lastFailure = failure;
  client.emit("error", failure);
  // `snapshot=1` refused: the next connection goes without it, the collections say why.
  if (failure.code === "not_a_collection") for (const c of client.collections ?? []) c.refused(failure);

  let now = IMMEDIATE.has(failure.code) && client.attempt === 0;
  // An expired or refused token is fetched again (with getToken) before the next attempt.
  if (failure.code === "token_expired" || failure.status === 401) client.tokens.invalidate();
  if (client.ladder.auto && !wasOpen) {
    const blocked = !client.ladder.tryingUpgrade && (await isBlocked(client, kind, failure));
    if (failedGen !== client.gen || client.closed) return;
    if (client.ladder.failedBeforeOpen(kind, blocked)) now = true;
  }
  if (failedGen !== client.gen || client.closed) return;

  const { backoff } = client.opts;
  const delay = now
    ? 0
    : Math.min(Math.max(backoffDelay(client.attempt++, { ...backoff, random: client.env.random }), failure.retryAfter ?? 0), backoff.cap);
  client.nextRetryIn = delay;
  const next = delay >= 1000 ? ` · next try in ${Math.round(delay / 1000)} s` : "";
  if (client.isOffline()) client.setState("offline", `the browser is offline${next}`);
  else client.setState(client.hadOpen ? "reconnecting" : "connecting", `${describe(failure)}${next}`);
  client.timers.retry = client.env.setTimeout(() => {
    client.timers.retry = null;
    client.connect();
  }, delay);
}

/** Whether a failure means "this transport does not get through", not "server down". */
async function isBlocked(client, kind, failure) {
  if (failure.kind === "blocked") return true;
  if (kind === "ws" && failure.kind === "network" && !client.isOffline()) {
    // A browser hides why a WebSocket failed. If plain HTTP reaches the gateway, the
    // WebSocket is what is blocked.
    const res = await ask(client, "/v1/poll", { wait: 0 }, client.tokens.token);
    return res !== null;
  }
  return false;
}

/** A bounded GET to the gateway; resolves to the response, or null if unreachable. */
async function ask(client, path, params, token) {
  const abort = new AbortController();
  const timer = client.env.setTimeout(() => abort.abort(), client.heartbeat);
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const topics = client.topics.length ? client.topics.join(",") : undefined;
    return await client.env.fetch(endpoint(client.url, path, { topics, ...params }), {
      headers,
      cache: "no-store",
      credentials: "same-origin",
      signal: abort.signal,
    });
  } catch {
    return null;
  } finally {
    client.env.clearTimeout(timer);
  }
}

/** After a fallback: tries the best transport again once the ladder's delay has passed. */
export function scheduleUpgrade(client) {
  client.clearTimer("upgrade");
  const gen = client.gen;
  client.timers.upgrade = client.env.setTimeout(() => {
    client.timers.upgrade = null;
    if (gen !== client.gen || client.closed || !client.opened) return;
    client.ladder.tryBest();
    client.transport?.stop();
    client.transport = null;
    client.connect();
  }, client.ladder.upgradeDelay);
}

/** How long a connection may stay silent before it counts as dead, in ms. */
export function silenceBudget(client) {
  return client.heartbeat * client.opts.silence;
}

/**
 * Watches connection `gen`: probes it after a heartbeat of silence and fails it after
 * `silence` heartbeats (blocked if it opened but never carried data).
 */
export function armWatchdog(client, gen) {
  const tick = () => Math.max(50, Math.floor(client.heartbeat / 2));
  const check = () => {
    client.timers.watchdog = null;
    if (gen !== client.gen || client.closed) return;
    const idle = client.env.now() - client.lastActivity;
    if (idle > silenceBudget(client)) {
      const blocked = client.opened && !client.sawData;
      return fail(client, gen, {
        kind: blocked ? "blocked" : client.opened ? "silent" : "network",
        message: client.opened ? `no heartbeat for ${Math.round(idle / 1000)} s` : `no answer for ${Math.round(idle / 1000)} s`,
      });
    }
    if (client.opened && idle >= client.heartbeat) client.transport?.probe?.();
    client.timers.watchdog = client.env.setTimeout(check, tick());
  };
  client.timers.watchdog = client.env.setTimeout(check, tick());
}
