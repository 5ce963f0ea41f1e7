/**
 * The storage sink: an HTTP endpoint on loopback speaking the few Blob service operations the
 * agent's import makes (Create Container, Get Blob Properties, Put Blob, Put Block, Put Block
 * List, Get Block List, Set Blob Properties/Metadata, Delete Blob, Copy Blob), keeping only what
 * those answers need (lengths, block ids, the Content-MD5 the agent sets) and discarding every
 * byte unhashed: all the hashing on the machine is then the agent's, and the figure is the
 * agent's own ceiling, free of Azurite's single thread. Authentication is not checked. For
 * bench/ only: the tests keep Azurite. It records when bytes and commits arrived, for
 * bench:scale's first-tenth / last-tenth comparison.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

interface SinkBlob {
  length: number;
  md5?: string;
  contentType?: string;
  etag: string;
  committed: { name: string; size: number }[];
  uncommitted: Map<string, number>;
  /** Put Block calls it took (a copy log sent as many blocks was streamed, not built whole). */
  blocksReceived: number;
}

export interface StorageSink {
  port: number;
  /** Bytes received in block and blob bodies. */
  bytes(): number;
  /** Bench-clock seconds of each commit (Put Blob or Put Block List), in order. */
  commits: number[];
  /** [bench-clock seconds, bytes received so far] after each body. */
  arrivals: [number, number][];
  /** The blobs (container/name) the sink holds, with their sizes and how many blocks made them. */
  blobs(): { name: string; length: number; blocks: number }[];
  stop(): Promise<void>;
}

const clock = () => Number(process.hrtime.bigint()) / 1e9;
const xmlEscape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export async function startSink(): Promise<StorageSink> {
  const containers = new Set<string>();
  const blobs = new Map<string, SinkBlob>();
  let received = 0;
  const commits: number[] = [];
  const arrivals: [number, number][] = [];

  const reply = (res: ServerResponse, status: number, headers: Record<string, string> = {}, body = "") => {
    res.writeHead(status, {
      "x-ms-request-id": randomUUID(),
      "x-ms-version": "2025-01-05",
      date: new Date().toUTCString(),
      "content-length": String(Buffer.byteLength(body)),
      ...(body ? { "content-type": "application/xml" } : {}),
      ...headers,
    });
    res.end(body);
  };
  const fail = (res: ServerResponse, status: number, code: string, head = false) =>
    reply(
      res,
      status,
      { "x-ms-error-code": code },
      head
        ? ""
        : `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`,
    );
  /** Reads a body: kept (small XML) or counted and dropped. */
  const body = (req: IncomingMessage, keep: boolean) =>
    new Promise<string>((resolve, reject) => {
      const parts: Buffer[] = [];
      req.on("data", (d: Buffer) => {
        if (keep) parts.push(d);
        else received += d.length;
      });
      req.on("end", () => {
        if (!keep) arrivals.push([clock(), received]);
        resolve(keep ? Buffer.concat(parts).toString("utf8") : "");
      });
      req.on("error", reject);
    });
  const stamp = (b: SinkBlob) => {
    b.etag = `"0x${Date.now().toString(16).toUpperCase()}${Math.floor(Math.random() * 1e6)}"`;
    return { etag: b.etag, "last-modified": new Date().toUTCString() };
  };
  const blobHeaders = (b: SinkBlob) => ({
    "content-length": String(b.length),
    "x-ms-blob-type": "BlockBlob",
    etag: b.etag,
    "last-modified": new Date().toUTCString(),
    ...(b.md5 ? { "content-md5": b.md5 } : {}),
    "content-type": b.contentType ?? "application/octet-stream",
  });
  const fresh = (): SinkBlob => ({
    length: 0,
    etag: "",
    committed: [],
    uncommitted: new Map(),
    blocksReceived: 0,
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://sink");
    const [, , container = "", ...rest] = url.pathname.split("/");
    const name = `${container}/${rest.map(decodeURIComponent).join("/")}`;
    const q = url.searchParams;
    const comp = q.get("comp");
    const h = (k: string) => req.headers[k] as string | undefined;
    if (q.get("restype") === "container") {
      await body(req, true);
      if (req.method === "PUT") {
        if (containers.has(container)) return fail(res, 409, "ContainerAlreadyExists");
        containers.add(container);
        return reply(res, 201, { etag: '"0x1"', "last-modified": new Date().toUTCString() });
      }
      return containers.has(container)
        ? reply(res, 200, { etag: '"0x1"' })
        : fail(res, 404, "ContainerNotFound", req.method === "HEAD");
    }
    let b = blobs.get(name);
    if (req.method === "HEAD" || (req.method === "GET" && !comp)) {
      await body(req, true);
      if (!b || (b.committed.length === 0 && b.md5 === undefined && b.length === 0 && b.uncommitted.size > 0))
        return fail(res, 404, "BlobNotFound", req.method === "HEAD");
      return reply(res, 200, blobHeaders(b));
    }
    if (req.method === "GET" && comp === "blocklist") {
      await body(req, true);
      if (!b) return fail(res, 404, "BlobNotFound");
      const list = (l: { name: string; size: number }[]) =>
        l.map((x) => `<Block><Name>${xmlEscape(x.name)}</Name><Size>${x.size}</Size></Block>`).join("");
      const xml = `<?xml version="1.0" encoding="utf-8"?><BlockList><CommittedBlocks>${list(b.committed)}</CommittedBlocks><UncommittedBlocks>${list([...b.uncommitted].map(([n, s]) => ({ name: n, size: s })))}</UncommittedBlocks></BlockList>`;
      return reply(res, 200, { "x-ms-blob-content-length": String(b.length) }, xml);
    }
    if (req.method === "DELETE") {
      await body(req, true);
      if (!b) return fail(res, 404, "BlobNotFound");
      blobs.delete(name);
      return reply(res, 202);
    }
    if (req.method !== "PUT") {
      await body(req, true);
      return fail(res, 400, "UnsupportedHttpVerb");
    }
    const exists = b !== undefined && (b.committed.length > 0 || b.length > 0 || b.md5 !== undefined);
    const refused = h("if-none-match") === "*" && exists;
    if (comp === "block") {
      await body(req, false);
      // Looked up again after the body: concurrent first blocks of one blob must share one record.
      b = blobs.get(name) ?? fresh();
      blobs.set(name, b);
      b.uncommitted.set(q.get("blockid") ?? "", Number(h("content-length") ?? 0));
      b.blocksReceived++;
      return reply(res, 201, { "x-ms-request-server-encrypted": "true" });
    }
    if (comp === "blocklist") {
      const xml = await body(req, true);
      if (refused) return fail(res, 409, "BlobAlreadyExists");
      b = blobs.get(name) ?? fresh();
      blobs.set(name, b);
      const sizes = new Map([...b.committed.map((c) => [c.name, c.size] as const), ...b.uncommitted]);
      const ids = [...xml.matchAll(/<(?:Latest|Committed|Uncommitted)>([^<]*)<\//g)].map((m) => m[1]!);
      const missing = ids.find((id) => !sizes.has(id));
      if (missing !== undefined) return fail(res, 400, "InvalidBlockList");
      b.committed = ids.map((id) => ({ name: id, size: sizes.get(id)! }));
      b.uncommitted.clear();
      b.length = b.committed.reduce((a, c) => a + c.size, 0);
      b.md5 = h("x-ms-blob-content-md5");
      b.contentType = h("x-ms-blob-content-type");
      commits.push(clock());
      return reply(res, 201, stamp(b));
    }
    if (comp === "properties" || comp === "metadata") {
      await body(req, true);
      if (!b) return fail(res, 404, "BlobNotFound");
      if (comp === "properties") {
        b.md5 = h("x-ms-blob-content-md5");
        b.contentType = h("x-ms-blob-content-type");
      }
      return reply(res, 200, stamp(b));
    }
    const source = h("x-ms-copy-source");
    if (source) {
      await body(req, true);
      const from = blobs.get(new URL(source).pathname.split("/").slice(2).map(decodeURIComponent).join("/"));
      if (!from) return fail(res, 404, "CannotVerifyCopySource");
      if (refused) return fail(res, 409, "BlobAlreadyExists");
      const copy: SinkBlob = { ...from, committed: [...from.committed], uncommitted: new Map() };
      blobs.set(name, copy);
      return reply(res, 202, { ...stamp(copy), "x-ms-copy-id": randomUUID(), "x-ms-copy-status": "success" });
    }
    // Put Blob: the whole blob in one request.
    const length = Number(h("content-length") ?? 0);
    await body(req, false);
    if (refused) return fail(res, 409, "BlobAlreadyExists");
    b = fresh();
    b.length = length;
    b.md5 = h("x-ms-blob-content-md5") ?? h("content-md5");
    b.contentType = h("x-ms-blob-content-type");
    blobs.set(name, b);
    commits.push(clock());
    return reply(res, 201, stamp(b));
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) fail(res, 500, "InternalError");
      console.error(`sink: ${(e as Error).message}`);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    bytes: () => received,
    commits,
    arrivals,
    blobs: () => [...blobs].map(([name, b]) => ({ name, length: b.length, blocks: b.blocksReceived })),
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
