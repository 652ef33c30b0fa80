// A small HTTP + WebSocket proxy in front of the gateway, for "SSE refused by the server":
// it can answer 503 (plain text, not Herald's JSON) to /v1/stream and to WebSocket upgrades,
// cut or silently stall the connections it carries, and count them.

import { request } from "node:http";
import { createServer } from "node:http";
import { connect } from "node:net";

export class Proxy {
  constructor(target) {
    this.target = new URL(target);
    this.refuse = { sse: false, ws: false };
    this.open = new Set();
    this.refused = { sse: 0, ws: 0 };
  }

  async start() {
    this.server = createServer((req, res) => this.http(req, res));
    this.server.on("upgrade", (req, socket, head) => this.upgrade(req, socket, head));
    await new Promise((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  http(req, res) {
    const sse = req.url.startsWith("/v1/stream");
    if (sse && this.refuse.sse) {
      this.refused.sse++;
      res.writeHead(503, { "content-type": "text/plain" }).end("streaming is not allowed here\n");
      return;
    }
    const entry = sse ? this.track("sse", res.socket) : { stalled: false };
    const up = request(
      { host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode, r.headers);
        // A stalled connection stays open but carries nothing: a dead link nobody closed.
        r.on("data", (chunk) => entry.stalled || res.write(chunk));
        r.on("end", () => entry.stalled || res.end());
      },
    );
    up.on("error", () => res.destroy());
    res.on("close", () => up.destroy());
    req.pipe(up);
  }

  upgrade(req, socket, head) {
    if (this.refuse.ws) {
      this.refused.ws++;
      socket.end("HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
      return;
    }
    const up = connect(Number(this.target.port), this.target.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (head?.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    const close = () => {
      up.destroy();
      socket.destroy();
    };
    up.on("error", close);
    socket.on("error", close);
    this.track("ws", socket, up);
  }

  track(kind, ...sockets) {
    const entry = { kind, sockets, stalled: false };
    this.open.add(entry);
    sockets[0].once("close", () => this.open.delete(entry));
    return entry;
  }

  /** Keeps every open SSE stream open but silent from now on. */
  stall() {
    for (const e of this.open) if (e.kind === "sse") e.stalled = true;
  }

  /** Open streams of `kind` still carrying data. */
  carrying(kind) {
    return [...this.open].filter((e) => e.kind === kind && !e.stalled).length;
  }

  /** Cuts every carried connection of `kind` (as a proxy restart would). */
  cut(kind) {
    for (const e of this.open) if (e.kind === kind) for (const s of e.sockets) s.destroy();
  }

  async stop() {
    for (const e of this.open) for (const s of e.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}
