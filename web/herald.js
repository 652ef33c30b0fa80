// herald-client: the browser client of Herald.
//
//   import { Herald } from "/herald.js";
//   const h = Herald.connect("", { getToken: () => fetch("/token").then(r => r.text()), topics: ["leads"] });
//   const off = h.subscribe("leads", (event) => render(event));
//   h.on("state", (state, { reason }) => indicator(state, reason));
//   h.on("resync", () => refetchSnapshot());
//   const page = await h.history(["leads"], { limit: 50 });  // the latest events, oldest first
//   h.reconnect();  h.isConnected();  h.stats().lastConnected  // a new connection now, from the cursor
//   const leads = h.collection("leads", { key: "id" });  // leads.items: Map key → row, live
//
// Dependency-free ES module. The parts, in lib/: client.js (the state machine), recovery.js
// (watchdog, retry with backoff, fallback and upgrade), transports.js (SSE over fetch,
// WebSocket, long-poll), sse.js (the event-stream parser), backoff.js, cursor.js (cursors),
// delivery.js (dedup, subscriptions), tokens.js (getToken ahead of expiry), tabs.js (one
// connection shared by every tab), history.js (the latest events, `GET /v1/history`),
// connection.js (reconnect(), isConnected(), stats()), collection.js + rows.js + snapshot.js
// (h.collection(): a collection's rows, loaded once and followed live).

import { HeraldClient } from "./lib/client.js";

export { HeraldClient, STATES, DEFAULTS, FALLBACK_ORDER, tokenExpiry } from "./lib/client.js";
export { backoffDelay, BACKOFF } from "./lib/backoff.js";
export { SseParser } from "./lib/sse.js";
export { HistoryError } from "./lib/history.js";
export { Collection, COLLECTION_STATUSES } from "./lib/collection.js";
export { SnapshotError } from "./lib/snapshot.js";
export { parseCursor, advances, eventKey, RecentSet } from "./lib/cursor.js";

/** The entry point: `Herald.connect(url, options)`. */
export const Herald = Object.freeze({
  /**
   * Connects to the gateway at `url` ("" = this page's origin) and keeps the connection up
   * until `close()`.
   */
  connect(url, options) {
    return new HeraldClient(url, options);
  },
});

export default Herald;
