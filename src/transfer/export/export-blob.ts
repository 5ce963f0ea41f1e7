/**
 * One blob onto an export drive: its chunks (4 MiB blocks, or page ranges cut at 4 MiB) are read
 * from storage under If-Match (the ETag at selection: a changed blob fails the read with 412 and
 * is logged BlobUnexpectedChange) with the service's range MD5, written at their offsets into
 * `<file>.drive-station-partial` and recorded with that MD5 (so a restart never downloads or
 * writes them again). Page blobs stay sparse: only their ranges are written. When every chunk is on the drive
 * the file is synced and READ BACK and verified, each byte hashed once (blob-chunks.ts: against
 * the blob's Content-MD5, else chunk by chunk against the range MD5s), then renamed to its name; the
 * properties and metadata files go beside it. A blob that fails leaves no partial file behind.
 */
import { constants } from "node:fs";
import { type FileHandle, mkdir, open, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import type { Logger } from "pino";
import { md5Hex } from "../../formats/blob-properties.js";
import type { LogBlob, LogChunk } from "../../formats/drive-log.js";
import { MAX_CHUNK } from "../../formats/manifest.js";
import { indexBlockId, type ManifestBlobOut } from "../../formats/manifest-writer.js";
import type { BlobStatus, ChunkStatus } from "../../formats/status.js";
import { classify } from "../../storage/blob-access.js";
import type { ExportSource } from "../../storage/export-source.js";
import { FileFailure } from "../core/drive-files.js";
import { ReadHung } from "../core/drive-reads.js";
import type { FileHasher } from "../core/file-hasher.js";
import { HashingFailed } from "../core/hash-pool.js";
import { type MediumVolume, openDirect, prepareMediumRead } from "../core/medium-read.js";
import { type Retrying, StorageOutage } from "../core/retry.js";
import type { BlockPool, RequestQueue } from "../core/scheduler.js";
import { BlobFailure, type Chunk, type ChunkIo, fetchChunk, InOrderHashing } from "./blob-chunks.js";
import { companionBody } from "./companions.js";
import { fileSegments, METADATA_SUFFIX, PARTIAL_SUFFIX, PROPERTIES_SUFFIX } from "./drive-paths.js";
import { blobPathOf, type PlannedBlob, type SelectedBlob } from "./planner.js";
import { readBackChunks } from "./read-back.js";
import type { DoneBlob, ExportStore } from "./store.js";

export type { Chunk } from "./blob-chunks.js";

/** What a blob is read and written in: 4 MiB blocks, or its page ranges cut at 4 MiB. */
export function chunksOf(b: Pick<SelectedBlob, "kind" | "length" | "ranges">): Chunk[] {
  const out: Chunk[] = [];
  const cut = (offset: number, length: number) => {
    for (let o = 0; o < length; o += MAX_CHUNK)
      out.push({ offset: offset + o, length: Math.min(MAX_CHUNK, length - o) });
  };
  if (b.kind === "page") for (const r of b.ranges ?? []) cut(r.offset, r.length);
  else cut(0, b.length);
  return out;
}

export interface ExportCounters {
  bytesWritten: number;
  chunksRewritten: number;
  /** Why blobs failed because the drive did not hold what was written (one line each). */
  unreliable: string[];
  /** Why blobs failed because reading them back from the drive hung (one line each). */
  hung: string[];
}

export interface BlobEnv {
  root: string;
  jobKey: string;
  driveId: string;
  source: ExportSource;
  store: ExportStore;
  queue: RequestQueue;
  pool: BlockPool;
  retrying: Retrying;
  signal: AbortSignal;
  log: Logger;
  /** Chunks of this blob already on the drive from an earlier run: chunk index -> MD5 hex. */
  written: Map<number, string>;
  /** Bytes of this blob newly on the drive (progress). */
  onBytes(n: number): void;
  counters: ExportCounters;
  /** The station's hashing threads (core/hash-pool.ts): downloaded ranges and read-backs. */
  hasher: FileHasher;
  /** "medium": read-backs come from the drive's medium (core/medium-read.ts); "written": from the page cache. */
  verify: ExportVerify;
  /** The drive's volume (medium read-backs): its device, FUSE or not. */
  volume?: MediumVolume;
  /** Tests: called after chunks are synced, before they are read back. */
  beforeReadBack?: ReadBackHook;
}

export type ExportVerify = "medium" | "written";

/**
 * Told that chunks of a drive file were written and synced, and are about to be read back
 * (tests damage the medium here). `attempt` 2: a re-write of chunks that read back wrong.
 */
export type ReadBackHook = (at: {
  path: string;
  filePath: string;
  chunks: Chunk[];
  attempt: number;
}) => Promise<void>;

/** Streamed medium read-backs sync and get past the caches once per this many bytes. */
const MEDIUM_BATCH_BYTES = 32 * 1024 * 1024;

const isoSeconds = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

export async function exportBlob(env: BlobEnv, b: SelectedBlob, p: PlannedBlob): Promise<DoneBlob> {
  const chunks = chunksOf(b);
  const blobPath = blobPathOf(b);
  const entry: LogBlob = {
    status: "Completed",
    blobPath,
    filePath: p.filePath,
    ...(b.snapshot ? { snapshot: b.snapshot } : {}),
    length: b.length,
    lastModified: isoSeconds(new Date(b.lastModified)),
    kind: b.kind === "page" ? "page" : "block",
  };
  const logChunk = (c: Chunk, k: number, status: ChunkStatus, hash?: string): LogChunk => ({
    offset: c.offset,
    length: c.length,
    ...(b.kind !== "page" ? { id: indexBlockId(k) } : {}),
    ...(hash ? { hash } : {}),
    status,
  });
  const final = join(env.root, ...fileSegments(p.filePath));
  const partial = final + PARTIAL_SUFFIX;
  const ref = { container: b.container, name: b.name, ...(b.snapshot ? { snapshot: b.snapshot } : {}) };
  const written = env.written;

  let fh: FileHandle | undefined;
  let direct: FileHandle | undefined;
  let inOrder: InOrderHashing | undefined;
  try {
    await mkdir(dirname(final), { recursive: true });
    // A confirmed drive may carry symlinks: a file must still land on the drive.
    const [realDir, realRoot] = await Promise.all([realpath(dirname(final)), realpath(env.root)]);
    if (realDir !== realRoot && !realDir.startsWith(realRoot + sep))
      throw new BlobFailure(
        "FileNameInvalid",
        `${p.filePath} leads outside the drive (a symlink on the drive)`,
      );
    // A run killed between the rename and its checkpoint: the file is complete but unconfirmed.
    if (!(await exists(partial)) && (await exists(final))) await rename(final, partial);
    if (!(await exists(partial))) written.clear(); // records without their file: start over
    fh = await open(partial, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    const file = fh;
    if ((await file.stat()).size !== b.length) await file.truncate(b.length); // holes stay sparse
    const medium = env.verify === "medium";
    if (medium) direct = await openDirect(partial);
    const hook = env.beforeReadBack;

    const io: ChunkIo = {
      source: env.source,
      ref,
      etag: b.etag,
      blobPath,
      filePath: p.filePath,
      length: b.length,
      chunks,
      file,
      readFd: (direct ?? file).fd,
      direct: medium,
      root: env.root,
      drive: `drive ${env.driveId}`,
      batchBytes: medium ? MEDIUM_BATCH_BYTES : 0,
      beforeRead: async (ks, attempt) => {
        if (!medium && !hook) return; // page-cache read-backs need no sync
        await file.datasync();
        await hook?.({ path: partial, filePath: p.filePath, chunks: ks.map((k) => chunks[k]!), attempt });
        if (medium) await prepareMediumRead(env.volume!);
      },
      pool: env.pool,
      queue: env.queue,
      hasher: env.hasher,
      retrying: env.retrying,
      warn: (fields, message) => env.log.warn(fields, message),
      onWritten: async (k, md5) => {
        await env.store.saveBlocks(env.jobKey, env.driveId, [{ index: b.index, chunk: k, md5 }]);
        written.set(k, md5);
        env.onBytes(chunks[k]!.length);
      },
      counters: env.counters,
    };
    // With a Content-MD5 to check the drive against, the read-back runs in blob order while the
    // rest arrives (one whole-file hash); without, chunk by chunk once all are on the drive.
    if (b.contentMd5) inOrder = new InOrderHashing(io, written);

    // Download: chunks not yet on the drive, one ranged GET each; each request attempt takes a
    // slot of the shared queue (a retry's backoff holds none); pooled buffers bound memory.
    let failure: unknown;
    const tasks: Promise<void>[] = [];
    for (const k of chunks.keys()) {
      if (written.has(k)) continue;
      if (failure || env.signal.aborted) break;
      const slab = await env.pool.acquire();
      const task = (async () => {
        try {
          if (failure) return;
          await io.onWritten(k, await fetchChunk(io, k, slab, "read-back"));
          inOrder?.landed(k);
        } finally {
          env.pool.release(slab);
        }
      })().catch((e) => {
        failure ??= e;
      });
      tasks.push(task);
    }
    await Promise.all(tasks);
    if (failure || env.signal.aborted) inOrder?.stop(failure ?? env.signal.reason);
    if (failure) throw failure;
    if (env.signal.aborted) throw env.signal.reason;

    // Read back: the whole file against the Content-MD5 (hashed as the chunks landed), else chunk by chunk.
    await file.datasync();
    let contentMd5: string | undefined;
    // A hashing thread that stopped with this blob's read-back stream in hand (written off for
    // another drive's hung read, or died) lost the stream, not the bytes: verify them again below.
    let streamLost = false;
    if (inOrder)
      contentMd5 = await inOrder.whole().catch((e: unknown) => {
        if (!(e instanceof HashingFailed)) throw e;
        streamLost = true;
        return undefined;
      });
    if (streamLost) inOrder?.stop(new Error("its hashing thread stopped"));
    inOrder = undefined;
    if (!b.contentMd5 || streamLost || contentMd5 !== b.contentMd5) {
      if (b.contentMd5)
        env.log.warn(
          { blob: blobPath, file: p.filePath },
          streamLost
            ? "the hashing thread holding this blob's read-back stopped; every chunk is read back again against the service's range MD5"
            : "the drive's copy does not match the blob's Content-MD5; every chunk is read back again against the service's range MD5",
        );
      const slab = await env.pool.acquire();
      try {
        contentMd5 = await readBackChunks(io, written, slab, Boolean(b.contentMd5));
      } finally {
        env.pool.release(slab);
      }
    }
    await direct?.close();
    direct = undefined;
    await file.close();
    fh = undefined;
    await rename(partial, final);
    entry.chunks = chunks.map((c, k) => logChunk(c, k, "Completed", written.get(k)));
    if (b.contentMd5 && b.contentMd5 !== contentMd5) {
      // Every range matched the service's bytes; it is the blob's stored Content-MD5 that disagrees.
      env.log.warn(
        { blob: blobPath, stored: b.contentMd5, actual: contentMd5 },
        "the blob's Content-MD5 does not match its content",
      );
      entry.status = "CompletedWithErrors";
    }

    const manifest: ManifestBlobOut = {
      blobPath,
      filePath: p.filePath,
      ...(b.snapshot ? { snapshot: b.snapshot } : {}),
      length: b.length,
      kind: b.kind === "page" ? "page" : "block",
      chunks: chunks.map((c, k) => ({
        offset: c.offset,
        length: c.length,
        hash: written.get(k)!,
        ...(b.kind !== "page" ? { id: indexBlockId(k) } : {}),
      })),
    };
    const companion = async (suffix: string, body: string, which: "metadata" | "properties") => {
      const path = p.filePath + suffix;
      const hash = md5Hex(body);
      try {
        await writeFile(final + suffix, body);
        entry[which] = { status: "Completed", path: { path, hash } };
        manifest[which] = { path, hash };
      } catch (e) {
        entry[which] = { status: "XmlWriteFailed" };
        entry.status = "CompletedWithErrors";
        env.log.warn({ file: path, err: e }, `${which} file not written`);
      }
    };
    if (Object.keys(b.metadata).length)
      await companion(METADATA_SUFFIX, companionBody("metadata", b), "metadata");
    await companion(PROPERTIES_SUFFIX, companionBody("properties", b), "properties");
    return { index: b.index, bytes: b.length, log: entry, manifest };
  } catch (e) {
    inOrder?.stop(e);
    await direct?.close().catch(() => undefined);
    await fh?.close().catch(() => undefined);
    if (env.signal.aborted || e instanceof StorageOutage) throw e;
    let status: BlobStatus;
    let bad: { index: number; status: ChunkStatus } | undefined;
    if (e instanceof BlobFailure) {
      status = e.status;
      bad = e.chunk;
      if (e.driveUnreliable) env.counters.unreliable.push(e.message);
    } else if (e instanceof FileFailure) {
      // A read-back that hung (its thread written off) or a hashing thread that failed.
      status = e.status;
      if (e instanceof ReadHung) env.counters.hung.push(e.message);
    } else {
      const kind = classify(e);
      const code = (e as NodeJS.ErrnoException).code;
      status =
        kind === "precondition" || kind === "not-found"
          ? "BlobUnexpectedChange"
          : kind === "forbidden"
            ? "BlobRequestForbidden"
            : code && !("statusCode" in (e as object))
              ? "IOFailed"
              : "BlobRequestFailed";
    }
    env.log.warn({ blob: blobPath, file: p.filePath, status, err: e }, "blob not exported");
    // Nothing half-written stays on the drive, and nothing of it is trusted on a retry.
    await rm(partial, { force: true }).catch(() => undefined);
    entry.status = status;
    entry.chunks = chunks.map((c, k) => logChunk(c, k, bad?.index === k ? bad.status : "Cancelled"));
    return { index: b.index, bytes: 0, log: entry };
  }
}
