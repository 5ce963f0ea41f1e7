import { Writable } from "node:stream";
import pino from "pino";

/** A real pino logger that keeps its lines, so tests can assert on what was logged. */
export function captureLog(): {
  log: pino.Logger;
  lines: () => Record<string, unknown>[];
  text: () => string;
} {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const log = pino({ level: "debug" }, sink);
  const text = () => chunks.join("");
  const lines = () =>
    text()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, lines, text };
}
