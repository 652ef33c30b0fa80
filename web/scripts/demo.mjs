// `npm run demo`: the whole stack (nats-server, herald-ingest, herald-gateway serving this
// folder) and a trickle of realistic CRM events, so a newcomer can open the dashboard and
// watch it update live. Ctrl-C stops everything.
//
// Try killing things while the page is open: the indicator says what happens, and the feed
// never misses an event. The service logs go to $TMPDIR/herald-demo-logs/.

import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Stack, token } from "../e2e/stack.mjs";

const NAMES = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Barbara Liskov", "Edsger Dijkstra", "Margaret Hamilton", "Donald Knuth", "Frances Allen", "Ken Thompson", "Radia Perlman"];
const COMPANIES = ["Initech", "Globex", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises"];
const pick = (a) => a[Math.floor(Math.random() * a.length)];

let n = 0;
function nextEvent() {
  n += 1;
  const roll = Math.random();
  if (roll < 0.5) return { id: `demo-${Date.now()}-${n}`, topic: "leads", action: pick(["insert", "insert", "update"]), data: { id: n, name: pick(NAMES), company: pick(COMPANIES), status: pick(["new", "contacted", "qualified"]) } };
  if (roll < 0.8) return { id: `demo-${Date.now()}-${n}`, topic: "deals", action: pick(["insert", "update"]), data: { id: n, title: `${pick(COMPANIES)} renewal`, amount: 1000 * Math.ceil(Math.random() * 50) } };
  return { id: `demo-${Date.now()}-${n}`, topic: "tickets", action: pick(["insert", "update", "delete"]), data: { id: n, subject: pick(["Cannot log in", "Invoice question", "Feature request", "Export is slow"]) } };
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
  const timer = setInterval(() => {
    stack.publish([nextEvent()]).catch((err) => console.error(`publish: ${err.message}`));
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
