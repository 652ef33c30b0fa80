// The app's handle on the connection: `reconnect()` drops it and connects again at once from
// the cursor, `isConnected()` says whether events arrive as they are published, and `stats()`
// says what the connection has done so far.
//
// Each function takes the HeraldClient whose state it reads or moves, as recovery.js and
// follow.js do. In a tab group the connection belongs to the leader tab: a follower's
// `reconnect()` asks the leader over the channel, and its `stats()` reports the leader's
// connection (relayed with every state change) next to what this tab received.

/** The states in which events arrive live: `live`, and `polling` (live over long-poll). */
const CONNECTED = new Set(["live", "polling"]);

/** Whether the client receives events live right now (see CONNECTED). */
export function isConnected(client) {
  return !client.closed && CONNECTED.has(client.state);
}

/**
 * Ends the current connection and opens a new one at once, from the cursor: the dead
 * connection's callbacks are ignored from now on, so every event it had not handed over yet
 * comes again on the new one (no gap), and the client's dedup drops what it had (no
 * duplicate). The backoff starts over. A follower tab asks the leader tab to do it.
 * @param {import("./client.js").HeraldClient} client
 */
export function reconnect(client, why = "the app asked to reconnect") {
  if (client.closed) return;
  if (client.role === "follower") {
    client.group?.send({ t: "reconnect", from: client.group.id, why });
    return;
  }
  // Still reading the `history: n` page: the first connection is about to open anyway.
  if (!client.started) return;
  client.gen++; // callbacks of the dropped connection are ignored from now on
  client.transport?.stop();
  client.transport = null;
  client.opened = false;
  for (const t of ["retry", "watchdog", "upgrade"]) client.clearTimer(t);
  client.attempt = 0;
  client.setState(client.hadOpen ? "reconnecting" : "connecting", why);
  client.connect();
}

/** A follower's value of `lastConnected`: the leader's, as a Date whatever the channel made of it. */
function asDate(value) {
  if (value == null) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

/**
 * A snapshot of the client (HeraldStats in herald.d.ts): the connection's state and counts
 * (the leader tab's, in a follower) and what this tab received.
 * @param {import("./client.js").HeraldClient} client
 */
export function connectionStats(client) {
  const { delivery } = client;
  const own = {
    state: client.state,
    reason: client.reason,
    transport: client.kind,
    cursor: client.cursor,
    lastConnected: asDate(client.lastConnectedAt),
    connects: client.connects,
    reconnects: client.reconnects,
    attempt: client.attempt,
    eventsReceived: delivery.delivered + delivery.duplicates,
    lastEvent: delivery.lastEvent,
    lastEventAt: delivery.lastEventAt,
    lastHeartbeatAt: client.lastHeartbeatAt,
    delivered: delivery.delivered,
    duplicates: delivery.duplicates,
    role: client.role,
  };
  const r = client.role === "follower" ? client.remote : null;
  if (!r) return own;
  return {
    ...own,
    transport: r.transport,
    lastConnected: asDate(r.lastConnected),
    connects: r.connects ?? 0,
    reconnects: r.reconnects,
    attempt: r.attempt,
  };
}

/**
 * A follower becomes the leader: the shared connection's counts carry on from the last ones
 * the old leader relayed, so its own first connection counts as a reconnect.
 * @param {import("./client.js").HeraldClient} client
 */
export function inheritCounts(client) {
  const r = client.remote;
  if (!r) return;
  client.connects = Math.max(client.connects, r.connects ?? 0);
  client.reconnects = Math.max(client.reconnects, r.reconnects ?? 0);
  client.lastConnectedAt = client.lastConnectedAt ?? asDate(r.lastConnected)?.getTime() ?? null;
}
