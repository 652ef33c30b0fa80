// The live demo dashboard: wires a Herald client to the feed, the counters, the connection
// indicator and the log. Served by the gateway at `/` (config `web_dir`).
//
// The page reads its settings from the address:
//   #token=<jwt>        the gateway token (the fragment never reaches a server log);
//                       `?token=` and `?access_token=` work too
//   ?transport=sse|ws|poll|auto   ?topics=a,b   ?heartbeat=<ms> (overrides the gateway's)
//   ?upgradeAfter=<ms>  ?gateway=<url> (default: this origin)
//   ?history=<n>        events the feed opens with (default 50, `GET /v1/history`; 0: none)
//   ?presence=<topic>   the topic whose connected users the "Online" panel shows (default
//                       `leads`, the demo's topic; `herald up` makes it a presence topic)
//
// The feed opens with the latest events (the client's `history` option: they reach the app
// like any other event, oldest first) and continues live from right after them: no gap, no
// repeat, so a visitor who arrives after 14 events sees those 14.
//
// Live tables: the `leads` and `services` collections (h.collection(), proto/state.md), when
// the gateway has them (`GET /v1/snapshot` answers for the topic): loaded with the stream's
// opening snapshot, then changed row by row in place (dashboard/tables.js).
//
// Counters: `GET /v1/stats` (the stats-aggregator's exact documents) at start and on every
// resync, then each new document live over the same connection (`$stats`); topics without a
// document yet are counted from the feed.

import { Herald } from "../herald.js";
import { Counters } from "./counters.js";
import { Feed } from "./feed.js";
import { LiveTable } from "./tables.js";

/** The dashboard's tables: a collection each, with its key path and columns. */
const TABLES = [
  { topic: "leads", key: "id", panel: "leads-panel", columns: [{ field: "key" }, { field: "name" }, { field: "company" }, { field: "status", chip: true }] },
  { topic: "services", key: "name", panel: "services-panel", columns: [{ field: "key" }, { field: "status", chip: true }, { field: "latency_ms" }] },
];
import { showPresence } from "./presence.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const hash = new URLSearchParams(location.hash.slice(1));

/** The `topics` claim of a JWT (unverified: only to know what to ask for). */
function claimedTopics(token) {
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return Array.isArray(claims.topics) ? claims.topics.map(String) : [];
  } catch {
    return [];
  }
}

function settings() {
  // `herald up` prints `?access_token=`; the fragment form stays out of server logs.
  const token = hash.get("token") ?? params.get("token") ?? params.get("access_token");
  const num = (k) => (params.has(k) ? Number(params.get(k)) : undefined);
  // `$stats` adds live stats documents. Alone it would mean "no events", so name the event
  // topics too: the ones asked for, else every one the token grants.
  const asked = (params.get("topics") ?? "").split(",").map((t) => t.trim()).filter(Boolean);
  const events = asked.length ? asked : token ? claimedTopics(token) : [];
  const opts = {
    token,
    transport: params.get("transport") ?? "auto",
    topics: events.length ? [...events, "$stats"] : [],
    history: 50,
    presence: true,
  };
  for (const k of ["heartbeat", "upgradeAfter", "pollWait", "history"]) if (num(k) !== undefined) opts[k] = num(k);
  return { url: params.get("gateway") ?? "", opts };
}

const LABELS = {
  connecting: "Connecting",
  live: "Live",
  degraded: "Degraded",
  reconnecting: "Reconnecting",
  polling: "Polling",
  offline: "Offline",
};

function ago(ms) {
  if (!ms) return "–";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s} s ago` : `${Math.floor(s / 60)} min ago`;
}

class Log {
  constructor(list, keep = 40) {
    this.list = list;
    this.keep = keep;
  }

  add(kind, text) {
    const li = document.createElement("li");
    li.className = `k-${kind}`;
    const t = document.createElement("time");
    t.textContent = new Date().toLocaleTimeString();
    li.append(t, document.createTextNode(text));
    this.list.prepend(li);
    while (this.list.children.length > this.keep) this.list.lastElementChild.remove();
  }
}

function renderCounters(counters) {
  const v = counters.view();
  const cards = [["Events", v.total], ...v.actions.slice(0, 4).map(([a, n]) => [a, n])];
  const box = $("counter-cards");
  cards.forEach(([label, value], i) => {
    let card = box.children[i];
    if (!card) {
      card = document.createElement("div");
      card.className = "card-n";
      card.innerHTML = '<div class="label"></div><div class="value"></div>';
      box.append(card);
    }
    const valueEl = card.querySelector(".value");
    if (valueEl.textContent !== String(value)) {
      card.classList.remove("bump");
      void card.offsetWidth; // restart the animation
      card.classList.add("bump");
    }
    card.querySelector(".label").textContent = label;
    valueEl.textContent = String(value);
    card.dataset.counter = label;
  });
  while (box.children.length > cards.length) box.lastElementChild.remove();
  const max = Math.max(1, ...v.topics.map(([, n]) => n));
  $("topic-bars").replaceChildren(
    ...v.topics.slice(0, 8).map(([topic, n]) => {
      const row = document.createElement("div");
      row.className = "bar";
      row.innerHTML = '<span class="t"></span><span class="track"><span class="fill"></span></span><b></b>';
      row.querySelector(".t").textContent = topic;
      row.querySelector(".fill").style.width = `${(100 * n) / max}%`;
      row.querySelector("b").textContent = String(n);
      return row;
    }),
  );
  const groups = $("group-bars");
  groups.hidden = v.groups.length === 0;
  groups.replaceChildren(
    ...v.groups.slice(0, 3).flatMap(({ topic, field, counts }) => {
      const title = document.createElement("h3");
      title.textContent = `${topic} by ${field}`;
      const max = Math.max(1, ...counts.map(([, n]) => n));
      const bars = document.createElement("div");
      bars.className = "bars";
      bars.dataset.group = `${topic}.${field}`;
      bars.replaceChildren(
        ...counts.slice(0, 8).map(([value, n]) => {
          const row = document.createElement("div");
          row.className = "bar";
          row.dataset.value = value;
          row.innerHTML = '<span class="t"></span><span class="track"><span class="fill"></span></span><b></b>';
          row.querySelector(".t").textContent = value;
          row.querySelector(".fill").style.width = `${(100 * Math.max(0, n)) / max}%`;
          row.querySelector("b").textContent = String(n);
          return row;
        }),
      );
      return [title, bars];
    }),
  );
  $("counter-source").textContent = counters.fromStats
    ? "exact counts from the stats-aggregator, live"
    : "counted from the feed since this page opened";
}

/** `GET /v1/stats`: the current document of every topic the token grants. */
async function loadStats(url, token, counters) {
  try {
    const res = await fetch(`${url.replace(/\/+$/, "")}/v1/stats`, {
      headers: { Authorization: `Bearer ${token}` },
      cache: "no-store",
    });
    if (!res.ok) return false;
    const body = await res.json();
    let changed = false;
    for (const doc of body.stats ?? []) changed = counters.applyStats(doc) || changed;
    return changed;
  } catch {
    return false; // no aggregator (or no gateway yet): the feed counts, live documents follow
  }
}

/**
 * Which of the dashboard's collections this gateway has, asked before connecting so that the
 * stream opens with their rows: no for `400 not_a_collection`, `403` (not granted) and `404`
 * (a gateway without collections); yes for rows and for anything that may pass (503, network).
 */
async function availableTables(url, token) {
  const ask = async ({ topic }) => {
    try {
      const res = await fetch(`${url.replace(/\/+$/, "")}/v1/snapshot?topics=${topic}&limit=1`, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
      return ![400, 403, 404].includes(res.status);
    } catch {
      return true;
    }
  };
  const answers = await Promise.all(TABLES.map(ask));
  return TABLES.filter((_, i) => answers[i]);
}

/** Opens a collection and its table per available table (before the first connection). */
function openTables(h, tables, log) {
  const open = {};
  for (const t of tables) {
    try {
      const collection = h.collection(t.topic, { key: t.key });
      $(t.panel).hidden = false;
      new LiveTable($(t.panel), collection, t.columns);
      collection.on("error", (e) => log.add("error", `${t.topic} rows: ${e.code}: ${e.message}`));
      open[t.topic] = collection;
    } catch (err) {
      log.add("error", `${t.topic}: ${err.message}`); // e.g. ?topics= without it
    }
  }
  $("tables-none").hidden = Object.keys(open).length > 0;
  window.heraldCollections = open;
}

async function start() {
  const { url, opts } = settings();
  if (!opts.token) {
    $("no-token").hidden = false;
    return;
  }
  const tables = await availableTables(url, opts.token);
  const h = Herald.connect(url, opts);
  const feed = new Feed($("feed"), $("new-badge"), $("feed-empty"));
  const counters = new Counters();
  const log = new Log($("log"));
  openTables(h, tables, log);
  // Every event id in arrival order, for the browser tests (the feed keeps only 50).
  const received = [];
  window.herald = h;
  window.heraldReceived = received;

  const conn = $("conn");
  const showState = (state, reason) => {
    conn.dataset.state = state;
    $("conn-state").textContent = LABELS[state] ?? state;
    $("conn-reason").textContent = reason ?? "";
    conn.title = reason ?? "";
  };
  showState(h.state, h.reason);
  h.on("state", (state, { reason }) => {
    showState(state, reason);
    details();
    log.add("state", `${state} — ${reason}`);
  });
  h.on("error", (f) => log.add("error", `${f.code ?? f.kind}: ${f.message ?? ""}`));
  h.on("resync", (info) => {
    log.add("resync", `resync (${info.reason}): refetching counters`);
    // The feed keeps what it has shown; the counters reload their snapshot.
    loadStats(url, opts.token, counters).then((changed) => changed && renderCounters(counters));
  });
  h.on("stats", (message) => counters.applyStats(message) && renderCounters(counters));
  loadStats(url, opts.token, counters).then((changed) => changed && renderCounters(counters));
  h.subscribe("*", (event, meta) => {
    received.push(event.id);
    feed.add(event);
    counters.addEvent(event, meta.cursor);
    renderCounters(counters);
    details();
  });
  renderCounters(counters);
  showPresence(h, params.get("presence") ?? "leads", $("presence"));

  function details() {
    const s = h.stats();
    $("d-transport").textContent = s.transport ?? "–";
    $("d-role").textContent =
      s.role === "follower" ? "uses another tab's" : s.role === "leader" ? "holds the connection" : "own connection";
    $("d-cursor").textContent = s.cursor ?? "–";
    $("d-reconnects").textContent = String(s.reconnects);
    $("d-last-event").textContent = s.lastEvent ? `${ago(s.lastEventAt)} · ${s.lastEvent.topic ?? ""}` : "–";
    $("d-last-heartbeat").textContent = ago(s.lastHeartbeatAt);
  }
  details();
  setInterval(details, 1000);
}

start();
