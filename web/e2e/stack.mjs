// The real Herald stack for browser tests: nats-server, herald-ingest, herald-gateway and
// herald-stats (counting `leads` by `status`) as separate processes, each on a free port, each
// killable and restartable on the same port.
// Readiness is observed (nats-server's "Server is ready", `GET /readyz` → 200), never slept on.

import { spawn, spawnSync } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO = resolve(WEB_DIR, "..");
export const ARTIFACTS = join(WEB_DIR, "e2e", "artifacts");

const JWT_SECRET = "e2e-jwt-secret";
const API_KEY = "k";
export const TENANT = "demo";
/** The gateway's heartbeat in the tests (the client is told the same). */
export const HEARTBEAT_MS = 1000;

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

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** An HS256 JWT for the gateway, made with node:crypto. */
export function token({ sub = "e2e", topics = ["*"], ttl = 3600 } = {}) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, tenant: TENANT, topics, exp: Math.floor(Date.now() / 1000) + ttl })}`;
  return `${head}.${createHmac("sha256", JWT_SECRET).update(head).digest("base64url")}`;
}

class Proc {
  constructor(name, cmd, args, env, logDir) {
    Object.assign(this, { name, cmd, args, env, logDir, child: null, starts: 0 });
  }

  start(readyLine) {
    this.starts += 1;
    const log = createWriteStream(join(this.logDir, `${this.name}.log`), { flags: "a" });
    log.write(`\n--- start #${this.starts} ${new Date().toISOString()} ---\n`);
    const child = spawn(this.cmd, this.args, { env: { ...process.env, ...this.env }, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    this.exited = new Promise((r) => child.once("exit", (code, sig) => r({ code, sig })));
    if (!readyLine) return Promise.resolve();
    return new Promise((resolveReady, reject) => {
      let seen = "";
      const onData = (b) => {
        seen = (seen + b.toString()).slice(-4096);
        if (seen.includes(readyLine)) {
          child.stderr.off("data", onData);
          child.stdout.off("data", onData);
          resolveReady();
        }
      };
      child.stderr.on("data", onData);
      child.stdout.on("data", onData);
      child.once("exit", (code) => reject(new Error(`${this.name} exited (${code}) before "${readyLine}"`)));
      setTimeout(() => reject(new Error(`${this.name}: no "${readyLine}" within 20 s`)), 20_000).unref();
    });
  }

  /** SIGKILL (a crash) or SIGTERM (a clean stop), and waits for the exit. */
  async stop(signal = "SIGKILL") {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    await this.exited;
  }
}

export class Stack {
  constructor({ logDir = join(ARTIFACTS, "logs") } = {}) {
    this.tmp = mkdtempSync(join(tmpdir(), "herald-e2e-"));
    this.logDir = logDir;
    mkdirSync(this.logDir, { recursive: true });
  }

  static build() {
    if (process.env.HERALD_E2E_NO_BUILD) return;
    const r = spawnSync("cargo", ["build", "-p", "herald-ingest", "-p", "herald-gateway", "-p", "herald-stats"], { cwd: REPO, stdio: "inherit" });
    if (r.status !== 0) throw new Error("cargo build failed");
  }

  async start() {
    const natsBin = process.env.HERALD_NATS_SERVER ?? join(REPO, ".venv", "bin", "nats-server");
    if (!existsSync(natsBin)) throw new Error(`nats-server not found at ${natsBin} (set HERALD_NATS_SERVER, or run ./dev once)`);
    const bin = (name) => join(process.env.CARGO_TARGET_DIR ?? join(REPO, "target"), "debug", name);
    const [natsPort, ingestPort, gatewayPort, statsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    this.nats = new Proc("nats-server", natsBin, ["-js", "-a", "127.0.0.1", "-p", String(natsPort), "-sd", join(this.tmp, "js")], {}, this.logDir);
    const common = { HERALD_NATS__URL: `nats://127.0.0.1:${natsPort}`, RUST_LOG: "info" };
    this.ingestUrl = `http://127.0.0.1:${ingestPort}`;
    this.ingest = new Proc("herald-ingest", bin("herald-ingest"), [], {
      ...common,
      HERALD_INGEST__LISTEN: `127.0.0.1:${ingestPort}`,
      HERALD_INGEST__SOURCES: `{crm={tenant="${TENANT}",format="sequin",verify={scheme="bearer"},secrets=["t0k"]}}`,
      HERALD_INGEST__API_KEYS: `{${TENANT}=["${API_KEY}"]}`,
    }, this.logDir);
    this.gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
    this.gateway = new Proc("herald-gateway", bin("herald-gateway"), [], {
      ...common,
      HERALD_GATEWAY__LISTEN: `127.0.0.1:${gatewayPort}`,
      HERALD_GATEWAY__WEB_DIR: WEB_DIR,
      HERALD_GATEWAY__JWT__SECRET: JWT_SECRET,
      HERALD_GATEWAY__HEARTBEAT: `${HEARTBEAT_MS}ms`,
      HERALD_GATEWAY__DRAIN_WINDOW: "100ms",
    }, this.logDir);
    this.statsUrl = `http://127.0.0.1:${statsPort}`;
    this.stats = new Proc("herald-stats", bin("herald-stats"), [], {
      ...common,
      HERALD_STATS__LISTEN: `127.0.0.1:${statsPort}`,
      HERALD_STATS__GROUP_BY: '["leads.status"]',
      HERALD_STATS__FLUSH_INTERVAL: "20ms",
    }, this.logDir);
    await this.startNats();
    await Promise.all([this.startIngest(), this.startGateway(), this.startStats()]);
  }

  async startStats() {
    await this.stats.start();
    await until("stats /readyz", () => ready(this.statsUrl));
  }

  startNats() {
    return this.nats.start("Server is ready");
  }

  async startIngest() {
    await this.ingest.start();
    await until("ingest /readyz", () => ready(this.ingestUrl));
  }

  async startGateway() {
    await this.gateway.start();
    await until("gateway /readyz", () => ready(this.gatewayUrl));
  }

  /** Publishes events through ingest's publish API; resolves once JetStream stored them. */
  async publish(events) {
    const body = events.map((e) => ({ topic: e.topic ?? "leads", action: e.action ?? "insert", id: e.id, data: e.data ?? { id: e.id, name: e.name ?? `Lead ${e.id}` } }));
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

  /** Open gateway connections by transport, from its /metrics. */
  async connections() {
    const text = await (await fetch(`${this.gatewayUrl}/metrics`)).text();
    const out = { sse: 0, ws: 0, poll: 0 };
    for (const m of text.matchAll(/^herald_gateway_connections\{transport="(\w+)"\} (\d+)/gm)) out[m[1].toLowerCase()] = Number(m[2]);
    return out;
  }

  async stop() {
    await Promise.all([this.gateway?.stop("SIGTERM"), this.ingest?.stop("SIGTERM"), this.stats?.stop("SIGTERM")]);
    await this.nats?.stop("SIGTERM");
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

async function ready(base) {
  try {
    return (await fetch(`${base}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

export const uid = () => randomUUID().slice(0, 8);
