// Live tables: a collection's rows (h.collection(), lib/collection.js) as an HTML table whose
// rows change in place — an upsert rewrites its row's cells (and flashes it), a delete removes
// it, a snapshot (at start, after a reset) redraws the table, a truncate empties it. The
// status chip says whether the rows are `loading`, `live` or `stale` (the connection is down:
// the rows are the last ones known).

/**
 * @typedef {{ field: string, label: string, chip?: boolean }} Column
 */

export class LiveTable {
  /**
   * @param {HTMLElement} root  a panel holding `table tbody`, `.coll-status` and `.coll-count`
   * @param {import("../herald.js").Collection} collection
   * @param {Column[]} columns  `field` is a dotted path into the row; `key` shows the row key
   */
  constructor(root, collection, columns) {
    this.root = root;
    this.body = root.querySelector("tbody");
    this.statusEl = root.querySelector(".coll-status");
    this.countEl = root.querySelector(".coll-count");
    this.collection = collection;
    this.columns = columns;
    /** @type {Map<string, HTMLTableRowElement>} */
    this.trs = new Map();
    this.offs = [
      collection.on("change", (c) => this.apply(c)),
      collection.on("status", () => this.showStatus()),
      collection.on("error", () => this.showStatus()),
    ];
    this.redraw();
    this.showStatus();
  }

  apply(change) {
    if (change.type === "snapshot") this.redraw();
    else if (change.type === "clear") this.redraw();
    else if (change.type === "delete") {
      this.trs.get(change.key)?.remove();
      this.trs.delete(change.key);
    } else this.upsert(change.key, change.row, true);
    this.count();
  }

  redraw() {
    this.body.replaceChildren();
    this.trs.clear();
    for (const [key, row] of this.collection.items) this.upsert(key, row, false);
    this.count();
  }

  upsert(key, row, flash) {
    let tr = this.trs.get(key);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.key = key;
      for (const col of this.columns) {
        const td = document.createElement("td");
        td.dataset.field = col.field;
        tr.append(td);
      }
      this.trs.set(key, tr);
      this.body.append(tr);
    }
    this.columns.forEach((col, i) => {
      const value = col.field === "key" ? key : pick(row, col.field);
      const text = value == null ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
      const td = tr.children[i];
      if (td.textContent === text) return;
      if (col.chip) {
        td.replaceChildren(Object.assign(document.createElement("span"), { className: `chip s-${text}`, textContent: text }));
      } else td.textContent = text;
    });
    if (flash) {
      tr.classList.remove("fresh");
      void tr.offsetWidth; // restart the animation
      tr.classList.add("fresh");
    }
  }

  count() {
    const n = this.collection.items.size;
    if (this.countEl) this.countEl.textContent = `${n} ${n === 1 ? "row" : "rows"}`;
  }

  showStatus() {
    const { status, error } = this.collection;
    this.root.dataset.status = status;
    if (!this.statusEl) return;
    this.statusEl.dataset.status = status;
    this.statusEl.textContent = error?.fatal ? `unavailable: ${error.code}` : status;
    this.statusEl.title = error ? `${error.code}: ${error.message}` : "";
  }

  close() {
    for (const off of this.offs) off();
  }
}

/** The value at a dotted path of `row`. */
function pick(row, path) {
  let at = row;
  for (const seg of path.split(".")) {
    if (at == null || typeof at !== "object") return undefined;
    at = at[seg];
  }
  return at;
}
