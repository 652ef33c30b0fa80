// The dashboard's counters: from the feed, then replaced by a stats document without
// counting an event twice.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Counters } from "../dashboard/counters.js";

const ev = (topic, action) => ({ id: Math.random().toString(36), topic, action });

test("counts the feed, then a stats snapshot replaces its topic and later events add on", () => {
  const c = new Counters();
  c.addEvent(ev("leads", "insert"), "5-0000000a");
  c.addEvent(ev("deals", "insert"), "6-0000000a");
  assert.deepEqual(c.view(), { total: 2, actions: [["insert", 2]], topics: [["deals", 1], ["leads", 1]], groups: [] });
  assert.equal(c.fromStats, false);

  c.applyStats({ topic: "leads", total: 40, by_action: { insert: 30, update: 10 }, last_seq: 7, cursor: "7-0000000a", epoch: "0000000a" });
  assert.equal(c.fromStats, true);
  // At or below the document's cursor: already counted in it.
  assert.equal(c.addEvent(ev("leads", "insert"), "7-0000000a"), false);
  assert.equal(c.addEvent(ev("leads", "update"), "8-0000000a"), true);
  assert.deepEqual(c.view(), { total: 42, actions: [["insert", 31], ["update", 11]], topics: [["leads", 41], ["deals", 1]], groups: [] });
  // An older document does not roll the counts back.
  assert.equal(c.applyStats({ topic: "leads", total: 1, by_action: {}, cursor: "3-0000000a" }), false);
  assert.equal(c.view().total, 42);
});

test("the gateway's {topic, cursor, doc} messages apply, with group-by counts", () => {
  const c = new Counters();
  const doc = {
    topic: "leads",
    total: 5,
    by_action: { insert: 4, update: 1 },
    group_by: { status: { new: 3, won: 1 } },
    last_seq: 9,
    cursor: "9-0000000a",
    epoch: "0000000a",
  };
  assert.equal(c.applyStats({ topic: "leads", cursor: "9-0000000a", doc }), true);
  assert.deepEqual(c.view().groups, [{ topic: "leads", field: "status", counts: [["new", 3], ["won", 1]] }]);
  assert.equal(c.view().total, 5);
  // A newer document replaces the group counts.
  c.applyStats({ topic: "leads", cursor: "10-0000000a", doc: { ...doc, total: 6, group_by: { status: { new: 2, won: 2 } }, cursor: "10-0000000a" } });
  assert.deepEqual(c.view().groups[0].counts, [["new", 2], ["won", 2]]);
});
