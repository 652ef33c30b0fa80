// Reconnect delays: exponential backoff with full jitter.
//
// The delay before retry n (0-based) is uniform in [0, min(cap, base * 2^n)): the first retry
// comes within `base` (1 s by default) and no delay ever exceeds `cap` (30 s), so a client
// never waits long and a thousand clients that lost the same gateway do not come back in
// step. There is no retry limit: a client gives up only when the app closes it.

/** Default bounds, in milliseconds. */
export const BACKOFF = Object.freeze({ base: 1000, cap: 30_000 });

/**
 * The delay before retry `attempt` (0 = first retry), in milliseconds.
 * @param {number} attempt
 * @param {{ base?: number, cap?: number, random?: () => number }} [opts]
 */
export function backoffDelay(attempt, { base = BACKOFF.base, cap = BACKOFF.cap, random = Math.random } = {}) {
  // 2^30 * base is far above any sane cap; clamping keeps the arithmetic finite forever.
  const ceiling = Math.min(cap, base * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.floor(random() * ceiling);
}
