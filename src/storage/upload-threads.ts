/**
 * The station's upload threads: the requests that carry a file's bytes (Put Block, Put Page, and
 * Put Blob for a small file) are made from worker threads, each with its own SDK pipeline and
 * keep-alive connections. On the event loop they were most of its work: the socket writes of
 * every byte (and, to a real account, their TLS encryption), the SDK's policies and the response
 * parsing. The event loop keeps the orchestration: which block, when, retries, checkpoints.
 *
 * No byte crosses threads: the body is the station's SharedArrayBuffer block buffer the drive
 * read filled and the hashing threads checked; the caller frees it only once the answer is in.
 * The credential goes to the thread with each request (memory of this process, never output);
 * a SAS is part of the URL.
 *
 * Failures keep the SDK's shape (`statusCode`, `code`), so `classify()` (blob-access.ts) sorts
 * them as before. A thread that dies fails what it had in hand as a network error (retryable:
 * the request is made again) and a fresh thread takes its place.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/** Who a request acts as: the account's shared key, or none (the SAS is in the URL). */
export interface UploadCredential {
  account: string;
  key?: string;
}

/** The SDK's retry options for one request (JobStorage's, as on the event loop). */
export interface UploadRetry {
  maxTries: number;
  retryDelayInMs: number;
  maxRetryDelayInMs: number;
  tryTimeoutInMs: number;
}

export type Upload =
  | { kind: "block"; url: string; blockId: string }
  | { kind: "page"; url: string; offset: number }
  /** A whole small blob (Put Blob): the SDK's headers (Content-MD5 among them), metadata, conditions. */
  | { kind: "blob"; url: string; headers: object; metadata: Record<string, string>; conditions: object };

export interface UploadTarget {
  credential: UploadCredential;
  retry: UploadRetry;
}

// Plain CommonJS evaluated in each thread (no file to locate next to the compiled module); the
// SDK is loaded from the path the station resolved. `send` is a `let`: a test's prelude may wrap it.
const SERVE = `
const { parentPort, workerData } = require("node:worker_threads");
const sdk = require(workerData.sdk);
const pipelines = new Map();
const target = (m) => {
  const cred = m.cred.key ? new sdk.StorageSharedKeyCredential(m.cred.account, m.cred.key) : new sdk.AnonymousCredential();
  pipelines.set(m.target, sdk.newPipeline(cred, { retryOptions: { retryPolicyType: sdk.StorageRetryPolicyType.EXPONENTIAL, ...m.retry }, keepAliveOptions: { enable: true } }));
};
const running = new Map();
let send = async (m, signal) => {
  const body = Buffer.from(m.buf, m.off, m.len);
  const o = { transactionalContentMD5: m.md5 && Buffer.from(m.md5), abortSignal: signal };
  const pipeline = pipelines.get(m.target);
  if (m.kind === "block") await new sdk.BlockBlobClient(m.url, pipeline).stageBlock(m.blockId, body, m.len, o);
  else if (m.kind === "blob") {
    const headers = { ...m.headers };
    if (headers.blobContentMD5) headers.blobContentMD5 = Buffer.from(headers.blobContentMD5);
    await new sdk.BlockBlobClient(m.url, pipeline).upload(body, m.len, { blobHTTPHeaders: headers, metadata: m.metadata, conditions: m.conditions, abortSignal: signal });
  } else await new sdk.PageBlobClient(m.url, pipeline).uploadPages(body, m.offset, m.len, o);
};
`;

const LISTEN = `
parentPort.on("message", async (m) => {
  if (m.op === "abort") return running.get(m.id)?.abort();
  if (m.op === "target") return target(m);
  const ac = new AbortController();
  running.set(m.id, ac);
  let r = { id: m.id };
  try {
    await send(m, ac.signal);
  } catch (e) {
    r.error = { name: e && e.name, message: String((e && e.message) || e), statusCode: e && e.statusCode, code: e && e.code };
  }
  running.delete(m.id);
  parentPort.postMessage(r);
});
`;

type Pending = { resolve(): void; reject(e: Error): void };
interface Thread {
  w: Worker;
  pending: Map<number, Pending>;
  /** Targets this thread has a pipeline for (sent once, not with every request). */
  targets: Set<number>;
  dead: boolean;
}

/** An upload's failure as the SDK reported it, or the thread's death as a network error. */
export class UploadFailed extends Error {
  constructor(
    message: string,
    readonly statusCode?: number,
    readonly code?: string,
    name?: string,
  ) {
    super(message);
    if (name) this.name = name;
  }
}

export interface UploadThreadsOptions {
  threads: number;
  /** JavaScript each thread runs before it serves: tests wrap `send` (to slow, fail or kill it). */
  prelude?: string;
  /** Told when a thread died (the agent logs it). */
  onFault?(message: string): void;
}

export class UploadThreads {
  private readonly threads: Thread[] = [];
  private readonly sdk = createRequire(import.meta.url).resolve("@azure/storage-blob");
  private seq = 0;
  private readonly targetIds = new WeakMap<UploadTarget, number>();
  private targets = 0;
  private closed = false;
  /** Threads started over the pool's life (a replaced thread counts again). */
  started = 0;

  constructor(readonly o: UploadThreadsOptions) {
    if (!(o.threads >= 1)) throw new Error(`upload threads need at least one thread (got ${o.threads})`);
  }

  /** Threads alive now. */
  get size(): number {
    return this.threads.length;
  }

  /** Whether `data` can go to a thread without a copy (a station block buffer). */
  static carries(data: Buffer): boolean {
    return data.buffer instanceof SharedArrayBuffer;
  }

  /**
   * Sends `data` (a SharedArrayBuffer-backed buffer) with its transactional MD5. Resolves or
   * rejects only once the thread no longer reads `data`, also after `signal` aborted it.
   */
  send(
    u: Upload,
    target: UploadTarget,
    data: Buffer,
    md5: Buffer | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    if (!UploadThreads.carries(data)) throw new Error("upload threads take only station block buffers");
    if (this.closed)
      return Promise.reject(
        new UploadFailed("the upload threads are closed (the agent is stopping)", undefined, "ECONNRESET"),
      );
    if (signal.aborted)
      return Promise.reject(signal.reason ?? new UploadFailed("aborted", undefined, undefined, "AbortError"));
    while (this.threads.length < this.o.threads) this.spawn();
    const t = this.threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    let targetId = this.targetIds.get(target);
    if (targetId === undefined) {
      targetId = ++this.targets;
      this.targetIds.set(target, targetId);
    }
    if (!t.targets.has(targetId)) {
      t.w.postMessage({ op: "target", target: targetId, cred: target.credential, retry: target.retry });
      t.targets.add(targetId);
    }
    const id = ++this.seq;
    return new Promise<void>((resolve, reject) => {
      const abort = () => t.w.postMessage({ op: "abort", id });
      signal.addEventListener("abort", abort, { once: true });
      const done = () => signal.removeEventListener("abort", abort);
      t.pending.set(id, {
        resolve: () => {
          done();
          resolve();
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      t.w.ref(); // a request in hand keeps the process alive until it is answered
      t.w.postMessage({
        id,
        ...u,
        target: targetId,
        buf: data.buffer,
        off: data.byteOffset,
        len: data.length,
        ...(md5 ? { md5: new Uint8Array(md5) } : {}),
      });
    });
  }

  /** Stops every thread; requests in hand fail. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.splice(0).map((t) => t.w.terminate()));
  }

  private spawn(): void {
    const w = new Worker(`${SERVE}\n${this.o.prelude ?? ""}\n${LISTEN}`, {
      eval: true,
      workerData: { sdk: this.sdk },
    });
    w.unref(); // idle upload threads never keep the station alive
    this.started++;
    const t: Thread = { w, pending: new Map(), targets: new Set(), dead: false };
    w.on(
      "message",
      (m: { id: number; error?: { name?: string; message: string; statusCode?: number; code?: string } }) => {
        const p = t.pending.get(m.id);
        if (!p) return;
        t.pending.delete(m.id);
        if (t.pending.size === 0) w.unref();
        if (!m.error) return p.resolve();
        const e = m.error;
        p.reject(new UploadFailed(e.message, e.statusCode ?? undefined, e.code ?? undefined, e.name));
      },
    );
    const died = (why: string) => {
      if (t.dead) return;
      t.dead = true;
      const i = this.threads.indexOf(t);
      if (i >= 0) this.threads.splice(i, 1);
      if (!this.closed) this.o.onFault?.(`an upload thread died (${why}); a fresh one takes its place`);
      // No answer came: like a dropped connection, the request is made again (classify: retryable).
      const e = new UploadFailed(
        `an upload thread stopped (${why}) with the request in hand`,
        undefined,
        "ECONNRESET",
      );
      for (const p of t.pending.values()) p.reject(e);
      t.pending.clear();
    };
    w.on("error", (e) => died(e.message));
    w.on("exit", (code) => died(`exit code ${code}`));
    this.threads.push(t);
  }
}
