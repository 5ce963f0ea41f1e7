/**
 * The block pipeline: each chunk of a source is read once into a pooled buffer and handed to the
 * hashing threads (hash-pool.ts) for its MD5, checked against the expected hash before it goes
 * anywhere, and for the caller's whole-blob hash (`verified`); a good one goes to `send` through
 * the station's request queue (with retries). The next chunk is read while the threads hash.
 * The buffer goes back to the pool when the request is done and no thread reads it any more. The
 * pool is the backpressure: the next chunk is read only when a buffer is free, so memory is
 * (pool size) x (block size) whatever the files. Each attempt of a send takes a request slot; the
 * backoff between attempts holds none. Used by import (file -> storage).
 */
import { ReadHung } from "./drive-reads.js";
import type { BlockHashes } from "./hash-pool.js";
import { type Retrying, throwIfCancelled } from "./retry.js";
import type { BlockPool, RequestQueue } from "./scheduler.js";

/** The station's resources as one drive sees them: its lane of the scheduler (scheduler.ts). */
export interface BlockPipeline {
  /** Storage requests: each attempt takes a slot, so a retry's backoff holds none. */
  queue: RequestQueue;
  /** Block buffers: what bounds the memory of every transfer on the station. */
  pool: BlockPool;
  /** The station's hashing threads (shared by every drive). */
  hashes: BlockHashes;
}

export interface PipelineChunk {
  offset: number;
  length: number;
  /** Expected MD5, upper-case hex (the manifest's form). */
  hash: string;
}

/** What became of one chunk. */
export type ChunkOutcome =
  /** Read, verified, sent. */
  | "sent"
  /** Read and verified; `skip` said it had landed before (a resume): not sent again. */
  | "skipped"
  /** Its bytes do not match the expected MD5: not sent. */
  | "corrupted"
  /** The source ended before it: not sent (nor is any later chunk). */
  | "ended";

export interface PipeOptions<C extends PipelineChunk> {
  chunks: readonly C[];
  /** Reads `length` bytes at `offset` into `into` (fewer only at the end of the source). */
  read(offset: number, length: number, into: Buffer): Promise<Buffer>;
  /**
   * Given every chunk read whole, in order, as its MD5 check starts (the whole-blob MD5 from the
   * same read; a blob with a bad chunk is never committed, so its whole hash does not matter).
   * The promise settles once `data` is no longer read; a rejection fails the blob.
   */
  verified?(chunk: C, data: Buffer): Promise<void> | void;
  /** True when chunk `k` already landed: it is read and verified (for `verified`) but not sent. */
  skip?(k: number, chunk: C): boolean;
  send(k: number, data: Buffer, md5: Buffer, signal: AbortSignal): Promise<unknown>;
  /** Names request `k` in retry log lines. */
  what(k: number): string;
  /** Told of every chunk's outcome; `sent` only once its request succeeded. */
  onChunk(k: number, outcome: ChunkOutcome, chunk: C): void;
}

/**
 * Runs the chunks through the pipeline. Resolves true when a chunk was bad (corrupted or past the
 * end of the source) once every send has settled; rejects with the first failed send.
 */
export async function pipeBlocks<C extends PipelineChunk>(
  p: BlockPipeline & { signal: AbortSignal; retrying: Retrying },
  o: PipeOptions<C>,
): Promise<boolean> {
  const sends: Promise<void>[] = [];
  let broken = false;
  let ended = false;
  let failed = false;
  try {
    await readAndQueue();
  } catch (e) {
    // A cancellation or a read failure: the chunks already read settle before the caller goes on.
    await Promise.allSettled(sends);
    throw e;
  }
  const results = await Promise.allSettled(sends);
  const rejected = results.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
  if (rejected) throw rejected.reason;
  return broken;

  async function readAndQueue(): Promise<void> {
    for (const [k, c] of o.chunks.entries()) {
      throwIfCancelled(p.signal);
      if (failed) return; // no point reading on: the blob fails with that chunk's error
      if (ended) {
        o.onChunk(k, "ended", c);
        continue;
      }
      const slab = await p.pool.acquire();
      let lent = false;
      try {
        let buf: Buffer;
        try {
          buf = await o.read(c.offset, c.length, slab);
        } catch (e) {
          if (e instanceof ReadHung) {
            lent = true; // the abandoned read may still write into the slab: never lend it again
            p.pool.forfeit(slab);
          }
          throw e;
        }
        if (buf.length < c.length) {
          o.onChunk(k, "ended", c);
          broken = ended = true;
          continue;
        }
        lent = true;
        const done = checkAndSend(k, c, slab, buf);
        // Read by allSettled; marked handled now so a rejection while the loop awaits a read is not "unhandled".
        done.catch(() => undefined);
        sends.push(done);
      } finally {
        if (!lent) p.pool.release(slab);
      }
    }
  }

  /** One chunk read whole: hashed on the threads, checked, sent; the slab freed once nothing reads it. */
  async function checkAndSend(k: number, c: C, slab: Buffer, buf: Buffer): Promise<void> {
    const checking = p.hashes.md5(buf);
    const streaming = Promise.resolve().then(() => o.verified?.(c, buf));
    // Read by allSettled below; marked handled now, so a stream that fails while the send runs
    // (its hashing thread died) is not an "unhandled" rejection.
    streaming.catch(() => undefined);
    let error: { reason: unknown } | undefined;
    try {
      const md5 = await checking;
      if (md5.toString("hex").toUpperCase() !== c.hash) {
        o.onChunk(k, "corrupted", c);
        broken = true;
      } else if (o.skip?.(k, c)) {
        o.onChunk(k, "skipped", c);
      } else {
        await p.retrying(o.what(k), (s) => p.queue.add(() => o.send(k, buf, md5, s)));
        o.onChunk(k, "sent", c);
      }
    } catch (e) {
      error = { reason: e };
    }
    // The threads read `buf` until both hashes settle: only then may the slab hold another block.
    const [, streamed] = await Promise.allSettled([checking, streaming]);
    p.pool.release(slab);
    if (!error && streamed.status === "rejected") error = { reason: streamed.reason };
    if (error) {
      failed = true;
      throw error.reason;
    }
  }
}
