/**
 * The GET client that reads a body straight into the caller's buffer (src/storage/socket-get.ts),
 * against servers that frame answers the ways a network does: a head and a body cut into many
 * small writes, a head split mid-line, keep-alive reuse, an error answer whose body is chunked
 * (as Azurite sends them), a connection closed while idle, TLS, a shared (SharedArrayBuffer)
 * buffer, and the answers it must refuse.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SocketGet } from "../../src/storage/socket-get.js";
import { sharedBuffer } from "../../src/transfer/core/buffer-pool.js";
import { makeCert } from "../support/agent.js";

const live = () => new AbortController().signal;
const closers: (() => void)[] = [];
afterAll(() => {
  for (const c of closers) c();
});

/** A raw TCP server: `answer(requestText, socket)` writes whatever bytes a test wants. */
async function rawServer(
  answer: (req: string, s: net.Socket) => void,
): Promise<{ url: URL; connections: () => number }> {
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    let buf = "";
    s.on("data", (d) => {
      buf += d.toString("latin1");
      const end = buf.indexOf("\r\n\r\n");
      if (end >= 0) {
        const req = buf.slice(0, end);
        buf = buf.slice(end + 4);
        answer(req, s);
      }
    });
    s.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  return { url: new URL(`http://127.0.0.1:${port}`), connections: () => connections };
}

/** Writes `bytes` in pieces of `size`, one per timer tick: many small reads on the other side. */
function dribble(s: net.Socket, bytes: Buffer, size: number): Promise<void> {
  return new Promise((resolve) => {
    let at = 0;
    const next = () => {
      if (at >= bytes.length) return resolve();
      s.write(bytes.subarray(at, at + size));
      at += size;
      setTimeout(next, 1);
    };
    next();
  });
}

describe("SocketGet", () => {
  it("reads a body cut into many small pieces, after a head split mid-line, into a shared buffer; the connection is reused", async () => {
    const body = randomBytes(300_000);
    const server = await rawServer((req, s) => {
      expect(req).toMatch(/^GET \/a\/b\?q=1 HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\nRange: bytes=0-299999/);
      const head = Buffer.from(
        `HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\nContent-MD5: abc==\r\n\r\n`,
      );
      void dribble(s, Buffer.concat([head, body]), 7_001);
    });
    const client = new SocketGet(server.url, 10_000);
    closers.push(() => client.close());
    const into = sharedBuffer(400_000);
    for (let i = 0; i < 3; i++) {
      into.fill(0);
      const a = await client.get("/a/b?q=1", { Range: "bytes=0-299999" }, into, body.length, live());
      expect(a.status).toBe(206);
      expect(a.got).toBe(body.length);
      expect(a.headers.get("content-md5")).toBe("abc==");
      expect(into.subarray(0, body.length).equals(body)).toBe(true);
      expect(into[body.length]).toBe(0); // nothing past the body
    }
    expect(server.connections()).toBe(1);
  });

  it("a head whose first read is a few bytes, and whose next brings the rest with much of the body, loses nothing", async () => {
    const body = randomBytes(1_000_000);
    const server = await rawServer((_req, s) => {
      const all = Buffer.concat([
        Buffer.from(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\n\r\n`),
        body,
      ]);
      s.write(all.subarray(0, 10));
      setTimeout(() => s.write(all.subarray(10)), 20);
    });
    const client = new SocketGet(server.url, 10_000);
    closers.push(() => client.close());
    const into = Buffer.alloc(body.length);
    const a = await client.get("/", {}, into, body.length, live());
    expect(a.got).toBe(body.length);
    expect(into.equals(body)).toBe(true);
  });

  it("answers an error from its head alone (a chunked body, as Azurite's), drops that connection, and goes on", async () => {
    let n = 0;
    const server = await rawServer((_req, s) => {
      if (n++ === 0)
        s.write(
          "HTTP/1.1 412 The condition specified using HTTP conditional header(s) is not met.\r\nx-ms-error-code: ConditionNotMet\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        );
      else s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
    const client = new SocketGet(server.url, 10_000);
    closers.push(() => client.close());
    const into = Buffer.alloc(16);
    const refused = await client.get("/x", {}, into, 16, live());
    expect(refused.status).toBe(412);
    expect(refused.headers.get("x-ms-error-code")).toBe("ConditionNotMet");
    const ok = await client.get("/x", {}, into, 16, live());
    expect(ok.status).toBe(200);
    expect(into.subarray(0, ok.got).toString()).toBe("ok");
    expect(server.connections()).toBe(2);
  });

  it("a connection the server closed while idle is not used again", async () => {
    const server = await rawServer((_req, s) => {
      s.end("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    });
    const client = new SocketGet(server.url, 10_000);
    closers.push(() => client.close());
    const into = Buffer.alloc(8);
    await client.get("/", {}, into, 8, live());
    // The server's FIN arrives: the connection leaves the pool.
    while (client.idleConnections > 0) await new Promise((r) => setTimeout(r, 5));
    const again = await client.get("/", {}, into, 8, live());
    expect(into.subarray(0, again.got).toString()).toBe("abc");
    expect(server.connections()).toBe(2);
  });

  it("an HTTP/1.0 answer without keep-alive, or one that says close, is not reused", async () => {
    const answers = [
      "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na",
      "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nb",
      "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nc",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nd",
    ];
    let i = 0;
    const server = await rawServer((_req, s) => s.write(answers[i++]!));
    const client = new SocketGet(server.url, 10_000);
    closers.push(() => client.close());
    const into = Buffer.alloc(1);
    const got: string[] = [];
    for (let k = 0; k < 4; k++) {
      await client.get("/", {}, into, 1, live());
      got.push(into.toString());
    }
    expect(got).toEqual(["a", "b", "c", "d"]);
    // a and b each ended their connection; c's was kept, and d came on it.
    expect(server.connections()).toBe(3);
    expect(client.idleConnections).toBe(1);
  });

  it("refuses a 2xx without Content-Length, a body longer than asked, and a head over 64 KiB", async () => {
    const answers = [
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "HTTP/1.1 206 Partial Content\r\nContent-Length: 100\r\n\r\n",
      `HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(70_000)}\r\nContent-Length: 1\r\n\r\nz`,
    ];
    let i = 0;
    const server = await rawServer((_req, s) => s.write(answers[i++]!));
    const client = new SocketGet(server.url, 10_000);
    closers.push(() => client.close());
    const into = Buffer.alloc(64);
    await expect(client.get("/", {}, into, 64, live())).rejects.toMatchObject({ code: "EPROTO" });
    await expect(client.get("/", {}, into, 64, live())).rejects.toThrow(
      "the service sent more than 64 bytes",
    );
    await expect(client.get("/", {}, into, 64, live())).rejects.toMatchObject({ code: "EPROTO" });
  });

  it("a silent server times out (ETIMEDOUT); an abort rejects with the signal's reason", async () => {
    const server = await rawServer(() => undefined);
    const client = new SocketGet(server.url, 200);
    closers.push(() => client.close());
    const into = Buffer.alloc(8);
    await expect(client.get("/", {}, into, 8, live())).rejects.toMatchObject({ code: "ETIMEDOUT" });
    const slow = new SocketGet(server.url, 60_000);
    const abort = new AbortController();
    const p = slow.get("/", {}, into, 8, abort.signal);
    abort.abort(new Error("drive pulled"));
    await expect(p).rejects.toThrow("drive pulled");
  });

  it("reads over TLS into the caller's buffer", async () => {
    const dir = mkdtempSync(join(tmpdir(), "socket-get-tls-"));
    closers.push(() => rmSync(dir, { recursive: true, force: true }));
    const { certFile, keyFile } = makeCert(dir);
    const cert = readFileSync(certFile);
    const body = randomBytes(2 * 1024 * 1024 + 17);
    const server = https.createServer({ cert, key: readFileSync(keyFile) }, (_req, res) => {
      res.writeHead(206, { "content-length": body.length });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    closers.push(() => server.close());
    const url = new URL(`https://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    const client = new SocketGet(url, 10_000, { ca: cert });
    closers.push(() => client.close());
    const into = sharedBuffer(4 * 1024 * 1024);
    const a = await client.get("/blob", {}, into, 4 * 1024 * 1024, live());
    expect(a.got).toBe(body.length);
    expect(into.subarray(0, a.got).equals(body)).toBe(true);
    // An untrusted certificate is refused.
    const untrusting = new SocketGet(url, 10_000);
    closers.push(() => untrusting.close());
    await expect(untrusting.get("/blob", {}, into, 4 * 1024 * 1024, live())).rejects.toThrow(
      /self-signed|certificate/,
    );
  });

  it("an http server's keep-alive answers are read back to back on one connection", async () => {
    let connections = 0;
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { "content-length": 5 });
      res.end("hello");
    });
    server.on("connection", () => connections++);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    closers.push(() => server.close());
    const client = new SocketGet(
      new URL(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`),
      10_000,
    );
    closers.push(() => client.close());
    const into = Buffer.alloc(5);
    for (let i = 0; i < 20; i++) {
      const a = await client.get("/", {}, into, 5, live());
      expect(into.subarray(0, a.got).toString()).toBe("hello");
    }
    expect(connections).toBe(1);
  });
});
