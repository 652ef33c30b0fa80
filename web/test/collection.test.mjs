// Collections (lib/rows.js, lib/collection.js): snapshot pages accumulated until `more:false`,
// events after the snapshot's cursor applied once, older and duplicate ones dropped, delete,
// truncate, a reset followed by a fresh snapshot, `GET /v1/snapshot` when the stream does not
// bring one (paging, 410, a snapshot behind the stream), long-poll batches, follower tabs and
// the status. The server is played through the fake transports and a fake fetch that speak
// the wire format of proto/state.md.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Rows, rowKey } from "../lib/rows.js";
import { advance, flush, harness, reply, useFakeTime } from "./helpers.mjs";
import { group, advance as tabsAdvance, threeTabs } from "./tabgroup.mjs";

useFakeTime();

const lead = (id, name, extra = {}) => ({ id, name, status: "new", ...extra });

/** A CloudEvent of the `leads` collection. */
function change(id, action, data, topic = "leads") {
  return { specversion: "1.0", id, source: "test", type: `herald.${topic}.${action}`, topic, action, data };
}

const rowsOf = (c) => Object.fromEntries([...c.items].map(([k, v]) => [k, v.name ?? v]));

/** A client over SSE with a collection of `leads`; the stream opened at `head`. */
async function sseCollection(options = {}, fetch) {
  const t = harness({ topics: ["leads", "deals"] }, { fetch });
  const leads = t.h.collection("leads", options);
  const changes = [];
  const statuses = [];
  leads.on("change", (c) => changes.push(c));
  leads.on("status", (s) => statuses.push(s));
  await flush();
  const conn = t.made[0];
  conn.ctx.on.open();
  conn.ctx.on.control("status", { state: "live", heartbeat_ms: 15000 }, "1-0000000a");
  return { ...t, leads, changes, statuses, conn };
}

test("the stream's snapshot pages accumulate until more:false; then events after its cursor apply, older ones are dropped", async () => {
  const { h, leads, changes, statuses, conn, fetched } = await sseCollection();
  assert.equal(conn.ctx.snapshot, true, "the stream is asked for the rows");
  assert.equal(leads.status, "loading");
  conn.ctx.on.control("snapshot", { cursor: "5-0000000a", topics: { leads: { 1: lead(1, "Ada") }, deals: {} }, more: true }, null);
  assert.equal(leads.items.size, 0, "nothing shown before the last page");
  assert.equal(leads.status, "loading");
  conn.ctx.on.control("snapshot", { cursor: "5-0000000a", topics: { leads: { 2: lead(2, "Grace") } }, more: false }, "5-0000000a");
  assert.deepEqual(rowsOf(leads), { 1: "Ada", 2: "Grace" });
  assert.equal(leads.status, "live");
  assert.equal(h.cursor, "5-0000000a", "the stream goes on from the snapshot's cursor");
  assert.deepEqual(changes.map((c) => c.type), ["snapshot"]);

  conn.ctx.on.event(change("old", "update", lead(1, "stale")), "4-0000000a"); // in the snapshot
  conn.ctx.on.event(change("e6", "update", lead(1, "Ada L.")), "6-0000000a");
  conn.ctx.on.event(change("e6", "update", lead(1, "dup")), "6-0000000a"); // the same event again
  conn.ctx.on.event(change("e6b", "update", lead(1, "replayed")), "6-0000000a"); // another id, same position
  conn.ctx.on.event(change("e7", "insert", lead(3, "Alan")), "7-0000000a");
  conn.ctx.on.event(change("e8", "delete", lead(2, "Grace")), "8-0000000a");
  conn.ctx.on.event(change("d1", "insert", { id: 9, title: "deal" }, "deals"), "9-0000000a"); // another topic
  assert.deepEqual(rowsOf(leads), { 1: "Ada L.", 3: "Alan" });
  assert.deepEqual(changes.slice(1).map((c) => [c.type, c.key, c.row?.name ?? null, c.previous?.name ?? null]), [
    ["upsert", "1", "Ada L.", "Ada"],
    ["upsert", "3", "Alan", null],
    ["delete", "2", null, "Grace"],
  ]);
  assert.equal(leads.cursor, "8-0000000a");
  assert.deepEqual(statuses, ["live"]);
  assert.equal(fetched.filter((f) => f.url.includes("/v1/snapshot")).length, 0, "no extra request");
  h.close();
});

test("truncate and reset actions clear the rows; unkeyed events and unknown actions change nothing", async () => {
  const { h, leads, changes, conn } = await sseCollection({ key: "record.pk" });
  conn.ctx.on.control("snapshot", { cursor: "5-0000000a", topics: { leads: { a: { record: { pk: "a" }, name: "A" } } }, more: false }, "5-0000000a");
  conn.ctx.on.event(change("n1", "insert", { record: { pk: 7 }, name: "seven" }), "6-0000000a");
  conn.ctx.on.event(change("n2", "insert", { record: { pk: "" }, name: "empty" }), "7-0000000a");
  conn.ctx.on.event(change("n3", "insert", { record: { pk: { x: 1 } }, name: "object" }), "8-0000000a");
  conn.ctx.on.event(change("n4", "insert", { name: "missing" }), "9-0000000a");
  conn.ctx.on.event(change("n5", "archived", { record: { pk: "a" }, name: "other verb" }), "10-0000000a");
  assert.deepEqual(rowsOf(leads), { a: "A", 7: "seven" });
  conn.ctx.on.event(change("t1", "truncate", null), "11-0000000a");
  assert.equal(leads.items.size, 0);
  conn.ctx.on.event(change("n6", "upsert", { record: { pk: true }, name: "yes" }), "12-0000000a");
  conn.ctx.on.event(change("r1", "reset", {}), "13-0000000a");
  assert.equal(leads.items.size, 0);
  assert.deepEqual(changes.map((c) => c.type), ["snapshot", "upsert", "clear", "upsert", "clear"]);
  h.close();
});

test("keys as the server computes them", () => {
  const p = ["id"];
  assert.equal(rowKey({ id: 4711 }, p), "4711");
  assert.equal(rowKey({ id: "x" }, p), "x");
  assert.equal(rowKey({ id: false }, p), "false");
  for (const bad of [{}, { id: null }, { id: "" }, { id: [1] }, { id: { a: 1 } }, { id: "é".repeat(129) }, null, "id"]) {
    assert.equal(rowKey(bad, p), null, JSON.stringify(bad));
  }
  assert.equal(rowKey({ id: "é".repeat(128) }, p), "é".repeat(128), "256 bytes is the limit");
  assert.throws(() => new Rows("leads", "a..b"), TypeError);
  assert.throws(() => new Rows("leads", "a.b.c.d.e.f.g.h.i"), TypeError);
});

test("a reset: the rows stay shown while loading, the fresh snapshot that follows replaces them", async () => {
  const { h, leads, changes, statuses, conn } = await sseCollection();
  const resyncs = [];
  h.on("resync", (i) => resyncs.push(i));
  conn.ctx.on.control("snapshot", { cursor: "5-0000000a", topics: { leads: { 1: lead(1, "Ada"), 2: lead(2, "Grace") } }, more: false }, "5-0000000a");
  conn.ctx.on.control("reset", { reason: "epoch_mismatch", cursor: "3-0000000b" }, null);
  assert.equal(leads.status, "loading");
  assert.deepEqual(rowsOf(leads), { 1: "Ada", 2: "Grace" }, "the last rows known stay until the new ones");
  conn.ctx.on.control("snapshot", { cursor: "3-0000000b", topics: { leads: { 2: lead(2, "Grace H.") } }, more: true }, null);
  conn.ctx.on.control("snapshot", { cursor: "3-0000000b", topics: { leads: { 4: lead(4, "Edsger") } }, more: false }, "3-0000000b");
  assert.deepEqual(rowsOf(leads), { 2: "Grace H.", 4: "Edsger" });
  conn.ctx.on.event(change("b4", "insert", lead(5, "Barbara")), "4-0000000b");
  assert.deepEqual(rowsOf(leads), { 2: "Grace H.", 4: "Edsger", 5: "Barbara" }, "a new epoch's cursors apply");
  assert.deepEqual(statuses, ["live", "loading", "live"]);
  assert.deepEqual(changes.map((c) => c.type), ["snapshot", "snapshot", "upsert"]);
  assert.equal(resyncs.length, 1);
  h.close();
});

test("a reset with no snapshot after it: the collection reads GET /v1/snapshot and applies what came meanwhile", async () => {
  let answer;
  const { h, leads, conn, fetched } = await sseCollection({}, (url) => (url.includes("/v1/snapshot") ? new Promise((r) => (answer = r)) : reply(200, {})));
  conn.ctx.on.control("snapshot", { cursor: "5-0000000a", topics: { leads: { 1: lead(1, "Ada") } }, more: false }, "5-0000000a");
  conn.ctx.on.control("reset", { reason: "out_of_retention", cursor: "50-0000000a" }, null);
  conn.ctx.on.event(change("e51", "insert", lead(2, "Grace")), "51-0000000a");
  conn.ctx.on.event(change("e52", "insert", lead(3, "Alan")), "52-0000000a");
  await flush();
  const asked = fetched.filter((f) => f.url.includes("/v1/snapshot"));
  assert.equal(asked.length, 1);
  assert.match(asked[0].url, /topics=leads/);
  assert.doesNotMatch(asked[0].url, /after=/);
  assert.equal(leads.status, "loading");
  answer(reply(200, { cursor: "51-0000000a", topics: { leads: { 2: lead(2, "Grace") } }, more: false }));
  await flush();
  assert.deepEqual(rowsOf(leads), { 2: "Grace", 3: "Alan" }, "e51 is in the snapshot, e52 after it");
  assert.equal(leads.status, "live");
  h.close();
});

test("opened after the connection: GET /v1/snapshot, pages by cursor+after, events held and applied after its cursor", async () => {
  const pages = [];
  const t = harness({ topics: ["leads"] }, {
    fetch: (url) => {
      pages.push(url);
      const u = new URL(url);
      if (!u.searchParams.get("after")) return reply(200, { cursor: "11-0000000a", topics: { leads: { 1: lead(1, "Ada") } }, more: true, after: "tok1" });
      return reply(200, { cursor: "11-0000000a", topics: { leads: { 2: lead(2, "Grace") } }, more: false });
    },
  });
  await flush();
  const conn = t.made[0];
  assert.equal(conn.ctx.snapshot, false, "no collection yet: a plain stream");
  conn.ctx.on.open();
  conn.ctx.on.control("status", { state: "live" }, "10-0000000a");
  const leads = t.h.collection("leads", { pageSize: 1 });
  conn.ctx.on.event(change("e11", "update", lead(1, "in the snapshot")), "11-0000000a");
  conn.ctx.on.event(change("e12", "update", lead(2, "Grace H.")), "12-0000000a");
  await flush();
  assert.deepEqual(pages.map((u) => new URL(u).search), ["?topics=leads&limit=1", "?topics=leads&limit=1&cursor=11-0000000a&after=tok1"]);
  assert.deepEqual(rowsOf(leads), { 1: "Ada", 2: "Grace H." });
  assert.equal(leads.status, "live");
  t.h.close();
});

test("a snapshot older than the stream's position is read again; 410 snapshot_expired starts over", async () => {
  const answers = [
    reply(200, { cursor: "9-0000000a", topics: { leads: {} }, more: false }), // behind the stream (10)
    reply(200, { cursor: "12-0000000a", topics: { leads: { 1: lead(1, "p1") } }, more: true, after: "x" }),
    reply(410, { error: { code: "snapshot_expired", message: "gone" } }),
    reply(200, { cursor: "13-0000000a", topics: { leads: { 1: lead(1, "Ada") } }, more: false }),
  ];
  const t = harness({ topics: ["leads"] }, { fetch: () => answers.shift() });
  await flush();
  t.made[0].ctx.on.open();
  t.made[0].ctx.on.control("status", { state: "live" }, "10-0000000a");
  const leads = t.h.collection("leads");
  const errors = [];
  leads.on("error", (e) => errors.push(e.code));
  await flush();
  assert.equal(leads.status, "loading");
  assert.deepEqual(errors, ["snapshot_behind"]);
  await advance(1000);
  assert.equal(answers.length, 0);
  assert.deepEqual(rowsOf(leads), { 1: "Ada" });
  assert.equal(leads.cursor, "13-0000000a");
  assert.equal(leads.error, null);
  assert.equal(leads.status, "live");
  t.h.close();
});

test("long-poll: the first page in the answer, the rest from /v1/snapshot; a batch waits for its cursor", async () => {
  let page2;
  const t = harness({ topics: ["leads"], transport: "poll" }, { fetch: () => new Promise((r) => (page2 = r)) });
  const leads = t.h.collection("leads");
  await flush();
  const conn = t.made[0];
  assert.equal(conn.ctx.snapshot, true);
  conn.ctx.on.open();
  // What PollTransport makes of {"cursor":"20-…","events":[],"snapshot":{"topics","more":true,"after"}}.
  conn.ctx.on.control("status", { state: "live" }, null);
  conn.ctx.on.control("snapshot", { topics: { leads: { 1: lead(1, "Ada") } }, more: true, after: "t1", cursor: "20-0000000a", poll: true }, "20-0000000a");
  conn.ctx.on.cursor("20-0000000a");
  await flush();
  // The next poll answers while page 2 is being read: held.
  conn.ctx.on.event(change("p21", "update", lead(2, "Grace H.")), null);
  conn.ctx.on.event(change("p22", "insert", lead(3, "Alan")), null);
  conn.ctx.on.cursor("22-0000000a");
  assert.equal(leads.status, "loading");
  page2(reply(200, { cursor: "20-0000000a", topics: { leads: { 2: lead(2, "Grace") } }, more: false }));
  await flush();
  assert.deepEqual(rowsOf(leads), { 1: "Ada", 2: "Grace H.", 3: "Alan" });
  assert.equal(t.h.state, "polling");
  assert.equal(leads.status, "live");
  // A later batch without positions applies when its cursor comes; one that ends before the rows' cursor does not.
  conn.ctx.on.event(change("p23", "delete", lead(1, "Ada")), null);
  assert.equal(leads.items.has("1"), true, "waits for the batch's cursor");
  conn.ctx.on.cursor("23-0000000a");
  assert.equal(leads.items.has("1"), false);
  t.h.close();
});

test("a long-poll batch that began before the snapshot's cursor is replayed whole and ends in the right state", () => {
  const rows = new Rows("leads");
  // The batch (10, 13]: 11 sets Ada, 12 deletes Grace, 13 sets Ada again. The snapshot is at 12.
  rows.event(change("b11", "update", lead(1, "Ada 11")), null);
  rows.event(change("b12", "delete", lead(2, "Grace")), null);
  rows.replace("12-0000000a", new Map([["1", lead(1, "Ada 11")], ["3", lead(3, "Alan")]]));
  rows.event(change("b13", "update", lead(1, "Ada 13")), null);
  rows.mark("13-0000000a");
  assert.deepEqual(Object.fromEntries([...rows.items].map(([k, v]) => [k, v.name])), { 1: "Ada 13", 3: "Alan" });
  // A batch that ends at or before the rows' cursor is dropped.
  rows.event(change("old", "update", lead(3, "old")), null);
  rows.mark("13-0000000a");
  assert.equal(rows.items.get("3").name, "Alan");
});

test("status: loading → live → stale while reconnecting → live again, resuming by cursor with no reload", async () => {
  const { h, leads, statuses, conn, made, fetched } = await sseCollection();
  conn.ctx.on.control("snapshot", { cursor: "5-0000000a", topics: { leads: { 1: lead(1, "Ada") } }, more: false }, "5-0000000a");
  conn.ctx.on.fail({ kind: "closed", message: "gateway killed" });
  assert.equal(leads.status, "stale");
  assert.deepEqual(rowsOf(leads), { 1: "Ada" });
  await advance(1000);
  const next = made[1];
  assert.equal(next.ctx.cursor, "5-0000000a");
  next.ctx.on.open();
  next.ctx.on.control("status", { state: "live" }, null);
  next.ctx.on.event(change("e6", "update", lead(1, "Ada L.")), "6-0000000a");
  assert.deepEqual(rowsOf(leads), { 1: "Ada L." });
  assert.deepEqual(statuses, ["live", "stale", "live"]);
  assert.equal(fetched.length, 0, "resumed by cursor: no snapshot read");
  h.close();
});

test("a connection that ends halfway through the stream's snapshot: the rows come from /v1/snapshot", async () => {
  const { h, leads, conn, made, fetched } = await sseCollection({}, () => reply(200, { cursor: "7-0000000a", topics: { leads: { 1: lead(1, "Ada"), 2: lead(2, "Grace") } }, more: false }));
  conn.ctx.on.control("snapshot", { cursor: "5-0000000a", topics: { leads: { 1: lead(1, "Ada") } }, more: true }, null);
  conn.ctx.on.fail({ kind: "closed", message: "dropped" });
  await advance(1000);
  assert.equal(made[1].ctx.cursor, "1-0000000a", "the head the stream opened at");
  await flush();
  assert.equal(fetched.filter((f) => f.url.includes("/v1/snapshot")).length, 1);
  made[1].ctx.on.open();
  made[1].ctx.on.control("status", { state: "live" }, null);
  made[1].ctx.on.event(change("e6", "insert", lead(6, "in the snapshot")), "6-0000000a");
  await flush();
  assert.deepEqual(rowsOf(leads), { 1: "Ada", 2: "Grace" });
  h.close();
});

test("a refusal that asking again cannot fix is the collection's error; it stays loading", async () => {
  const t = harness({ topics: ["leads"] }, { fetch: () => reply(400, { error: { code: "not_a_collection", message: "leads is not a collection" } }) });
  await flush();
  t.made[0].ctx.on.open();
  t.made[0].ctx.on.control("status", { state: "live" }, "10-0000000a");
  const leads = t.h.collection("leads");
  await advance(5000);
  assert.equal(leads.error.code, "not_a_collection");
  assert.equal(leads.status, "loading");
  assert.equal(t.fetched.length, 1, "not asked again");
  assert.throws(() => t.h.collection("deals"), /topics must include/);
  const filtered = harness({ topics: ["leads"], actions: ["insert"] });
  assert.throws(() => filtered.h.collection("leads"), /filter/);
  t.h.close();
  filtered.h.close();
});

test("follower tabs read /v1/snapshot and apply the leader's events after its cursor, dropping those before", async () => {
  const { a, b, c, conn } = await threeTabs();
  let answer;
  b.h.env.fetch = async (url) => {
    b.fetched.push({ url });
    return new Promise((r) => (answer = r));
  };
  const leads = b.h.collection("leads");
  await tabsAdvance(50);
  assert.equal(b.fetched.length, 1, "the follower asks for the rows");
  assert.equal(a.h.collections, undefined, "the leader's connection is untouched");
  conn.ctx.on.event(change("l4", "insert", lead(4, "in the snapshot")), "4-0000000a");
  conn.ctx.on.event(change("l5", "insert", lead(5, "Barbara")), "5-0000000a");
  await tabsAdvance(50);
  answer(reply(200, { cursor: "4-0000000a", topics: { leads: { 4: lead(4, "Edsger") } }, more: false }));
  await tabsAdvance(50);
  assert.deepEqual(rowsOf(leads), { 4: "Edsger", 5: "Barbara" });
  assert.equal(leads.status, "live");
  conn.ctx.on.event(change("l6", "delete", lead(4, "Edsger")), "6-0000000a");
  await tabsAdvance(50);
  assert.deepEqual(rowsOf(leads), { 5: "Barbara" });
  for (const t of [a, b, c]) t.h.close();
});

test("snapshot=1 refused (not_a_collection): the next connection goes without it, the feed goes on, the collection says why", async () => {
  const t = harness({ topics: ["leads"] });
  const leads = t.h.collection("leads");
  await flush();
  assert.equal(t.made[0].ctx.snapshot, true);
  t.made[0].ctx.on.fail({ kind: "refused", status: 400, code: "not_a_collection", message: "leads is not a collection" });
  await advance(1000);
  assert.equal(t.made[1].ctx.snapshot, false);
  assert.equal(leads.error.code, "not_a_collection");
  assert.equal(leads.error.fatal, true);
  assert.equal(leads.status, "loading");
  t.h.close();
});

test("a stream snapshot without this collection's topic: its rows are read alone from /v1/snapshot", async () => {
  const { h, leads, conn, fetched } = await sseCollection({}, () => reply(200, { cursor: "5-0000000a", topics: { leads: { 1: lead(1, "Ada") } }, more: false }));
  conn.ctx.on.control("snapshot", { cursor: "5-0000000a", topics: { deals: {} }, more: false }, "5-0000000a");
  await flush();
  assert.equal(fetched.filter((f) => f.url.includes("/v1/snapshot?topics=leads")).length, 1);
  assert.deepEqual(rowsOf(leads), { 1: "Ada" });
  h.close();
});

test("a long-poll reset carries no snapshot: the rows are read from /v1/snapshot at once, even with no event after it", async () => {
  const t = harness({ topics: ["leads"], transport: "poll" }, { fetch: () => reply(200, { cursor: "40-0000000b", topics: { leads: { 9: lead(9, "Radia") } }, more: false }) });
  const leads = t.h.collection("leads");
  await flush();
  const conn = t.made[0];
  conn.ctx.on.open();
  conn.ctx.on.control("status", { state: "live" }, null);
  conn.ctx.on.control("snapshot", { topics: { leads: { 1: lead(1, "Ada") } }, more: false, cursor: "20-0000000a", poll: true }, "20-0000000a");
  conn.ctx.on.cursor("20-0000000a");
  assert.deepEqual(rowsOf(leads), { 1: "Ada" });
  // {"events":[],"cursor":"40-…b","reset":{"reason":"epoch_mismatch","cursor":"40-…b"}}
  conn.ctx.on.control("status", { state: "live" }, null);
  conn.ctx.on.control("reset", { reason: "epoch_mismatch", cursor: "40-0000000b" }, "40-0000000b");
  conn.ctx.on.cursor("40-0000000b");
  await flush();
  assert.equal(t.fetched.filter((f) => f.url.includes("/v1/snapshot")).length, 1);
  assert.deepEqual(rowsOf(leads), { 9: "Radia" });
  assert.equal(leads.status, "live");
  t.h.close();
});

test("a tab opened with history: n joins as a follower after its history page: its collection reads /v1/snapshot", async () => {
  const { tab } = group();
  const a = tab();
  await tabsAdvance(50);
  const conn = a.made[0];
  conn.ctx.on.open();
  conn.ctx.on.control("status", { state: "live", heartbeat_ms: 1000 }, "3-0000000a");
  await tabsAdvance(50);
  const d = tab({ history: 5 }, {
    fetch: (url) =>
      url.includes("/v1/history")
        ? reply(200, { events: [], cursor: "3-0000000a", more: false })
        : reply(200, { cursor: "3-0000000a", topics: { leads: { 1: lead(1, "Ada") } }, more: false }),
  });
  const leads = d.h.collection("leads"); // before the history page is in: the client has no role yet
  await tabsAdvance(200);
  assert.equal(d.h.stats().role, "follower");
  assert.equal(d.fetched.filter((f) => f.url.includes("/v1/snapshot")).length, 1);
  assert.deepEqual(rowsOf(leads), { 1: "Ada" });
  conn.ctx.on.event(change("e4", "insert", lead(4, "Edsger")), "4-0000000a");
  await tabsAdvance(50);
  assert.deepEqual(rowsOf(leads), { 1: "Ada", 4: "Edsger" });
  a.h.close();
  d.h.close();
});

test("after a fatal error the collection holds no events (no snapshot will come to apply them to)", async () => {
  const t = harness({ topics: ["leads"] }, { fetch: () => reply(403, { error: { code: "topic_forbidden", message: "no" } }) });
  await flush();
  t.made[0].ctx.on.open();
  t.made[0].ctx.on.control("status", { state: "live" }, "10-0000000a");
  const leads = t.h.collection("leads");
  t.made[0].ctx.on.event(change("h1", "insert", lead(1, "held")), "11-0000000a");
  await flush();
  assert.equal(leads.error.code, "topic_forbidden");
  for (let i = 0; i < 100; i++) t.made[0].ctx.on.event(change(`x${i}`, "insert", lead(i, "x")), `${12 + i}-0000000a`);
  assert.equal(leads.rows.held.length, 0);
  assert.equal(leads.items.size, 0);
  t.h.close();
});
