// What a follower tab does with what the leader tab relays: the same cursor, state and
// events as the leader's connection, each event handed to the app once (the client's dedup
// drops what a takeover replays twice).

import { reconnect } from "./connection.js";

/**
 * Applies one message of the tab group to `client` (a HeraldClient).
 * @param {import("./client.js").HeraldClient} client
 * @param {any} m  a message TabGroup accepted (from the current leader, or a tab's hello)
 */
export function onTabMessage(client, m) {
  if (m.t === "hello") {
    if (client.role === "leader") client.group.post({ t: "state", state: client.state, reason: client.reason, stats: client.stats() });
    return;
  }
  if (m.t === "reconnect") {
    // A follower's app called reconnect(): the leader drops the shared connection for it.
    if (client.role === "leader") reconnect(client, "another tab asked to reconnect");
    return;
  }
  if (client.role !== "follower") return; // a leader trusts only its own connection
  switch (m.t) {
    case "event":
      client.advance(m.cursor);
      client.dispatch(m.event, m.at ?? null);
      break;
    case "catchup":
      // The events this tab missed while it was frozen or leading a stale connection.
      for (const r of Array.isArray(m.events) ? m.events : []) {
        client.advance(r.cursor);
        client.dispatch(r.event, r.at ?? null);
      }
      break;
    case "cursor":
      client.advance(m.cursor);
      break;
    case "state":
      client.remote = m.stats;
      client.advance(m.stats?.cursor);
      client.setState(m.state, m.reason);
      break;
    case "resync":
      if (m.info?.cursor) client.cursor = m.info.cursor;
      client.emit("resync", m.info);
      break;
    case "named":
      client.emit(m.name, m.data);
      break;
    case "beat":
      client.lastHeartbeatAt = m.at;
      break;
    default:
      break;
  }
}
