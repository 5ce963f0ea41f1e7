/**
 * The block pipeline: each chunk of a source is read once into a pooled buffer, its MD5 checked
 * against the expected hash before it goes anywhere, and a good one handed to `send` through the
 * station's request queue (with retries); the buffer goes back to the pool when the request is
 * done. The pool is the backpressure: the next chunk is read only when a buffer is free, so memory
 * is (pool size) x (block size) whatever the files. Each attempt of a send takes a request slot;
 * the backoff between attempts holds none. Used by import (file -> storage); export reuses
 * it the other way (storage -> file).
 */
import { createHash } from "node:crypto";
import { ReadHung } from "./drive-reads.js";
import { type Retrying, throwIfCancelled } from "./retry.js";
import type { BlockPool, RequestQueue } from "./scheduler.js";

/** The station's resources as one drive sees them: its lane of the scheduler (scheduler.ts). */
export interface BlockPipeline {
  /** Storage requests: each attempt takes a slot, so a retry's backoff holds none. */
  queue: RequestQueue;
  /** Block buffers: what bounds the memory of every transfer on the station. */
  pool: BlockPool;
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
  /** Given every verified chunk, in order (the whole-blob MD5 from the same read). */
  verified?(chunk: C, data: Buffer): void;
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
  let sendFailed = false;
  try {
    await readAndQueue();
  } catch (e) {
    // A cancellation or a read failure: the requests already queued settle before the caller goes on.
    await Promise.allSettled(sends);
    throw e;
  }
  const results = await Promise.allSettled(sends);
  const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
  if (failed) throw failed.reason;
  return broken;

  async function readAndQueue(): Promise<void> {
    for (const [k, c] of o.chunks.entries()) {
      throwIfCancelled(p.signal);
      if (sendFailed) return; // no point reading on: the blob fails with that send's error
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
        const md5 = createHash("md5").update(buf).digest();
        if (md5.toString("hex").toUpperCase() !== c.hash) {
          o.onChunk(k, "corrupted", c);
          broken = true;
          continue;
        }
        o.verified?.(c, buf);
        if (o.skip?.(k, c)) {
          o.onChunk(k, "skipped", c);
          continue;
        }
        lent = true;
        const sent = (async () => {
          try {
            await p.retrying(o.what(k), (s) => p.queue.add(() => o.send(k, buf, md5, s)));
          } catch (e) {
            sendFailed = true;
            throw e;
          } finally {
            p.pool.release(slab);
          }
          o.onChunk(k, "sent", c);
        })();
        // Read by allSettled; marked handled now so a rejection while the loop awaits a read is not "unhandled".
        sent.catch(() => undefined);
        sends.push(sent);
      } finally {
        if (!lent) p.pool.release(slab);
      }
    }
  }
}
