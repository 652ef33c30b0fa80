// Server-side filters (docs/gateway.md#filters-actions-where): `actions` and `where`, sent
// the same way on every transport, so live events and every resume are filtered alike.
//
//   actions  ["insert", "update"] (or "insert,update"): only events with one of these actions
//   where    ["data.status:active", "data.owner.id:u-42"] or { "data.status": "active" }:
//            all must hold; at most 4 (the gateway answers 400 otherwise)

/**
 * Normalizes the `actions` and `where` options. An empty `actions` list means no action filter.
 * @param {{ actions?: string[] | string | null, where?: string[] | Record<string, unknown> | null }} [opts]
 * @returns {{ actions: string[] | null, where: string[] }}
 */
export function normalizeFilter(opts = {}) {
  const { actions, where } = opts ?? {};
  const names = actions == null ? [] : (Array.isArray(actions) ? actions : String(actions).split(","));
  const list = names.map((a) => String(a).trim()).filter(Boolean);
  let conditions = [];
  if (Array.isArray(where)) conditions = where.map(String);
  else if (where && typeof where === "object") {
    conditions = Object.entries(where).map(([path, v]) => `${path}:${v === null ? "null" : String(v)}`);
  }
  return { actions: list.length ? list : null, where: conditions };
}

/** Query parameters for `endpoint()`: `actions` comma-joined, `where` repeated. */
export function filterParams(filter) {
  return {
    actions: filter?.actions?.length ? filter.actions.join(",") : undefined,
    where: filter?.where?.length ? filter.where : undefined,
  };
}

/** The filter fields of a WebSocket `subscribe` frame. */
export function filterFrame(filter) {
  const out = {};
  if (filter?.actions?.length) out.actions = filter.actions;
  if (filter?.where?.length) out.where = filter.where;
  return out;
}

/** A stable text for the filter: tabs share a connection only when their filters agree. */
export function filterKey(filter) {
  if (!filter?.actions && !filter?.where?.length) return "";
  return JSON.stringify([filter.actions ?? [], filter.where ?? []]);
}
