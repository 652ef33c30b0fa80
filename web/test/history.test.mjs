// h.history and the `history: n` option: the request it sends, the page it answers, the
// errors it throws, and a client that opens with the latest events then streams on from the
// page's cursor with nothing twice.

import assert from "node:assert/strict";
import { test } from "node:test";

import { HistoryError } from "../herald.js";
import { event, flush, harness, reply, useFakeTime } from "./helpers.mjs";

useFakeTime();

const item = (seq, id, topic = "leads") => ({ cursor: `${seq}-0000000a`, topic, event: event(id, topic) });

test("h.history asks /v1/history with the token, topics, limit and before, and answers its JSON", async () => {
  const page = { events: [item(3, "a"), item(5, "b")], cursor: "9-0000000a", more: true };
  const { h, fetched } = harness(
    { token: "jwt-1", topics: ["leads", "$stats"] },
    { fetch: async (url) => (url.includes("/v1/history") ? reply(200, page) : reply(200, { events: [], cursor: "1-0000000a" })) },
  );
  assert.deepEqual(await h.history(null, { limit: 2 }), page);
  const first = fetched.find((f) => f.url.includes("/v1/history"));
  assert.equal(first.url, "http://gw.test/v1/history?topics=leads&limit=2", "$stats is not an event topic");
  assert.equal(first.init.headers.Authorization, "Bearer jwt-1");
  await h.history(["deals", "leads"], { before: "3-0000000a" });
  assert.equal(fetched.at(-1).url, "http://gw.test/v1/history?topics=deals%2Cleads&before=3-0000000a");
  h.close();
});

test("a refused history request rejects with the gateway's status and code", async () => {
  const { h } = harness(
    { token: "jwt-1" },
    { fetch: async () => reply(410, { error: { code: "out_of_retention", message: "gone" } }) },
  );
  await assert.rejects(h.history(["leads"], { before: "1-0000000a" }), (err) => {
    assert.ok(err instanceof HistoryError);
    assert.equal(err.status, 410);
    assert.equal(err.code, "out_of_retention");
    return true;
  });
  h.close();
});

test("history: n hands the latest events first, then streams from the page's cursor, nothing twice", async () => {
  const page = { events: [item(4, "a"), item(6, "b")], cursor: "8-0000000a", more: false };
  const { h, made, fetched } = harness({ token: "jwt-1", topics: ["leads"], history: 50 }, { fetch: async () => reply(200, page) });
  const got = [];
  h.subscribe("*", (e, meta) => got.push([e.id, meta.cursor]));
  await flush();
  assert.equal(fetched[0].url, "http://gw.test/v1/history?topics=leads&limit=50");
  assert.deepEqual(got, [["a", "4-0000000a"], ["b", "6-0000000a"]], "oldest first, each with its cursor");
  assert.equal(made.length, 1, "then it connects");
  assert.equal(made[0].ctx.cursor, "8-0000000a", "from the page's cursor");
  made[0].ctx.on.open();
  // A live event the page already had (a takeover replaying it) is dropped; a new one is not.
  made[0].ctx.on.event(event("b"), "6-0000000a");
  made[0].ctx.on.event(event("c"), "9-0000000a");
  assert.deepEqual(got.map(([id]) => id), ["a", "b", "c"]);
  assert.equal(h.cursor, "9-0000000a");
  h.close();
});

test("history: n that fails reports an error and connects from the current position", async () => {
  const { h, made } = harness({ token: "jwt-1", history: 10 }, { fetch: async () => reply(503, { error: { code: "not_ready", message: "x" } }) });
  const errors = [];
  h.on("error", (f) => errors.push(f));
  await flush();
  assert.deepEqual(errors.map((f) => [f.code, f.status]), [["not_ready", 503]]);
  assert.equal(made.length, 1);
  assert.equal(made[0].ctx.cursor, null);
  h.close();
});
