/**
 * MD5s of what a drive file holds, computed on worker threads: the hashing of an export (every
 * chunk once, the whole file once more) would otherwise keep the event loop busy for ~1.7 s per
 * GB and be the export's bottleneck. A worker reads the ranges itself through the open file's
 * descriptor (from the page cache right after a write), so no bytes cross threads.
 *
 * The caller keeps the file open until the promise settles.
 */
import { createHash, type Hash } from "node:crypto";
import { read } from "node:fs";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

export interface HashRequest {
  fd: number;
  /** [offset, length] pairs, ascending and not overlapping. */
  ranges: [number, number][];
  /** Hash each range on its own (upper-case hex). */
  each?: boolean;
  /** Also hash the file as a blob of this length: the ranges in order, gaps as zeros (base64). */
  wholeLength?: number;
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

// Plain CommonJS evaluated in the worker: no file to locate next to the compiled module.
const WORKER = `
const { parentPort } = require("node:worker_threads");
const { readSync } = require("node:fs");
const { createHash } = require("node:crypto");
const buf = Buffer.allocUnsafe(1 << 20);
const zeros = Buffer.alloc(64 << 10);
const pad = (h, n) => { for (; n > 0; n -= zeros.length) h.update(zeros.subarray(0, Math.min(n, zeros.length))); };
parentPort.on("message", ({ id, fd, ranges, each, wholeLength }) => {
  try {
    const out = [];
    const whole = wholeLength === undefined ? undefined : createHash("md5");
    let pos = 0;
    let short = false;
    for (const [offset, length] of ranges) {
      if (whole) pad(whole, offset - pos);
      const h = each ? createHash("md5") : undefined;
      let got = 0;
      while (got < length) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, length - got), offset + got);
        if (n === 0) { short = true; break; }
        const piece = buf.subarray(0, n);
        h?.update(piece);
        whole?.update(piece);
        got += n;
      }
      if (h) out.push(h.digest("hex").toUpperCase());
      pos = offset + got;
      if (short) break;
    }
    if (whole && !short) pad(whole, wholeLength - pos);
    parentPort.postMessage({ id, each: out, whole: whole?.digest("base64"), short });
  } catch (e) {
    parentPort.postMessage({ id, error: { message: String(e && e.message), code: e && e.code } });
  }
});
`;

type Pending = { resolve(r: HashResult): void; reject(e: Error): void };

/** A fixed set of hashing threads; requests go to the one with the fewest in hand. */
export class WorkerFileHasher implements FileHasher {
  private readonly workers: { w: Worker; pending: Map<number, Pending> }[] = [];
  private seq = 0;

  constructor(readonly threads: number) {}

  private spawn(): void {
    const w = new Worker(WORKER, { eval: true });
    w.unref(); // idle hashers never keep the station alive
    const slot = { w, pending: new Map<number, Pending>() };
    w.on("message", (m: { id: number; error?: { message: string; code?: string } } & HashResult) => {
      const p = slot.pending.get(m.id);
      if (!p) return;
      slot.pending.delete(m.id);
      if (slot.pending.size === 0) w.unref();
      if (m.error) p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
      else p.resolve({ each: m.each, ...(m.whole ? { whole: m.whole } : {}), short: m.short });
    });
    w.on("error", (e) => {
      // This thread is gone: its requests fail, the next request starts a fresh one.
      const i = this.workers.indexOf(slot);
      if (i >= 0) this.workers.splice(i, 1);
      for (const p of slot.pending.values()) p.reject(e);
      slot.pending.clear();
    });
    this.workers.push(slot);
  }

  hash(req: HashRequest): Promise<HashResult> {
    while (this.workers.length < this.threads) this.spawn();
    const slot = this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = ++this.seq;
    return new Promise<HashResult>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.w.ref(); // a request in hand keeps the process alive until it is answered
      slot.w.postMessage({ id, ...req });
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
 * The same hashes on the event loop (async reads, hashing between them): for comparison in
 * bench/export-engine.ts and where no thread may be started.
 */
export class InlineFileHasher implements FileHasher {
  async hash(req: HashRequest): Promise<HashResult> {
    const buf = Buffer.allocUnsafe(1 << 20);
    const zeros = Buffer.alloc(64 << 10);
    const pad = (h: Hash, n: number) => {
      for (; n > 0; n -= zeros.length) h.update(zeros.subarray(0, Math.min(n, zeros.length)));
    };
    const each: string[] = [];
    const whole = req.wholeLength === undefined ? undefined : createHash("md5");
    let pos = 0;
    let short = false;
    for (const [offset, length] of req.ranges) {
      if (whole) pad(whole, offset - pos);
      const h = req.each ? createHash("md5") : undefined;
      let got = 0;
      while (got < length) {
        const n = await new Promise<number>((resolve, reject) =>
          read(req.fd, buf, 0, Math.min(buf.length, length - got), offset + got, (e, n) =>
            e ? reject(e) : resolve(n),
          ),
        );
        if (n === 0) {
          short = true;
          break;
        }
        h?.update(buf.subarray(0, n));
        whole?.update(buf.subarray(0, n));
        got += n;
      }
      if (h) each.push(h.digest("hex").toUpperCase());
      pos = offset + got;
      if (short) break;
    }
    if (whole && !short) pad(whole, req.wholeLength! - pos);
    return { each, ...(whole ? { whole: whole.digest("base64") } : {}), short };
  }
}
