/**
 * One blob onto an export drive. Each chunk (4 MiB blocks, or page ranges cut at 4 MiB) is read
 * once from storage under If-Match (the ETag at selection: a changed blob fails the read with
 * 412 and is logged BlobUnexpectedChange), its MD5 computed from that one read and checked
 * against the service's range MD5 when the service gives one, written at its offset into
 * `<file>.drive-station-partial`, and recorded (so a restart never downloads or writes it again).
 * Page blobs stay sparse: only their ranges are written. When every chunk is on the drive the
 * file is synced and READ BACK, each chunk's MD5 checked against what was written (and the whole
 * blob's against its Content-MD5), then renamed to its name; the properties and metadata files
 * go beside it. A blob that fails leaves no partial file behind.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, mkdir, open, realpath, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import type { Logger } from "pino";
import { md5Hex, writeMetadataFile, writePropertiesFile } from "../../formats/blob-properties.js";
import type { LogBlob, LogChunk } from "../../formats/drive-log.js";
import { MAX_CHUNK } from "../../formats/manifest.js";
import { indexBlockId, type ManifestBlobOut } from "../../formats/manifest-writer.js";
import type { BlobStatus, ChunkStatus } from "../../formats/status.js";
import { classify } from "../../storage/blob-access.js";
import type { ExportSource } from "../../storage/export-source.js";
import type { BlockPool, RequestQueue } from "../core/scheduler.js";
import { fileSegments, METADATA_SUFFIX, PARTIAL_SUFFIX, PROPERTIES_SUFFIX } from "./drive-paths.js";
import { blobPathOf, type PlannedBlob, type SelectedBlob } from "./planner.js";
import { type Retrying, StorageOutage } from "./retry.js";
import type { DoneBlob, ExportStore } from "./store.js";

export interface Chunk {
  offset: number;
  length: number;
}

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
  counters: { bytesWritten: number; chunksRewritten: number };
}

class BlobFailure extends Error {
  constructor(
    readonly status: BlobStatus,
    message: string,
    readonly chunk?: { index: number; status: ChunkStatus },
  ) {
    super(message);
  }
}

const hex = (b: Buffer) => b.toString("hex").toUpperCase();
const isoSeconds = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

async function writeAll(fh: FileHandle, data: Buffer, offset: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
    done += bytesWritten;
  }
}

async function readAll(fh: FileHandle, into: Buffer, offset: number, length: number): Promise<Buffer> {
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(into, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return into.subarray(0, got);
}

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

    /** Reads a chunk (retrying a transfer whose bytes do not match the service's MD5) and writes it. */
    const fetchAndWrite = async (k: number, slab: Buffer): Promise<string> => {
      const c = chunks[k]!;
      for (let attempt = 1; ; attempt++) {
        const r = await env.retrying(`reading ${blobPath} at ${c.offset}`, (s) =>
          env.source.readRange(ref, c.offset, c.length, b.etag, slab, s),
        );
        if (r.data.length !== c.length)
          throw new BlobFailure(
            "Failed",
            `${blobPath}: ${r.data.length} bytes at ${c.offset}, expected ${c.length}`,
            {
              index: k,
              status: "BlobUnexpectedEnd",
            },
          );
        const md5 = createHash("md5").update(r.data).digest();
        if (!r.md5 || r.md5.equals(md5)) {
          await writeAll(file, r.data, c.offset).catch((e) => {
            throw new BlobFailure(
              "IOFailed",
              `${p.filePath}: write failed (${(e as NodeJS.ErrnoException).code ?? e})`,
              {
                index: k,
                status: "IOFailed",
              },
            );
          });
          env.counters.bytesWritten += c.length;
          return hex(md5);
        }
        if (attempt >= 3)
          throw new BlobFailure(
            "CompletedWithErrors",
            `${blobPath} at ${c.offset}: the bytes never matched the service's MD5`,
            {
              index: k,
              status: "Corrupted",
            },
          );
        env.log.warn(
          { blob: blobPath, offset: c.offset },
          "range MD5 differs from the service's; reading it again",
        );
      }
    };

    // Download: chunks not yet on the drive, through the shared queue; pooled buffers bound memory.
    let failure: unknown;
    const tasks: Promise<void>[] = [];
    for (const [k, c] of chunks.entries()) {
      if (written.has(k)) continue;
      if (failure || env.signal.aborted) break;
      const slab = await env.pool.acquire();
      tasks.push(
        env.queue
          .add(async () => {
            try {
              if (failure) return;
              const md5 = await fetchAndWrite(k, slab);
              await env.store.saveBlocks(env.jobKey, env.driveId, [{ index: b.index, chunk: k, md5 }]);
              written.set(k, md5);
              env.onBytes(c.length);
            } finally {
              env.pool.release(slab);
            }
          })
          .catch((e) => {
            failure ??= e;
          }) as Promise<void>,
      );
    }
    await Promise.all(tasks);
    if (failure) throw failure;
    if (env.signal.aborted) throw env.signal.reason;

    // Read back every chunk from the drive; the whole-blob MD5 comes from the same read.
    await file.datasync();
    const whole = createHash("md5");
    let pos = 0;
    const zeros = Buffer.alloc(64 * 1024);
    const slab = await env.pool.acquire();
    try {
      for (const [k, c] of chunks.entries()) {
        for (; pos < c.offset; pos += Math.min(zeros.length, c.offset - pos))
          whole.update(zeros.subarray(0, Math.min(zeros.length, c.offset - pos))); // page-blob holes read as zeros
        let data = await readAll(file, slab, c.offset, c.length);
        if (hex(createHash("md5").update(data).digest()) !== written.get(k)) {
          env.log.warn(
            { blob: blobPath, file: p.filePath, offset: c.offset },
            "read-back MD5 differs; writing the chunk again",
          );
          env.counters.chunksRewritten++;
          const spare = await env.pool.acquire();
          try {
            written.set(k, await fetchAndWrite(k, spare));
          } finally {
            env.pool.release(spare);
          }
          await file.datasync();
          data = await readAll(file, slab, c.offset, c.length);
          if (hex(createHash("md5").update(data).digest()) !== written.get(k))
            throw new BlobFailure(
              "IOFailed",
              `${p.filePath} at ${c.offset}: the drive does not return what was written`,
              {
                index: k,
                status: "IOFailed",
              },
            );
        }
        whole.update(data);
        pos = c.offset + c.length;
      }
      for (; pos < b.length; pos += Math.min(zeros.length, b.length - pos))
        whole.update(zeros.subarray(0, Math.min(zeros.length, b.length - pos)));
    } finally {
      env.pool.release(slab);
    }
    await file.close();
    fh = undefined;
    await rename(partial, final);
    const contentMd5 = whole.digest("base64");
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
      await companion(METADATA_SUFFIX, writeMetadataFile(b.metadata), "metadata");
    await companion(
      PROPERTIES_SUFFIX,
      writePropertiesFile({
        "Last-Modified": new Date(b.lastModified).toUTCString(),
        Etag: b.etag,
        "Content-Length": String(b.length),
        ...(b.contentType ? { "Content-Type": b.contentType } : {}),
        ...(b.contentMd5 ? { "Content-MD5": b.contentMd5 } : {}),
        ...(b.contentEncoding ? { "Content-Encoding": b.contentEncoding } : {}),
        ...(b.contentLanguage ? { "Content-Language": b.contentLanguage } : {}),
        ...(b.cacheControl ? { "Cache-Control": b.cacheControl } : {}),
      }),
      "properties",
    );
    return { index: b.index, bytes: b.length, log: entry, manifest };
  } catch (e) {
    await fh?.close().catch(() => undefined);
    if (env.signal.aborted || e instanceof StorageOutage) throw e;
    let status: BlobStatus;
    let bad: { index: number; status: ChunkStatus } | undefined;
    if (e instanceof BlobFailure) {
      status = e.status;
      bad = e.chunk;
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
