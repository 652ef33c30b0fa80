// A public feed page on another site: herald.js in public mode reads the tenant's public
// topic with no token, across origins (CORS `*`), and nothing else; and the dashboard's
// "Online" panel shows a visitor who connects to the presence topic, then sees it leave.

import { TIMEOUT, screenshot } from "../browser.mjs";
import { ids as idsOf } from "../page.mjs";
import { TENANT, token, uid, until } from "../stack.mjs";

export const name = "public feed without a token from another origin; who is online on the dashboard";

/** The same gateway under another host name: a different origin for the browser. */
function otherOrigin(url) {
  const u = new URL(url);
  u.hostname = u.hostname === "localhost" ? "127.0.0.1" : "localhost";
  return u.origin;
}

async function publicFeed({ stack, browser }) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (err) => errors.push(err));
    // A page of another origin that loads herald.js from itself and reads the gateway's
    // public topic cross-origin.
    await page.goto(`${otherOrigin(stack.gatewayUrl)}/herald.js`);
    await page.evaluate(
      async ({ gateway, tenant }) => {
        const { Herald } = await import("/herald.js");
        window.got = [];
        window.h = Herald.connect(gateway, { public: true, tenant, topics: ["prices"], shareTabs: false });
        window.h.subscribe("*", (e) => window.got.push(e.id));
      },
      { gateway: stack.gatewayUrl, tenant: TENANT },
    );
    await page.waitForFunction(() => window.h.state === "live", null, { timeout: TIMEOUT });
    const run = uid();
    const prices = idsOf(run, "price", 3);
    const privateIds = idsOf(run, "lead", 2);
    await stack.publish([...prices.map((id, i) => ({ id, topic: "prices", data: { price: 100 + i } })), ...privateIds.map((id) => ({ id }))]);
    await until("the public page to receive the prices", () => page.evaluate((w) => w.every((id) => window.got.includes(id)), prices));
    const got = await page.evaluate(() => window.got.filter((id) => id.includes("-price-") || id.includes("-lead-")));
    if (JSON.stringify(got) !== JSON.stringify(prices)) throw new Error(`the public page got ${got.join(", ")}; want only ${prices.join(", ")}`);
    const transport = await page.evaluate(() => window.h.stats().transport);
    if (transport !== "sse") throw new Error(`the public feed fell back to ${transport}: is CORS * missing?`);
    if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  } finally {
    await context.close();
  }
}

async function onlinePanel({ stack, browser }) {
  const context = await browser.newContext();
  try {
    const dashboard = await context.newPage();
    await dashboard.goto(`${stack.gatewayUrl}/#token=${token({ sub: "operator", presence: true })}`);
    const members = () => dashboard.$$eval("[data-presence-members] li", (lis) => lis.map((li) => li.textContent));
    await until("the Online panel to list the operator", async () => (await members()).includes("operator"));

    const visitorContext = await browser.newContext();
    const visitor = await visitorContext.newPage();
    await visitor.goto(`${stack.gatewayUrl}/herald.js`);
    await visitor.evaluate(async (jwt) => {
      const { Herald } = await import("/herald.js");
      window.h = Herald.connect("", { token: jwt, topics: ["leads"], shareTabs: false });
    }, token({ sub: "visitor", topics: ["leads"] }));
    await until("the Online panel to list the visitor", async () => (await members()).includes("visitor"));
    const count = await dashboard.$eval("[data-presence-count]", (b) => Number(b.textContent));
    if (count !== (await members()).length) throw new Error(`count ${count} but members ${(await members()).join(", ")}`);
    await screenshot(dashboard, "dashboard-online");
    await visitorContext.close();
    await until("the visitor to leave the Online panel", async () => !(await members()).includes("visitor"));
  } finally {
    await context.close();
  }
}

export default async function (ctx) {
  await publicFeed(ctx);
  await onlinePanel(ctx);
}
