// The real Herald stack for browser tests: nats-server, herald-ingest, herald-gateway and
// herald-stats (counting `leads` by `status`, and writing the collections' rows) as separate
// processes, each on a free port, each killable and restartable on the same port. `leads`
// (key `id`) and `services` (key `name`) are collections (proto/state.md).
//
// This is a thin client of `herald-launch` (crates/herald-launch), the one Stack the Rust tests,
// chaos and bench use: it starts the stack from flags, prints one JSON line with the URLs, then
// obeys line commands on stdin (`kill gateway`, `start nats`, …), answering one JSON line each.
// Readiness is observed by it (nats-server's "Server is ready", `GET /readyz` → 200), never slept on.

import { spawn, spawnSync } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO = resolve(WEB_DIR, "..");
export const ARTIFACTS = join(WEB_DIR, "e2e", "artifacts");

const JWT_SECRET = "e2e-jwt-secret";
const API_KEY = "k";
export const TENANT = "demo";
/** The gateway's heartbeat in the tests (the client is told the same). */
export const HEARTBEAT_MS = 1000;
/** The collections every service of the stack is told about (`[state]`). */
export const COLLECTIONS = `{${TENANT}={leads={key="id"},services={key="name"}}}`;

/** Waits for `check()` to return a truthy value, polling every `every` ms, up to `ms`. */
export async function until(what, check, { ms = 20_000, every = 100 } = {}) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (${last.message})` : ""}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** An HS256 JWT for the gateway, made with node:crypto. */
export function token({ sub = "e2e", topics = ["*"], ttl = 3600, presence = false } = {}) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const claims = { sub, tenant: TENANT, topics, exp: Math.floor(Date.now() / 1000) + ttl, ...(presence ? { presence } : {}) };
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${head}.${createHmac("sha256", JWT_SECRET).update(head).digest("base64url")}`;
}

/** One component of the stack, as the scenarios use it: `stop("SIGKILL")` or `stop("SIGTERM")`. */
class Component {
  constructor(stack, name) {
    Object.assign(this, { stack, name });
  }

  /** SIGKILL (a crash) or SIGTERM (a clean stop), and waits for the exit. */
  stop(signal = "SIGKILL") {
    return this.stack.command(`${signal === "SIGKILL" ? "kill" : "stop"} ${this.name}`);
  }

  /** Starts it again on its port (if it is not running) and waits until it is ready. */
  start() {
    return this.stack.command(`start ${this.name}`);
  }
}

export class Stack {
  constructor({ logDir = join(ARTIFACTS, "logs") } = {}) {
    this.logDir = logDir;
    mkdirSync(this.logDir, { recursive: true });
    this.nats = new Component(this, "nats");
    this.ingest = new Component(this, "ingest");
    this.gateway = new Component(this, "gateway");
    this.stats = new Component(this, "stats");
  }

  static build() {
    if (process.env.HERALD_E2E_NO_BUILD) return;
    const r = spawnSync("cargo", ["build", "-p", "herald-launch", "-p", "herald-ingest", "-p", "herald-gateway", "-p", "herald-stats"], { cwd: REPO, stdio: "inherit" });
    if (r.status !== 0) throw new Error("cargo build failed");
  }

  async start() {
    const bin = join(process.env.CARGO_TARGET_DIR ?? join(REPO, "target"), "debug", "herald-launch");
    if (!existsSync(bin)) throw new Error(`${bin} not found (cargo build -p herald-launch)`);
    const env = (component, vars) => Object.entries(vars).flatMap(([k, v]) => ["--env", `${component}:${k}=${v}`]);
    const state = ["ingest", "gateway", "stats"].flatMap((c) => env(c, { HERALD_STATE__COLLECTIONS: COLLECTIONS }));
    const args = [
      ...state,
      "--ingest", "--gateways", "1", "--stats", "--log-filter", "info", "--log-dir", this.logDir,
      ...env("ingest", {
        HERALD_INGEST__SOURCES: `{crm={tenant="${TENANT}",format="sequin",verify={scheme="bearer"},secrets=["t0k"]}}`,
        HERALD_INGEST__API_KEYS: `{${TENANT}=["${API_KEY}"]}`,
      }),
      ...env("gateway", {
        HERALD_GATEWAY__WEB_DIR: WEB_DIR,
        HERALD_GATEWAY__JWT__SECRET: JWT_SECRET,
        HERALD_GATEWAY__HEARTBEAT: `${HEARTBEAT_MS}ms`,
        HERALD_GATEWAY__DRAIN_WINDOW: "100ms",
        // The public-presence scenario: `prices` readable without a token, `leads` a presence topic.
        HERALD_GATEWAY__PUBLIC: `{${TENANT}={topics=["prices"]}}`,
        HERALD_GATEWAY__PRESENCE: `{${TENANT}={topics=["leads"]}}`,
        HERALD_GATEWAY__PRESENCE_DEBOUNCE: "50ms",
      }),
      ...env("stats", { HERALD_STATS__GROUP_BY: '["leads.status"]', HERALD_STATS__FLUSH_INTERVAL: "20ms" }),
    ];
    this.child = spawn(bin, args, { stdio: ["pipe", "pipe", "inherit"] });
    this.exited = new Promise((r) => this.child.once("exit", (code, sig) => r({ code, sig })));
    const lines = createInterface({ input: this.child.stdout });
    this.waiting = [];
    lines.on("line", (line) => this.waiting.shift()?.resolve(line));
    this.child.once("exit", (code) => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`herald-launch exited (${code})`));
    });
    const up = JSON.parse(await this.next());
    Object.assign(this, { natsUrl: up.nats, ingestUrl: up.ingest, gatewayUrl: up.gateway, statsUrl: up.stats });
  }

  /** The next line herald-launch prints. */
  next() {
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Sends one command line; resolves once herald-launch did it (throws what it answered). */
  async command(line) {
    const answer = this.next();
    this.child.stdin.write(`${line}\n`);
    const reply = JSON.parse(await answer);
    if (!reply.ok) throw new Error(`herald-launch: ${line}: ${reply.error}`);
    return reply;
  }

  startNats() {
    return this.nats.start();
  }

  startIngest() {
    return this.ingest.start();
  }

  startGateway() {
    return this.gateway.start();
  }

  startStats() {
    return this.stats.start();
  }

  /** Starts whatever is not running (after a scenario that failed mid-outage). */
  async restore() {
    for (const c of [this.nats, this.gateway, this.ingest, this.stats]) await c.start();
  }

  /** Publishes events through ingest's publish API; resolves once JetStream stored them. */
  async publish(events) {
    const body = events.map((e) => ({ topic: e.topic ?? "leads", action: e.action ?? "insert", id: e.id, data: e.data ?? { id: e.id, name: e.name ?? `Lead ${e.id}` }, ...(e.to ? { to: e.to } : {}) }));
    return until(`ingest to store ${events.length} event(s)`, async () => {
      const res = await fetch(`${this.ingestUrl}/v1/events`, {
        method: "POST",
        headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (res.status === 503) return false; // NATS is coming back: retry, as a producer would
      if (!res.ok) throw new Error(`publish: ${res.status} ${await res.text()}`);
      return res.json();
    }, { ms: 30_000, every: 200 });
  }

  /** Sends a Sequin webhook (the `crm` source). */
  async sequin(id, record, { table = "leads", action = "insert" } = {}) {
    const res = await fetch(`${this.ingestUrl}/v1/webhooks/crm`, {
      method: "POST",
      headers: { Authorization: "Bearer t0k", "Content-Type": "application/json" },
      body: JSON.stringify({ record, changes: null, action, metadata: { table_name: table, idempotency_key: id } }),
    });
    if (!res.ok) throw new Error(`webhook: ${res.status} ${await res.text()}`);
    return res.json();
  }

  /** `GET /v1/stats` on the gateway: `{ stats: [{ topic, cursor, doc }…] }`. */
  async statsSnapshot() {
    const res = await fetch(`${this.gatewayUrl}/v1/stats`, { headers: { Authorization: `Bearer ${token()}` } });
    if (!res.ok) throw new Error(`GET /v1/stats: ${res.status} ${await res.text()}`);
    return res.json();
  }

  /** `GET /v1/snapshot` on the gateway, every page: `{ cursor, rows: { topic: { key: row } } }`. */
  async snapshot(topics = ["leads"]) {
    const rows = Object.fromEntries(topics.map((t) => [t, {}]));
    let q = `topics=${topics.join(",")}&limit=10000`;
    for (;;) {
      const res = await fetch(`${this.gatewayUrl}/v1/snapshot?${q}`, { headers: { Authorization: `Bearer ${token()}` } });
      if (!res.ok) throw new Error(`GET /v1/snapshot: ${res.status} ${await res.text()}`);
      const page = await res.json();
      for (const [t, r] of Object.entries(page.topics)) Object.assign(rows[t], r);
      if (!page.more) return { cursor: page.cursor, rows };
      q = `topics=${topics.join(",")}&limit=10000&cursor=${page.cursor}&after=${page.after}`;
    }
  }

  /** Open gateway connections by transport, from its /metrics. */
  async connections() {
    const text = await (await fetch(`${this.gatewayUrl}/metrics`)).text();
    const out = { sse: 0, ws: 0, poll: 0 };
    for (const m of text.matchAll(/^herald_gateway_connections\{transport="(\w+)"\} (\d+)/gm)) out[m[1].toLowerCase()] = Number(m[2]);
    return out;
  }

  /** Closes herald-launch's stdin: it stops every service with SIGTERM, then nats-server. */
  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.stdin.end();
    await this.exited;
  }
}

export const uid = () => randomUUID().slice(0, 8);
