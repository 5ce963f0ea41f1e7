/**
 * The station's hashing threads, for both directions. Both MD5s of every imported byte (each
 * block's, checked against the manifest, and the whole blob's Content-MD5), and everything export
 * hashes (each downloaded range against the service's MD5, and the read-back of what the drive
 * holds, `FileHasher`) are computed here, not on the event loop: at ~1.4 CPU s per GB per digest
 * they were most of the event loop's work and capped a station at one core.
 *
 * No byte crosses threads: the station's block buffers are SharedArrayBuffer-backed
 * (buffer-pool.ts), so a thread hashes the very memory the drive read filled. The caller must not
 * reuse a buffer until every promise given for it has settled.
 *
 * A block's MD5 goes to the least busy thread; a blob's whole-blob hash is a stream kept on one
 * thread (its bytes must be hashed in order, and the thread answers in the order it is asked), so
 * one blob's block checks spread over every thread while its stream runs on one.
 *
 * A thread that dies or throws fails only what it had in hand (`HashingFailed`, an `IOFailed`
 * blob); a stream it held is lost for good, and the next request starts a fresh thread in its
 * place. One pool per station, created by the composition root (agent/) and passed down.
 *
 * A read-back (`hash()`) reads a drive itself, and a dying drive can hold a read in the kernel for
 * good; such a thread can be neither awaited nor terminated. So a thread that has work in hand and
 * has not moved (no request started, no read returned) for the drive read timeout is written off:
 * what it was doing fails `ReadHung` (`IOFailed`), it is counted among the reads hung in the kernel
 * (drive-reads.ts: the agent then exits by a signal, and keeps that drive mounted), requests
 * queued behind it go to the other threads, and a fresh thread takes its place. A drive with
 * `hungLimit` read-backs still stuck gets no more.
 */
import { Worker } from "node:worker_threads";
import { FileFailure } from "./drive-files.js";
import { DEFAULT_READ_LIMITS, holdHungRead, ReadHung } from "./drive-reads.js";
import type { FileHasher, HashRequest, HashResult } from "./file-hasher.js";
import { LISTEN_JS, SERVE_JS } from "./hash-thread-source.js";

/** A hashing thread failed (died or threw): the blob it was hashing fails `IOFailed`. */
export class HashingFailed extends FileFailure {
  constructor(message: string) {
    super("IOFailed", message);
  }
}

/** The MD5 of a blob's bytes, fed in order (a page blob's gaps are zeros). */
export interface HashStream {
  /** Continues the hash with `data`, which starts at `offset` of the blob (gaps before it are zeros). Resolves once `data` is no longer read. */
  update(offset: number, data: Buffer): Promise<void>;
  /** The MD5 of everything fed, zero-padded to `length` when given. Ends the stream. */
  digest(length?: number): Promise<Buffer>;
  /** Drops the stream (a blob that failed). */
  discard(): void;
}

/** What import hashes with: the pool below, or `InlineHashes` (on the calling thread). */
export interface BlockHashes {
  /** The MD5 of `data`; resolves once `data` is no longer read. */
  md5(data: Buffer): Promise<Buffer>;
  stream(): HashStream;
}

type Request =
  | { op: "md5"; buf: ArrayBufferLike; off: number; len: number }
  | { op: "update"; stream: number; offset: number; buf: ArrayBufferLike; off: number; len: number }
  | { op: "digest"; stream: number; length?: number }
  | { op: "discard"; stream: number }
  | { op: "file"; req: HashRequest };

type Answer = {
  id: number;
  md5?: Uint8Array;
  file?: HashResult;
  /** The thread's own fault. */
  error?: string;
  /** A read-back's I/O error: the drive's. */
  ioError?: { message: string; code: string };
};
type Pending = {
  req: Request;
  /** The stream (key) the request belongs to, its last request too: lost with its thread, never sent elsewhere. */
  stream?: string;
  resolve(a: Answer): void;
  reject(e: Error): void;
};
interface Thread {
  w: Worker;
  pending: Map<number, Pending>;
  /** Keys of the streams this thread holds: "b<n>" block streams, "f<n>" file streams. */
  streams: Set<string>;
  dead: boolean;
  /** Bumped by the thread at every request it starts and every read it completes. */
  ticks: Int32Array;
  seen: number;
  movedAt: number;
}

export interface HashPoolOptions {
  threads: number;
  /** JavaScript each thread runs before it serves: tests wrap `serve`/`readAt` to slow a thread, kill it, or block its reads. */
  prelude?: string;
  /** Told when a thread died, threw or was written off (the agent logs it). */
  onFault?(message: string): void;
  /** A thread with work in hand that has not moved for this long is written off (default: the drive read timeout, 60 s). */
  readTimeoutMs?: number;
  /** Read-backs of one drive still stuck after which it gets no more (default 3, as drive reads). */
  hungLimit?: number;
}

const fileKey = (stream: number) => `f${stream}`;

export class HashPool implements BlockHashes, FileHasher {
  private readonly threads: Thread[] = [];
  private readonly owner = new Map<string, Thread>();
  /** Streams whose thread died: their hash is lost, every later request for them fails. */
  private readonly lost = new Set<string>();
  /** Written-off threads still stuck in a read, per drive root. */
  private readonly stuck = new Map<string, number>();
  private seq = 0;
  private streams = 0;
  private closed = false;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly timeoutMs: number;
  /** Threads started over the pool's life (a replaced thread counts again). */
  started = 0;
  /** Threads written off because they stopped moving (a hung read). */
  writtenOff = 0;

  constructor(readonly o: HashPoolOptions) {
    if (!(o.threads >= 1)) throw new Error(`a hash pool needs at least one thread (got ${o.threads})`);
    this.timeoutMs = o.readTimeoutMs ?? DEFAULT_READ_LIMITS.timeoutMs;
  }

  /** Threads alive now. */
  get size(): number {
    return this.threads.length;
  }

  async md5(data: Buffer): Promise<Buffer> {
    return digestOf(await this.ask(this.idlest(), { op: "md5", ...shared(data) }));
  }

  stream(): HashStream {
    const id = ++this.streams;
    const key = `b${id}`;
    const on = (): Thread => {
      let t = this.owner.get(key);
      if (!t) {
        t = this.idlest();
        this.owner.set(key, t);
        t.streams.add(key);
      }
      return t;
    };
    const end = (t: Thread | undefined) => {
      this.owner.delete(key);
      t?.streams.delete(key);
    };
    return {
      update: async (offset, data) => {
        if (this.lost.has(key)) throw this.lostError();
        await this.ask(on(), { op: "update", stream: id, offset, ...shared(data) }, key);
      },
      digest: async (length) => {
        if (this.lost.delete(key)) throw this.lostError();
        const t = on();
        end(t);
        const d = await this.ask(
          t,
          { op: "digest", stream: id, ...(length === undefined ? {} : { length }) },
          key,
        );
        return digestOf(d);
      },
      discard: () => {
        this.lost.delete(key);
        const t = this.owner.get(key);
        end(t);
        if (t && !t.dead) t.w.postMessage({ op: "discard", stream: id });
      },
    };
  }

  /** A drive file's hashes, read by the thread itself (file-hasher.ts); bounded by the read timeout. */
  async hash(req: HashRequest): Promise<HashResult> {
    const key = req.stream === undefined ? undefined : fileKey(req.stream);
    const ends = key !== undefined && (req.wholeLength !== undefined || req.discard === true);
    if (key && this.lost.has(key)) {
      if (ends) this.lost.delete(key);
      throw this.lostError();
    }
    let t = key ? this.owner.get(key) : undefined;
    if (req.discard) {
      if (key) this.owner.delete(key);
      t?.streams.delete(key!);
      if (t && !t.dead) t.w.postMessage({ op: "file", req });
      return { each: [], short: false };
    }
    const stuck = this.stuck.get(req.root ?? "") ?? 0;
    if (req.root !== undefined && stuck >= (this.o.hungLimit ?? DEFAULT_READ_LIMITS.hungLimit))
      throw new ReadHung(
        "IOFailed",
        `${req.label ?? "a drive file"}: not read back: ${stuck} read-backs of this drive are still hung after ${this.timeoutMs} ms; check the drive and plug it in again`,
      );
    if (!t) {
      t = this.idlest();
      if (key && !ends) {
        this.owner.set(key, t);
        t.streams.add(key);
      }
    }
    if (key && ends) {
      this.owner.delete(key);
      t.streams.delete(key);
    }
    const a = await this.ask(t, { op: "file", req }, key);
    if (!a.file) throw new HashingFailed("a hashing thread answered a read-back without its hashes");
    return a.file;
  }

  /** Stops every thread; requests in hand fail. A thread stuck in a read is not waited for. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watchdog);
    await Promise.all(this.threads.splice(0).map((t) => t.w.terminate()));
  }

  private lostError(): HashingFailed {
    return new HashingFailed(
      "a hashing thread stopped while it held this blob's hash; the blob was not committed",
    );
  }

  private idlest(): Thread {
    if (this.closed) throw new HashingFailed("the hash pool is closed (the agent is stopping)");
    while (this.threads.length < this.o.threads) this.spawn();
    return this.threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private ask(t: Thread, req: Request, stream?: string): Promise<Answer> {
    if (t.dead) return Promise.reject(this.lostError());
    const id = ++this.seq;
    if (t.pending.size === 0) this.moved(t, Date.now());
    this.watchdog ??= setInterval(() => this.watch(), Math.min(1000, this.timeoutMs / 4)).unref();
    return new Promise((resolve, reject) => {
      t.pending.set(id, { req, ...(stream ? { stream } : {}), resolve, reject });
      t.w.ref(); // a request in hand keeps the process alive until it is answered
      t.w.postMessage({ id, ...req });
    });
  }

  private moved(t: Thread, now: number): void {
    t.seen = Atomics.load(t.ticks, 0);
    t.movedAt = now;
  }

  /** Writes off every thread that has had work in hand and not moved for the read timeout. */
  private watch(): void {
    const now = Date.now();
    for (const t of [...this.threads]) {
      if (t.pending.size === 0) continue;
      if (Atomics.load(t.ticks, 0) !== t.seen) this.moved(t, now);
      else if (now - t.movedAt >= this.timeoutMs) this.writeOff(t);
    }
  }

  /**
   * A thread stuck (in a read a drive never answers): never awaited, never used again. Its first
   * request (the one it is serving) fails `ReadHung`, its streams are lost, the rest go elsewhere.
   */
  private writeOff(t: Thread): void {
    t.dead = true;
    this.threads.splice(this.threads.indexOf(t), 1);
    this.writtenOff++;
    const [first, ...queued] = t.pending.values();
    t.pending.clear();
    const req = first?.req.op === "file" ? first.req.req : undefined;
    const root = req?.root ?? "";
    this.stuck.set(root, (this.stuck.get(root) ?? 0) + 1);
    const release = holdHungRead(root);
    t.w.once("exit", () => {
      // The read returned at last (or the process ends): the thread is gone, nothing is held.
      release();
      const n = (this.stuck.get(root) ?? 1) - 1;
      if (n > 0) this.stuck.set(root, n);
      else this.stuck.delete(root);
    });
    t.w.unref();
    void t.w.terminate().catch(() => undefined); // takes effect if the read ever returns
    const what = req
      ? `${req.label ?? "a drive file"}: reading it back from the drive did not complete within ${this.timeoutMs} ms`
      : `a hashing thread did not answer within ${this.timeoutMs} ms`;
    this.o.onFault?.(`${what}; the thread is written off and a fresh one takes its place`);
    first?.reject(
      req
        ? new ReadHung("IOFailed", `${what}; the drive may be failing: check it and plug it in again`)
        : new HashingFailed(`${what}; the blob was not committed`),
    );
    for (const key of t.streams) {
      this.owner.delete(key);
      this.lost.add(key);
    }
    t.streams.clear();
    // A stream's state was on this thread: a request of it (even its digest) elsewhere would hash
    // from nothing and answer a wrong MD5. It fails; a request on its own goes to another thread.
    for (const p of queued) {
      if (p.stream) p.reject(this.lostError());
      else this.retry(p);
    }
    if (!this.closed) while (this.threads.length < this.o.threads) this.spawn();
  }

  /** A request that waited behind a written-off thread's stuck read, on another thread. */
  private retry(p: Pending): void {
    try {
      this.ask(this.idlest(), p.req).then(p.resolve, p.reject);
    } catch (e) {
      p.reject(e as Error);
    }
  }

  private spawn(): void {
    const ticks = new Int32Array(new SharedArrayBuffer(4));
    const w = new Worker(`${SERVE_JS}\n${this.o.prelude ?? ""}\n${LISTEN_JS}`, {
      eval: true,
      workerData: { ticks: ticks.buffer },
    });
    w.unref(); // idle hashers never keep the station alive
    this.started++;
    const t: Thread = { w, pending: new Map(), streams: new Set(), dead: false, ticks, seen: 0, movedAt: 0 };
    w.on("message", (m: Answer) => {
      const p = t.pending.get(m.id);
      if (!p) return;
      t.pending.delete(m.id);
      if (t.pending.size === 0) w.unref();
      if (m.ioError) return p.reject(Object.assign(new Error(m.ioError.message), { code: m.ioError.code }));
      if (m.error === undefined) return p.resolve(m);
      this.o.onFault?.(`a hashing thread threw: ${m.error}`);
      p.reject(new HashingFailed(`hashing failed: ${m.error}`));
    });
    const died = (why: string) => {
      if (t.dead) return;
      t.dead = true;
      const i = this.threads.indexOf(t);
      if (i >= 0) this.threads.splice(i, 1);
      if (this.closed) why = "the hash pool closed (the agent is stopping)";
      else this.o.onFault?.(`a hashing thread died (${why}); a fresh one takes its place`);
      for (const key of t.streams) {
        this.owner.delete(key);
        this.lost.add(key);
      }
      t.streams.clear();
      const e = new HashingFailed(`a hashing thread stopped (${why}); its blobs were not committed`);
      for (const p of t.pending.values()) p.reject(e);
      t.pending.clear();
    };
    w.on("error", (e) => died(e.message));
    w.on("exit", (code) => died(`exit code ${code}`));
    this.threads.push(t);
  }
}

/** A thread's answer that must be a digest: anything else fails the blob, never passes as a hash. */
function digestOf(a: Answer): Buffer {
  const d = a.md5 && Buffer.from(a.md5.buffer, a.md5.byteOffset, a.md5.byteLength);
  if (d?.length !== 16) throw new HashingFailed("a hashing thread answered without an MD5");
  return d;
}

/** The buffer's memory as a thread can take it without a copy (a copy only for a plain buffer). */
function shared(data: Buffer): { buf: ArrayBufferLike; off: number; len: number } {
  if (data.buffer instanceof SharedArrayBuffer)
    return { buf: data.buffer, off: data.byteOffset, len: data.length };
  // Not one of the station's block buffers (a test's, a fresh read): structured clone copies it.
  const copy = new SharedArrayBuffer(data.length);
  new Uint8Array(copy).set(data);
  return { buf: copy, off: 0, len: data.length };
}

export { InlineHashes } from "./inline-hashes.js";
