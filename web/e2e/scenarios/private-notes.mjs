// Two users' pages, each with the tenant's public feed (no token) and a private notification
// list (its own token): a note for one user is shown on that user's page only, a note for
// both on both, a note for nobody connected on neither, and a private event on the public
// topic never reaches a public feed. Delivery is in stream order, so once both pages show the
// last event of each list, everything they should have shown is there and nothing else ever
// arrives before it.

import { TIMEOUT, screenshot } from "../browser.mjs";
import { ids as idsOf } from "../page.mjs";
import { TENANT, token, uid, until } from "../stack.mjs";

export const name = "a private note reaches only its user's page; the public feed on both, private events never";

/** Opens `sub`'s page: a public price feed and its private notes, each rendered as a list. */
async function openPage(browser, gateway, sub) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(err));
  await page.goto(`${gateway}/herald.js`);
  await page.evaluate(
    async ({ gateway, tenant, jwt }) => {
      const { Herald } = await import("/herald.js");
      document.body.innerHTML = '<ul id="prices"></ul><ul id="notes"></ul>';
      const show = (list) => (e) => {
        const li = document.createElement("li");
        li.dataset.id = e.id;
        li.textContent = e.id;
        document.getElementById(list).append(li);
      };
      window.pub = Herald.connect(gateway, { public: true, tenant, topics: ["prices"], shareTabs: false });
      window.pub.subscribe("*", show("prices"));
      window.me = Herald.connect(gateway, { token: jwt, topics: ["notes"], shareTabs: false });
      window.me.subscribe("*", show("notes"));
    },
    { gateway, tenant: TENANT, jwt: token({ sub, topics: ["notes"] }) },
  );
  await page.waitForFunction(() => window.pub.state === "live" && window.me.state === "live", null, { timeout: TIMEOUT });
  return { sub, context, page, errors };
}

const shown = (page, list) => page.$$eval(`#${list} li`, (lis) => lis.map((li) => li.dataset.id));

export default async function ({ stack, browser }) {
  const [alice, bob] = [await openPage(browser, stack.gatewayUrl, "alice"), await openPage(browser, stack.gatewayUrl, "bob")];
  try {
    const run = uid();
    const [forAlice, forBob, forBoth, forCarol, endNote] = idsOf(run, "note", 5);
    const prices = idsOf(run, "price", 3);
    const [privatePrice] = idsOf(run, "private-price", 1);
    const note = (id, to) => ({ id, topic: "notes", data: { text: id }, to });
    await stack.publish([
      { id: prices[0], topic: "prices", data: { price: 100 } },
      note(forAlice, ["alice"]),
      { id: privatePrice, topic: "prices", data: { price: 1 }, to: ["alice"] },
      note(forBob, ["bob"]),
      { id: prices[1], topic: "prices", data: { price: 101 } },
      note(forBoth, ["alice", "bob"]),
      note(forCarol, ["carol"]),
      { id: prices[2], topic: "prices", data: { price: 102 } },
      note(endNote, ["alice", "bob"]),
    ]);
    const want = {
      alice: { notes: [forAlice, forBoth, endNote], prices },
      bob: { notes: [forBob, forBoth, endNote], prices },
    };
    for (const user of [alice, bob]) {
      await until(`${user.sub}'s page to show the last note and price`, async () => {
        const [notes, feed] = [await shown(user.page, "notes"), await shown(user.page, "prices")];
        return notes.includes(endNote) && feed.includes(prices[2]);
      });
      const notes = (await shown(user.page, "notes")).filter((id) => id.startsWith(run));
      const feed = (await shown(user.page, "prices")).filter((id) => id.startsWith(run));
      if (notes.join() !== want[user.sub].notes.join()) throw new Error(`${user.sub}'s notes: ${notes.join(", ")}; want ${want[user.sub].notes.join(", ")}`);
      if (feed.join() !== want[user.sub].prices.join()) throw new Error(`${user.sub}'s public feed: ${feed.join(", ")}; want ${prices.join(", ")}`);
      if (user.errors.length) throw new Error(`${user.sub}'s page errors: ${user.errors.join("; ")}`);
    }
    await screenshot(alice.page, "private-notes-alice");
    await screenshot(bob.page, "private-notes-bob");
  } finally {
    await alice.context.close();
    await bob.context.close();
  }
}
