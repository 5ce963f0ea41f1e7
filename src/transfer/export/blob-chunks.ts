/**
 * The bytes of one exported blob: downloading its chunks onto the drive and reading them back.
 *
 * Two ways down, chosen by what storage can vouch for:
 * - The blob has a Content-MD5: runs of contiguous chunks are streamed in one ranged GET of up to
 *   `rangeBytes` (8 MiB, AzCopy's block size), each chunk written as it completes and hashed for
 *   the manifest as it reads back. The read-back then hashes the whole file and must equal the
 *   blob's Content-MD5: every byte on the drive is checked against storage's own hash. Ranges over 4 MiB
 *   also spare the service a range MD5 it would compute and throw away (Azurite hashes every
 *   range up to 4 MiB whether asked or not).
 * - It has none: each 4 MiB chunk is read with the service's range MD5
 *   (x-ms-range-get-content-md5), checked against it, and read back and hashed chunk by chunk.
 * If the whole-file hash differs from the Content-MD5, every chunk is read again the second way
 * and written, and the chunk-by-chunk read-back runs; a Content-MD5 that still disagrees is the
 * blob's own fault (its chunks matched the service's range hashes) and is reported as such.
 * Every MD5 here (each downloaded range, the read-backs) runs on the station's hashing threads
 * (core/hash-pool.ts), off the event loop.
 */
import type { FileHandle } from "node:fs/promises";
import type { BlobStatus, ChunkStatus } from "../../formats/status.js";
import type { ExportBlobRef, ExportSource } from "../../storage/export-source.js";
import { type FileHasher, type HashRequest, newStream } from "../core/file-hasher.js";
import type { Retrying } from "../core/retry.js";
import type { BlockPool, RequestQueue } from "../core/scheduler.js";

export interface Chunk {
  offset: number;
  length: number;
}

/** The longest ranged GET for a blob with a Content-MD5: two 4 MiB chunks, as AzCopy reads. */
export const DEFAULT_RANGE_BYTES = 8 * 1024 * 1024;

export class BlobFailure extends Error {
  constructor(
    readonly status: BlobStatus,
    message: string,
    readonly chunk?: { index: number; status: ChunkStatus },
    /** The drive did not return what was written, twice: it cannot hold its bytes. */
    readonly driveUnreliable = false,
  ) {
    super(message);
  }
}

export const hex = (b: Buffer): string => b.toString("hex").toUpperCase();

/**
 * The chunks still to download, grouped into runs one request can fetch: consecutive chunks
 * that touch (page-blob ranges may not), at most `rangeBytes` together.
 */
export function spansOf(chunks: Chunk[], todo: (k: number) => boolean, rangeBytes: number): number[][] {
  const spans: number[][] = [];
  let cur: number[] = [];
  let bytes = 0;
  for (const [k, c] of chunks.entries()) {
    if (!todo(k)) {
      if (cur.length) spans.push(cur);
      cur = [];
      bytes = 0;
      continue;
    }
    const prev = chunks[cur.at(-1) ?? -1];
    if (cur.length && (bytes + c.length > rangeBytes || !prev || prev.offset + prev.length !== c.offset)) {
      spans.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(k);
    bytes += c.length;
  }
  if (cur.length) spans.push(cur);
  return spans;
}

async function writeAll(fh: FileHandle, data: Buffer, offset: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
    done += bytesWritten;
  }
}

export interface ChunkIo {
  source: ExportSource;
  ref: ExportBlobRef;
  etag: string;
  blobPath: string;
  filePath: string;
  length: number;
  chunks: Chunk[];
  file: FileHandle;
  /** What read-backs read through: an O_DIRECT descriptor (`direct`) or the file's own. */
  readFd: number;
  direct: boolean;
  /** Where the drive is mounted and how the operator knows it ("drive X"): a read-back that hangs names them. */
  root: string;
  drive: string;
  /**
   * Before chunks `ks` are read back: sync them, then (medium) get past the device's cache.
   * `attempt` 2 reads back a re-write.
   */
  beforeRead(ks: number[], attempt: number): Promise<void>;
  /** Streamed read-backs wait for this many landed bytes (or the blob's end) per sync. */
  batchBytes: number;
  pool: BlockPool;
  /** Storage requests: each attempt takes a slot, so a retry's backoff holds none (as import's sends). */
  queue: RequestQueue;
  /** Hashes downloaded ranges and what the file holds, off the event loop. */
  hasher: FileHasher;
  retrying: Retrying;
  warn(fields: object, message: string): void;
  /** A chunk is on the drive (not yet read back): record it. */
  onWritten(k: number, md5: string): Promise<void>;
  /** Streamed blobs: hashes chunks in order as they land, and the whole file in the same reads. */
  inOrder?: InOrderHashing;
  /** Records of streamed chunks, settled before the file is closed. */
  recording: Promise<void>[];
  counters: { bytesWritten: number; chunksRewritten: number };
}

/** A read-back of the file through `io`'s descriptor: bounded by the read timeout, named for its error. */
export const readBackOf = (
  io: Pick<ChunkIo, "readFd" | "direct" | "root" | "drive" | "filePath">,
): Pick<HashRequest, "fd" | "direct" | "root" | "label"> => ({
  fd: io.readFd,
  direct: io.direct,
  root: io.root,
  label: `${io.drive}: ${io.filePath}`,
});

async function writeChunk(io: ChunkIo, k: number, data: Buffer): Promise<void> {
  const c = io.chunks[k]!;
  await writeAll(io.file, data, c.offset).catch((e) => {
    throw new BlobFailure(
      "IOFailed",
      `${io.filePath}: write failed (${(e as NodeJS.ErrnoException).code ?? e})`,
      {
        index: k,
        status: "IOFailed",
      },
    );
  });
  io.counters.bytesWritten += c.length;
}

/**
 * Reads chunk `k` with the service's range MD5 (again, while the bytes do not match it) and
 * writes it. Returns its MD5 (upper-case hex).
 */
export async function fetchVerifiedChunk(
  io: ChunkIo,
  k: number,
  slab: Buffer,
  /** The MD5 the drive already returned for this chunk: equal to the service's, nothing is written. */
  onDrive?: string,
): Promise<string> {
  const c = io.chunks[k]!;
  for (let attempt = 1; ; attempt++) {
    const r = await io.retrying(`reading ${io.blobPath} at ${c.offset}`, (s) =>
      io.queue.add(() => io.source.readRange(io.ref, c.offset, c.length, io.etag, slab, s)),
    );
    if (r.data.length !== c.length)
      throw new BlobFailure(
        "Failed",
        `${io.blobPath}: ${r.data.length} bytes at ${c.offset}, expected ${c.length}`,
        {
          index: k,
          status: "BlobUnexpectedEnd",
        },
      );
    // On a hashing thread, straight from the pooled (shared) buffer the range was read into.
    const md5 = await io.hasher.md5(r.data);
    if (!r.md5 || r.md5.equals(md5)) {
      if (onDrive !== hex(md5)) await writeChunk(io, k, r.data);
      return hex(md5);
    }
    if (attempt >= 3)
      throw new BlobFailure(
        "CompletedWithErrors",
        `${io.blobPath} at ${c.offset}: the bytes never matched the service's MD5`,
        {
          index: k,
          status: "Corrupted",
        },
      );
    io.warn(
      { blob: io.blobPath, offset: c.offset },
      "range MD5 differs from the service's; reading it again",
    );
  }
}

/**
 * Streams the chunks of `span` (contiguous) in one ranged GET through `slab`: each chunk is
 * written as soon as its bytes are in, then handed to the in-order hashing, which reads it back
 * and records it (in `io.recording`). A retried request starts at the first chunk not yet
 * written. What the drive holds is checked against the blob's Content-MD5 afterwards.
 */
export async function fetchSpan(io: ChunkIo, span: number[], slab: Buffer): Promise<void> {
  let next = 0;
  const last = io.chunks[span.at(-1)!]!;
  const end = last.offset + last.length;
  await io.retrying(`reading ${io.blobPath} at ${io.chunks[span[0]!]!.offset}`, (s) =>
    io.queue.add(() => streamAttempt(s)),
  );
  async function streamAttempt(s: AbortSignal): Promise<void> {
    let k = span[next]!;
    const start = io.chunks[k]!.offset;
    let fill = 0;
    for await (const piece of io.source.streamRange(io.ref, start, end - start, io.etag, s)) {
      for (let at = 0; at < piece.length; ) {
        const c = io.chunks[k];
        if (!c || next >= span.length)
          throw new BlobFailure("Failed", `${io.blobPath}: the service sent more than ${end - start} bytes`);
        const n = Math.min(piece.length - at, c.length - fill);
        piece.copy(slab, fill, at, at + n);
        fill += n;
        at += n;
        if (fill < c.length) continue;
        await writeChunk(io, k, slab.subarray(0, fill));
        const landed = k;
        const recorded = io.inOrder!.landed(landed).then((md5) => io.onWritten(landed, md5));
        recorded.catch(() => undefined); // settled by the blob before it closes the file
        io.recording.push(recorded);
        next++;
        k = span[next] ?? -1;
        fill = 0;
      }
    }
    if (next < span.length) {
      const c = io.chunks[span[next]!]!;
      throw new BlobFailure(
        "Failed",
        `${io.blobPath}: the service's bytes ended before ${c.offset + fill}, expected ${end}`,
        {
          index: span[next]!,
          status: "BlobUnexpectedEnd",
        },
      );
    }
  }
}

/**
 * A streamed blob's read-back, overlapped with its download: chunks are read back from the drive
 * in blob order as soon as they and every chunk before them have landed, each hashed on its own
 * (the manifest's MD5) and, in the same read, into the whole file's hash (page-blob holes as
 * zeros). Chunks an earlier run wrote are read and hashed again in their turn.
 */
export class InOrderHashing {
  private next = 0;
  private readonly isIn = new Set<number>();
  private readonly waiters = new Map<number, { resolve(md5: string): void; reject(e: unknown): void }>();
  private readonly stream = newStream();
  private stopped: unknown;
  /** Chunks ready in order, read back together after one sync. */
  private batch: number[] = [];
  private batchBytes = 0;
  /** Batches are synced and read back one after the other (the stream's order). */
  private chain: Promise<void> = Promise.resolve();
  private failed: unknown;

  constructor(
    private readonly io: Pick<
      ChunkIo,
      | "hasher"
      | "readFd"
      | "direct"
      | "root"
      | "drive"
      | "beforeRead"
      | "batchBytes"
      | "chunks"
      | "length"
      | "filePath"
    >,
    /** Chunks already on the drive (an earlier run): chunk index -> recorded MD5, updated here. */
    private readonly earlier: Map<number, string>,
  ) {
    this.pump();
  }

  /** Chunk `k` is written: resolves to its MD5 as read back, once its turn comes. */
  landed(k: number): Promise<string> {
    if (this.stopped) return Promise.reject(this.stopped);
    const p = new Promise<string>((resolve, reject) => this.waiters.set(k, { resolve, reject }));
    this.isIn.add(k);
    this.pump();
    return p;
  }

  private pump(): void {
    const last = this.io.chunks.length - 1;
    for (; this.next <= last; this.next++) {
      const k = this.next;
      if (!this.isIn.has(k) && !this.earlier.has(k)) return;
      this.batch.push(k);
      this.batchBytes += this.io.chunks[k]!.length;
      if (this.batchBytes >= this.io.batchBytes || k === last) this.readBack();
    }
  }

  private readBack(): void {
    const ks = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    const ws = ks.map((k) => {
      const w = this.waiters.get(k);
      this.waiters.delete(k);
      return w;
    });
    this.chain = this.chain
      .then(async () => {
        if (this.stopped || this.failed) throw this.stopped ?? this.failed;
        await this.io.beforeRead(ks, 1);
        const hashed = ks.map((k, i) => {
          const c = this.io.chunks[k]!;
          return this.io.hasher
            .hash({
              ...readBackOf(this.io),
              ranges: [[c.offset, c.length]],
              each: true,
              stream: this.stream,
            })
            .then((r) => {
              if (r.short)
                throw new BlobFailure(
                  "IOFailed",
                  `${this.io.filePath} at ${c.offset}: the drive returned fewer bytes than written`,
                  { index: k, status: "IOFailed" },
                );
              if (!ws[i]) this.earlier.set(k, r.each[0]!); // what the drive holds is what the manifest lists
              ws[i]?.resolve(r.each[0]!);
            });
        });
        await Promise.all(hashed);
      })
      .catch((e) => {
        this.failed ??= e;
        for (const w of ws) w?.reject(e);
      });
  }

  /** After every chunk landed: the whole file's base64 MD5 ("" when the file is short). */
  async whole(): Promise<string> {
    await this.chain;
    if (this.failed) throw this.failed;
    const r = await this.io.hasher.hash({
      ...readBackOf(this.io),
      ranges: [],
      stream: this.stream,
      wholeLength: this.io.length,
    });
    return r.short ? "" : r.whole!;
  }

  /** The blob failed: chunks still waiting for their turn are never hashed; the stream is dropped. */
  stop(reason: unknown): void {
    this.stopped = reason;
    for (const w of this.waiters.values()) w.reject(reason);
    this.waiters.clear();
    void this.chain.then(() =>
      this.io.hasher.hash({ fd: -1, ranges: [], stream: this.stream, discard: true }).catch(() => undefined),
    );
  }
}
