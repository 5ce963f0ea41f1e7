/**
 * The export engine: one export drive as a `DriveEngine` on the shared core. The manager runs it
 * like import (claim, states, progress meter, pause on a pull or an outage, copy-log figures);
 * `admit` applies the safety rules before anything changes, and the run is `exportDrive` with
 * the drive's lane of the scheduler, the core's retries and the run's progress meter.
 *
 * Safety: only a drive checked in for an Export job reaches here (the dock mounts nothing else
 * read-write); a drive is written only when it is empty (nothing but `System Volume
 * Information`, `lost+found`, `$RECYCLE.BIN`), or already carries this job's plan (a resumed
 * run), or the operator confirmed it (`station confirm-export-drive`). The station never formats.
 */
import { readdir } from "node:fs/promises";
import type { KeyedLock } from "../../jobs/keyed-lock.js";
import { type JobKey, jobLabel } from "../../lifecycle/model.js";
import type { ExportSource } from "../../storage/export-source.js";
import type { FileHasher } from "../core/file-hasher.js";
import type { DriveEngine } from "../engine.js";
import type { ExportVerify, ReadBackHook } from "./export-blob.js";
import { exportDrive } from "./export-drive.js";
import type { ExportStore } from "./store.js";

/** What an empty volume may hold: file-system bookkeeping, never data. */
export const EMPTY_VOLUME_ENTRIES = new Set(["System Volume Information", "lost+found", "$RECYCLE.BIN"]);

export async function volumeContents(root: string): Promise<string[]> {
  return (await readdir(root)).filter((n) => !EMPTY_VOLUME_ENTRIES.has(n));
}

export const exportJobKey = (k: JobKey): string => jobLabel(k);

export interface ExportEngineDeps {
  store: ExportStore;
  /** Selections and plans of one job are made one at a time. */
  lock: KeyedLock;
  /** The station's access to the job's storage account; throws when it holds no key for it. */
  sourceFor(storageAccountId: string): ExportSource;
  /** The station's hashing threads (one pool for both directions, owned by agent/). */
  hasher: FileHasher;
  /** Where read-backs come from (config export.verify; default "medium"). */
  verify?: ExportVerify;
  /** Tests: called after a file's chunks are synced, before they are read back. */
  beforeReadBack?: ReadBackHook;
}

/** Why a drive ended CompletedMoreInfo through its own fault, and what the operator does next. */
function unreliableDrive(r: { unreliable: string[]; hung: string[] }): string {
  const why: string[] = [];
  if (r.unreliable.length)
    why.push(
      `${r.unreliable.length} blob(s) failed because the drive did not return what was written, even after writing it again (${r.unreliable[0]})`,
    );
  if (r.hung.length)
    why.push(`${r.hung.length} blob(s) failed because reading them back from the drive hung (${r.hung[0]})`);
  return `${why.join("; ")}. Replace the drive: put the failed blobs on a new drive of the job`;
}

export function exportEngine(deps: ExportEngineDeps): DriveEngine {
  const engine: DriveEngine = async (run) => {
    const { job, driveId } = run;
    const source = deps.sourceFor(job.storageAccountId);
    let started = false;
    let reported = 0;
    const result = await exportDrive({
      job: {
        key: exportJobKey(job),
        name: job.name,
        selection: job.export ?? {},
        driveIds: job.drives.map((d) => d.driveId),
        diagnosticsPath: job.diagnosticsPath,
        logLevel: job.logLevel,
        backupDriveManifest: job.backupDriveManifest,
      },
      driveId,
      root: run.root,
      ...(run.fsType ? { fsType: run.fsType } : {}),
      source,
      store: deps.store,
      lock: deps.lock,
      queue: run.pipeline.queue,
      pool: run.pipeline.pool,
      hasher: deps.hasher,
      blobConcurrency: run.blobConcurrency,
      ...(deps.verify ? { verify: deps.verify } : {}),
      ...(deps.beforeReadBack ? { beforeReadBack: deps.beforeReadBack } : {}),
      signal: run.signal,
      log: run.log,
      now: () => run.clock.now(),
      retry: run.retry,
      ...(run.onRetry ? { onRetry: run.onRetry } : {}),
      // Absolute figures from the engine; the run's meter takes the first as its start (what
      // earlier runs wrote) and the rest as increments, and does all the throttling.
      onProgress: (succeeded, total) => {
        if (started) run.progress.add(succeeded - reported);
        else run.progress.start(total, succeeded);
        started = true;
        reported = succeeded;
      },
    });
    run.progress.publish();
    return {
      status: result.status,
      bytesSucceeded: result.bytesSucceeded,
      bytesTotal: result.bytesTotal,
      bytesTransferred: result.bytesWritten,
      blobs: result.blobs,
      manifestFile: result.manifestFile,
      manifestHash: result.manifestHash,
      ...(result.errorLogUri ? { errorLogUri: result.errorLogUri } : {}),
      ...(result.verboseLogUri ? { verboseLogUri: result.verboseLogUri } : {}),
      ...(result.manifestUri ? { manifestUri: result.manifestUri } : {}),
      ...(result.incompleteBlobListUri ? { incompleteBlobListUri: result.incompleteBlobListUri } : {}),
      ...(result.unreliable.length || result.hung.length ? { driveUnreliable: unreliableDrive(result) } : {}),
      details: {
        ordinal: result.plan.ordinal,
        plannedBytes: result.plan.usedBytes,
        bytesWritten: result.bytesWritten,
        chunksRewritten: result.chunksRewritten,
      },
    };
  };

  engine.admit = async (job, drive) => {
    const label = `${jobLabel(job)} drive ${drive.driveId}`;
    const entry = job.drives.find((d) => d.driveId === drive.driveId);
    if (job.type !== "Export" || !entry || !["Received", "Transferring"].includes(entry.state))
      return {
        waits: false,
        message: `${label} is not a checked-in drive of an export job in progress (${entry?.state ?? "not listed"}): not written.`,
      };
    const key = exportJobKey(job);
    const planned = (await deps.store.plans(key)).some((p) => p.driveId === drive.driveId);
    if (!planned && !(await deps.store.confirmation(key, drive.driveId))) {
      const found = await volumeContents(drive.root);
      if (found.length)
        return {
          waits: true,
          notice: "ExportDriveNotEmpty",
          message: `${label} already holds data (${found.slice(0, 5).join(", ")}${found.length > 5 ? ", …" : ""}): nothing was written. Check that this is the customer's blank drive; to write the export onto it anyway, run 'station confirm-export-drive ${job.name} ${drive.driveId}'.`,
        };
    }
    try {
      deps.sourceFor(job.storageAccountId);
    } catch (e) {
      // It starts once the station has the account's key (config, restart).
      return { waits: true, message: `${label} is ready but waits: ${(e as Error).message}` };
    }
    return undefined;
  };
  return engine;
}
