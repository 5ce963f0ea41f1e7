/**
 * Runs drive transfers: takes ready drives, picks the engine for the job's type, moves the drive
 * and job states around each run, publishes the drive's progress meter (to its view a few times a
 * second, persisted every couple of seconds), and pauses instead of failing when the drive is
 * pulled or storage stays down (the next plug-in or the outage retry resumes from the checkpoints).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { DockHooks } from "../drives/door.js";
import { StationError } from "../errors.js";
import { DriveLease } from "../fleet/drive-lease.js";
import { durableCheckpoints } from "../fleet/durable-checkpoints.js";
import { type JobKey, jobLabel } from "../lifecycle/model.js";
import { AzureBlobPort } from "../storage/azure-blob-port.js";
import { JobStorage } from "../storage/blob-access.js";
import type { CheckpointStore } from "./checkpoints.js";
import { ProgressMeter } from "./core/progress.js";
import { StationScheduler } from "./core/scheduler.js";
import { SAMPLE_SECONDS, ThroughputSamples } from "./core/throughput.js";
import type { DriveEngine, DriveHold } from "./engine.js";
import { exportEngine, exportJobKey } from "./export/export-engine.js";
import { importDrive } from "./import/engine.js";
import { StorePaused, type TransferManagerDeps } from "./manager-deps.js";
import { type ReadyDrive, readyDrive } from "./ready-drive.js";
import {
  finishedElsewhere,
  heldElsewhere,
  type RunContext,
  runFailed,
  runFinished,
  storePaused,
} from "./run-outcome.js";

export type { FleetSettings, TransferManagerDeps, TransferSettings } from "./manager-deps.js";

const VIEW_EVERY_MS = 200;
const PERSIST_EVERY_MS = 2000;
/** Drive states after a transfer: nothing left for any station to do. */
const FINISHED = new Set(["Completed", "CompletedMoreInfo", "ShippedBack"]);

export class TransferManager {
  /** Request slots and block buffers, shared fairly by the drives running now. */
  private readonly scheduler: StationScheduler;
  private readonly engines: Partial<Record<"Import" | "Export", DriveEngine>>;
  private readonly runs = new Map<
    string,
    {
      controller: AbortController;
      done: Promise<void>;
      /** Paused on a store outage. */
      drive: ReadyDrive;
    }
  >();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  /** Each drive's throughput samples, kept across its runs (a pause shows as a gap of zeros). */
  private readonly samples = new Map<string, ThroughputSamples>();
  /** Drives an engine holds (an export drive holding data): the operator's confirmation starts them. */
  private readonly waiting = new Map<string, ReadyDrive>();
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
      for (const r of this.runs.values()) {
        if (!r.drive || r.controller.signal.aborted) continue;
        r.controller.abort(new StorePaused("the job database is unreachable"));
        // Shown and logged now, while the cause lasts (the run itself may only settle once the database is back).
        storePaused(r.drive.view, `${jobLabel(r.drive.job)} drive ${r.drive.driveId}`);
        deps.log.error({ job: jobLabel(r.drive.job), driveId: r.drive.driveId }, r.drive.view.message);
      }
    }, 250);
    this.storeWatch.unref();
    // Every request in flight has its block, plus half as many again being read and hashed.
    const { concurrency } = deps.settings;
    this.scheduler = new StationScheduler(concurrency, 4 * 1024 * 1024, Math.ceil(concurrency * 1.5));
    this.engines = {
      Import: importDrive,
      ...(deps.exports ? { Export: exportEngine(deps.exports) } : {}),
      ...deps.engines,
    };
  }

  hooks(): DockHooks {
    return {
      onReady: (drive, match) => this.start(readyDrive(drive, match)),
      onGone: (drive) => this.abort(drive.key, "pulled"),
    };
  }

  /** Storage requests of every drive: waiting for a slot, and in flight (metrics). */
  queueDepth(): { queued: number; inFlight: number } {
    return this.scheduler.depth();
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
    for (const key of this.runs.keys()) this.abort(key, "stopping");
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
      if (w.driveId === driveId && jobLabel(w.job) === jobLabel(job)) {
        this.waiting.delete(k);
        this.start(w);
        return { started: true };
      }
    }
    return { started: false };
  }

  /** Drives being transferred now (systemd STATUS=). */
  get active(): number {
    return this.runs.size;
  }

  /** A cancellation (typed, so no layer records it as a blob's failure), not an error. */
  private abort(key: string, why: "pulled" | "stopping"): void {
    this.waiting.delete(key);
    const t = this.retryTimers.get(key);
    if (t) clearTimeout(t);
    this.storeWaits.get(key)?.abort();
    this.storeWaits.delete(key);
    if (why === "pulled") this.samples.delete(key);
    const message = why === "pulled" ? "the drive was pulled" : "the agent is stopping";
    this.runs.get(key)?.controller.abort(new StationError("Cancelled", message, { target: why }));
  }

  start(drive: ReadyDrive): void {
    if (this.stopped || this.runs.has(drive.key)) return;
    const engine = this.engines[drive.jobType];
    if (!engine) {
      drive.view.message = `${drive.view.message} This station has no export engine configured: the drive waits.`;
      this.deps.log.warn(
        { drive: drive.key, job: jobLabel(drive.job) },
        "export drive ready, but this station was started without an export engine: the drive waits",
      );
      return;
    }
    const controller = new AbortController();
    const done = this.run(drive, engine, controller)
      .catch((e: unknown) =>
        // run() handles its own failures; this is the owner of last resort, never a silent drop.
        this.deps.log.error({ drive: drive.key, err: e }, "transfer run failed outside its handler"),
      )
      .finally(() => this.runs.delete(drive.key));
    this.runs.set(drive.key, { controller, done, drive });
  }

  private async run(drive: ReadyDrive, engine: DriveEngine, controller: AbortController): Promise<void> {
    const { service, log, settings, clock } = this.deps;
    const { view, driveId } = drive;
    const key: JobKey = drive.job;
    const direction = drive.jobType === "Import" ? "import" : "export";
    const c: RunContext = {
      deps: this.deps,
      checkpoints: this.checkpoints,
      drive,
      label: `${jobLabel(key)} drive ${driveId}`,
      direction,
      started: clock.now().getTime(),
    };
    let persisting: Promise<unknown> = Promise.resolve();
    const progress = new ProgressMeter(clock);
    progress.subscribe(VIEW_EVERY_MS, (p) => {
      view.progress = p;
    });
    progress.subscribe(PERSIST_EVERY_MS, (p) => {
      persisting = persisting.then(() =>
        service
          .station(key, {
            type: "TransferProgress",
            driveId,
            bytesSucceeded: p.bytesSucceeded,
            bytesTotal: p.bytesTotal,
            copyStatus: "InProgress",
          })
          .catch((e) => log.warn({ err: e }, "progress not saved")),
      );
    });
    const samples = this.samples.get(drive.key) ?? new ThroughputSamples();
    this.samples.set(drive.key, samples);
    samples.restart();
    const sampling = setInterval(
      () => {
        if (!progress.bytesTotal) return; // the engine has not started the meter yet
        samples.record(clock.now().getTime(), progress.bytesSucceeded);
        const v = samples.view();
        if (v) view.throughput = v;
      },
      (SAMPLE_SECONDS * 1000) / 4,
    );
    sampling.unref();
    const lease = new DriveLease({ ...this.deps.fleet, clock }, { job: key, driveId });
    const lane = this.scheduler.lane(controller.signal);
    try {
      // No new claim while the store is down; another station's live claim holds the drive here.
      await this.deps.fleet.health.whenHealthy(controller.signal);
      await lease.acquire(controller.signal, (holder) => heldElsewhere(c, holder));
      lease.keepAlive(
        () =>
          controller.abort(
            new Error("another station took the drive over after this station's claim expired"),
          ),
        (e) => log.warn({ err: e, job: jobLabel(key), driveId }, "drive claim not renewed; retrying"),
      );
      const job = await service.get(key);
      const entry = job.drives.find((d) => d.driveId === driveId);
      if (entry && FINISHED.has(entry.state)) {
        // Another station won the claim and finished the drive while this one waited: done here too.
        finishedElsewhere(c, entry.state);
        return;
      }
      const resuming = entry?.state === "Transferring";
      const hold = await engine.admit?.(job, { driveId, root: drive.root });
      if (hold) {
        await this.held(c, hold);
        return;
      }
      if (!resuming) await service.station(key, { type: "TransferStarted", driveId });
      view.status = "transferring";
      view.message = `${resuming ? "Resuming" : direction === "import" ? "Importing" : "Exporting"} ${c.label}.`;
      log.info({ job: jobLabel(key), driveId, resuming }, `drive ${direction} started`);

      const result = await engine({
        job,
        driveId,
        root: drive.root,
        ...(drive.manifestPath ? { manifestPath: drive.manifestPath } : {}),
        ...(drive.fsType ? { fsType: drive.fsType } : {}),
        resuming,
        portFor: (credential) =>
          new AzureBlobPort(
            new JobStorage({
              endpoint: this.deps.endpoint,
              storageAccountId: job.storageAccountId,
              credential,
              ...(settings.storageRetry ? { retry: settings.storageRetry } : {}),
            }),
            this.deps.uploads,
          ),
        pipeline: { queue: lane.queue, pool: lane.pool, hashes: this.deps.hashes },
        blobConcurrency: settings.blobConcurrency,
        checkpoints: this.checkpoints,
        signal: controller.signal,
        log: log.child({ job: jobLabel(key), driveId }),
        clock,
        retry: settings.retry,
        onRetry: (reason) => this.deps.observer?.storageRetry(reason),
        ...(settings.readLimits ? { readLimits: settings.readLimits } : {}),
        progress,
      });
      await persisting;
      await runFinished(c, result);
    } catch (e) {
      await persisting;
      const end = await runFailed(c, e, controller.signal);
      if (end === "store-down") this.resumeWhenStoreAnswers(drive);
      if (end === "outage") this.retryLater(drive);
    } finally {
      clearInterval(sampling);
      lane.close();
      await lease.release();
    }
  }

  /** The engine holds the drive before it starts: shown held, and kept for the operator's confirmation when it waits. */
  private async held(c: RunContext, hold: DriveHold): Promise<void> {
    const { view, driveId, job } = c.drive;
    view.status = "held";
    view.message = hold.message;
    this.deps.log.warn({ job: jobLabel(job), driveId }, hold.message);
    if (hold.waits) this.waiting.set(c.drive.key, c.drive);
    if (hold.notice)
      await this.deps.notices.add([
        { code: hold.notice, at: this.deps.clock.now().toISOString(), job, driveId, message: hold.message },
      ]);
  }

  /** Starts the drive again after the outage delay (storage stayed down). */
  private retryLater(drive: ReadyDrive): void {
    if (this.stopped) return;
    this.retryTimers.set(
      drive.key,
      setTimeout(() => {
        this.retryTimers.delete(drive.key);
        this.start(drive);
      }, this.deps.settings.outageRetryMs),
    );
  }

  /** After a store outage: once it answers (and the paused run has finished), start the drive again. */
  private resumeWhenStoreAnswers(drive: ReadyDrive): void {
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
      this.start(drive);
    })().catch(() => undefined);
  }
}
