// An incremental parser for the `text/event-stream` format (WHATWG HTML §9.2).
//
// Herald reads SSE with `fetch` rather than `EventSource` so that it can send an
// `Authorization` header, see the HTTP status of a refusal, and — above all — see the `: hb`
// comments the gateway sends as heartbeats, which `EventSource` swallows. Without them a
// silent, dead connection cannot be told from a quiet one.

/**
 * @typedef {{ event: string, data: string, id: string | undefined }} SseMessage
 */

export class SseParser {
  /**
   * @param {{ message?: (m: SseMessage) => void, comment?: (text: string) => void,
   *           retry?: (ms: number) => void, id?: (id: string) => void }} handlers
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.event = "";
    this.data = [];
    this.id = undefined;
  }

  /** Feeds decoded text; complete lines are processed, a partial line waits for more. */
  push(text) {
    this.buffer += text;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      // A CR at the very end may be the first half of a CRLF split across chunks.
      if (c === 13 && i === this.buffer.length - 1) break;
      this.line(this.buffer.slice(start, i));
      if (c === 13 && this.buffer.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      if (this.data.length > 0) {
        this.handlers.message?.({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
      } else if (this.id !== undefined) {
        // An id without data moves the cursor and fires no event (a filtered stream's
        // heartbeat carries one past the events its filter left out).
        this.handlers.id?.(this.id);
      }
      this.reset();
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' */) {
      this.handlers.comment?.(line.slice(1).trimStart());
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.id = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.handlers.retry?.(Number(value));
        break;
      default:
        break; // unknown fields are ignored, as the standard says
    }
  }
}
