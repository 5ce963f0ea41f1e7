/**
 * Runs drive transfers: takes ready drives from the dock, moves the drive and job states around
 * each run, publishes progress a few times a second (persisted every couple of seconds), and
 * pauses instead of failing when the drive is pulled or storage stays down (the next plug-in or
 * the outage retry resumes from the checkpoints).
 */
import { setTimeout as sleep } from "node:timers/promises";
import PQueue from "p-queue";
import type { Logger } from "pino";
import type { DockedDrive, DockHooks } from "../drives/door.js";
import type { MatchResult } from "../drives/match.js";
import { DriveLease } from "../fleet/drive-lease.js";
import { durableCheckpoints, isStoreDown } from "../fleet/durable-checkpoints.js";
import { ManifestError } from "../formats/status.js";
import type { KeyedLock } from "../jobs/keyed-lock.js";
import type { Clock, JobService } from "../jobs/service.js";
import type { DriveClaims, Lease, NoticeLog, StoreHealth } from "../jobs/store.js";
import { type JobKey, jobLabel } from "../lifecycle/model.js";
import { JobStorage, type JobStorageOptions, type StorageEndpoint } from "../storage/blob-access.js";
import type { ExportSource } from "../storage/export-source.js";
import { BufferPool } from "./buffer-pool.js";
import type { CheckpointStore } from "./checkpoints.js";
import { type ExportRunDeps, exportJobKey, runExportDrive } from "./export/export-run.js";
import type { ExportStore } from "./export/store.js";
import { importDrive, type RetryPolicy, StorageOutage } from "./import-drive.js";

export interface TransferSettings {
  concurrency: number;
  blobConcurrency: number;
  retry: RetryPolicy;
  outageRetryMs: number;
  storageRetry?: JobStorageOptions["retry"];
}

/** This station in the fleet: drive claims in the shared store, and whether that store answers. */
export interface FleetSettings {
  claims: DriveClaims;
  health: StoreHealth;
  stationId: string;
  leaseMs: number;
}

/** Abort reason when the job store stops answering: the run pauses and resumes when it is back. */
class StorePaused extends Error {
  override name = "StorePaused";
}

export interface TransferManagerDeps {
  service: JobService;
  checkpoints: CheckpointStore;
  notices: NoticeLog;
  log: Logger;
  clock: Clock;
  endpoint: StorageEndpoint;
  settings: TransferSettings;
  /** The export engine's store and the station's own access to job storage accounts. */
  exports?: { store: ExportStore; lock: KeyedLock; sourceFor(storageAccountId: string): ExportSource };
  fleet: FleetSettings;
}

export interface DriveProgress {
  bytesSucceeded: number;
  bytesTotal: number;
  bytesPerSecond: number;
  etaSeconds?: number;
  /** Once finished: how long the copy took (bytesPerSecond is then its average). */
  seconds?: number;
}

type Ready = Extract<MatchResult, { kind: "import" | "export" }>;

export class TransferManager {
  private readonly queue: PQueue;
  private readonly pool: BufferPool;
  private readonly runs = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  /** Export drives that hold data, waiting for the operator's confirmation. */
  private readonly waiting = new Map<string, { drive: DockedDrive; match: Ready }>();
  /** Paused runs waiting for the job store to answer again. */
  private readonly storeWaits = new Map<string, AbortController>();
  private readonly stopping = new AbortController();
  private readonly checkpoints: CheckpointStore;
  private readonly storeWatch: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly deps: TransferManagerDeps) {
    const { health } = deps.fleet;
    this.checkpoints = durableCheckpoints(deps.checkpoints, health, this.stopping.signal, deps.log);
    // The store went away: pause every run (no new blobs without recordable checkpoints, no lease to renew).
    this.storeWatch = setInterval(() => {
      if (health.healthy()) return;
      for (const r of this.runs.values())
        if (!r.controller.signal.aborted)
          r.controller.abort(new StorePaused("the job database is unreachable"));
    }, 250);
    this.storeWatch.unref();
    this.queue = new PQueue({ concurrency: deps.settings.concurrency });
    // Every request in flight has its block, plus half as many again being read and hashed.
    this.pool = new BufferPool(4 * 1024 * 1024, Math.ceil(deps.settings.concurrency * 1.5));
  }

  hooks(): DockHooks {
    return {
      onReady: (drive, match) => this.start(drive, match),
      onGone: (drive) => this.abort(drive.key, "the drive was removed"),
    };
  }

  /** Resolves when no transfer is running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.runs.size) await Promise.all([...this.runs.values()].map((r) => r.done));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.storeWatch);
    this.stopping.abort(new Error("the agent is stopping"));
    for (const t of this.retryTimers.values()) clearTimeout(t);
    for (const w of this.storeWaits.values()) w.abort();
    for (const key of this.runs.keys()) this.abort(key, "the agent is stopping");
    await this.idle();
  }

  /**
   * The operator confirmed that an export drive holding data may be written: recorded, and the
   * drive starts if it is plugged in. Throws when the drive is not one the job checked in.
   */
  async confirmExportDrive(job: JobKey, driveId: string, by: string): Promise<{ started: boolean }> {
    const exports = this.deps.exports;
    if (!exports) throw new Error("this station has no export engine configured");
    await exports.store.confirm(exportJobKey(job), driveId, { by, at: this.deps.clock.now().toISOString() });
    this.deps.log.info(
      { job: jobLabel(job), driveId, operator: by },
      "operator confirmed writing to an export drive that holds data",
    );
    for (const [k, w] of this.waiting) {
      if (w.drive.driveId === driveId && w.drive.job && jobLabel(w.drive.job) === jobLabel(job)) {
        this.waiting.delete(k);
        this.start(w.drive, w.match);
        return { started: true };
      }
    }
    return { started: false };
  }

  private abort(key: string, why: string): void {
    this.waiting.delete(key);
    const t = this.retryTimers.get(key);
    if (t) clearTimeout(t);
    this.storeWaits.get(key)?.abort();
    this.storeWaits.delete(key);
    this.runs.get(key)?.controller.abort(new Error(why));
  }

  private start(drive: DockedDrive, match: Ready): void {
    if (this.stopped || this.runs.has(drive.key)) return;
    if (match.kind === "export") {
      const exports = this.deps.exports;
      if (!exports) {
        drive.message = `${drive.message} This station has no export engine configured: the drive waits.`;
        return;
      }
      const s = this.deps.settings;
      const deps: ExportRunDeps = {
        service: this.deps.service,
        notices: this.deps.notices,
        log: this.deps.log,
        clock: this.deps.clock,
        store: exports.store,
        lock: exports.lock,
        sourceFor: exports.sourceFor,
        queue: this.queue,
        pool: this.pool,
        blobConcurrency: s.blobConcurrency,
        retry: s.retry,
        outageRetryMs: s.outageRetryMs,
      };
      const controller = new AbortController();
      const done = runExportDrive(deps, drive, controller.signal)
        .then((end) => {
          if (end === "waiting") this.waiting.set(drive.key, { drive, match });
          if (end === "retry" && !this.stopped)
            this.retryTimers.set(
              drive.key,
              setTimeout(() => {
                this.retryTimers.delete(drive.key);
                this.start(drive, match);
              }, s.outageRetryMs),
            );
        })
        .finally(() => this.runs.delete(drive.key));
      this.runs.set(drive.key, { controller, done });
      return;
    }
    const controller = new AbortController();
    const done = this.run(drive, match, controller).finally(() => this.runs.delete(drive.key));
    this.runs.set(drive.key, { controller, done });
  }

  /**
   * The account refused the drive's credential (or the copy log could not be written with it):
   * the drive has ended CompletedMoreInfo, Get Job shows its copyStatus, and the operator gets
   * one notice with the drive, the job, the cause and what to do. Never a key or SAS: causes
   * carry only the HTTP status and the service's error code.
   */
  private async storageRefused(
    drive: DockedDrive,
    key: JobKey,
    driveId: string,
    result: Awaited<ReturnType<typeof importDrive>>,
  ): Promise<void> {
    const sas = result.refusal?.cause.includes("SAS") || result.logsNotWritten?.includes("SAS");
    const parts = [`Drive ${driveId} of job ${jobLabel(key)}:`];
    if (result.refusal) {
      parts.push(
        `${result.refusal.cause}. The import stopped at the first refusal; ${result.blobs} blobs are logged BlobRequestForbidden or their own status, the drive ended CompletedMoreInfo (BlobRequestForbidden).`,
      );
    }
    if (result.logsNotWritten)
      parts.push(
        `The copy log could not be written to the customer's account (${result.logsNotWritten}); Get Job shows the drive's copyStatus.`,
      );
    parts.push(
      `Next step: ask the customer for a valid ${sas ? "SAS (read, write and delete on the container, not expired)" : "account key"} and a drive manifest carrying it; the drive is finished, so its data is imported again under a job that lists it (re-plugging this drive does not retry a finished drive).`,
    );
    const message = parts.join(" ");
    if (result.refusal) {
      drive.status = "failed";
      drive.code = "BlobRequestForbidden";
    }
    drive.message = message;
    this.deps.log.error({ job: jobLabel(key), driveId, code: result.refusal?.code }, message);
    await this.deps.notices.add([
      { code: "StorageRefused", at: this.deps.clock.now().toISOString(), job: key, driveId, message },
    ]);
  }

  private async run(
    drive: DockedDrive,
    match: Extract<MatchResult, { kind: "import" }>,
    controller: AbortController,
  ): Promise<void> {
    const { service, log, settings } = this.deps;
    const key: JobKey = drive.job!;
    const driveId = drive.driveId!;
    const label = `${jobLabel(key)} drive ${driveId}`;
    const started = Date.now();
    let lastPersist = 0;
    let persisting: Promise<unknown> = Promise.resolve();
    let lastSample = { t: started, bytes: 0 };
    const lease = new DriveLease({ ...this.deps.fleet, clock: this.deps.clock }, { job: key, driveId });
    try {
      // No new claim while the store is down; another station's live claim holds the drive here.
      await this.deps.fleet.health.whenHealthy(controller.signal);
      await lease.acquire(controller.signal, (holder) => this.heldElsewhere(drive, label, holder));
      lease.keepAlive(
        () =>
          controller.abort(
            new Error("another station took the drive over after this station's claim expired"),
          ),
        (e) => log.warn({ err: e, job: jobLabel(key), driveId }, "drive claim not renewed; retrying"),
      );
      const job = await service.get(key);
      const entry = job.drives.find((d) => d.driveId === driveId);
      const resuming = entry?.state === "Transferring";
      if (!resuming) await service.station(key, { type: "TransferStarted", driveId });
      drive.status = "transferring";
      drive.message = `${resuming ? "Resuming" : "Importing"} ${label}.`;
      log.info({ job: jobLabel(key), driveId, resuming }, "drive import started");

      const result = await importDrive({
        jobName: job.name,
        driveId,
        diagnosticsPath: job.diagnosticsPath,
        logLevel: job.logLevel,
        backupDriveManifest: job.backupDriveManifest,
        root: drive.mountpoint!,
        manifestPath: match.manifestPath,
        resuming,
        storageFor: (header) =>
          new JobStorage({
            endpoint: this.deps.endpoint,
            storageAccountId: job.storageAccountId,
            credential: header.credential!,
            ...(settings.storageRetry ? { retry: settings.storageRetry } : {}),
          }),
        queue: this.queue,
        pool: this.pool,
        blobConcurrency: settings.blobConcurrency,
        checkpoints: this.checkpoints,
        signal: controller.signal,
        log: log.child({ job: jobLabel(key), driveId }),
        now: () => this.deps.clock.now(),
        retry: settings.retry,
        onProgress: (bytesSucceeded, bytesTotal) => {
          const now = Date.now();
          if (now - lastSample.t >= 1000) {
            const rate = ((bytesSucceeded - lastSample.bytes) * 1000) / (now - lastSample.t);
            const p: DriveProgress = {
              bytesSucceeded,
              bytesTotal,
              bytesPerSecond: Math.max(0, Math.round(rate)),
            };
            if (rate > 0) p.etaSeconds = Math.round((bytesTotal - bytesSucceeded) / rate);
            drive.progress = p;
            lastSample = { t: now, bytes: bytesSucceeded };
          } else
            drive.progress = { ...(drive.progress ?? { bytesPerSecond: 0 }), bytesSucceeded, bytesTotal };
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
        ...(result.errorLogUri ? { errorLogUri: result.errorLogUri } : {}),
        ...(result.verboseLogUri ? { verboseLogUri: result.verboseLogUri } : {}),
        ...(result.manifestUri ? { manifestUri: result.manifestUri } : {}),
      });
      await this.checkpoints.clear(job.name, driveId);
      const seconds = (Date.now() - started) / 1000;
      drive.status = "done";
      // Final figures: the whole copy's time and average speed, no ETA.
      drive.progress = {
        bytesSucceeded: result.bytesSucceeded,
        bytesTotal: result.bytesTotal,
        bytesPerSecond: Math.round(result.bytesSucceeded / Math.max(seconds, 0.001)),
        seconds: Math.round(seconds * 10) / 10,
      };
      drive.message = `${label}: ${outcome} (${result.status}), ${result.blobs} blobs, ${result.bytesSucceeded} of ${result.bytesTotal} bytes.${result.errorLogUri ? ` Error log: ${result.errorLogUri}` : ""}`;
      if (result.refusal || result.logsNotWritten) await this.storageRefused(drive, key, driveId, result);
      log.info(
        {
          job: jobLabel(key),
          driveId,
          status: result.status,
          blobs: result.blobs,
          bytesTotal: result.bytesTotal,
          bytesUploaded: result.bytesUploaded,
          seconds,
          mbPerSecond: Number((result.bytesUploaded / 1e6 / Math.max(seconds, 0.001)).toFixed(1)),
        },
        "drive import finished",
      );
    } catch (e) {
      await persisting;
      if (controller.signal.reason instanceof StorePaused || (!controller.signal.aborted && isStoreDown(e))) {
        drive.status = "paused";
        drive.message = `${label} paused: the job database is unreachable. It resumes by itself when the database answers; nothing already sent will be sent again.`;
        log.error({ job: jobLabel(key), driveId }, drive.message);
        this.resumeWhenStoreAnswers(drive, match);
        return;
      }
      if (controller.signal.aborted) {
        drive.status = "paused";
        if (drive.progress) drive.progress = { ...drive.progress, bytesPerSecond: 0 };
        delete drive.progress?.etaSeconds;
        drive.message = `${label} paused: ${(controller.signal.reason as Error)?.message ?? "aborted"}. Plug the drive in again to resume where it stopped.`;
        log.warn({ job: jobLabel(key), driveId }, drive.message);
        return;
      }
      if (e instanceof StorageOutage) {
        drive.status = "paused";
        drive.message = `${label} paused: ${e.message}. Retrying in ${Math.round(this.deps.settings.outageRetryMs / 1000)} s; nothing already sent will be sent again.`;
        log.error({ job: jobLabel(key), driveId }, drive.message);
        await this.deps.notices.add([
          {
            code: "TransferPaused",
            at: this.deps.clock.now().toISOString(),
            job: key,
            driveId,
            message: drive.message,
          },
        ]);
        if (!this.stopped) {
          this.retryTimers.set(
            drive.key,
            setTimeout(() => {
              this.retryTimers.delete(drive.key);
              this.start(drive, match);
            }, this.deps.settings.outageRetryMs),
          );
        }
        return;
      }
      if (e instanceof ManifestError) {
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
        return;
      }
      drive.status = "error";
      drive.message = `${label} stopped on an unexpected error: ${(e as Error).message}. The drive stays Transferring; unplug and plug it in to retry.`;
      log.error({ job: jobLabel(key), driveId, err: e }, "drive import failed");
    } finally {
      await lease.release();
    }
  }

  /** Another station's claim is live: the drive waits here, and the operator is told why. */
  private async heldElsewhere(drive: DockedDrive, label: string, holder: Lease): Promise<void> {
    drive.status = "held";
    drive.message = `${label} is being transferred by station ${holder.stationId} (its claim runs until ${holder.expiresAt.toISOString()}). This station holds the drive and takes over if ${holder.stationId} does not renew its claim by then; pull the drive from ${holder.stationId} first to move it now.`;
    this.deps.log.warn(
      { job: jobLabel(drive.job!), driveId: drive.driveId, holder: holder.stationId },
      drive.message,
    );
    await this.deps.notices
      .add([
        {
          code: "DriveClaimedElsewhere",
          at: this.deps.clock.now().toISOString(),
          job: drive.job!,
          driveId: drive.driveId!,
          message: drive.message,
        },
      ])
      .catch((e) => this.deps.log.warn({ err: e }, "notice not saved"));
  }

  /** After a store outage: once it answers (and the paused run has finished), start the drive again. */
  private resumeWhenStoreAnswers(drive: DockedDrive, match: Ready): void {
    if (this.stopped) return;
    const wait = new AbortController();
    this.storeWaits.get(drive.key)?.abort();
    this.storeWaits.set(drive.key, wait);
    void (async () => {
      await this.deps.fleet.health.whenHealthy(wait.signal);
      while (this.runs.has(drive.key)) await this.runs.get(drive.key)!.done;
      await sleep(100, undefined, { signal: wait.signal });
      if (this.storeWaits.get(drive.key) !== wait) return;
      this.storeWaits.delete(drive.key);
      this.start(drive, match);
    })().catch(() => undefined);
  }
}
