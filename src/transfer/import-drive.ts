/**
 * Import of one drive: streams the manifest, and for each blob reads its file once, checks every
 * block's MD5 against the manifest before it leaves the station, stages it with that MD5 as the
 * transactional MD5 (the service checks it again), and commits the block list with the whole-blob
 * Content-MD5 computed from the same read. A blob with any bad block is never committed.
 * Memory is bounded: blocks wait for a place in the shared queue before the next one is read.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, open, readFile, realpath } from "node:fs/promises";
import { join, sep } from "node:path";
import { Readable } from "node:stream";
import type PQueue from "p-queue";
import type { Logger } from "pino";
import { StationError } from "../errors.js";
import { md5Hex, readMetadataFile, readPropertiesFile } from "../formats/blob-properties.js";
import {
  cancelBlob,
  DriveLogWriter,
  DriveOutcome,
  type LogBlob,
  type LogChunk,
  type LogFileInfo,
  logBlobLocation,
} from "../formats/drive-log.js";
import {
  type HashedPath,
  type ManifestBlob,
  type ManifestHeader,
  readManifest,
} from "../formats/manifest.js";
import { checkBlobPath, checkFilePath } from "../formats/names.js";
import type { BlobStatus, ChunkStatus, DriveLogStatus, FileInfoStatus } from "../formats/status.js";
import {
  type CredentialRefusal,
  classify,
  credentialRefusal,
  type JobStorage,
} from "../storage/blob-access.js";
import type { BufferPool } from "./buffer-pool.js";
import type { CheckpointStore } from "./checkpoints.js";

export const SMALL_BLOB = 4 * 1024 * 1024;
/** Page blobs are written under their name plus this, then copied into place when complete. */
export const PARTIAL_SUFFIX = ".drive-station-partial";

/** Storage stayed unreachable through every retry: the drive pauses, nothing is marked failed. */
export class StorageOutage extends Error {
  override name = "StorageOutage";
}

export interface RetryPolicy {
  attempts: number;
  baseMs: number;
  maxMs: number;
}

export interface ImportDriveContext {
  jobName: string;
  driveId: string;
  diagnosticsPath: string;
  logLevel: "Error" | "Verbose";
  backupDriveManifest: boolean;
  /** Where the drive's data volume is mounted (read-only). */
  root: string;
  manifestPath: string;
  /** The drive was Transferring before this run (a restart or a re-plug): blobs may be ours already. */
  resuming: boolean;
  storageFor(header: ManifestHeader): JobStorage;
  /** Shared by every drive: its concurrency is the station's number of requests in flight. */
  queue: PQueue;
  /** Shared block buffers: what bounds the memory of every transfer on the station. */
  pool: BufferPool;
  /** Blobs of this drive worked on at once (many small files need this). */
  blobConcurrency: number;
  checkpoints: CheckpointStore;
  signal: AbortSignal;
  log: Logger;
  now(): Date;
  retry: RetryPolicy;
  onProgress(bytesSucceeded: number, bytesTotal: number): void;
}

export interface ImportDriveResult {
  status: DriveLogStatus;
  bytesSucceeded: number;
  bytesTotal: number;
  /** Bytes this run sent to storage (block bodies); resumed work is not counted twice. */
  bytesUploaded: number;
  blobs: number;
  errorLogUri?: string;
  /** The account refused the drive's credential: the drive stopped at the first refusal. */
  refusal?: CredentialRefusal;
  /** Why a copy log (or the manifest backup) could not be written to the customer's account. */
  logsNotWritten?: string;
  verboseLogUri?: string;
  manifestUri?: string;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });

/**
 * Runs one SDK call with a short-lived child of the drive's signal. The SDK hangs listeners on the
 * signal it is given; on the drive's long-lived signal they (and the 4 MiB bodies they reach)
 * would live as long as the drive.
 */
async function withChildSignal<T>(
  parent: AbortSignal,
  call: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const child = new AbortController();
  const onAbort = () => child.abort(parent.reason);
  if (parent.aborted) child.abort(parent.reason);
  else parent.addEventListener("abort", onAbort, { once: true });
  try {
    return await call(child.signal);
  } finally {
    parent.removeEventListener("abort", onAbort);
  }
}

/** The blob name after the n-th rename: `a.jpg` → `a (2).jpg`, `name` → `name (2)` (reference §1.6). */
export function renamed(name: string, n: number): string {
  if (n <= 1) return name;
  const slash = name.lastIndexOf("/");
  const dot = name.lastIndexOf(".");
  if (dot > slash + 1) return `${name.slice(0, dot)} (${n})${name.slice(dot)}`;
  return `${name} (${n})`;
}

/** Deterministic block IDs when the manifest gives none: the same blob gets the same IDs on every run. */
export function derivedBlockId(seed: Buffer, index: number): string {
  const b = Buffer.alloc(12);
  seed.copy(b, 0, 0, 8);
  b.writeUInt32BE(index, 8);
  return b.toString("base64");
}

/** Where and how one blob is written: its container and name, the disposition's condition, metadata and headers. */
interface BlobWrite {
  container: string;
  target: string;
  conditions: { ifNoneMatch?: string };
  metadata: Record<string, string>;
  headers: Record<string, string>;
}

class FileFailure extends Error {
  constructor(
    readonly status: BlobStatus,
    message: string,
  ) {
    super(message);
  }
}

async function openInside(root: string, filePath: string): Promise<FileHandle> {
  const check = checkFilePath(filePath);
  if (!check.ok) throw new FileFailure(check.status, check.reason);
  const path = join(root, ...check.segments);
  try {
    // The path must stay on the drive even through symlinks (ext4 drives can carry them).
    const real = await realpath(path);
    const realRoot = await realpath(root);
    if (!real.startsWith(realRoot + sep))
      throw new FileFailure("FileNameInvalid", `${filePath} leads outside the drive`);
    return await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    if (e instanceof FileFailure) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR")
      throw new FileFailure("FileNotFound", `${filePath} is not on the drive`);
    if (code === "EACCES" || code === "EPERM")
      throw new FileFailure("FileAccessDenied", `${filePath} cannot be read (${code})`);
    if (code === "ENAMETOOLONG")
      throw new FileFailure("FileNameTooLong", `${filePath} is too long for this filesystem`);
    throw new FileFailure("IOFailed", `${filePath}: ${code ?? (e as Error).message}`);
  }
}

/** Reads exactly `length` bytes at `offset`, fewer only at end of file. */
async function readAt(fh: FileHandle, offset: number, length: number, into?: Buffer): Promise<Buffer> {
  const buf = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

export async function importDrive(ctx: ImportDriveContext): Promise<ImportDriveResult> {
  const { log, signal } = ctx;
  const manifestItems = () =>
    readManifest(readFileStream(ctx.manifestPath), { kind: "import", expectedDriveId: ctx.driveId });

  // Pass 1: the header (credential) and the drive's total bytes, for percent complete.
  let header: ManifestHeader | undefined;
  let bytesTotal = 0;
  let blobCount = 0;
  for await (const item of manifestItems()) {
    if (item.type === "header") header = item.header;
    else if (item.type === "blob") {
      bytesTotal += item.blob.length;
      blobCount++;
    }
  }
  if (!header) throw new Error("manifest without header");
  const storage = ctx.storageFor(header);
  // A refused credential fails every request the same way: the first refusal stops the drive,
  // and every blob not yet done is logged BlobRequestForbidden without a request (reference §3.5.1).
  const sas = storage.sasContainerName !== undefined;
  let refusal: CredentialRefusal | undefined = storage.credentialProblem
    ? { status: 0, code: "ContainerSasInvalid", cause: storage.credentialProblem }
    : undefined;
  const REFUSED = new Error("the storage account refused the drive's credential");
  const noteRefusal = (e: unknown): CredentialRefusal | undefined => {
    if (e === REFUSED) return refusal;
    const r = credentialRefusal(e, sas);
    if (r && !refusal) {
      refusal = r;
      log.error(
        { status: r.status, code: r.code },
        `${r.cause}: the drive stops here; blobs not yet imported are logged BlobRequestForbidden`,
      );
    }
    return r;
  };
  const resume = await ctx.checkpoints.progress(ctx.jobName, ctx.driveId);
  let bytesSucceeded = resume.bytesSucceeded;
  let bytesUploaded = 0;
  ctx.onProgress(bytesSucceeded, bytesTotal);

  const retrying = async <T>(what: string, op: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await withChildSignal(signal, op);
      } catch (e) {
        if (signal.aborted) throw signal.reason ?? e;
        if (classify(e) !== "retryable") throw e;
        if (attempt >= ctx.retry.attempts)
          throw new StorageOutage(
            `Storage unreachable while ${what} after ${attempt} attempts: ${(e as Error).message}`,
          );
        const delay =
          Math.min(ctx.retry.maxMs, ctx.retry.baseMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
        log.warn(
          { what, attempt, delayMs: Math.round(delay), status: (e as { statusCode?: number }).statusCode },
          "storage request failed; retrying",
        );
        await sleep(delay, signal);
      }
    }
  };

  const containers = new Map<string, Promise<void>>();
  const ensureContainer = (name: string) => {
    let p = containers.get(name);
    if (!p) {
      p = retrying(`creating container ${name}`, (s) => storage.ensureContainer(name, s));
      containers.set(name, p);
    }
    return p;
  };

  // Checkpoints go to the store in batches: one transaction per ~250 ms, not one per blob.
  let pending: Parameters<CheckpointStore["save"]>[2] = [];
  const flush = async () => {
    if (!pending.length) return;
    const batch = pending;
    pending = [];
    await ctx.checkpoints.save(ctx.jobName, ctx.driveId, batch);
  };
  const flusher = setInterval(() => void flush(), 250);
  let lastProgress = 0;
  const progress = (bytes: number) => {
    bytesSucceeded += bytes;
    const now = Date.now();
    if (now - lastProgress > 200) {
      lastProgress = now;
      ctx.onProgress(bytesSucceeded, bytesTotal);
    }
  };

  const fileInfo = async (
    global: HashedPath | undefined,
    own: HashedPath | undefined,
    kind: "metadata" | "properties",
  ) => {
    if (!global && !own) return undefined;
    const info: LogFileInfo = { status: "Completed" };
    if (global) info.globalPath = { path: global.path, hash: global.hash };
    if (own) info.path = { path: own.path, hash: own.hash };
    let values: Record<string, string> = {};
    for (const f of [global, own]) {
      if (!f) continue;
      let data: Buffer;
      try {
        const fh = await openInside(ctx.root, f.path);
        try {
          data = await fh.readFile();
        } finally {
          await fh.close();
        }
      } catch (e) {
        info.status = e instanceof FileFailure ? (e.status as FileInfoStatus) : "IOFailed";
        return { info, values: {} };
      }
      const r =
        kind === "metadata"
          ? await readMetadataFile(data, f.hash)
          : await readPropertiesFile(data, f.hash, "import");
      if (!r.ok) {
        info.status = r.status;
        return { info, values: {} };
      }
      // The per-blob file refines the list-wide one (reference §1.8 leaves merge vs replace open: we merge).
      values = { ...values, ...(r.value as Record<string, string>) };
    }
    return { info, values };
  };

  async function processBlob(
    index: number,
    blob: ManifestBlob,
    problem: { status: BlobStatus; message: string } | undefined,
  ): Promise<void> {
    const chunkLog: LogChunk[] = blob.chunks.map((c) => ({
      offset: c.offset,
      length: c.length,
      hash: c.hash,
      status: "Cancelled" as ChunkStatus,
      ...(c.id ? { id: c.id } : {}),
    }));
    const entry: LogBlob = {
      status: "Completed",
      blobPath: blob.blobPath,
      filePath: blob.filePath,
      length: blob.length,
      disposition: { requested: blob.disposition, status: "Created" },
      kind: blob.kind,
      chunks: chunkLog,
    };
    let blobBytes = 0;
    const finish = (log: LogBlob, target: string) => {
      pending.push({ blobIndex: index, state: "done", target, bytesSucceeded: blobBytes, log });
    };
    const fail = (status: BlobStatus, message: string, target = blob.blobPath) => {
      log.warn({ blob: blob.blobPath, file: blob.filePath, status }, message);
      finish(cancelBlob(entry, status), target);
    };
    if (problem) return fail(problem.status, problem.message);
    if (refusal) return finish(cancelBlob(entry, "BlobRequestForbidden"), blob.blobPath);

    const name = checkBlobPath(blob.blobPath);
    if (!name.ok) return fail("Failed", name.reason);
    const { container } = name;
    if (storage.sasContainerName && container !== storage.sasContainerName) {
      return fail(
        "BlobRequestForbidden",
        `${blob.blobPath} is outside the SAS container ${storage.sasContainerName}`,
      );
    }

    const startedTarget = resume.started.get(index);
    const mayBeOurs = ctx.resuming || startedTarget !== undefined;
    const existing = async (n: string) => {
      try {
        const props_ = await retrying(`reading ${container}/${n}`, (s) =>
          storage.block(container, n).getProperties({ abortSignal: s }),
        );
        return { md5: props_.contentMD5 ? Buffer.from(props_.contentMD5).toString("base64") : undefined };
      } catch (e) {
        if (classify(e) === "not-found") return undefined;
        throw e;
      }
    };

    let fh: FileHandle;
    try {
      fh = await openInside(ctx.root, blob.filePath);
    } catch (e) {
      if (e instanceof FileFailure) return fail(e.status, `${blob.blobPath}: ${e.message}`);
      throw e;
    }
    try {
      const meta = await fileInfo(blob.list.metadata, blob.metadata, "metadata");
      const props = await fileInfo(blob.list.properties, blob.properties, "properties");
      if (meta) entry.metadata = meta.info;
      if (props) entry.properties = props.info;
      const metaBad =
        (meta && meta.info.status !== "Completed") || (props && props.info.status !== "Completed");
      const p = props?.values ?? {};
      const headers = {
        ...(p["Content-Type"] ? { blobContentType: p["Content-Type"] } : {}),
        ...(p["Content-Encoding"] ? { blobContentEncoding: p["Content-Encoding"] } : {}),
        ...(p["Content-Language"] ? { blobContentLanguage: p["Content-Language"] } : {}),
        ...(p["Cache-Control"] ? { blobCacheControl: p["Cache-Control"] } : {}),
      };
      const metadata = meta?.values ?? {};

      await ensureContainer(container);

      // The whole file's MD5, read lazily: only a resumed run comparing with an existing blob needs it up front.
      let fileMd5: string | undefined;
      const wholeMd5 = async () => {
        if (fileMd5 === undefined) {
          const h = createHash("md5");
          for (let off = 0; off < blob.length; off += SMALL_BLOB)
            h.update(await readAt(fh, off, Math.min(SMALL_BLOB, blob.length - off)));
          fileMd5 = h.digest("base64");
        }
        return fileMd5;
      };
      if (blob.kind === "block" && blob.length <= SMALL_BLOB && blob.chunks.length <= 1 && !startedTarget) {
        return await uploadSingle(
          { container, target: name.name, conditions: { ifNoneMatch: "*" }, metadata, headers },
          Boolean(metaBad),
        );
      }
      // Where it goes, by disposition. A resumed blob whose target already holds its exact bytes is done.
      let target = startedTarget ?? name.name;
      let n = 1;
      for (;;) {
        if (startedTarget) break;
        const found = await existing(target);
        if (!found) break;
        if (mayBeOurs && found.md5 === (await wholeMd5())) {
          blobBytes = blob.length;
          bytesSucceeded += blob.length;
          for (const c of chunkLog) c.status = "Completed";
          if (n > 1) entry.disposition = { requested: blob.disposition, status: "Renamed" };
          if (n > 1) entry.blobPath = `${container}/${target}`;
          return finish(entry, target);
        }
        if (blob.disposition === "no-overwrite") {
          entry.disposition = { requested: blob.disposition, status: "Skipped" };
          delete entry.chunks;
          return finish(entry, target);
        }
        if (blob.disposition === "overwrite") {
          entry.disposition = { requested: blob.disposition, status: "Overwritten" };
          break;
        }
        n++;
        if (n > 1000) return fail("RenameFailed", `${blob.blobPath}: no free name after 1000 renames`);
        target = renamed(name.name, n);
      }
      if (n > 1) {
        entry.disposition = { requested: blob.disposition, status: "Renamed" };
        entry.blobPath = `${container}/${target}`;
      }
      const conditions = blob.disposition === "overwrite" ? {} : { ifNoneMatch: "*" };

      if (blob.kind === "page") {
        await uploadPageBlob({ container, target, conditions, metadata, headers });
      } else {
        await uploadBlocks({ container, target, conditions, metadata, headers });
      }
      if (entry.status === "Completed" && metaBad) entry.status = "CompletedWithErrors";
      finish(entry, target);
    } catch (e) {
      if (signal.aborted || e instanceof StorageOutage) throw e;
      if (noteRefusal(e)) return finish(cancelBlob(entry, "BlobRequestForbidden"), blob.blobPath);
      const kind = classify(e);
      if (kind === "conflict" || kind === "precondition") {
        // Someone created the blob between our check and our commit.
        if (blob.disposition === "no-overwrite") {
          entry.disposition = { requested: blob.disposition, status: "Skipped" };
          delete entry.chunks;
          return finish(entry, blob.blobPath);
        }
        return fail("RenameFailed", `${blob.blobPath}: the name was taken while the blob was being written`);
      }
      if (kind === "forbidden")
        return fail(
          "BlobRequestForbidden",
          `${blob.blobPath}: the storage account refused the request (key or SAS)`,
        );
      if (e instanceof FileFailure) return fail(e.status, e.message);
      const code = (e as NodeJS.ErrnoException).code;
      if (code && !("statusCode" in (e as object)))
        return fail("IOFailed", `${blob.filePath}: read failed (${code})`);
      return fail("BlobRequestFailed", `${blob.blobPath}: ${(e as Error).message}`);
    } finally {
      await fh.close();
    }

    /**
     * One request: Put Blob is atomic and the service checks Content-MD5 against the body. The
     * disposition is decided by the conditional Put itself (If-None-Match: *): a name is probed only
     * when it turns out to be taken, so a fresh import costs one request per small file.
     */
    async function uploadSingle(w: BlobWrite, metaBad: boolean): Promise<void> {
      const slab = await ctx.pool.acquire();
      let target = w.target;
      try {
        const data = await readAt(fh, 0, blob.length, slab);
        if (data.length < blob.length) {
          if (chunkLog[0]) chunkLog[0].status = "FileUnexpectedEnd";
          entry.status = "CompletedWithErrors";
          return finish(entry, target);
        }
        if (blob.chunks[0] && md5Hex(data) !== blob.chunks[0].hash) {
          chunkLog[0]!.status = "Corrupted";
          entry.status = "CompletedWithErrors";
          return finish(entry, target);
        }
        const md5 = createHash("md5").update(data).digest();
        let n = 1;
        let overwrite = false;
        for (let tries = 0; ; tries++) {
          try {
            const t = target;
            await ctx.queue.add(() =>
              retrying(`uploading ${blob.blobPath}`, (s) =>
                storage.block(w.container, t).upload(data, data.length, {
                  blobHTTPHeaders: { ...w.headers, blobContentMD5: md5 },
                  metadata: w.metadata,
                  conditions: overwrite ? {} : w.conditions,
                  abortSignal: s,
                }),
              ),
            );
            bytesUploaded += data.length;
            break;
          } catch (e) {
            const kind = classify(e);
            if ((kind !== "conflict" && kind !== "precondition") || tries > 1000) throw e;
            const found = await existing(target);
            if (found && mayBeOurs && found.md5 === md5.toString("base64")) break; // landed before a crash
            if (!found) continue; // deleted meanwhile: try the same name again
            if (blob.disposition === "no-overwrite") {
              entry.disposition = { requested: blob.disposition, status: "Skipped" };
              delete entry.chunks;
              return finish(entry, target);
            }
            if (blob.disposition === "overwrite") {
              overwrite = true;
              entry.disposition = { requested: blob.disposition, status: "Overwritten" };
              continue;
            }
            n++;
            if (n > 1000) return fail("RenameFailed", `${blob.blobPath}: no free name after 1000 renames`);
            target = renamed(w.target, n);
          }
        }
        if (n > 1) {
          entry.disposition = { requested: blob.disposition, status: "Renamed" };
          entry.blobPath = `${w.container}/${target}`;
        }
        blobBytes = data.length;
        progress(data.length);
        if (chunkLog[0]) chunkLog[0].status = "Completed";
        if (metaBad) entry.status = "CompletedWithErrors";
        return finish(entry, target);
      } finally {
        ctx.pool.release(slab);
      }
    }

    /**
     * The one read of a blob's chunks: each is read into a pooled buffer, its MD5 checked against
     * the manifest, and a good one handed to `send` through the station's queue; the buffer goes
     * back to the pool when the request is done. Chunk statuses land in the log entry. Returns
     * true when a chunk was bad (corrupted or past the end of the file).
     */
    async function sendChunks(
      b: ManifestBlob,
      o: {
        whole?: ReturnType<typeof createHash>;
        skip?: (k: number, c: ManifestBlob["chunks"][number]) => boolean;
        sentStatus: ChunkStatus;
        send: (k: number, buf: Buffer, md5: Buffer, s: AbortSignal) => Promise<unknown>;
        what: (k: number) => string;
      },
    ): Promise<boolean> {
      const uploads: Promise<void>[] = [];
      let broken = false;
      let ended = false;
      for (const [k, c] of b.chunks.entries()) {
        if (signal.aborted) throw signal.reason;
        if (refusal) break; // no more reading: every request with this credential is refused
        if (ended) {
          chunkLog[k]!.status = "FileUnexpectedEnd";
          continue;
        }
        // Backpressure: the next chunk is read only when a pooled buffer is free.
        const slab = await ctx.pool.acquire();
        let lent = false;
        try {
          const buf = await readAt(fh, c.offset, c.length, slab);
          if (buf.length < c.length) {
            chunkLog[k]!.status = "FileUnexpectedEnd";
            broken = ended = true;
            continue;
          }
          const md5 = createHash("md5").update(buf).digest();
          if (md5.toString("hex").toUpperCase() !== c.hash) {
            chunkLog[k]!.status = "Corrupted";
            broken = true;
            continue;
          }
          o.whole?.update(buf);
          if (o.skip?.(k, c)) {
            chunkLog[k]!.status = o.sentStatus; // landed before a restart: not sent again
            blobBytes += c.length;
            progress(c.length);
            continue;
          }
          lent = true;
          uploads.push(
            ctx.queue.add(async () => {
              try {
                if (refusal) throw REFUSED;
                await retrying(o.what(k), (s) => o.send(k, buf, md5, s));
              } finally {
                ctx.pool.release(slab);
              }
              bytesUploaded += buf.length;
              blobBytes += buf.length;
              chunkLog[k]!.status = o.sentStatus;
              progress(buf.length);
            }) as Promise<void>,
          );
        } finally {
          if (!lent) ctx.pool.release(slab);
        }
      }
      const results = await Promise.allSettled(uploads);
      const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
      if (failed) throw failed.reason;
      return broken;
    }

    async function uploadBlocks(w: BlobWrite): Promise<void> {
      const { container: container_, target, conditions, metadata, headers } = w;
      const client = storage.block(container_, target);
      // Claim the target before the first block: after a crash it is known to be ours.
      await ctx.checkpoints.save(ctx.jobName, ctx.driveId, [
        { blobIndex: index, state: "started", target, bytesSucceeded: 0 },
      ]);
      const seed = createHash("md5")
        .update(`${ctx.jobName}\0${ctx.driveId}\0${blob.blobPath}\0${blob.length}`)
        .digest();
      const ids = blob.chunks.map((c, k) => c.id ?? derivedBlockId(seed, k));
      // On resume, the service says what landed: staged blocks (uncommitted list) and, if the run
      // that crashed got as far as committing, the committed list.
      const staged = new Map<string, number>();
      let committedByUs = false;
      if (mayBeOurs) {
        try {
          const list = await retrying(`listing blocks of ${blob.blobPath}`, (s) =>
            client.getBlockList("all", { abortSignal: s }),
          );
          for (const blk of list.uncommittedBlocks ?? []) staged.set(blk.name, blk.size);
          const committed = list.committedBlocks ?? [];
          committedByUs =
            committed.length === ids.length &&
            committed.every((blk, k) => blk.name === ids[k] && blk.size === blob.chunks[k]!.length);
        } catch (e) {
          if (classify(e) !== "not-found") throw e;
        }
      }
      const pass = (skip: (k: number, c: ManifestBlob["chunks"][number]) => boolean) => {
        const whole = createHash("md5");
        return sendChunks(blob, {
          whole,
          skip,
          sentStatus: "Uncommitted",
          send: (k, buf, md5, s) =>
            client.stageBlock(ids[k]!, buf, buf.length, { transactionalContentMD5: md5, abortSignal: s }),
          what: (k) => `staging block ${k} of ${blob.blobPath}`,
        }).then((broken) => ({ broken, contentMd5: whole.digest() }));
      };
      let { broken, contentMd5 } = await pass((k, c) => committedByUs || staged.get(ids[k]!) === c.length);
      if (broken) {
        entry.status = "CompletedWithErrors"; // never committed: the good blocks stay Uncommitted for a repair
        return;
      }
      if (mayBeOurs) {
        const found = await existing(target);
        if (found?.md5 === contentMd5.toString("base64")) {
          for (const l of chunkLog) l.status = "Completed";
          return; // committed by the run that crashed: every byte read and checked again, none sent
        }
        if (committedByUs) {
          // The committed blob is not these bytes after all: send every block.
          log.warn(
            { blob: blob.blobPath },
            "a committed blob with our block list differs from the drive; sending it again",
          );
          ({ broken, contentMd5 } = await pass(() => false));
          if (broken) {
            entry.status = "CompletedWithErrors";
            return;
          }
        }
      }
      await retrying(`committing ${blob.blobPath}`, (s) =>
        client.commitBlockList(ids, {
          blobHTTPHeaders: { ...headers, blobContentMD5: contentMd5 },
          metadata,
          conditions,
          abortSignal: s,
        }),
      );
      for (const l of chunkLog) l.status = "Completed";
    }

    /**
     * A page blob cannot be staged, so it is written under a temporary name and copied to its
     * final name (server-side, under the disposition's condition) only when every range landed
     * verified; nothing partial or corrupt ever appears under the final name.
     */
    async function uploadPageBlob(w: BlobWrite): Promise<void> {
      const final = storage.page(w.container, w.target);
      const partial = storage.page(w.container, `${w.target}${PARTIAL_SUFFIX}`);
      const partialExists = async () => (await existing(`${w.target}${PARTIAL_SUFFIX}`)) !== undefined;
      if (resume.started.has(index) && !(await partialExists()) && (await existing(w.target))) {
        // The run that crashed copied it into place and removed the partial: done.
        for (const l of chunkLog) l.status = "Completed";
        blobBytes += blob.length;
        progress(blob.length);
        return;
      }
      if (!resume.started.has(index) || !(await partialExists())) {
        await retrying(`creating page blob ${blob.blobPath}`, (s) =>
          partial.create(blob.length, { blobHTTPHeaders: w.headers, metadata: w.metadata, abortSignal: s }),
        );
        await ctx.checkpoints.save(ctx.jobName, ctx.driveId, [
          { blobIndex: index, state: "started", target: w.target, bytesSucceeded: 0 },
        ]);
      }
      const dropPartial = () =>
        retrying(`removing ${partial.name}`, (s) => partial.deleteIfExists({ abortSignal: s }));
      const broken = await sendChunks(blob, {
        sentStatus: "Completed",
        send: (k, buf, md5, s) =>
          partial.uploadPages(buf, blob.chunks[k]!.offset, buf.length, {
            transactionalContentMD5: md5,
            abortSignal: s,
          }),
        what: (k) => `writing pages ${blob.chunks[k]!.offset} of ${blob.blobPath}`,
      });
      if (broken) {
        // Never copied into place: the ranges that were written go with the partial blob.
        for (const l of chunkLog) if (l.status === "Completed") l.status = "Cancelled";
        entry.status = "CompletedWithErrors";
        await dropPartial();
        return;
      }
      try {
        await retrying(`copying ${blob.blobPath} into place`, async (s) => {
          const poller = await final.beginCopyFromURL(partial.url, {
            conditions: w.conditions,
            abortSignal: s,
          });
          const done = await poller.pollUntilDone();
          if (done.copyStatus !== "success") throw new Error(`the server-side copy ended ${done.copyStatus}`);
        });
      } finally {
        if (!signal.aborted)
          await dropPartial().catch((e) =>
            log.warn({ err: e, blob: partial.name }, "partial page blob not removed"),
          );
      }
      // Ranges the manifest leaves out are zeros in a new page blob: they count as transferred.
      const sparse = blob.length - blob.chunks.reduce((sum, c) => sum + c.length, 0);
      blobBytes += sparse;
      progress(sparse);
    }
  }

  // Pass 2: the transfer. Blobs start in manifest order, `blobConcurrency` at a time.
  const running = new Set<Promise<void>>();
  let firstError: unknown;
  let index = -1;
  try {
    for await (const item of manifestItems()) {
      if (item.type !== "blob") continue;
      index++;
      if (resume.done.has(index)) continue;
      if (firstError || signal.aborted) break;
      while (running.size >= ctx.blobConcurrency) await Promise.race(running);
      const task = processBlob(index, item.blob, item.problem).catch((e) => {
        firstError ??= e;
      });
      running.add(task);
      void task.finally(() => running.delete(task));
    }
    await Promise.all(running);
  } finally {
    clearInterval(flusher);
    await flush();
  }
  if (signal.aborted) throw signal.reason ?? new Error("aborted");
  if (firstError) throw firstError;
  ctx.onProgress(bytesSucceeded, bytesTotal);

  // The copy logs, from the checkpoints (this run and any before it), in manifest order.
  const at = ctx.now();
  const outcome = new DriveOutcome();
  for await (const c of ctx.checkpoints.entries(ctx.jobName, ctx.driveId)) outcome.add(c.log!);
  const status = refusal ? "BlobRequestForbidden" : outcome.status();
  const result: ImportDriveResult = { status, bytesSucceeded, bytesTotal, bytesUploaded, blobs: blobCount };
  const logBlob = async (
    type: "error" | "verbose" | "manifest",
    body: () => AsyncIterable<string> | Promise<Buffer>,
  ) => {
    const loc = logBlobLocation({
      jobName: ctx.jobName,
      driveId: ctx.driveId,
      type,
      at,
      diagnosticsPath: ctx.diagnosticsPath,
      ...(storage.sasContainerName ? { sasContainer: storage.sasContainerName } : {}),
    });
    await ensureContainer(loc.container);
    const client = storage.block(loc.container, loc.blobName);
    // Streamed: a million-blob drive's verbose log never sits in memory whole. The whole log is
    // regenerated from the checkpoints if this fails, so one retry loop around the upload is enough.
    await retrying(`writing the ${type} log`, async (s) => {
      const content = body();
      const source =
        content instanceof Promise
          ? Readable.from([await content])
          : Readable.from(content, { objectMode: false });
      await client.uploadStream(source, 4 * 1024 * 1024, 4, {
        blobHTTPHeaders: { blobContentType: "application/xml" },
        abortSignal: s,
      });
    });
    return storage.publicUrl(loc.container, loc.blobName);
  };
  const renderLog = (kind: "error" | "verbose") =>
    async function* () {
      const chunks: string[] = [];
      const w = new DriveLogWriter((c) => chunks.push(c), kind, ctx.driveId);
      for await (const c of ctx.checkpoints.entries(ctx.jobName, ctx.driveId)) {
        w.add(c.log!);
        if (chunks.length > 256) yield chunks.splice(0).join("");
      }
      w.end(status);
      yield chunks.join("");
    };
  if (refusal) result.refusal = refusal;
  // A log the account refuses (the same bad credential) is not an error of the drive: Get Job
  // still shows its copyStatus, and the manager raises a notice with the cause.
  const tryLog = async (...a: Parameters<typeof logBlob>): Promise<string | undefined> => {
    if (result.logsNotWritten) return undefined;
    try {
      return await logBlob(...a);
    } catch (e) {
      if (signal.aborted || e instanceof StorageOutage) throw e;
      const r = credentialRefusal(e, sas);
      if (!r && !(e instanceof StationError)) throw e;
      result.logsNotWritten = r ? r.cause : (e as Error).message;
      log.error({ type: a[0] }, `the ${a[0]} log was not written: ${result.logsNotWritten}`);
      return undefined;
    }
  };
  const setUri = (k: "errorLogUri" | "verboseLogUri" | "manifestUri", uri: string | undefined) => {
    if (uri) result[k] = uri;
  };
  if (status !== "Completed") setUri("errorLogUri", await tryLog("error", renderLog("error")));
  if (ctx.logLevel === "Verbose") setUri("verboseLogUri", await tryLog("verbose", renderLog("verbose")));
  if (ctx.backupDriveManifest)
    setUri("manifestUri", await tryLog("manifest", () => readFile(ctx.manifestPath)));
  return result;
}

async function* readFileStream(path: string): AsyncIterable<Buffer> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      yield Buffer.from(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
}
