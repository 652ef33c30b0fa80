import assert from "node:assert/strict";
import { test } from "node:test";

import { SseParser } from "../herald.js";

function collect() {
  const out = { messages: [], comments: [], retries: [] };
  const p = new SseParser({
    message: (m) => out.messages.push(m),
    comment: (c) => out.comments.push(c),
    retry: (r) => out.retries.push(r),
  });
  return { p, out };
}

test("parses what the gateway sends, split anywhere", () => {
  const stream =
    "retry: 1834\n\n" +
    'id: 7-000000ab\ndata: {"id":"a"}\n\n' +
    ": hb\n\n" +
    'event: status\ndata: {"state":"degraded"}\n\n' +
    'id: 9-00000001\nevent: reset\ndata: {"cursor":"9-00000001","reason":"out_of_retention"}\n\n';
  for (let size = 1; size <= stream.length; size++) {
    const { p, out } = collect();
    for (let i = 0; i < stream.length; i += size) p.push(stream.slice(i, i + size));
    assert.deepEqual(out.retries, [1834]);
    assert.deepEqual(out.comments, ["hb"]);
    assert.deepEqual(out.messages, [
      { event: "message", data: '{"id":"a"}', id: "7-000000ab" },
      { event: "status", data: '{"state":"degraded"}', id: undefined },
      { event: "reset", data: '{"cursor":"9-00000001","reason":"out_of_retention"}', id: "9-00000001" },
    ]);
  }
});

test("CR, LF and CRLF line ends, multi-line data, no-space values, unknown fields", () => {
  const { p, out } = collect();
  p.push("data:a\r\ndata: b\rfoo: bar\n\r");
  p.push("\n"); // the LF of a CRLF split across chunks is not a second blank line
  p.push("data: c\n\n");
  assert.deepEqual(
    out.messages.map((m) => m.data),
    ["a\nb", "c"],
  );
});

test("an id without data dispatches nothing; a partial message waits", () => {
  const { p, out } = collect();
  p.push("id: 1-0\n\ndata: x");
  assert.equal(out.messages.length, 0);
  p.push("\n\n");
  assert.equal(out.messages.length, 1);
});
