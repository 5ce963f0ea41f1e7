/**
 * Export of one drive: the job's selection (listed once), this drive's plan (first-fit on its
 * free space), every planned blob written and read back (export-blob.ts), the export manifest at
 * the drive root, then the copy logs and the incomplete blob list in storage. Resumes from the
 * export store: finished blobs are skipped, written chunks are not downloaded again.
 */
import { statfs } from "node:fs/promises";
import type { Logger } from "pino";
import { writeBlobList } from "../../formats/blob-list.js";
import { DriveOutcome, logTimestamp } from "../../formats/drive-log.js";
import type { DriveLogStatus } from "../../formats/status.js";
import type { KeyedLock } from "../../jobs/keyed-lock.js";
import type { ExportSource } from "../../storage/export-source.js";
import { writeCopyLogs } from "../core/copy-log.js";
import type { FileHasher } from "../core/file-hasher.js";
import { type MediumVolume, mediumVolumeOf } from "../core/medium-read.js";
import { type RetryPolicy, retrier } from "../core/retry.js";
import type { BlockPool, RequestQueue } from "../core/scheduler.js";
import { geometryFor, type VolumeGeometry } from "./capacity.js";
import {
  chunksOf,
  type ExportCounters,
  type ExportVerify,
  exportBlob,
  type ReadBackHook,
} from "./export-blob.js";
import { writeExportManifest } from "./export-manifest.js";
import { type ExportJob, ensureSelection, planForDrive } from "./export-plan.js";
import { blobPathOf, type DrivePlan, type SelectedBlob } from "./planner.js";
import type { ExportStore } from "./store.js";

export interface ExportDriveContext {
  job: ExportJob & { diagnosticsPath: string; logLevel: "Error" | "Verbose"; backupDriveManifest: boolean };
  driveId: string;
  /** The drive's data volume, mounted read-write. */
  root: string;
  fsType?: string;
  source: ExportSource;
  store: ExportStore;
  /** Plans of one job are made one at a time. */
  lock: KeyedLock;
  queue: RequestQueue;
  pool: BlockPool;
  /** The station's hashing threads (core/hash-pool.ts): downloaded ranges and read-backs. */
  hasher: FileHasher;
  /** Where read-backs come from (default "medium": the drive itself, past every cache). */
  verify?: ExportVerify;
  /** Tests: called after chunks are synced, before they are read back. */
  beforeReadBack?: ReadBackHook;
  blobConcurrency: number;
  signal: AbortSignal;
  log: Logger;
  now(): Date;
  retry: RetryPolicy;
  /** Told of every storage retry (the metric). */
  onRetry?(reason: string): void;
  /** The volume's geometry; default: statfs of `root` (tests give a small drive). */
  geometry?(): Promise<VolumeGeometry>;
  onPlanned?(plan: DrivePlan): void;
  onProgress(bytesSucceeded: number, bytesTotal: number): void;
}

export interface ExportDriveResult {
  status: DriveLogStatus;
  plan: DrivePlan;
  bytesSucceeded: number;
  bytesTotal: number;
  /** Bytes this run wrote to the drive (chunks from earlier runs are not written again). */
  bytesWritten: number;
  chunksRewritten: number;
  /** Blobs that failed because the drive did not return what was written, even after a re-write. */
  unreliable: string[];
  /** Blobs that failed because reading them back from the drive hung (past the read timeout). */
  hung: string[];
  blobs: number;
  manifestFile: string;
  manifestHash: string;
  errorLogUri?: string;
  verboseLogUri?: string;
  manifestUri?: string;
  incompleteBlobListUri?: string;
}

/** Where the incomplete blob list goes: beside the copy logs (reference §3.2), one per job. */
export function incompleteListLocation(jobName: string, diagnosticsPath: string, at: Date) {
  const [container, ...rest] = (diagnosticsPath || "waimportexport").split("/");
  return {
    container: container!,
    name: [...rest, `waies/${jobName}_${logTimestamp(at)}_incompleteblobs.xml`].join("/"),
  };
}

export async function exportDrive(ctx: ExportDriveContext): Promise<ExportDriveResult> {
  const { log, signal, store } = ctx;
  const key = ctx.job.key;
  const retrying = retrier({
    signal,
    policy: ctx.retry,
    log,
    ...(ctx.onRetry ? { onRetry: ctx.onRetry } : {}),
  });
  const selection = await ctx.lock.run(`export-selection:${key}`, () =>
    ensureSelection(ctx.job, ctx.source, store, retrying, signal),
  );
  const planning = await planForDrive(
    ctx.job,
    ctx.driveId,
    ctx.geometry ??
      (async () => {
        const s = await statfs(ctx.root);
        return geometryFor(ctx.fsType, s.bavail * s.bsize, s.bsize);
      }),
    selection,
    store,
    ctx.lock,
  );
  const { plan } = planning;
  ctx.onPlanned?.(plan);
  const byIndex = new Map<number, SelectedBlob>(selection.blobs.map((b) => [b.index, b]));
  if (plan.ordinal === 1 && selection.missing.length) {
    // Selectors that selected nothing go into the first drive's copy log (negative indices sort first).
    const done = await store.done(key, ctx.driveId);
    const records = selection.missing
      .map((m, i) => ({
        index: -(selection.missing.length - i),
        bytes: 0,
        log: { status: "BlobRequestFailed" as const, blobPath: m.selector, filePath: "", length: 0 },
      }))
      .filter((r) => !done.has(r.index));
    if (records.length) await store.saveDone(key, ctx.driveId, records);
    for (const m of selection.missing)
      log.warn({ selector: m.selector, reason: m.reason }, "export selector selected nothing");
  }

  const done = await store.done(key, ctx.driveId);
  const blocks = await store.blocks(key, ctx.driveId);
  const bytesTotal = plan.dataBytes;
  let bytesSucceeded = 0;
  const earlier = new Map<number, number>(); // bytes of chunks an earlier run wrote, per unfinished blob
  for (const p of plan.blobs) {
    const b = byIndex.get(p.index)!;
    if (done.has(p.index)) bytesSucceeded += b.length;
    else {
      const chunks = chunksOf(b);
      const n = [...(blocks.get(p.index)?.keys() ?? [])].reduce((s, k) => s + (chunks[k]?.length ?? 0), 0);
      earlier.set(p.index, n);
      bytesSucceeded += n;
    }
  }
  const counters: ExportCounters = { bytesWritten: 0, chunksRewritten: 0, unreliable: [], hung: [] };
  const verify = ctx.verify ?? "medium";
  const volume: MediumVolume | undefined = verify === "medium" ? await mediumVolumeOf(ctx.root) : undefined;
  if (volume) log.info({ volume }, "export read-backs come from the drive's medium");
  // Every change is reported; the run's progress meter throttles (once, on the injected clock).
  const progress = (n: number) => {
    bytesSucceeded += n;
    ctx.onProgress(bytesSucceeded, bytesTotal);
  };
  ctx.onProgress(bytesSucceeded, bytesTotal);

  // Blobs start in plan order, `blobConcurrency` at a time; their chunks share the station's queue.
  const running = new Set<Promise<void>>();
  let firstError: unknown;
  for (const p of plan.blobs) {
    if (done.has(p.index)) continue;
    if (firstError || signal.aborted) break;
    while (running.size >= ctx.blobConcurrency) await Promise.race(running);
    const b = byIndex.get(p.index)!;
    let counted = earlier.get(p.index) ?? 0;
    const task = exportBlob(
      {
        root: ctx.root,
        jobKey: key,
        driveId: ctx.driveId,
        source: ctx.source,
        store,
        queue: ctx.queue,
        pool: ctx.pool,
        retrying,
        signal,
        log,
        written: blocks.get(p.index) ?? new Map<number, string>(),
        onBytes: (n) => {
          counted += n;
          progress(n);
        },
        counters,
        hasher: ctx.hasher,
        verify,
        ...(volume ? { volume } : {}),
        ...(ctx.beforeReadBack ? { beforeReadBack: ctx.beforeReadBack } : {}),
      },
      b,
      p,
    )
      .then(async (r) => {
        // A finished blob counts its length (page-blob holes included); a failed one nothing.
        progress(r.bytes - counted);
        await store.saveDone(key, ctx.driveId, [r]);
      })
      .catch((e) => {
        firstError ??= e;
      });
    running.add(task);
    void task.finally(() => running.delete(task));
  }
  await Promise.all(running);
  if (signal.aborted) throw signal.reason ?? new Error("aborted");
  if (firstError) throw firstError;
  ctx.onProgress(bytesSucceeded, bytesTotal);

  // The export manifest at the drive root, from the finished blobs, read back and hashed.
  const manifest = await writeExportManifest(ctx.root, ctx.driveId, store.doneEntries(key, ctx.driveId));
  const outcome = new DriveOutcome();
  for await (const d of store.doneEntries(key, ctx.driveId)) outcome.add(d.log);
  const status = outcome.status();
  const result: ExportDriveResult = {
    status,
    plan,
    bytesSucceeded,
    bytesTotal,
    bytesWritten: counters.bytesWritten,
    chunksRewritten: counters.chunksRewritten,
    unreliable: counters.unreliable,
    hung: counters.hung,
    blobs: plan.blobs.length,
    manifestFile: manifest.file,
    manifestHash: manifest.hash,
  };

  const at = ctx.now();
  const upload = async (
    loc: { container: string; name: string },
    body: () => AsyncIterable<string | Buffer>,
  ) => {
    await retrying(`creating container ${loc.container}`, (s) =>
      ctx.source.ensureContainer(loc.container, s),
    );
    await retrying(`writing ${loc.name}`, (s) => ctx.source.uploadStream(loc, body(), "application/xml", s));
    return ctx.source.publicUrl(loc);
  };
  // The copy logs and the manifest backup, as import writes them (core/copy-log.ts).
  const logs = await writeCopyLogs({
    port: ctx.source,
    retrying,
    ensureContainer: (c) => retrying(`creating container ${c}`, (s) => ctx.source.ensureContainer(c, s)),
    entries: () => store.doneEntries(key, ctx.driveId),
    jobName: ctx.job.name,
    driveId: ctx.driveId,
    diagnosticsPath: ctx.job.diagnosticsPath,
    logLevel: ctx.job.logLevel,
    ...(ctx.job.backupDriveManifest ? { manifestBackup: manifest.read } : {}),
    at,
    status,
  });
  if (logs.errorLogUri) result.errorLogUri = logs.errorLogUri;
  if (logs.verboseLogUri) result.verboseLogUri = logs.verboseLogUri;
  if (logs.manifestUri) result.manifestUri = logs.manifestUri;
  if (planning.incomplete) {
    const left = planning.incomplete.map((b) => ({
      path: blobPathOf(b),
      ...(b.snapshot ? { snapshot: b.snapshot } : {}),
    }));
    result.incompleteBlobListUri = await upload(
      incompleteListLocation(ctx.job.name, ctx.job.diagnosticsPath, at),
      () => writeBlobList(left),
    );
    log.warn(
      { blobs: left.length },
      "blobs left over after the job's last drive: incomplete blob list written",
    );
  }
  await store.clearBlocks(key, ctx.driveId);
  return result;
}
