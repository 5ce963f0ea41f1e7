/**
 * One export drive's run inside the transfer manager: the safety rules, the drive and job
 * states around the engine, progress, and how a run ends (done, paused, waiting for the
 * operator, failed).
 *
 * Safety: only a drive checked in for an Export job reaches here (the dock mounts nothing else
 * read-write); a drive is written only when it is empty (nothing but `System Volume
 * Information`, `lost+found`, `$RECYCLE.BIN`), or already carries this job's plan (a resumed
 * run), or the operator confirmed it (`station confirm-export-drive`). The station never formats.
 */
import { readdir } from "node:fs/promises";
import type { Logger } from "pino";
import type { DockedDrive } from "../../drives/door.js";
import { ManifestError } from "../../formats/status.js";
import type { KeyedLock } from "../../jobs/keyed-lock.js";
import type { Clock, JobService } from "../../jobs/service.js";
import type { NoticeLog } from "../../jobs/store.js";
import { type Job, type JobKey, jobLabel } from "../../lifecycle/model.js";
import type { ExportSource } from "../../storage/export-source.js";
import type { BlockPool, RequestQueue } from "../core/scheduler.js";
import { exportDrive } from "./export-drive.js";
import { type RetryPolicy, StorageOutage } from "./retry.js";
import type { ExportStore } from "./store.js";

/** What an empty volume may hold: file-system bookkeeping, never data. */
export const EMPTY_VOLUME_ENTRIES = new Set(["System Volume Information", "lost+found", "$RECYCLE.BIN"]);

export async function volumeContents(root: string): Promise<string[]> {
  return (await readdir(root)).filter((n) => !EMPTY_VOLUME_ENTRIES.has(n));
}

export interface ExportRunDeps {
  service: JobService;
  notices: NoticeLog;
  log: Logger;
  clock: Clock;
  store: ExportStore;
  lock: KeyedLock;
  /** The station's access to the job's storage account; throws when it holds no key for it. */
  sourceFor(storageAccountId: string): ExportSource;
  queue: RequestQueue;
  pool: BlockPool;
  blobConcurrency: number;
  retry: RetryPolicy;
  outageRetryMs: number;
}

export const exportJobKey = (k: JobKey): string => jobLabel(k);

/** How a run ended, for the manager: `retry` asks it to start the drive again later. */
export type ExportRunEnd = "done" | "paused" | "waiting" | "failed" | "retry";

export async function runExportDrive(
  deps: ExportRunDeps,
  drive: DockedDrive,
  signal: AbortSignal,
): Promise<ExportRunEnd> {
  const { service, log } = deps;
  const key: JobKey = drive.job!;
  const driveId = drive.driveId!;
  const label = `${jobLabel(key)} drive ${driveId}`;
  const jobKey = exportJobKey(key);
  const started = Date.now();
  let persisting: Promise<unknown> = Promise.resolve();
  try {
    const job: Job = await service.get(key);
    const entry = job.drives.find((d) => d.driveId === driveId);
    if (job.type !== "Export" || !entry || !["Received", "Transferring"].includes(entry.state)) {
      drive.status = "held";
      drive.message = `${label} is not a checked-in drive of an export job in progress (${entry?.state ?? "not listed"}): not written.`;
      return "failed";
    }
    const planned = (await deps.store.plans(jobKey)).some((p) => p.driveId === driveId);
    if (!planned && !(await deps.store.confirmation(jobKey, driveId))) {
      const found = await volumeContents(drive.mountpoint!);
      if (found.length) {
        drive.status = "held";
        drive.message = `${label} already holds data (${found.slice(0, 5).join(", ")}${found.length > 5 ? ", …" : ""}): nothing was written. Check that this is the customer's blank drive; to write the export onto it anyway, run 'station confirm-export-drive ${key.name} ${driveId}'.`;
        log.warn({ job: jobLabel(key), driveId, entries: found.length }, drive.message);
        await deps.notices.add([
          {
            code: "ExportDriveNotEmpty",
            at: deps.clock.now().toISOString(),
            job: key,
            driveId,
            message: drive.message,
          },
        ]);
        return "waiting";
      }
    }
    let source: ExportSource;
    try {
      source = deps.sourceFor(job.storageAccountId);
    } catch (e) {
      // The drive stays ready: it starts once the station has the account's key (config, restart).
      drive.message = `${label} is ready but waits: ${(e as Error).message}`;
      log.warn({ job: jobLabel(key), driveId }, drive.message);
      return "waiting";
    }
    const resuming = entry.state === "Transferring";
    if (!resuming) await service.station(key, { type: "TransferStarted", driveId });
    drive.status = "transferring";
    drive.message = `${resuming ? "Resuming" : "Exporting to"} ${label}.`;
    log.info({ job: jobLabel(key), driveId, resuming }, "drive export started");

    let lastPersist = 0;
    let lastSample = { t: started, bytes: -1 };
    const result = await exportDrive({
      job: {
        key: jobKey,
        name: job.name,
        selection: job.export ?? {},
        driveIds: job.drives.map((d) => d.driveId),
        diagnosticsPath: job.diagnosticsPath,
        logLevel: job.logLevel,
        backupDriveManifest: job.backupDriveManifest,
      },
      driveId,
      root: drive.mountpoint!,
      ...(drive.fsType ? { fsType: drive.fsType } : {}),
      source,
      store: deps.store,
      lock: deps.lock,
      queue: deps.queue,
      pool: deps.pool,
      blobConcurrency: deps.blobConcurrency,
      signal,
      log: log.child({ job: jobLabel(key), driveId }),
      now: () => deps.clock.now(),
      retry: deps.retry,
      onProgress: (bytesSucceeded, bytesTotal) => {
        const now = Date.now();
        if (lastSample.bytes < 0) lastSample = { t: now, bytes: bytesSucceeded };
        const p: NonNullable<DockedDrive["progress"]> = {
          ...(drive.progress ?? { bytesPerSecond: 0 }),
          bytesSucceeded,
          bytesTotal,
        };
        if (now - lastSample.t >= 1000) {
          const rate = ((bytesSucceeded - lastSample.bytes) * 1000) / (now - lastSample.t);
          p.bytesPerSecond = Math.max(0, Math.round(rate));
          if (rate > 0) p.etaSeconds = Math.round((bytesTotal - bytesSucceeded) / rate);
          lastSample = { t: now, bytes: bytesSucceeded };
        }
        drive.progress = p;
        if (now - lastPersist >= 2000 || bytesSucceeded === bytesTotal) {
          lastPersist = now;
          persisting = persisting.then(() =>
            service
              .station(key, {
                type: "TransferProgress",
                driveId,
                bytesSucceeded,
                bytesTotal,
                copyStatus: "InProgress",
              })
              .catch((e) => log.warn({ err: e }, "progress not saved")),
          );
        }
      },
    });
    await persisting;
    const outcome = result.status === "Completed" ? "Completed" : "CompletedMoreInfo";
    await service.station(key, {
      type: "TransferFinished",
      driveId,
      outcome,
      copyStatus: result.status,
      bytesSucceeded: result.bytesSucceeded,
      manifestFile: result.manifestFile,
      manifestHash: result.manifestHash,
      ...(result.errorLogUri ? { errorLogUri: result.errorLogUri } : {}),
      ...(result.verboseLogUri ? { verboseLogUri: result.verboseLogUri } : {}),
      ...(result.manifestUri ? { manifestUri: result.manifestUri } : {}),
      ...(result.incompleteBlobListUri ? { incompleteBlobListUri: result.incompleteBlobListUri } : {}),
    });
    const seconds = (Date.now() - started) / 1000;
    drive.status = "done";
    drive.message = `${label}: ${outcome} (${result.status}), ${result.blobs} blobs, ${result.bytesSucceeded} of ${result.bytesTotal} bytes; manifest ${result.manifestFile}.${result.errorLogUri ? ` Error log: ${result.errorLogUri}` : ""}${result.incompleteBlobListUri ? ` Blobs that did not fit: ${result.incompleteBlobListUri}` : ""}`;
    log.info(
      {
        job: jobLabel(key),
        driveId,
        status: result.status,
        ordinal: result.plan.ordinal,
        blobs: result.blobs,
        plannedBytes: result.plan.usedBytes,
        bytesTotal: result.bytesTotal,
        bytesWritten: result.bytesWritten,
        chunksRewritten: result.chunksRewritten,
        seconds,
        mbPerSecond: Number((result.bytesWritten / 1e6 / Math.max(seconds, 0.001)).toFixed(1)),
      },
      "drive export finished",
    );
    return "done";
  } catch (e) {
    await persisting;
    if (signal.aborted) {
      drive.status = "paused";
      drive.message = `${label} paused: ${(signal.reason as Error)?.message ?? "aborted"}. Plug the drive in again to resume where it stopped.`;
      log.warn({ job: jobLabel(key), driveId }, drive.message);
      return "paused";
    }
    if (e instanceof StorageOutage) {
      drive.status = "paused";
      drive.message = `${label} paused: ${e.message}. Retrying in ${Math.round(deps.outageRetryMs / 1000)} s; nothing already on the drive is written again.`;
      log.error({ job: jobLabel(key), driveId }, drive.message);
      await deps.notices.add([
        {
          code: "TransferPaused",
          at: deps.clock.now().toISOString(),
          job: key,
          driveId,
          message: drive.message,
        },
      ]);
      return "retry";
    }
    if (e instanceof ManifestError) {
      // A bad blob-list blob: the drive ends with that status, as the service does.
      await service.station(key, { type: "TransferStarted", driveId }).catch(() => undefined);
      await service.station(key, {
        type: "TransferFinished",
        driveId,
        outcome: "CompletedMoreInfo",
        copyStatus: e.status,
        bytesSucceeded: 0,
      });
      drive.status = "failed";
      drive.code = e.status;
      drive.message = `${label}: ${e.message}`;
      return "failed";
    }
    drive.status = "error";
    drive.message = `${label} stopped on an unexpected error: ${(e as Error).message}. Unplug and plug it in to retry; what is on the drive and verified is kept.`;
    log.error({ job: jobLabel(key), driveId, err: e }, "drive export failed");
    return "failed";
  }
}
