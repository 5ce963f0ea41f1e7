/**
 * The web console: static files (no build step; src/api/console/, copied to dist by `npm run
 * build`) and the operator's push stream. The page itself holds no data, so it is public; all
 * data comes from operator routes the page calls with the token the operator typed in (kept in
 * sessionStorage, sent as `Authorization: Bearer`). The stream is read with fetch(), not
 * EventSource, precisely so it can carry that header: no token ever goes into a URL.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { StationError } from "../errors.js";
import type { ConsoleFeed, FeedEvent } from "./console-feed.js";

const here = dirname(fileURLToPath(import.meta.url));
/** dist/src/api/console (copied by the build), else the source tree (vitest, or a dist built without the copy). */
const ASSET_DIRS = [join(here, "console"), join(here, "../../../src/api/console")];

const ASSETS: Record<string, { file: string; type: string }> = {
  "/console": { file: "index.html", type: "text/html; charset=utf-8" },
  "/console/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/console/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/console/actions.js": { file: "actions.js", type: "text/javascript; charset=utf-8" },
  "/console/dom.js": { file: "dom.js", type: "text/javascript; charset=utf-8" },
  "/console/notices.js": { file: "notices.js", type: "text/javascript; charset=utf-8" },
  "/console/session.js": { file: "session.js", type: "text/javascript; charset=utf-8" },
  "/console/sparkline.js": { file: "sparkline.js", type: "text/javascript; charset=utf-8" },
  "/console/console.css": { file: "console.css", type: "text/css; charset=utf-8" },
};

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

/** A client this far behind is dropped; its browser reconnects and gets a fresh view. */
const MAX_BUFFERED = 4 * 1024 * 1024;

export function consoleAssetDir(): string {
  const dir = ASSET_DIRS.find((d) => existsSync(join(d, "index.html")));
  if (!dir)
    throw new StationError(
      "InternalError",
      `The console's files are missing (looked in ${ASSET_DIRS.join(", ")}): rebuild with 'npm run build'.`,
    );
  return dir;
}

export function registerConsole(app: FastifyInstance, feed: ConsoleFeed): void {
  const dir = consoleAssetDir();
  for (const [url, asset] of Object.entries(ASSETS)) {
    const body = readFileSync(join(dir, asset.file));
    app.get(url, { config: { access: "public" } }, async (_req, reply) =>
      reply.headers({ ...SECURITY_HEADERS, "content-type": asset.type }).send(body),
    );
  }

  const open = new Set<() => void>();
  app.addHook("preClose", async () => {
    for (const end of open) end();
  });

  app.get("/station/v1/events", { config: { access: "operator" } }, (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
      connection: "keep-alive",
    });
    if (req.method === "HEAD") return void res.end();
    res.write("retry: 2000\n\n");
    let unsubscribe: () => void = () => undefined;
    const end = () => {
      clearInterval(ping);
      unsubscribe();
      open.delete(end);
      if (!res.writableEnded) res.end();
    };
    const send = (e: FeedEvent) => {
      if (res.writableLength > MAX_BUFFERED) return end();
      res.write(`event: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`);
    };
    const ping = setInterval(() => res.write(": keep-alive\n\n"), 15_000);
    open.add(end);
    res.on("close", end);
    unsubscribe = feed.subscribe(send);
  });
}
