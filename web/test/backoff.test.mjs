import assert from "node:assert/strict";
import { test } from "node:test";

import { BACKOFF, backoffDelay } from "../herald.js";

test("the first retry comes within a second", () => {
  for (const r of [0, 0.25, 0.5, 0.999999]) {
    const d = backoffDelay(0, { random: () => r });
    assert.ok(d >= 0 && d < 1000, `${d}`);
  }
});

test("delays grow exponentially, are fully jittered, and never pass the cap", () => {
  const top = () => 0.999999;
  let previousCeiling = 0;
  for (let n = 0; n < 200; n++) {
    const ceiling = Math.min(BACKOFF.cap, BACKOFF.base * 2 ** n);
    const d = backoffDelay(n, { random: top });
    assert.ok(d < ceiling && d <= BACKOFF.cap, `attempt ${n}: ${d}`);
    assert.ok(ceiling >= previousCeiling);
    previousCeiling = ceiling;
    // Full jitter: the whole range down to zero is possible at every attempt.
    assert.equal(backoffDelay(n, { random: () => 0 }), 0);
  }
  assert.equal(backoffDelay(5, { random: top }), 29_999, "2^5 s is above the 30 s cap");
  assert.equal(backoffDelay(1e9, { random: top }), 29_999, "huge attempt counts stay finite");
  assert.equal(backoffDelay(3, { base: 100, cap: 500, random: top }), 499);
});
