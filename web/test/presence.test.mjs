// Presence views and public mode: what the client asks for and how presence messages add up.

import assert from "node:assert/strict";
import { test } from "node:test";

import { HeraldClient } from "../herald.js";
import { PresenceBook } from "../lib/presence.js";
import { SseTransport, WsTransport } from "../lib/transports.js";
import { flush, harness, useFakeTime } from "./helpers.mjs";

useFakeTime();

test("a presence view follows the snapshot, then joins and leaves; the count is the server's", () => {
  const book = new PresenceBook();
  const view = book.view("lobby");
  assert.equal(book.view("lobby"), view, "one view per topic");
  const changes = [];
  const off = view.on("change", (c) => changes.push(c));
  assert.deepEqual([view.count, view.members, view.known], [0, [], false]);
  book.apply({ topic: "lobby", count: 2, joined: ["u2", "u1"], left: [], snapshot: true });
  book.apply({ topic: "lobby", count: 3, joined: ["u3"], left: [] });
  book.apply({ topic: "other", count: 9, joined: ["x"], left: [] });
  book.apply({ topic: "lobby", count: 2, joined: [], left: ["u1"] });
  assert.deepEqual([view.count, view.members, view.known], [2, ["u2", "u3"], true]);
  assert.deepEqual(changes.map((c) => [c.count, c.members]), [[2, ["u1", "u2"]], [3, ["u1", "u2", "u3"]], [2, ["u2", "u3"]]]);
  assert.deepEqual(changes[2].left, ["u1"]);
  // A later snapshot (a reconnect) replaces the set; counts-only tokens get no names.
  book.apply({ topic: "lobby", count: 5, joined: [], left: [], snapshot: true });
  assert.deepEqual([view.count, view.members], [5, []]);
  book.apply({ topic: "lobby", count: "many" });
  assert.equal(view.count, 5, "malformed messages are ignored");
  off();
  book.apply({ topic: "lobby", count: 1, joined: [], left: [] });
  assert.equal(changes.length, 4);
  assert.throws(() => view.on("update", () => {}), TypeError);
});

test("h.presence() turns presence on with a reconnect from the cursor and reads presence messages", async () => {
  const { h, made } = harness({ topics: ["lobby"] });
  await flush();
  assert.equal(made[0].ctx.presence, false);
  made[0].ctx.on.open();
  made[0].ctx.on.control("status", { state: "live", heartbeat_ms: 15000 }, "5-0000000a");
  const lobby = h.presence("lobby");
  await flush();
  assert.equal(made.length, 2, "reconnected to ask for presence");
  assert.equal(made[1].ctx.presence, true);
  assert.equal(made[1].ctx.cursor, "5-0000000a", "from the cursor: nothing lost");
  const seen = [];
  lobby.on("change", (c) => seen.push(c.count));
  made[1].ctx.on.open();
  made[1].ctx.on.control("presence", { topic: "lobby", count: 1, joined: ["u1"], left: [], snapshot: true }, null);
  made[1].ctx.on.control("presence", { topic: "lobby", count: 2, joined: ["u2"], left: [] }, null);
  assert.deepEqual(seen, [1, 2]);
  assert.deepEqual(lobby.members, ["u1", "u2"]);
  assert.equal(h.presence("lobby"), lobby);
  await flush();
  assert.equal(made.length, 2, "already on: no second reconnect");
  h.close();
});

test("public mode needs a tenant, sends no token and uses the public paths", async () => {
  assert.throws(() => new HeraldClient("http://gw.test", { public: true, env: { fetch() {} } }), /tenant/);
  assert.throws(() => new HeraldClient("http://gw.test", { public: true, tenant: "acme", token: "t", shareTabs: false }), /without a token/);
  const { h, made } = harness({ public: true, tenant: "acme", topics: ["prices"] });
  await flush();
  assert.equal(made[0].ctx.token, null);
  assert.equal(made[0].ctx.public, true);
  assert.deepEqual(made[0].ctx.paths, { stream: "/v1/public/acme/stream", ws: "/v1/public/acme/ws", poll: "/v1/public/acme/poll" });
  await assert.rejects(h.history(["prices"]), TypeError);
  h.close();
});

test("the transports put public paths, presence and the read-only WebSocket's parameters on the wire", async () => {
  let url;
  const fetch = async (u) => {
    url = u;
    return new Response("", { status: 404, headers: { "content-type": "text/plain" } });
  };
  const on = { open() {}, event() {}, cursor() {}, control() {}, alive() {}, fail() {} };
  const paths = { stream: "/v1/public/acme/stream", ws: "/v1/public/acme/ws", poll: "/v1/public/acme/poll" };
  const env = { fetch, setTimeout, clearTimeout };
  new SseTransport({ base: "http://gw.test", topics: ["prices"], cursor: "7-0000000a", token: null, presence: true, paths, env, on }).start();
  await flush();
  assert.equal(url, "http://gw.test/v1/public/acme/stream?topics=prices&since=7-0000000a&presence=1");

  const sockets = [];
  class FakeSocket {
    constructor(u, protocol) {
      this.url = u;
      this.protocol = protocol;
      this.sent = [];
      sockets.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close() {}
  }
  const wsEnv = { WebSocket: FakeSocket };
  const pub = new WsTransport({ base: "http://gw.test", topics: ["prices"], cursor: "7-0000000a", public: true, presence: true, paths, env: wsEnv, on, filter: { actions: ["insert"], where: null } });
  pub.start();
  pub.onOpen();
  assert.equal(sockets[0].url, "ws://gw.test/v1/public/acme/ws?topics=prices&since=7-0000000a&presence=1&actions=insert");
  assert.deepEqual(sockets[0].sent, [], "the public WebSocket is never sent a subscribe");
  const priv = new WsTransport({ base: "http://gw.test", topics: ["lobby"], cursor: null, token: "jwt", presence: true, env: wsEnv, on, filter: { actions: null, where: null } });
  priv.start();
  priv.onOpen();
  assert.equal(sockets[1].url, "ws://gw.test/v1/ws?access_token=jwt&presence=1");
  assert.deepEqual(sockets[1].sent, [{ op: "subscribe", topics: ["lobby"] }]);
});
