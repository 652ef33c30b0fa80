// Server-side filters: the `actions` / `where` options go to the gateway on every transport
// (SSE and long-poll query, WebSocket subscribe frame) and on history requests.

import assert from "node:assert/strict";
import { test } from "node:test";

import { normalizeFilter } from "../lib/filter.js";
import { PollTransport, SseTransport, WsTransport } from "../lib/transports.js";
import { flush, harness, reply, useFakeTime } from "./helpers.mjs";

useFakeTime();

const on = Object.fromEntries(["open", "event", "cursor", "control", "alive", "fail"].map((k) => [k, () => {}]));
const filter = normalizeFilter({ actions: "insert, update", where: { "data.status": "active", "data.n": 5, "data.gone": null } });
const WHERE = ["data.status:active", "data.n:5", "data.gone:null"];

test("the options normalize to a list of actions and path:value conditions", () => {
  assert.deepEqual(filter, { actions: ["insert", "update"], where: WHERE });
  assert.deepEqual(normalizeFilter({ actions: [], where: ["data.s:a:b"] }), { actions: null, where: ["data.s:a:b"] });
  assert.deepEqual(normalizeFilter({}), { actions: null, where: [] });
});

test("SSE and long-poll send actions once and where repeated; WebSocket in the subscribe frame", async () => {
  const urls = [];
  const fetch = async (url) => {
    urls.push(new URL(url));
    return new Response("nope", { status: 503, headers: { "content-type": "text/plain" } });
  };
  const ctx = { base: "http://gw.test", topics: ["jobs"], cursor: "4-0000000a", token: "jwt", filter, pollWait: 25, heartbeat: 15000, on };
  new SseTransport({ ...ctx, env: { setTimeout, clearTimeout, fetch } }).start();
  new PollTransport({ ...ctx, env: { setTimeout, clearTimeout, fetch } }).start();
  await flush();
  assert.deepEqual(urls.map((u) => u.pathname), ["/v1/stream", "/v1/poll"]);
  for (const u of urls) {
    assert.equal(u.searchParams.get("actions"), "insert,update");
    assert.deepEqual(u.searchParams.getAll("where"), WHERE);
    assert.equal(u.searchParams.get("topics"), "jobs");
  }
  const sent = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
    }
    send(text) {
      sent.push(JSON.parse(text));
    }
  }
  const ws = new WsTransport({ ...ctx, env: { setTimeout, clearTimeout, WebSocket: FakeSocket } });
  ws.start();
  assert.ok(!ws.ws.url.includes("where"), "not in the URL");
  ws.onOpen();
  assert.deepEqual(sent, [{ op: "subscribe", topics: ["jobs"], since: "4-0000000a", actions: ["insert", "update"], where: WHERE }]);
});

test("a client passes its filter to every transport and to history; unfiltered clients send none", async () => {
  const { h, made, fetched } = harness(
    { token: "jwt-1", topics: ["jobs"], actions: ["insert"], where: ["data.status:active"] },
    { fetch: async () => reply(200, { events: [], cursor: "9-0000000a", more: false }) },
  );
  await flush();
  assert.deepEqual(made[0].ctx.filter, { actions: ["insert"], where: ["data.status:active"] });
  await h.history();
  assert.equal(fetched.at(-1).url, "http://gw.test/v1/history?topics=jobs&actions=insert&where=data.status%3Aactive");
  await h.history(null, { where: [] });
  assert.equal(fetched.at(-1).url, "http://gw.test/v1/history?topics=jobs&actions=insert", "options override");
  h.close();
  const plain = harness({ token: "jwt-1", topics: ["jobs"] });
  await flush();
  assert.deepEqual(plain.made[0].ctx.filter, { actions: null, where: [] });
  plain.h.close();
});

test("SSE: an id without data (a filtered stream's heartbeat) moves the cursor and fires no event", async () => {
  const log = [];
  const rec = Object.fromEntries(["open", "event", "cursor", "control", "alive", "fail"].map((k) => [k, (...a) => log.push([k, ...a])]));
  const enc = new TextEncoder();
  const body = new ReadableStream({
    start(c) {
      c.enqueue(enc.encode('id: 8-0000000a\ndata: {"id":"a"}\n\nid: 12-0000000a\n: hb\n\n'));
      c.close();
    },
  });
  const fetch = async () => new Response(body, { headers: { "content-type": "text/event-stream" } });
  new SseTransport({ base: "http://gw.test", topics: ["jobs"], cursor: null, token: "jwt", filter, env: { setTimeout, clearTimeout, fetch }, on: rec }).start();
  for (let i = 0; i < 20 && !log.some(([k]) => k === "fail"); i++) await flush();
  const seen = log.flatMap(([k, a, b]) => (k === "event" ? [[k, b]] : k === "cursor" ? [[k, a]] : []));
  assert.deepEqual(seen, [["event", "8-0000000a"], ["cursor", "12-0000000a"]]);
});

test("WebSocket: a cursor frame (past filtered-out events) moves the cursor and fires no event", () => {
  const log = [];
  const rec = Object.fromEntries(["open", "event", "cursor", "control", "alive", "fail"].map((k) => [k, (...a) => log.push([k, ...a])]));
  class FakeSocket {
    send() {}
  }
  const ws = new WsTransport({ base: "http://gw.test", topics: ["jobs"], cursor: null, token: "jwt", filter, env: { setTimeout, clearTimeout, WebSocket: FakeSocket }, on: rec });
  ws.start();
  ws.onOpen();
  ws.onMessage(JSON.stringify({ type: "cursor", cursor: "12-0000000a" }));
  assert.deepEqual(log.filter(([k]) => k !== "alive"), [["open"], ["cursor", "12-0000000a"]]);
});
