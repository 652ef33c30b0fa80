// The activity feed: newest first, the last 50 events, and an "N new" badge for events that
// arrive while the reader is scrolled down (so the list never jumps under their eyes).

const KEEP = 50;

/** A one-line summary of an event's data. */
export function summarize(event) {
  const d = event?.data;
  if (d == null || typeof d !== "object") return d == null ? "" : String(d);
  const label = d.name ?? d.title ?? d.email ?? d.subject ?? d.status ?? Object.values(d).find((v) => typeof v === "string");
  const id = d.id != null ? `#${d.id}` : "";
  return [id, label].filter(Boolean).join(" ");
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

export class Feed {
  constructor(list, badge, empty) {
    this.list = list;
    this.badge = badge;
    this.empty = empty;
    this.unseen = 0;
    this.title = document.title;
    list.addEventListener("scroll", () => {
      if (list.scrollTop < 8) this.clearBadge();
    });
    document.addEventListener("visibilitychange", () => {
      // Events that came while the tab was hidden stay marked for a moment after it shows.
      if (!document.hidden && this.list.scrollTop < 8) setTimeout(() => this.clearBadge(), 4000);
    });
    badge.addEventListener("click", () => {
      list.scrollTo({ top: 0, behavior: "smooth" });
      this.clearBadge();
    });
  }

  add(event) {
    const li = el("li", "fresh");
    li.dataset.id = event.id;
    li.dataset.topic = event.topic ?? "";
    const action = event.action ?? event.type ?? "event";
    li.append(el("span", `chip ${action}`, action));
    const what = el("span", "what");
    what.append(el("span", "topic", event.topic ?? event.type ?? ""), document.createTextNode(summarize(event) || event.id));
    what.title = JSON.stringify(event.data ?? null);
    li.append(what);
    const when = el("time", "when", new Date(event.time ?? Date.now()).toLocaleTimeString());
    when.dateTime = event.time ?? "";
    li.append(when);
    const keepPlace = this.list.scrollTop > 8;
    const before = this.list.scrollHeight;
    this.list.prepend(li);
    while (this.list.children.length > KEEP) this.list.lastElementChild.remove();
    this.empty.hidden = true;
    if (keepPlace) this.list.scrollTop += this.list.scrollHeight - before;
    if (keepPlace || document.hidden) {
      this.unseen += 1;
      this.badge.textContent = `${this.unseen} new`;
      this.badge.hidden = false;
      document.title = `(${this.unseen}) ${this.title}`;
    }
  }

  clearBadge() {
    this.unseen = 0;
    this.badge.hidden = true;
    document.title = this.title;
  }
}
