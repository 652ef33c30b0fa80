// The dashboard's counters, per topic, from one of two sources:
//
//   feed   counted from the events this page receives (what exists today)
//   stats  the stats-aggregator's documents (`proto/stats.schema.json`: total, by_action,
//          group_by, last_seq, cursor per topic), from `GET /v1/stats` and live as `stats`
//          messages of a connection subscribed to `$stats`
//
// A stats document replaces the feed's count of its topic; events after it add on top, and an
// event at or below the document's `last_seq` (same epoch) is already in it and is skipped.
// So the page can load a snapshot, then stream, and count every event exactly once.

import { parseCursor } from "../herald.js";

export class Counters {
  constructor() {
    /** @type {Map<string, { total: number, byAction: Map<string, number>, from: "feed" | "stats", seq: number, epoch: string | null }>} */
    this.topics = new Map();
  }

  topic(name) {
    let t = this.topics.get(name);
    if (!t) {
      t = { total: 0, byAction: new Map(), groupBy: new Map(), from: "feed", seq: 0, epoch: null };
      this.topics.set(name, t);
    }
    return t;
  }

  /** Counts a live event; `cursor` is where it sits in the stream, when known. */
  addEvent(event, cursor) {
    const t = this.topic(event.topic ?? "other");
    const at = parseCursor(cursor);
    if (t.from === "stats" && at && at.epoch === t.epoch && at.seq <= t.seq) return false;
    t.total += 1;
    const action = event.action ?? "other";
    t.byAction.set(action, (t.byAction.get(action) ?? 0) + 1);
    return true;
  }

  /**
   * Applies a stats document (a snapshot of one topic): the document itself, or the
   * gateway's `{topic, cursor, doc}` wrapping of it.
   */
  applyStats(message) {
    const doc = message && typeof message.doc === "object" ? message.doc : message;
    if (!doc || typeof doc.topic !== "string" || typeof doc.total !== "number") return false;
    const t = this.topic(doc.topic);
    const at = parseCursor(doc.cursor);
    if (t.from === "stats" && at && at.epoch === t.epoch && at.seq < t.seq) return false; // older
    t.from = "stats";
    t.total = doc.total;
    t.byAction = new Map(Object.entries(doc.by_action ?? {}));
    // Live rows by the value of a configured field, e.g. `status` (only the aggregator knows
    // them: an update's old value is not in the event).
    t.groupBy = new Map(Object.entries(doc.group_by ?? {}).map(([field, counts]) => [field, new Map(Object.entries(counts ?? {}))]));
    t.seq = at?.seq ?? doc.last_seq ?? 0;
    t.epoch = at?.epoch ?? doc.epoch ?? null;
    return true;
  }

  /** Whether any topic is counted by the stats-aggregator. */
  get fromStats() {
    return [...this.topics.values()].some((t) => t.from === "stats");
  }

  /**
   * Totals across topics: `{ total, actions: [[action, n]…], topics: [[topic, n]…],
   * groups: [{ topic, field, counts: [[value, n]…] }…] }` (groups: stats documents with
   * group-by values only).
   */
  view() {
    let total = 0;
    const actions = new Map();
    const groups = [];
    const byCount = (a, b) => b[1] - a[1] || a[0].localeCompare(b[0]);
    for (const [name, t] of this.topics) {
      total += t.total;
      for (const [a, n] of t.byAction) actions.set(a, (actions.get(a) ?? 0) + n);
      for (const [field, counts] of t.groupBy) {
        if (counts.size > 0) groups.push({ topic: name, field, counts: [...counts].sort(byCount) });
      }
    }
    groups.sort((a, b) => a.topic.localeCompare(b.topic) || a.field.localeCompare(b.field));
    return {
      total,
      actions: [...actions].sort(byCount),
      topics: [...this.topics].map(([name, t]) => [name, t.total]).sort(byCount),
      groups,
    };
  }
}
