/**
 * HTTP/1.1 GETs whose body the kernel copies straight into the caller's buffer.
 *
 * Export receives every byte it writes: through node:http that is a parser callback, a stream
 * push, a 'data' event and a copy for each 64 KiB the socket yields, ~2.3 CPU s per GB on the
 * event loop (profiled: socketOnData, the copy, GC). No HTTP library reads a body into a buffer
 * the caller owns (node:http and undici hand out pieces), so this one does, for the one request
 * export makes: a socket's `onread` buffer is, while a body comes in, the free part of the
 * caller's buffer, so each read lands where the bytes belong, in reads as large as the socket
 * holds, with no parsing and no copy (over TLS: the decrypted bytes, copied once by Node).
 *
 * What it speaks, and refuses: a request line and headers out; in, a status line, headers and,
 * for a 2xx, a body of `Content-Length` bytes (what the blob service sends). Any other status is
 * answered from its head alone (the service's error code is a header) and its connection is
 * dropped, body unread: errors are rare, and their bodies come in any framing (Azurite chunks
 * them). A 2xx without Content-Length (or chunked), a head over 64 KiB, bytes before a request or
 * beyond a body: the connection is dropped and the request fails. Keep-alive connections are
 * reused one request at a time (no pipelining); one the server closed fails its request as
 * ECONNRESET, which the caller retries.
 */
import net from "node:net";
import tls from "node:tls";

const HEAD_MAX = 64 * 1024;
const IDLE_KEPT = 64;
/** An idle connection is closed after this long (a source per drive run would otherwise keep its own). */
const IDLE_CLOSE_MS = 30_000;

export interface SocketGetAnswer {
  status: number;
  /** Header names lower-cased; a repeated header keeps its last value. */
  headers: Map<string, string>;
  /** 2xx: bytes written at the start of `into`. */
  got: number;
}

interface Pending {
  into: Buffer;
  /** The most `into` may take of a 2xx body. */
  max: number;
  headLen: number;
  status: number;
  headers: Map<string, string>;
  /** Body bytes expected (Content-Length); -1 until the head is in. */
  bodyLen: number;
  got: number;
  /** The server keeps the connection open after this answer. */
  keepAlive: boolean;
  done(e: unknown, a?: SocketGetAnswer, reusable?: boolean): void;
}

const protocolError = (message: string) => Object.assign(new Error(message), { code: "EPROTO" });

/** One connection: reads go to the head buffer or the caller's buffer, as `pending` says. */
class Connection {
  pending: Pending | undefined;
  readonly socket: net.Socket;
  /** Where bytes no request asked for land (they drop the connection). */
  private readonly scratch = Buffer.allocUnsafe(4096);
  /** The answer's head as it arrives (it may take several reads), and the body's first bytes with it. */
  private readonly head = Buffer.allocUnsafe(HEAD_MAX);

  constructor(url: URL, tlsOptions: tls.ConnectionOptions, onIdleClose: (c: Connection) => void) {
    const port = Number(url.port) || (url.protocol === "https:" ? 443 : 80);
    const host = url.hostname.replace(/^\[|\]$/g, ""); // an IPv6 literal without its brackets
    const onread = {
      buffer: () => this.target(),
      callback: (n: number, buf: Uint8Array) => this.onRead(n, buf),
    };
    this.socket =
      url.protocol === "https:"
        ? // Node reads TLS into `onread` as well (since v15); its typings list it for net only.
          tls.connect({
            ...tlsOptions,
            host,
            port,
            ...(net.isIP(host) ? {} : { servername: host }),
            onread,
          } as tls.ConnectionOptions)
        : net.connect({ host, port, onread });
    this.socket.setNoDelay(true);
    this.socket.on("error", (e) => this.fail(e));
    // Silent too long: a request in flight fails ETIMEDOUT; an idle connection just closes.
    this.socket.on("timeout", () =>
      this.socket.destroy(
        this.pending ? Object.assign(new Error("no answer in time"), { code: "ETIMEDOUT" }) : undefined,
      ),
    );
    this.socket.on("close", () => {
      this.fail(Object.assign(new Error("the connection closed"), { code: "ECONNRESET" }));
      onIdleClose(this);
    });
  }

  /**
   * Where the next read goes. Node asks when the socket opens and after each read's callback,
   * so a read may land in a buffer chosen before the state changed: `onRead` looks at where it
   * actually went.
   */
  private target(): Uint8Array {
    const p = this.pending;
    if (!p) return this.scratch;
    // A head's reads never run past the head buffer: what does not fit is refused as too long.
    if (p.bodyLen < 0) return this.head.subarray(p.headLen);
    return p.into.subarray(p.got, p.bodyLen);
  }

  private onRead(n: number, buf: Uint8Array): boolean {
    const p = this.pending;
    if (!p) {
      this.socket.destroy(protocolError("the server sent bytes no request asked for"));
      return false;
    }
    const bytes = Buffer.from(buf.buffer, buf.byteOffset, n);
    if (p.bodyLen >= 0) return this.onBody(p, bytes);
    // The head: in place when the read went into the head buffer, else (the scratch buffer
    // chosen while no request was in flight) copied there.
    const at = this.head.subarray(p.headLen);
    if (bytes.buffer !== at.buffer || bytes.byteOffset !== at.byteOffset) {
      if (n > at.length) {
        this.socket.destroy(protocolError("the answer's head is over 64 KiB"));
        return false;
      }
      bytes.copy(at);
    }
    p.headLen += n;
    const end = this.head.subarray(0, p.headLen).indexOf("\r\n\r\n");
    if (end < 0) {
      if (p.headLen >= HEAD_MAX) this.socket.destroy(protocolError("the answer's head is over 64 KiB"));
      return true;
    }
    const problem = this.parseHead(p, this.head.toString("latin1", 0, end));
    if (problem) {
      this.socket.destroy(problem);
      return false;
    }
    if (p.status < 200 || p.status >= 300) {
      this.finish(p, false);
      return false;
    }
    return this.onBody(p, this.head.subarray(end + 4, p.headLen));
  }

  /** Body bytes of `p`: in place when they went into its buffer, else copied there. */
  private onBody(p: Pending, bytes: Buffer): boolean {
    if (p.got + bytes.length > p.bodyLen) {
      this.socket.destroy(protocolError("the server sent bytes beyond the body"));
      return false;
    }
    const at = p.into.subarray(p.got);
    if (bytes.buffer !== at.buffer || bytes.byteOffset !== at.byteOffset) bytes.copy(at);
    p.got += bytes.length;
    if (p.got >= p.bodyLen) this.finish(p, true);
    return true;
  }

  /** Status and headers of `p`; the error to drop the connection with, if any. */
  private parseHead(p: Pending, head: string): Error | undefined {
    const lines = head.split("\r\n");
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] ?? "");
    if (!m) return protocolError("the answer does not start with an HTTP/1.x status line");
    p.status = Number(m[2]);
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) p.headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    // HTTP/1.0 keeps a connection only when it says so; HTTP/1.1 unless it says otherwise.
    const connection = p.headers.get("connection")?.toLowerCase();
    p.keepAlive = m[1] === "1" ? connection !== "close" : connection === "keep-alive";
    if (p.status < 200 || p.status >= 300) return undefined; // answered from the head
    const length = p.headers.get("content-length");
    if (p.headers.has("transfer-encoding") || length === undefined || !/^\d+$/.test(length))
      return protocolError("the answer has no Content-Length (a chunked or unbounded body)");
    p.bodyLen = Number(length);
    // Not a glitch to retry: the service answers a different range than asked.
    if (p.bodyLen > p.max) return new Error(`the service sent more than ${p.max} bytes`);
    return undefined;
  }

  /** The answer is in; `reusable`: the connection is at a message boundary and kept by the server (else it is dropped). */
  private finish(p: Pending, reusable: boolean): void {
    this.pending = undefined;
    p.done(undefined, { status: p.status, headers: p.headers, got: p.got }, reusable && p.keepAlive);
  }

  fail(e: unknown): void {
    const p = this.pending;
    this.pending = undefined;
    p?.done(e);
  }
}

export class SocketGet {
  private readonly idle: Connection[] = [];

  constructor(
    /** Scheme, host and port the requests go to. */
    private readonly origin: URL,
    private readonly idleTimeoutMs: number,
    /** Over https: more TLS options (a test's own CA). */
    private readonly tlsOptions: tls.ConnectionOptions = {},
  ) {}

  /**
   * GETs `pathAndQuery` with `headers`; a 2xx body goes into `into` (at most `max` bytes: more
   * fails the request). Rejects on a dropped connection (ECONNRESET), a silent one (ETIMEDOUT),
   * a protocol breach (EPROTO) or the signal's abort.
   */
  get(
    pathAndQuery: string,
    headers: Record<string, string>,
    into: Buffer,
    max: number,
    signal: AbortSignal,
  ): Promise<SocketGetAnswer> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (max > into.length)
      return Promise.reject(new Error(`a body of ${max} bytes does not fit ${into.length}`));
    let c = this.idle.pop();
    while (c && (c.socket.destroyed || c.socket.readyState === "closed")) c = this.idle.pop();
    const conn = c ?? new Connection(this.origin, this.tlsOptions, (x) => this.forget(x));
    const lines = [`GET ${pathAndQuery} HTTP/1.1`, `Host: ${this.origin.host}`];
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    const request = `${lines.join("\r\n")}\r\n\r\n`;
    return new Promise<SocketGetAnswer>((resolve, reject) => {
      const onAbort = () => conn.socket.destroy(signal.reason);
      conn.pending = {
        into,
        max,
        headLen: 0,
        status: 0,
        headers: new Map(),
        bodyLen: -1,
        got: 0,
        keepAlive: false,
        done: (e, a, reusable) => {
          signal.removeEventListener("abort", onAbort);
          if (e) {
            conn.socket.destroy();
            reject(signal.aborted ? signal.reason : e);
            return;
          }
          if (!reusable || this.idle.length >= IDLE_KEPT) conn.socket.destroy();
          else {
            conn.socket.unref(); // an idle connection keeps no process alive
            conn.socket.setTimeout(IDLE_CLOSE_MS);
            this.idle.push(conn);
          }
          resolve(a!);
        },
      };
      signal.addEventListener("abort", onAbort, { once: true });
      conn.socket.ref();
      conn.socket.setTimeout(this.idleTimeoutMs);
      conn.socket.write(request);
    });
  }

  /** Connections kept open for the next request. */
  get idleConnections(): number {
    return this.idle.length;
  }

  private forget(c: Connection): void {
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  close(): void {
    for (const c of this.idle.splice(0)) c.socket.destroy();
  }
}
