// The real transports against fake servers: what goes on the wire and how answers are read.

import assert from "node:assert/strict";
import { test } from "node:test";

import { PollTransport, SseTransport } from "../lib/transports.js";

function recorder() {
  const log = [];
  const on = {};
  for (const k of ["open", "event", "cursor", "control", "alive", "fail"]) on[k] = (...args) => log.push([k, ...args]);
  return { log, on };
}

const env = { setTimeout, clearTimeout };

function streamOf(chunks) {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  });
}

async function settle(log, kind) {
  for (let i = 0; i < 100 && !log.some(([k]) => k === kind); i++) await new Promise((r) => setTimeout(r, 1));
}

test("SSE: sends the token and cursor as headers, reads events, controls and heartbeats", async () => {
  const { log, on } = recorder();
  let seen;
  const fetch = async (url, init) => {
    seen = { url, init };
    return new Response(
      streamOf(["retry: 1500\n\n", 'id: 8-0000000a\ndata: {"id":"a","topic":"leads"}\n\n: h', "b\n\n", 'event: status\ndata: {"state":"degraded"}\n\n']),
      { headers: { "content-type": "text/event-stream" } },
    );
  };
  const t = new SseTransport({ base: "http://gw.test/", topics: ["leads", "deals"], cursor: "7-0000000a", token: "jwt", env: { ...env, fetch }, on });
  t.start();
  await settle(log, "fail");
  assert.equal(seen.url, "http://gw.test/v1/stream?topics=leads%2Cdeals&since=7-0000000a");
  assert.equal(seen.init.headers.Authorization, "Bearer jwt");
  assert.equal(seen.init.headers["Last-Event-ID"], "7-0000000a");
  assert.deepEqual(log.map(([k]) => k), ["open", "alive", "event", "alive", "control", "fail"]);
  assert.deepEqual(log[2], ["event", { id: "a", topic: "leads" }, "8-0000000a"]);
  assert.deepEqual(log[4].slice(0, 3), ["control", "status", { state: "degraded" }]);
  assert.equal(log[5][1].kind, "closed");
});

test("SSE: Herald's refusals are 'refused', anybody else's are 'blocked', no answer is 'network'", async () => {
  const cases = [
    [async () => new Response(JSON.stringify({ error: { code: "not_ready", message: "starting" } }), { status: 503, headers: { "content-type": "application/json", "retry-after": "1" } }), { kind: "refused", code: "not_ready", retryAfter: 1000 }],
    [async () => new Response("nope", { status: 503, headers: { "content-type": "text/plain" } }), { kind: "blocked", status: 503 }],
    [async () => new Response("<html>", { status: 200, headers: { "content-type": "text/html" } }), { kind: "blocked", status: 200 }],
    [async () => Promise.reject(new TypeError("fetch failed")), { kind: "network" }],
  ];
  for (const [fetch, want] of cases) {
    const { log, on } = recorder();
    new SseTransport({ base: "http://gw.test", topics: [], cursor: null, token: null, env: { ...env, fetch }, on }).start();
    await settle(log, "fail");
    const failure = log.find(([k]) => k === "fail")[1];
    for (const [k, v] of Object.entries(want)) assert.equal(failure[k], v, `${k} of ${JSON.stringify(failure)}`);
  }
});

test("long-poll: the first request does not wait, the next resume from each answer's cursor", async () => {
  const { log, on } = recorder();
  const urls = [];
  const answers = [
    { events: [], cursor: "5-0000000a", state: "live" },
    { events: [{ id: "a" }, { id: "b" }], cursor: "7-0000000a", state: "live" },
    { events: [], cursor: "9-0000000b", state: "live", reset: { reason: "epoch_mismatch", cursor: "9-0000000b" } },
  ];
  let t;
  const fetch = async (url) => {
    urls.push(new URL(url));
    const body = answers.shift();
    if (!body) {
      t.stop();
      return new Response("{}", { status: 200, headers: { "content-type": "application/json" } });
    }
    return new Response(JSON.stringify(body), { headers: { "content-type": "application/json" } });
  };
  t = new PollTransport({ base: "http://gw.test", topics: [], cursor: "4-0000000a", token: "jwt", pollWait: 25, heartbeat: 15000, env: { ...env, fetch }, on });
  t.start();
  for (let i = 0; i < 100 && urls.length < 4; i++) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(urls.map((u) => [u.searchParams.get("since"), u.searchParams.get("wait")]), [
    ["4-0000000a", "0"],
    ["5-0000000a", "25"],
    ["7-0000000a", "25"],
    ["9-0000000b", "25"],
  ]);
  const events = log.filter(([k]) => k === "event").map(([, e, c]) => [e.id, c]);
  assert.deepEqual(events, [["a", null], ["b", null]]);
  assert.ok(log.some(([k, name, data]) => k === "control" && name === "reset" && data.reason === "epoch_mismatch"));
  assert.equal(log.filter(([k]) => k === "open").length, 1);
});
