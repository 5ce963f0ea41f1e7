/**
 * How a drive's run ends, for the transfer manager: a finished run's job update, view and log; the
 * storage-refused and claimed-elsewhere notices; and the classification of a run that threw (store
 * outage, cancellation, storage outage, bad manifest, unexpected error) into a view, a log line
 * and what the manager does next. The manager keeps the timers; this module only reports.
 */
import { isCancellation, type StationError } from "../errors.js";
import { isStoreDown } from "../fleet/durable-checkpoints.js";
import { ManifestError } from "../formats/status.js";
import type { Lease } from "../jobs/store.js";
import { jobLabel } from "../lifecycle/model.js";
import { repairExportHint, repairImportHint } from "../repair/hint.js";
import type { CheckpointStore } from "./checkpoints.js";
import { StorageOutage } from "./core/retry.js";
import type { DriveRunResult } from "./engine.js";
import { StorePaused, type TransferManagerDeps } from "./manager-deps.js";
import type { ReadyDrive } from "./ready-drive.js";

/** One run as the outcome handlers see it. */
export interface RunContext {
  deps: TransferManagerDeps;
  /** The manager's checkpoints (durable: they wait out a store outage). */
  checkpoints: CheckpointStore;
  drive: ReadyDrive;
  /** "<job> drive <id>", the prefix of every message about this run. */
  label: string;
  direction: "import" | "export";
  /** When the run started (the clock's ms). */
  started: number;
}

const STORE_DOWN = "the job database is unreachable";

/** The view of a run paused on the job store, while the store does not answer. */
export function storePaused(view: ReadyDrive["view"], label: string): void {
  view.status = "paused";
  view.message = `${label} paused: ${STORE_DOWN}. It resumes by itself when the database answers; nothing already sent will be sent again.`;
}

/**
 * The drive was finished by another station while this one waited for its claim: done here too,
 * with nothing for the operator to retry.
 */
export function finishedElsewhere(c: RunContext, state: string): void {
  const { view, driveId, job } = c.drive;
  view.status = "done";
  delete view.progress;
  view.message = `${c.label}: already ${state}, finished by another station of the fleet. Nothing to do here: the drive goes back with its job.`;
  c.deps.log.info({ job: jobLabel(job), driveId, state }, "drive finished by another station");
}

/** What the manager does after a run that threw. */
export type RunEnd =
  /** Paused on the job store: start again once it answers. */
  | "store-down"
  /** Storage stayed down: start again after the outage delay. */
  | "outage"
  /** Pulled or stopping: the next plug-in or start resumes it. Nothing to do. */
  | "cancelled"
  /** Finished (bad manifest) or stopped on an error the operator sees. Nothing to do. */
  | "ended";

/** Records a finished run: TransferFinished, the checkpoints cleared, the view's final figures. */
export async function runFinished(c: RunContext, result: DriveRunResult): Promise<void> {
  const { service, log, clock } = c.deps;
  const { view, driveId, job: key } = c.drive;
  const outcome = result.status === "Completed" ? "Completed" : "CompletedMoreInfo";
  await service.station(key, {
    type: "TransferFinished",
    driveId,
    outcome,
    copyStatus: result.status,
    bytesSucceeded: result.bytesSucceeded,
    ...(result.errorLogUri ? { errorLogUri: result.errorLogUri } : {}),
    ...(result.verboseLogUri ? { verboseLogUri: result.verboseLogUri } : {}),
    ...(result.manifestUri ? { manifestUri: result.manifestUri } : {}),
    ...(result.manifestFile ? { manifestFile: result.manifestFile } : {}),
    ...(result.manifestHash ? { manifestHash: result.manifestHash } : {}),
    ...(result.incompleteBlobListUri ? { incompleteBlobListUri: result.incompleteBlobListUri } : {}),
  });
  await c.checkpoints.clear(key.name, driveId);
  const seconds = (clock.now().getTime() - c.started) / 1000;
  c.deps.observer?.driveFinished(key.name, driveId, outcome, seconds);
  view.status = "done";
  // Final figures: the whole copy's time and average speed, no ETA.
  view.progress = {
    bytesSucceeded: result.bytesSucceeded,
    bytesTotal: result.bytesTotal,
    bytesPerSecond: Math.round(result.bytesSucceeded / Math.max(seconds, 0.001)),
    seconds: Math.round(seconds * 10) / 10,
  };
  view.message = `${c.label}: ${outcome} (${result.status}), ${result.blobs} blobs, ${result.bytesSucceeded} of ${result.bytesTotal} bytes${result.manifestFile ? `; manifest ${result.manifestFile}` : ""}.${result.errorLogUri ? ` Error log: ${result.errorLogUri}${c.direction === "import" ? `. ${repairImportHint(result.errorLogUri)}` : ""}` : ""}${result.incompleteBlobListUri ? ` Blobs that did not fit: ${result.incompleteBlobListUri}` : ""}`;
  if (result.refusal || result.logsNotWritten) await storageRefused(c, result);
  if (outcome === "CompletedMoreInfo" && result.errorLogUri && !result.driveUnreliable) {
    const hint = (c.direction === "import" ? repairImportHint : repairExportHint)(result.errorLogUri);
    await c.deps.notices.add([
      {
        code: "DriveNeedsRepair",
        at: clock.now().toISOString(),
        job: key,
        driveId,
        message: `Drive ${driveId} of job ${jobLabel(key)} ended CompletedMoreInfo (${result.status}); its error log ${result.errorLogUri} names what failed. ${hint}`,
      },
    ]);
  }
  if (result.driveUnreliable) {
    const message = `Drive ${driveId} of job ${jobLabel(key)} ended ${outcome} (${result.status}): ${result.driveUnreliable}.`;
    log.error({ job: jobLabel(key), driveId }, message);
    await c.deps.notices.add([
      { code: "ExportDriveUnreliable", at: clock.now().toISOString(), job: key, driveId, message },
    ]);
  }
  log.info(
    {
      job: jobLabel(key),
      driveId,
      status: result.status,
      blobs: result.blobs,
      bytesTotal: result.bytesTotal,
      [c.direction === "import" ? "bytesUploaded" : "bytesDownloaded"]: result.bytesTransferred,
      seconds,
      mbPerSecond: Number((result.bytesTransferred / 1e6 / Math.max(seconds, 0.001)).toFixed(1)),
      ...result.details,
    },
    `drive ${c.direction} finished`,
  );
}

/**
 * A run that threw: a cancellation is not a failure (the drive stays Transferring and resumes
 * from its checkpoints), a storage or store outage pauses it, a bad manifest finishes it.
 */
export async function runFailed(c: RunContext, e: unknown, signal: AbortSignal): Promise<RunEnd> {
  const { service, log, settings, clock } = c.deps;
  const { view, driveId, job: key } = c.drive;
  const { label } = c;
  if (signal.reason instanceof StorePaused || (!signal.aborted && isStoreDown(e))) {
    if (c.deps.fleet.health.healthy()) {
      // The cause has gone by the time the run settled: say what happens now, not the old pause.
      view.status = "paused";
      view.message = `${label}: the job database answers again; resuming where it stopped.`;
      log.info({ job: jobLabel(key), driveId }, view.message);
    } else if (view.status !== "paused" || !view.message.includes(STORE_DOWN)) {
      storePaused(view, label); // not yet shown and logged by the manager's store watch
      log.error({ job: jobLabel(key), driveId }, view.message);
    }
    return "store-down";
  }
  if (signal.aborted || isCancellation(e)) {
    const why = ((signal.aborted ? signal.reason : e) as StationError)?.target;
    view.status = why === "pulled" ? "pulled" : "paused";
    if (view.progress) view.progress = { ...view.progress, bytesPerSecond: 0 };
    delete view.progress?.etaSeconds;
    view.message =
      why === "pulled"
        ? `${label}: pulled — plug it in again to resume.`
        : why === "stopping"
          ? `${label} paused: the agent is stopping; the next start resumes where it stopped.`
          : `${label} paused: ${(signal.reason as Error)?.message ?? "aborted"}. Plug the drive in again to resume where it stopped.`;
    log.info({ job: jobLabel(key), driveId }, view.message);
    return "cancelled";
  }
  if (e instanceof StorageOutage) {
    view.status = "paused";
    view.message = `${label} paused: ${e.message}. Retrying in ${Math.round(settings.outageRetryMs / 1000)} s; nothing already sent will be sent again.`;
    log.error({ job: jobLabel(key), driveId }, view.message);
    await c.deps.notices.add([
      { code: "TransferPaused", at: clock.now().toISOString(), job: key, driveId, message: view.message },
    ]);
    return "outage";
  }
  if (e instanceof ManifestError) {
    await service.station(key, {
      type: "TransferFinished",
      driveId,
      outcome: "CompletedMoreInfo",
      copyStatus: e.status,
      bytesSucceeded: 0,
    });
    view.status = "failed";
    view.code = e.status;
    view.message = `${label}: ${e.message}`;
    return "ended";
  }
  view.status = "error";
  view.message = `${label} stopped on an unexpected error: ${(e as Error).message}. The drive stays Transferring; unplug and plug it in to retry.`;
  log.error({ job: jobLabel(key), driveId, err: e }, `drive ${c.direction} failed`);
  return "ended";
}

/**
 * The account refused the drive's credential (or the copy log could not be written with it):
 * the drive has ended CompletedMoreInfo, Get Job shows its copyStatus, and the operator gets
 * one notice with the drive, the job, the cause and what to do. Never a key or SAS: causes
 * carry only the HTTP status and the service's error code.
 */
async function storageRefused(c: RunContext, result: DriveRunResult): Promise<void> {
  const { view, driveId, job: key } = c.drive;
  const sas = result.refusal?.cause.includes("SAS") || result.logsNotWritten?.includes("SAS");
  const parts = [`Drive ${driveId} of job ${jobLabel(key)}:`];
  if (result.refusal)
    parts.push(
      `${result.refusal.cause}. The import stopped at the first refusal; the blobs not imported are logged BlobRequestForbidden and the drive ended CompletedMoreInfo (BlobRequestForbidden).`,
    );
  if (result.logsNotWritten)
    parts.push(
      `The copy log could not be written to the customer's account (${result.logsNotWritten}); Get Job shows the drive's copyStatus.`,
    );
  parts.push(
    `Next step: ask the customer for a valid ${sas ? "SAS (read, write and delete on the container, not expired)" : "account key"} in a new drive manifest; the drive is finished, so its data is imported again under a job that lists it (re-plugging this drive does not retry a finished drive).`,
  );
  const message = parts.join(" ");
  if (result.refusal) {
    view.status = "failed";
    view.code = "BlobRequestForbidden";
  }
  view.message = message;
  c.deps.log.error({ job: jobLabel(key), driveId, code: result.refusal?.code }, message);
  await c.deps.notices.add([
    { code: "StorageRefused", at: c.deps.clock.now().toISOString(), job: key, driveId, message },
  ]);
}

/** Another station's claim is live: the drive waits here, and the operator is told why. */
export async function heldElsewhere(c: RunContext, holder: Lease): Promise<void> {
  const { view } = c.drive;
  const message = `${c.label} is being transferred by station ${holder.stationId} (its claim runs until ${holder.expiresAt.toISOString()}). This station holds the drive and takes over if ${holder.stationId} does not renew its claim by then; pull the drive from ${holder.stationId} first to move it now.`;
  c.deps.log.warn(
    { job: jobLabel(c.drive.job), driveId: c.drive.driveId, holder: holder.stationId },
    message,
  );
  // The notice first: whoever sees the drive held on the dock finds the notice in the store.
  await c.deps.notices
    .add([
      {
        code: "DriveClaimedElsewhere",
        at: c.deps.clock.now().toISOString(),
        job: c.drive.job,
        driveId: c.drive.driveId,
        message,
      },
    ])
    .catch((e) => c.deps.log.warn({ err: e }, "notice not saved"));
  view.status = "held";
  view.message = message;
}
