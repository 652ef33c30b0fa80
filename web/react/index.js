// herald-client/react: `useCollection(herald, "leads", { key: "id" })` → `{ data, isLoading,
// error, status }`, a React table that loads a collection once and follows it live
// (lib/collection.js, proto/state.md).
//
//   import { useCollection } from "herald-client/react";
//   function Leads({ herald }) {
//     const { data, isLoading, error, status } = useCollection(herald, "leads");
//     if (isLoading) return <p>Loading…</p>;
//     return <table>{data.map((lead) => <tr key={lead.id}>…</tr>)}</table>;
//   }
//
// `data` is an array of rows (each one the `data` of the event that wrote it), in snapshot
// order (by key) then arrival order; a row that changes keeps its place. It is a new array
// after each change, and a row that did not change is the same object, so `React.memo` rows
// skip re-rendering. `items` is the same rows as a Map key → row, for lookups.
//
// Components that ask for the same client, topic and key share one collection (one snapshot,
// one set of listeners); it closes when the last of them unmounts. A collection the app opened
// itself (`herald.collection("leads")` next to `Herald.connect`, before the first render) is
// used as is and left open: that way the first connection brings the rows (`snapshot=1`);
// otherwise React's effects run after the connection started and the rows come from
// `GET /v1/snapshot` — as exact, one request more. React ≥ 18 (a peer dependency); no other
// dependency.

import { useEffect, useState, useSyncExternalStore } from "react";

const EMPTY_ROWS = Object.freeze([]);
const EMPTY_ITEMS = new Map();

/** What the hook returns before its collection exists (the first render). */
const STARTING = Object.freeze({ data: EMPTY_ROWS, items: EMPTY_ITEMS, isLoading: true, error: null, status: "loading" });

const IDLE_STORE = Object.freeze({ subscribe: () => () => {}, getSnapshot: () => STARTING });

/** The hook's value for `collection` as it is now. */
export function viewOf(collection) {
  const items = new Map(collection.items);
  return Object.freeze({
    data: Object.freeze([...items.values()]),
    items,
    isLoading: collection.status === "loading",
    error: collection.error ?? null,
    status: collection.status,
  });
}

/**
 * A `useSyncExternalStore` store over a collection: `getSnapshot()` returns the same object
 * until the collection changes, and subscribers hear of changes once per microtask however
 * many rows changed (a snapshot of 10 000 rows is one render, not 10 000).
 */
export function collectionStore(collection) {
  let version = 0;
  let built = -1;
  let view = null;
  let scheduled = false;
  const subscribers = new Set();
  const changed = () => {
    version++;
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(() => {
      scheduled = false;
      for (const cb of [...subscribers]) cb();
    });
  };
  for (const name of ["change", "status", "error"]) collection.on(name, changed);
  return {
    subscribe(cb) {
      subscribers.add(cb);
      return () => subscribers.delete(cb);
    },
    getSnapshot() {
      if (built !== version || view === null) {
        view = viewOf(collection);
        built = version;
      }
      return view;
    },
  };
}

/** Collections shared by the components of one client: `topic|key` → {collection, store, refs}. */
const shared = new WeakMap();

function acquire(herald, topic, options) {
  if (!shared.has(herald)) shared.set(herald, new Map());
  const byName = shared.get(herald);
  const name = `${topic}|${options.key ?? "id"}`;
  let entry = byName.get(name);
  if (entry?.collection.closed) entry = null;
  if (!entry) {
    const key = options.key ?? "id";
    const own = [...(herald.collections ?? [])].find((c) => c.topic === topic && c.key === key && !c.closed);
    const collection = own ?? herald.collection(topic, options);
    entry = { collection, store: collectionStore(collection), refs: 0, owned: !own };
    byName.set(name, entry);
  }
  entry.refs++;
  const release = () => {
    if (--entry.refs > 0) return;
    if (byName.get(name) === entry) byName.delete(name);
    if (entry.owned) entry.collection.close();
  };
  return { store: entry.store, release };
}

/** A store that only says what went wrong (e.g. a topic the client does not subscribe to). */
function failedStore(err) {
  const view = Object.freeze({ ...STARTING, isLoading: false, error: { code: "bad_collection", message: String(err?.message ?? err) } });
  return { subscribe: () => () => {}, getSnapshot: () => view };
}

/**
 * The live rows of collection `topic` over `herald` (a client from `Herald.connect`, whose
 * topics include `topic`): `{ data, items, isLoading, error, status }`.
 * @param {import("../herald.js").HeraldClient | null | undefined} herald
 * @param {string} topic
 * @param {{ key?: string, pageSize?: number }} [options]
 */
export function useCollection(herald, topic, options = {}) {
  const key = options.key ?? "id";
  const pageSize = options.pageSize;
  const [store, setStore] = useState(IDLE_STORE);
  useEffect(() => {
    if (!herald || !topic) {
      setStore(IDLE_STORE);
      return undefined;
    }
    let held;
    try {
      held = acquire(herald, topic, { key, pageSize });
    } catch (err) {
      setStore(failedStore(err));
      return undefined;
    }
    setStore(held.store);
    return held.release;
  }, [herald, topic, key, pageSize]);
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}
