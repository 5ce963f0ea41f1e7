/**
 * MD5s of what a drive file holds, computed on worker threads: the hashing of an export (every
 * chunk once, the whole file once more) would otherwise keep the event loop busy for ~1.7 s per
 * GB and be the export's bottleneck. A worker reads the ranges itself through the open file's
 * descriptor, so no bytes cross threads: from the page cache, or with `direct` through an
 * O_DIRECT descriptor from the medium (core/medium-read.ts).
 *
 * The caller keeps the file open until the promise settles.
 */
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { DIRECT_READ_JS } from "./medium-read.js";

export interface HashRequest {
  fd: number;
  /** [offset, length] pairs, ascending and not overlapping. */
  ranges: [number, number][];
  /** Hash each range on its own (upper-case hex). */
  each?: boolean;
  /**
   * Hash the file as a blob of this length: the ranges in order, gaps as zeros (base64). With
   * `stream`, this request ends the stream and returns its hash.
   */
  wholeLength?: number;
  /**
   * A whole-file hash kept across requests (from `newStream()`): each request's ranges continue
   * it, in the order the requests are made, until one with `wholeLength` ends it.
   */
  stream?: number;
  /** Drops the stream's state (a blob that failed). */
  discard?: boolean;
  /**
   * `fd` was opened with O_DIRECT (core/medium-read.ts): read through a page-aligned buffer in
   * aligned steps, so the bytes come from the medium, not the page cache.
   */
  direct?: boolean;
}

export interface HashResult {
  each: string[];
  whole?: string;
  /** The file ended before a range did: the hashes describe fewer bytes than asked. */
  short: boolean;
}

export interface FileHasher {
  hash(req: HashRequest): Promise<HashResult>;
}

let streams = 0;
export const newStream = (): number => ++streams;

// Plain CommonJS, evaluated in each worker (and by InlineFileHasher): no file to locate next to
// the compiled module.
const SERVE = `
const { readSync } = require("node:fs");
const { createHash } = require("node:crypto");
${DIRECT_READ_JS}
const buf = Buffer.allocUnsafe(1 << 20);
let alignedBuf; // page-aligned (a WebAssembly memory), for O_DIRECT reads; made on first use
const aligned = () => (alignedBuf ??= Buffer.from(new WebAssembly.Memory({ initial: 16, maximum: 16 }).buffer));
const zeros = Buffer.alloc(64 << 10);
const streams = new Map();
const pad = (h, n) => { for (; n > 0; n -= zeros.length) h.update(zeros.subarray(0, Math.min(n, zeros.length))); };
function serve({ fd, ranges, each, wholeLength, stream, discard, direct }) {
  if (discard) { streams.delete(stream); return { each: [], short: false }; }
  let st = stream === undefined ? undefined : streams.get(stream);
  if (!st) {
    const whole = stream !== undefined || wholeLength !== undefined ? createHash("md5") : undefined;
    st = { whole, pos: 0, short: false };
    if (stream !== undefined) streams.set(stream, st);
  }
  const out = [];
  for (const [offset, length] of ranges) {
    if (st.short) break;
    if (st.whole) pad(st.whole, offset - st.pos);
    const h = each ? createHash("md5") : undefined;
    let got = 0;
    const take = (piece) => { if (h) h.update(piece); if (st.whole) st.whole.update(piece); };
    if (direct) {
      got = readDirect(readSync, fd, aligned(), offset, length, take);
      if (got < length) st.short = true;
    } else while (got < length) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, length - got), offset + got);
      if (n === 0) { st.short = true; break; }
      take(buf.subarray(0, n));
      got += n;
    }
    if (h) out.push(h.digest("hex").toUpperCase());
    st.pos = offset + got;
  }
  const r = { each: out, short: st.short };
  if (wholeLength !== undefined) {
    if (!st.short) { pad(st.whole, wholeLength - st.pos); r.whole = st.whole.digest("base64"); }
    if (stream !== undefined) streams.delete(stream);
  }
  return r;
}
`;

const WORKER = `${SERVE}
const { parentPort } = require("node:worker_threads");
parentPort.on("message", (m) => {
  try {
    parentPort.postMessage({ id: m.id, ...serve(m) });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: { message: String(e && e.message), code: e && e.code } });
  }
});
`;

type Pending = { resolve(r: HashResult): void; reject(e: Error): void };
type Slot = { w: Worker; pending: Map<number, Pending>; streams: Set<number> };

/**
 * A fixed set of hashing threads; a request goes to the one with the fewest in hand, or to the
 * one that holds its stream.
 */
export class WorkerFileHasher implements FileHasher {
  private readonly workers: Slot[] = [];
  private readonly byStream = new Map<number, Slot>();
  /** Streams whose thread died: their hash is lost. */
  private readonly lost = new Set<number>();
  private seq = 0;

  constructor(readonly threads: number) {}

  private spawn(): void {
    const w = new Worker(WORKER, { eval: true });
    w.unref(); // idle hashers never keep the station alive
    const slot: Slot = { w, pending: new Map(), streams: new Set() };
    w.on("message", (m: { id: number; error?: { message: string; code?: string } } & HashResult) => {
      const p = slot.pending.get(m.id);
      if (!p) return;
      slot.pending.delete(m.id);
      if (slot.pending.size === 0) w.unref();
      if (m.error) p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
      else p.resolve({ each: m.each, ...(m.whole ? { whole: m.whole } : {}), short: m.short });
    });
    w.on("error", (e) => {
      // This thread is gone: its requests fail, its streams are lost, the next request starts a fresh one.
      const i = this.workers.indexOf(slot);
      if (i >= 0) this.workers.splice(i, 1);
      for (const id of slot.streams) {
        this.byStream.delete(id);
        this.lost.add(id);
      }
      for (const p of slot.pending.values()) p.reject(e);
      slot.pending.clear();
    });
    this.workers.push(slot);
  }

  hash(req: HashRequest): Promise<HashResult> {
    if (req.stream !== undefined && this.lost.has(req.stream)) {
      if (req.wholeLength !== undefined || req.discard) this.lost.delete(req.stream);
      return Promise.reject(new Error("a hashing thread stopped; this file's hash was lost"));
    }
    while (this.workers.length < this.threads) this.spawn();
    let slot = req.stream === undefined ? undefined : this.byStream.get(req.stream);
    if (!slot) {
      slot = this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
      if (req.stream !== undefined) {
        this.byStream.set(req.stream, slot);
        slot.streams.add(req.stream);
      }
    }
    if (req.stream !== undefined && (req.wholeLength !== undefined || req.discard)) {
      this.byStream.delete(req.stream);
      slot.streams.delete(req.stream);
    }
    const id = ++this.seq;
    const target = slot;
    return new Promise<HashResult>((resolve, reject) => {
      target.pending.set(id, { resolve, reject });
      target.w.ref(); // a request in hand keeps the process alive until it is answered
      target.w.postMessage({ id, ...req });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((s) => s.w.terminate()));
  }
}

let shared: WorkerFileHasher | undefined;
/** The station's hashers: one per core (at most 4), started on first use. */
export function sharedFileHasher(): FileHasher {
  shared ??= new WorkerFileHasher(Math.max(1, Math.min(4, availableParallelism())));
  return shared;
}

/**
 * The same hashes on the event loop (synchronous reads): for comparison in
 * bench/export-engine.ts and in tests.
 */
export class InlineFileHasher implements FileHasher {
  private readonly serve = new Function("require", `${SERVE}\nreturn serve;`)(
    createRequire(import.meta.url),
  ) as (req: HashRequest) => HashResult;

  async hash(req: HashRequest): Promise<HashResult> {
    await new Promise((r) => setImmediate(r));
    return this.serve(req);
  }
}
