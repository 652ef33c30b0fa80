// Cursors and duplicate suppression.
//
// A Herald cursor is `<stream sequence>-<epoch>` (e.g. `18234-7f3a0c11`): the position of an
// event in the gateway's stream, valid until the stream is recreated (a new epoch). The
// client keeps the newest one it has seen and hands it back on every reconnect, whatever the
// transport, so the gateway replays exactly what was missed.

/** @returns {{ seq: number, epoch: string } | null} */
export function parseCursor(cursor) {
  if (typeof cursor !== "string") return null;
  const m = /^(\d+)-([0-9a-fA-F]+)$/.exec(cursor.trim());
  return m ? { seq: Number(m[1]), epoch: m[2].toLowerCase() } : null;
}

/**
 * Whether moving from `current` to `next` is progress. A cursor of another epoch always wins
 * (the stream was recreated and the gateway said where to continue); within one epoch only a
 * higher sequence does, so a late duplicate can never move the client backwards.
 */
export function advances(current, next) {
  const b = parseCursor(next);
  if (!b) return false;
  const a = parseCursor(current);
  return !a || a.epoch !== b.epoch || b.seq > a.seq;
}

/**
 * The identity of an event for duplicate suppression: CloudEvents make `source` + `id` unique.
 */
export function eventKey(event) {
  if (!event || event.id == null) return null;
  return `${event.source ?? ""}\u0000${event.id}`;
}

/** A bounded set that forgets its oldest entries first. */
export class RecentSet {
  constructor(capacity = 5000) {
    this.capacity = capacity;
    this.items = new Set();
  }

  /** Adds `key`; returns false if it was already there. */
  add(key) {
    if (this.items.has(key)) return false;
    this.items.add(key);
    if (this.items.size > this.capacity) {
      // Sets iterate in insertion order: the first value is the oldest.
      this.items.delete(this.items.values().next().value);
    }
    return true;
  }

  has(key) {
    return this.items.has(key);
  }

  get size() {
    return this.items.size;
  }
}
