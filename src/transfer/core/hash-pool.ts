/**
 * The station's hashing threads. Both MD5s of every imported byte (each block's, checked against
 * the manifest, and the whole blob's Content-MD5) are computed here, not on the event loop: at
 * ~1.4 CPU s per GB per digest they were most of the event loop's work and capped a station at
 * one core.
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
 */
import { createHash } from "node:crypto";
import { Worker } from "node:worker_threads";
import { FileFailure } from "./drive-files.js";

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

// Plain CommonJS evaluated in each thread (no file to locate next to the compiled module).
// `serve` is a `let` so a test's prelude can wrap it (slow it down, make it throw or die).
const SERVE = `
const { createHash } = require("node:crypto");
const zeros = Buffer.alloc(1 << 20);
const streams = new Map();
const view = (m) => Buffer.from(m.buf, m.off, m.len);
const pad = (st, upTo) => {
  while (st.at < upTo) { const n = Math.min(zeros.length, upTo - st.at); st.hash.update(zeros.subarray(0, n)); st.at += n; }
};
let serve = (m) => {
  switch (m.op) {
    case "md5": return createHash("md5").update(view(m)).digest();
    case "update": {
      let st = streams.get(m.stream);
      if (!st) { st = { hash: createHash("md5"), at: 0 }; streams.set(m.stream, st); }
      pad(st, m.offset);
      st.hash.update(view(m));
      st.at = m.offset + m.len;
      return undefined;
    }
    case "digest": {
      const st = streams.get(m.stream) ?? { hash: createHash("md5"), at: 0 };
      streams.delete(m.stream);
      if (m.length !== undefined) pad(st, m.length);
      return st.hash.digest();
    }
    case "discard": streams.delete(m.stream); return undefined;
    default: throw new Error("unknown hashing request " + m.op);
  }
};
`;

const LISTEN = `
const { parentPort } = require("node:worker_threads");
parentPort.on("message", (m) => {
  let r;
  try {
    const out = serve(m);
    // A 16-byte copy: a digest may be a view of a larger buffer, which the message would clone whole.
    r = { id: m.id, md5: out && new Uint8Array(out) };
  } catch (e) {
    r = { id: m.id, error: String((e && e.message) || e) };
  }
  if (m.id !== undefined) parentPort.postMessage(r);
});
`;

type Request =
  | { op: "md5"; buf: ArrayBufferLike; off: number; len: number }
  | { op: "update"; stream: number; offset: number; buf: ArrayBufferLike; off: number; len: number }
  | { op: "digest"; stream: number; length?: number }
  | { op: "discard"; stream: number };

type Pending = { resolve(md5: Buffer | undefined): void; reject(e: Error): void };
interface Thread {
  w: Worker;
  pending: Map<number, Pending>;
  streams: Set<number>;
  dead: boolean;
}

export interface HashPoolOptions {
  threads: number;
  /** JavaScript each thread runs before it serves: tests wrap `serve` to slow a thread or kill it. */
  prelude?: string;
  /** Told when a thread died or threw (the agent logs it). */
  onFault?(message: string): void;
}

export class HashPool implements BlockHashes {
  private readonly threads: Thread[] = [];
  private readonly owner = new Map<number, Thread>();
  /** Streams whose thread died: their hash is lost, every later request for them fails. */
  private readonly lost = new Set<number>();
  private seq = 0;
  private streams = 0;
  private closed = false;
  /** Threads started over the pool's life (a replaced thread counts again). */
  started = 0;

  constructor(readonly o: HashPoolOptions) {
    if (!(o.threads >= 1)) throw new Error(`a hash pool needs at least one thread (got ${o.threads})`);
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
    const on = (): Thread => {
      let t = this.owner.get(id);
      if (!t) {
        t = this.idlest();
        this.owner.set(id, t);
        t.streams.add(id);
      }
      return t;
    };
    const end = (t: Thread | undefined) => {
      this.owner.delete(id);
      t?.streams.delete(id);
    };
    return {
      update: async (offset, data) => {
        if (this.lost.has(id)) throw this.lostError();
        await this.ask(on(), { op: "update", stream: id, offset, ...shared(data) });
      },
      digest: async (length) => {
        if (this.lost.delete(id)) throw this.lostError();
        const t = on();
        end(t);
        const d = await this.ask(t, {
          op: "digest",
          stream: id,
          ...(length === undefined ? {} : { length }),
        });
        return digestOf(d);
      },
      discard: () => {
        this.lost.delete(id);
        const t = this.owner.get(id);
        end(t);
        if (t && !t.dead) t.w.postMessage({ op: "discard", stream: id });
      },
    };
  }

  /** Stops every thread; requests in hand fail. */
  async close(): Promise<void> {
    this.closed = true;
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

  private ask(t: Thread, req: Request): Promise<Buffer | undefined> {
    if (t.dead) return Promise.reject(this.lostError());
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      t.pending.set(id, { resolve, reject });
      t.w.ref(); // a request in hand keeps the process alive until it is answered
      t.w.postMessage({ id, ...req });
    });
  }

  private spawn(): void {
    const w = new Worker(`${SERVE}\n${this.o.prelude ?? ""}\n${LISTEN}`, { eval: true });
    w.unref(); // idle hashers never keep the station alive
    this.started++;
    const t: Thread = { w, pending: new Map(), streams: new Set(), dead: false };
    w.on("message", (m: { id: number; md5?: Uint8Array; error?: string }) => {
      const p = t.pending.get(m.id);
      if (!p) return;
      t.pending.delete(m.id);
      if (t.pending.size === 0) w.unref();
      if (m.error === undefined)
        return p.resolve(m.md5 ? Buffer.from(m.md5.buffer, m.md5.byteOffset, 16) : undefined);
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
      for (const id of t.streams) {
        this.owner.delete(id);
        this.lost.add(id);
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
function digestOf(d: Buffer | undefined): Buffer {
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

const ZEROS = Buffer.alloc(1 << 20);

/** The same hashes on the calling thread: unit tests and `transfer.hashThreads: 0`. */
export class InlineHashes implements BlockHashes {
  async md5(data: Buffer): Promise<Buffer> {
    return createHash("md5").update(data).digest();
  }

  stream(): HashStream {
    const hash = createHash("md5");
    let at = 0;
    const zeros = (upTo: number) => {
      for (; at < upTo; at += Math.min(ZEROS.length, upTo - at))
        hash.update(ZEROS.subarray(0, Math.min(ZEROS.length, upTo - at)));
    };
    return {
      update: async (offset, data) => {
        zeros(offset);
        hash.update(data);
        at = offset + data.length;
      },
      digest: async (length) => {
        if (length !== undefined) zeros(length);
        return hash.digest();
      },
      discard: () => undefined,
    };
  }
}
