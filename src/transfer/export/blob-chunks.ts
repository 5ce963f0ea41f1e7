/**
 * The bytes of one exported blob: downloading its chunks onto the drive and reading them back.
 *
 * Every chunk (4 MiB at most) is read in one ranged GET with the service's range MD5
 * (x-ms-range-get-content-md5): storage's own hash of those bytes, and the chunk's MD5 in the
 * export manifest. The bytes go to the drive unhashed; it is the READ-BACK that checks them, so
 * each byte is hashed once, from the drive:
 * - A blob with a Content-MD5: chunks are read back in blob order as they land, into one
 *   whole-file hash that must equal the Content-MD5. Equal, the drive holds the blob's bytes, so
 *   each chunk's range MD5 is also the MD5 of what the drive holds.
 * - A blob without: each chunk is read back and hashed on its own, against its range MD5.
 * A chunk whose read-back disagrees is read again, this time hashed in memory against the range
 * MD5 before it is written (so a second disagreement is the drive's), and read back once more.
 * A Content-MD5 that still disagrees when every chunk matched its range MD5 is the blob's own
 * fault and is reported as such. A service that gives no range MD5 gets every range hashed in
 * memory. Every MD5 runs on the station's hashing threads (core/hash-pool.ts), off the event loop.
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
  /** In-order read-backs (a blob with a Content-MD5) wait for this many landed bytes (or the blob's end) per sync. */
  batchBytes: number;
  pool: BlockPool;
  /** Storage requests: each attempt takes a slot, so a retry's backoff holds none (as import's sends). */
  queue: RequestQueue;
  /** Hashes downloaded ranges and what the file holds, off the event loop. */
  hasher: FileHasher;
  retrying: Retrying;
  warn(fields: object, message: string): void;
  /** A chunk is on the drive (not yet read back) with its range MD5: record it. */
  onWritten(k: number, md5: string): Promise<void>;
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
 * How a downloaded chunk is trusted before it is written: `read-back` (its range MD5 is what the
 * read-back will check the drive against; nothing is hashed here) or `memory` (hashed here
 * against the range MD5, read again while they differ: a re-write, whose bytes must be right
 * before the drive is blamed). Without a range MD5 from the service, `memory` either way.
 */
export type ChunkCheck = "read-back" | "memory";

/** Reads chunk `k` with the service's range MD5 and writes it. Returns its MD5 (upper-case hex). */
export async function fetchChunk(io: ChunkIo, k: number, slab: Buffer, check: ChunkCheck): Promise<string> {
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
    if (check === "read-back" && r.md5) {
      await writeChunk(io, k, r.data);
      return hex(r.md5);
    }
    // On a hashing thread, straight from the pooled (shared) buffer the range was read into.
    const md5 = await io.hasher.md5(r.data);
    if (!r.md5 || r.md5.equals(md5)) {
      await writeChunk(io, k, r.data);
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
 * The read-back of a blob with a Content-MD5, overlapped with its download: chunks are read back
 * from the drive in blob order as soon as they and every chunk before them have landed (after a
 * sync per `batchBytes`), into one whole-file hash (page-blob holes as zeros). Chunks an earlier
 * run wrote are read again in their turn. A failure is kept and thrown by `whole()`.
 */
export class InOrderHashing {
  private next = 0;
  private readonly isIn = new Set<number>();
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
    /** Chunks already on the drive (an earlier run). */
    private readonly earlier: ReadonlyMap<number, string>,
  ) {
    this.pump();
  }

  /** Chunk `k` is written and recorded: it is read back once its turn comes. */
  landed(k: number): void {
    if (this.stopped) return;
    this.isIn.add(k);
    this.pump();
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
    const ranges = ks.map((k): [number, number] => [this.io.chunks[k]!.offset, this.io.chunks[k]!.length]);
    this.chain = this.chain
      .then(async () => {
        if (this.stopped || this.failed) return;
        await this.io.beforeRead(ks, 1);
        const r = await this.io.hasher.hash({ ...readBackOf(this.io), ranges, stream: this.stream });
        if (r.short)
          throw new BlobFailure(
            "IOFailed",
            `${this.io.filePath} at ${ranges[0]![0]}: the drive returned fewer bytes than written`,
            { index: ks[0]!, status: "IOFailed" },
          );
      })
      .catch((e: unknown) => {
        this.failed ??= e;
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
    void this.chain.then(() =>
      this.io.hasher.hash({ fd: -1, ranges: [], stream: this.stream, discard: true }).catch(() => undefined),
    );
  }
}
