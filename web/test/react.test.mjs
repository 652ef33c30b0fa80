// herald-client/react's store (react/index.js): what useCollection hands React — one view
// object per change, rows that did not change kept as the same objects, one notification per
// microtask however many rows changed. The hook itself renders in a real browser
// (e2e/scenarios/react-collection.mjs).

import assert from "node:assert/strict";
import { test } from "node:test";

import { collectionStore } from "../react/index.js";
import { flush, harness, useFakeTime } from "./helpers.mjs";

useFakeTime();

const upsert = (id, name, action = "update") => ({ specversion: "1.0", id: `${id}-${name}`, source: "t", type: "x", topic: "leads", action, data: { id, name } });

test("the store's view: loading until the snapshot, one notification per burst, unchanged rows kept", async () => {
  const { h, made } = harness({ topics: ["leads"] });
  const leads = h.collection("leads");
  const store = collectionStore(leads);
  let notified = 0;
  store.subscribe(() => notified++);
  await flush();
  const first = store.getSnapshot();
  assert.equal(first.isLoading, true);
  assert.equal(first.status, "loading");
  assert.deepEqual(first.data, []);
  assert.equal(store.getSnapshot(), first, "the same object while nothing changes");

  const conn = made[0];
  conn.ctx.on.open();
  conn.ctx.on.control("status", { state: "live" }, "1-0000000a");
  const rows = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [String(i), { id: i, name: `n${i}` }]));
  conn.ctx.on.control("snapshot", { cursor: "2-0000000a", topics: { leads: rows }, more: false }, "2-0000000a");
  conn.ctx.on.event(upsert(7, "seven"), "3-0000000a");
  conn.ctx.on.event(upsert(600, "new", "insert"), "4-0000000a");
  conn.ctx.on.event({ ...upsert(3, "x"), action: "delete" }, "5-0000000a");
  await flush();
  assert.equal(notified, 1, "one notification for the snapshot and three changes");
  const view = store.getSnapshot();
  assert.equal(view.isLoading, false);
  assert.equal(view.status, "live");
  assert.equal(view.error, null);
  const order = [...Array.from({ length: 500 }, (_, i) => i).filter((i) => i !== 3), 600];
  assert.deepEqual(view.data.map((r) => r.id), order, "changed rows keep their place, a new row comes last");
  assert.equal(view.items.get("7").name, "seven");
  assert.equal(view.items.get("3"), undefined);
  assert.ok(Object.isFrozen(view.data));

  conn.ctx.on.event(upsert(8, "eight"), "6-0000000a");
  await flush();
  const next = store.getSnapshot();
  assert.notEqual(next, view);
  assert.notEqual(next.data, view.data, "a new array after a change");
  assert.equal(next.data[0], view.data[0], "an unchanged row is the same object");
  assert.equal(next.data[7].name, "eight");
  assert.notEqual(next.data[7], view.data[7]);
  assert.equal(notified, 2);

  conn.ctx.on.fail({ kind: "closed", message: "down" });
  await flush();
  assert.equal(store.getSnapshot().status, "stale");
  h.close();
});
