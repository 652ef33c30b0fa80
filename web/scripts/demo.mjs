// `npm run demo`: the whole stack (nats-server, herald-ingest, herald-gateway serving this
// folder, herald-stats) and a trickle of realistic CRM events, so a newcomer can open the
// dashboard and watch it update live: the feed, the counters, and the `leads` and `services`
// collections as live tables (rows inserted, changed and deleted in place). Ctrl-C stops
// everything.
//
// Try killing things while the page is open: the indicator says what happens, and the feed
// never misses an event. The service logs go to $TMPDIR/herald-demo-logs/.

import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Stack, token } from "../e2e/stack.mjs";

const NAMES = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Barbara Liskov", "Edsger Dijkstra", "Margaret Hamilton", "Donald Knuth", "Frances Allen", "Ken Thompson", "Radia Perlman"];
const COMPANIES = ["Initech", "Globex", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises"];
const FLOW = ["new", "contacted", "qualified", "won"];
const SERVICES = ["api", "billing", "search", "mailer", "webhooks"];
const pick = (a) => a[Math.floor(Math.random() * a.length)];

// The leads table the demo keeps (the `leads` collection shows it): about a dozen rows that
// are inserted, move through the statuses, and are deleted (closed ones first).
const leads = new Map();
let n = 0;

function leadChange() {
  const open = [...leads.values()].filter((l) => !["won", "lost"].includes(l.status));
  const roll = Math.random();
  if (leads.size < 3 || (roll < 0.45 && leads.size < 12)) {
    const lead = { id: ++n, name: pick(NAMES), company: pick(COMPANIES), status: "new" };
    leads.set(lead.id, lead);
    return { action: "insert", data: { ...lead } };
  }
  if (roll < 0.85 && open.length) {
    const lead = pick(open);
    const next = FLOW[FLOW.indexOf(lead.status) + 1];
    lead.status = next && Math.random() < 0.85 ? next : "lost";
    return { action: "update", data: { ...lead } };
  }
  const lead = [...leads.values()].find((l) => ["won", "lost"].includes(l.status)) ?? pick([...leads.values()]);
  leads.delete(lead.id);
  return { action: "delete", data: { ...lead } };
}

/** A service's status now (the `services` collection, keyed by name). */
function serviceStatus(name) {
  const roll = Math.random();
  const [status, latency] = roll < 0.75 ? ["up", 8 + Math.floor(Math.random() * 50)] : roll < 0.93 ? ["degraded", 200 + Math.floor(Math.random() * 700)] : ["down", 0];
  return { topic: "services", action: "upsert", data: { name, status, latency_ms: latency, checked_at: new Date().toISOString() } };
}

/** One tick: a lead change, sometimes a deal or a ticket, sometimes a service's status. */
function nextEvents() {
  const id = () => `demo-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const out = [{ id: id(), topic: "leads", ...leadChange() }];
  const roll = Math.random();
  if (roll < 0.3) out.push({ id: id(), topic: "deals", action: pick(["insert", "update"]), data: { id: n, title: `${pick(COMPANIES)} renewal`, amount: 1000 * Math.ceil(Math.random() * 50) } });
  else if (roll < 0.45) out.push({ id: id(), topic: "tickets", action: pick(["insert", "update", "delete"]), data: { id: n, subject: pick(["Cannot log in", "Invoice question", "Feature request", "Export is slow"]) } });
  if (Math.random() < 1 / 3) out.push({ id: id(), ...serviceStatus(pick(SERVICES)) });
  return out;
}

async function main() {
  Stack.build();
  // Outside web/: the gateway serves this folder.
  const logDir = join(tmpdir(), "herald-demo-logs");
  mkdirSync(logDir, { recursive: true });
  const stack = new Stack({ logDir });
  await stack.start();
  const url = `${stack.gatewayUrl}/#token=${token({ sub: "demo", ttl: 7 * 24 * 3600 })}`;
  console.log(`\n  Herald dashboard:  ${url}\n`);
  console.log(`  ingest:            ${stack.ingestUrl}   (POST /v1/events, Authorization: Bearer k)`);
  console.log(`  gateway:           ${stack.gatewayUrl}`);
  console.log(`  logs:              ${logDir}\n  Ctrl-C stops everything.\n`);
  await stack.publish(SERVICES.map((name) => ({ id: `demo-${Date.now()}-${name}`, ...serviceStatus(name) })));
  const timer = setInterval(() => {
    stack.publish(nextEvents()).catch((err) => console.error(`publish: ${err.message}`));
  }, 1500);
  const stop = async () => {
    clearInterval(timer);
    await stack.stop();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
