/**
 * A reverse proxy to the storage that counts the body bytes of every data write (Put Blob, Put
 * Block, Put Page) into one container: what the agent really sent, whether or not the run lived
 * to log it. The soak (bench/soak.ts), the staged crash suites and the repair suite count resent
 * bytes with it.
 */
import { createServer, Agent as HttpAgent, request, type Server } from "node:http";

/** One data write that storage accepted. */
export interface LandedWrite {
  /** The blob's path after the container (after the account when every container counts), decoded. */
  blob: string;
  /** `block` (Put Block), `page` (Put Page) or `blob` (Put Blob). */
  kind: "block" | "page" | "blob";
  blockId?: string;
  bytes: number;
}

export interface CountingProxy {
  port: number;
  /** Body bytes of data writes into the container so far, every run included. */
  sent(): number;
  /** Every data write storage accepted, in the order it answered. */
  landed(): readonly LandedWrite[];
  /**
   * Calls `fn` when the next data write has landed at storage, and never answers that request:
   * the client dies (say) without hearing that its write is in.
   */
  onNextLanded(fn: () => void): void;
  /** Requests the proxy is still relaying (0 once a killed agent's requests have ended). */
  open(): number;
  close(): Promise<void>;
}

export async function countingProxy(
  target: number,
  account: string,
  /** The counted container; `undefined` counts data writes into every container of the account. */
  container: string | undefined,
  /** Holds each data write's answer this long: a floor under a transfer's time, whatever the machine's speed. */
  o: { answerDelayMs?: number } = {},
): Promise<CountingProxy> {
  let sent = 0;
  let open = 0;
  const landed: LandedWrite[] = [];
  let hook: (() => void) | undefined;
  const upstream = new HttpAgent({ keepAlive: true, maxSockets: 256 });
  const accountPrefix = `/${account}/`;
  const prefix = container === undefined ? accountPrefix : `${accountPrefix}${container}/`;
  const server: Server = createServer((req, res) => {
    open++;
    res.once("close", () => open--);
    const url = new URL(req.url ?? "/", "http://x");
    const comp = url.searchParams.get("comp");
    const counts =
      req.method === "PUT" &&
      url.pathname.startsWith(prefix) &&
      (comp === null || comp === "block" || comp === "page");
    const out = request(
      {
        host: "127.0.0.1",
        port: target,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent: upstream,
      },
      (up) => {
        if (counts && (up.statusCode ?? 0) < 300) {
          const blockId = url.searchParams.get("blockid") ?? undefined;
          landed.push({
            blob: decodeURIComponent(url.pathname.slice(prefix.length)),
            kind: comp === null ? "blob" : (comp as "block" | "page"),
            ...(blockId ? { blockId } : {}),
            bytes: bodyBytes,
          });
          const held = hook;
          hook = undefined;
          if (held) return held();
        }
        const answer = () => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        };
        if (counts && o.answerDelayMs) setTimeout(answer, o.answerDelayMs);
        else answer();
      },
    );
    out.on("error", () => res.destroy());
    let bodyBytes = 0;
    req.on("data", (d: Buffer) => {
      if (!counts) return;
      sent += d.length;
      bodyBytes += d.length;
    });
    req.on("error", () => out.destroy());
    res.on("close", () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    sent: () => sent,
    landed: () => landed,
    onNextLanded: (fn) => {
      hook = fn;
    },
    open: () => open,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
        upstream.destroy();
      }),
  };
}
