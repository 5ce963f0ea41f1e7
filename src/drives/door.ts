/**
 * The dock: what happens when a drive is plugged in, before a single byte moves.
 * identify → mount (read-only unless the drive belongs to an export job) → match → the seed
 * rules at the door: a drive of a job not yet Shipping is held; a drive no job lists is an
 * extra or unknown drive, never processed; a NeverReceived drive that turns up is Received; a
 * drive of a Shipping job checks the job in. A drive whose manifest fails its checks ends
 * CompletedMoreInfo with the failure as its copy status. Ready drives go to the transfer engine.
 */
import { spawnSync } from "node:child_process";
import { KeyedLock } from "../jobs/keyed-lock.js";
import { conflictMessage } from "../lifecycle/drive-conflict.js";
import type { Job, JobKey } from "../lifecycle/model.js";
import { jobLabel } from "../lifecycle/model.js";
import type { DockDeps, DockedDrive } from "./dock-model.js";
import { mountDataVolume } from "./dock-mount.js";
import { identify } from "./identity.js";
import { type MatchResult, matchDrive } from "./match.js";
import type { AttachedDrive } from "./model.js";
import { type MountMode, unmountVolume } from "./mount.js";

export type { DockDeps, DockedDrive, DockHooks, DockStatus } from "./dock-model.js";

const ACCEPTING = new Set(["Shipping", "Received", "Transferring"]);
const keyOf = (job: Job): JobKey => ({
  subscriptionId: job.subscriptionId,
  resourceGroup: job.resourceGroup,
  name: job.name,
});

export class Dock {
  private readonly drives = new Map<string, DockedDrive>();
  /** Attach, detach and re-attach of one device run strictly in the order the watcher saw them. */
  private readonly order = new KeyedLock();
  private readonly work = new Set<Promise<void>>();

  constructor(private readonly deps: DockDeps) {
    deps.watcher.on("attach", (d) => this.track(d.key, () => this.attach(d)));
    deps.watcher.on("detach", (d) => this.track(d.key, () => this.detach(d)));
    deps.watcher.on("error", (e, source) =>
      deps.log.warn({ source, err: e }, "drive scan failed; keeping the last good view and scanning on"),
    );
  }

  start(): Promise<void> {
    return this.deps.watcher.start();
  }

  list(): DockedDrive[] {
    return [...this.drives.values()];
  }

  get(key: string): DockedDrive | undefined {
    return this.drives.get(key);
  }

  /** Waits for attach/detach handling in flight (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.work.size) await Promise.all(this.work);
  }

  /** The first step of a graceful stop: no new drive is claimed; handling in flight finishes. */
  async stopWatching(): Promise<void> {
    await this.deps.watcher.stop();
    await this.settled();
  }

  /** Cancels what runs on every drive and unmounts what the dock mounted. */
  async stop(): Promise<void> {
    await this.stopWatching();
    for (const d of this.drives.values()) {
      this.deps.hooks?.onGone?.(d);
      if (d.mountpoint && d.kind !== "mounted" && !this.keptForHungRead(d))
        await unmountVolume(this.deps.exec, d.mountpoint, true).catch((e) =>
          this.deps.log.warn({ err: e, mountpoint: d.mountpoint }, "unmount at stop failed"),
        );
    }
    this.drives.clear();
  }

  /** Last resort on a forced exit: lazily detach every mount the dock made, synchronously. */
  forceUnmount(): void {
    for (const d of this.drives.values())
      if (d.mountpoint && d.kind !== "mounted" && !this.keptForHungRead(d))
        spawnSync("umount", ["-l", d.mountpoint], { stdio: "ignore", timeout: 5000 });
  }

  /**
   * A read still hung in the kernel holds a page of that file system: once unmounted, whoever
   * drops its last reference (the agent, at exit) must wait for that read to tear it down, and a
   * dying disk may never answer. So such a drive stays mounted, and the operator is told.
   */
  private keptForHungRead(d: DockedDrive): boolean {
    const mountpoint = d.mountpoint!;
    if (!this.deps.readsHungUnder?.(mountpoint)) return false;
    this.deps.log.warn(
      { drive: d.key, device: d.device, mountpoint },
      `Drive ${d.device} left mounted at ${mountpoint}: a read of this drive is still hung in the kernel, and unmounting it would hold the agent's exit until the drive answers. Pull the drive, then run umount -l ${mountpoint}`,
    );
    return true;
  }

  /** Runs `task` after every earlier event of the same device; different devices run side by side. */
  private track(key: string, task: () => Promise<void>): void {
    const p = this.order
      .run(key, task)
      .catch((e: unknown) => this.deps.log.error({ drive: key, err: e }, "drive event handling failed"));
    this.work.add(p);
    void p.finally(() => this.work.delete(p));
  }

  private async allJobs(): Promise<Job[]> {
    const jobs: Job[] = [];
    let token: string | undefined;
    do {
      const page = await this.deps.service.list({}, 100, token);
      jobs.push(...page.jobs);
      token = page.skipToken;
    } while (token);
    return jobs;
  }

  private async attach(d: AttachedDrive): Promise<void> {
    const { log } = this.deps;
    const docked: DockedDrive = {
      key: d.key,
      kind: d.kind,
      device: d.device,
      size: d.size,
      status: "identifying",
      message: "identifying",
      attachedAt: this.deps.clock.now().toISOString(),
    };
    this.drives.set(d.key, docked);
    this.sources.set(d.key, d);
    try {
      const id = await identify(d, this.deps.exec);
      if (id.serial) docked.serial = id.serial;
      const jobs = await this.allJobs();
      const exportEntry = id.serial
        ? jobs.find((j) => j.type === "Export" && j.drives.some((x) => x.driveId === id.serial))
        : undefined;
      const mode: MountMode = exportEntry && ACCEPTING.has(exportEntry.state) ? "rw" : "ro"; // never write to a drive no export job owns
      const mounted = await mountDataVolume(this.deps.exec, this.deps.mountRoot, id, docked, mode, jobs);
      const match = await matchDrive(id.serial, mounted.root, jobs, mounted.failure, this.deps.readLimits);
      log.info(
        {
          drive: d.key,
          device: d.device,
          serial: id.serial ?? null,
          fsType: docked.fsType ?? null,
          match: match.kind,
        },
        "drive identified",
      );
      await this.applyDoorRules(docked, match);
    } catch (e) {
      docked.status = "error";
      docked.message = `Handling the drive failed: ${(e as Error).message}. Unplug and plug it in again; if it persists, check the station log.`;
      log.error({ drive: d.key, err: e }, "drive handling failed");
    }
    if (
      !["ready", "transferring", "done", "paused"].includes(docked.status) &&
      docked.mountpoint &&
      docked.kind !== "mounted"
    ) {
      await unmountVolume(this.deps.exec, docked.mountpoint).catch((e) =>
        log.warn({ err: e, mountpoint: docked.mountpoint }, "unmount failed"),
      );
      delete docked.mountpoint;
      delete docked.mode;
    }
  }

  // ---------------------------------------------------------------- operator fixes on plugged drives
  private readonly sources = new Map<string, AttachedDrive>();
  private readonly unknownNoticed = new Set<string>();

  /**
   * An operator's or customer's fix (check-in, arrived, resolve, a job shipped or its drive list
   * changed) takes effect on drives already plugged in: drives of that job that wait (held, extra,
   * error) and every unknown drive are examined again, without a re-plug. A held drive is only
   * looked at again once its job accepts drives (looking again would hold a second package).
   */
  reconsider(job?: JobKey): void {
    for (const d of this.drives.values()) {
      if (!["unknown", "held", "extra", "error", "conflict"].includes(d.status)) continue;
      if (d.job && !(job && jobLabel(d.job) === jobLabel(job))) continue;
      const source = this.sources.get(d.key);
      if (!source) continue;
      const run = async () => {
        if (this.drives.get(d.key) !== d) return; // pulled or re-attached meanwhile
        if (d.status === "held" && d.job) {
          const now = await this.deps.service.get(d.job).catch(() => undefined);
          if (!now || !ACCEPTING.has(now.state) || now.cancelRequested) return;
        }
        this.deps.log.info(
          { drive: d.key, status: d.status },
          "examining the drive again after an operator's fix",
        );
        await this.attach(source);
      };
      this.track(d.key, run); // in order with the device's attach and detach
    }
  }

  private async applyDoorRules(docked: DockedDrive, match: MatchResult): Promise<void> {
    const { service, log } = this.deps;
    if (match.kind === "unknown") {
      docked.status = "unknown";
      docked.message = `${match.message} Not processed: check the drive's label and the package it came in, then tie it to its job with 'station check-in' or 'station arrived': the drive is examined again at once, no re-plug needed.`;
      if (this.unknownNoticed.has(docked.key)) return; // one notice per plugging
      this.unknownNoticed.add(docked.key);
      await this.deps.notices.add([
        {
          code: "UnknownDrive",
          at: this.deps.clock.now().toISOString(),
          ...(docked.serial ? { driveId: docked.serial } : {}),
          message: `Unknown drive on ${docked.device}: ${docked.message}`,
        },
      ]);
      log.warn({ drive: docked.key, device: docked.device }, docked.message);
      return;
    }
    if (match.kind === "conflict") {
      docked.status = "conflict";
      docked.message = conflictMessage(docked.serial ?? "", match.jobs);
      if (this.unknownNoticed.has(docked.key)) return; // one notice per plugging
      this.unknownNoticed.add(docked.key);
      await this.deps.notices.add([
        {
          code: "DriveInTwoJobs",
          at: this.deps.clock.now().toISOString(),
          ...(docked.serial ? { driveId: docked.serial } : {}),
          message: `On ${docked.device}: ${docked.message}`,
        },
      ]);
      log.warn({ drive: docked.key, jobs: match.jobs.map((m) => jobLabel(keyOf(m.job))) }, docked.message);
      return;
    }
    const job = match.job;
    const key = keyOf(job);
    docked.job = key;
    docked.jobType = job.type;
    if (match.kind === "extra") {
      docked.status = "extra";
      docked.driveId = match.driveId;
      docked.message = `Extra drive of job ${jobLabel(key)}${match.trackingNumber ? ` (package ${match.trackingNumber})` : ""}: not processed, goes back with the job's drives.`;
      return;
    }
    docked.driveId = match.entry.driveId;
    for (const [k, other] of this.drives)
      if (
        k !== docked.key &&
        other.status === "pulled" &&
        other.driveId === docked.driveId &&
        other.job?.name === key.name
      )
        this.drives.delete(k);
    if (match.kind === "processed") {
      docked.status = "processed";
      docked.message = `Drive ${match.entry.driveId} of job ${jobLabel(key)} is ${match.entry.state}: already processed, nothing to do.`;
      return;
    }
    // Check-in at the door: a Shipping job is checked in, a NeverReceived drive becomes Received, a job not ready holds the drive.
    const after = await service.station(key, { type: "DriveArrived", driveId: match.entry.driveId });
    if (!ACCEPTING.has(after.state) || after.heldPackages.length > job.heldPackages.length) {
      docked.status = "held";
      docked.message = `Job ${jobLabel(key)} is ${after.state}, not Shipping: drive ${match.entry.driveId} is held and will not be processed. The operator has a notice to contact the customer.`;
      return;
    }
    if (match.kind === "import-failed") {
      docked.status = "failed";
      docked.code = match.status;
      docked.message = `${match.message} Drive ${match.entry.driveId} of job ${jobLabel(key)} ends CompletedMoreInfo (${match.status}); the customer repairs it with the copy log.`;
      await service.station(key, { type: "TransferStarted", driveId: match.entry.driveId });
      await service.station(key, {
        type: "TransferFinished",
        driveId: match.entry.driveId,
        outcome: "CompletedMoreInfo",
        copyStatus: match.status,
        bytesSucceeded: 0,
      });
      log.warn(
        { drive: docked.key, job: jobLabel(key), driveId: match.entry.driveId, status: match.status },
        docked.message,
      );
      return;
    }
    if (after.cancelRequested) {
      docked.status = "held";
      docked.message = `Job ${jobLabel(key)} was cancelled: drive ${match.entry.driveId} is not copied.`;
      return;
    }
    if (!docked.mountpoint) {
      docked.status = "failed";
      docked.message = `Drive ${match.entry.driveId} of export job ${jobLabel(key)} has no usable volume${docked.code ? ` (${docked.code})` : ""}: formatting needs the operator's confirmation for this drive.`;
      return;
    }
    if (match.kind === "import") docked.manifestPath = match.manifestPath;
    docked.status = "ready";
    docked.message = `Drive ${match.entry.driveId} of ${job.type.toLowerCase()} job ${jobLabel(key)} is ready (${docked.mode === "rw" ? "read-write" : "read-only"} at ${docked.mountpoint}).`;
    log.info({ drive: docked.key, job: jobLabel(key), driveId: match.entry.driveId }, docked.message);
    this.deps.hooks?.onReady?.(docked, match);
  }

  private async detach(d: AttachedDrive): Promise<void> {
    const docked = this.drives.get(d.key);
    this.drives.delete(d.key);
    this.sources.delete(d.key);
    this.unknownNoticed.delete(d.key);
    if (!docked) return;
    this.deps.hooks?.onGone?.(docked);
    if (docked.mountpoint && docked.kind !== "mounted") {
      await unmountVolume(this.deps.exec, docked.mountpoint, true).catch((e) =>
        this.deps.log.warn({ err: e }, "lazy unmount failed"),
      );
    }
    // A drive pulled mid-transfer stays on the dock as pulled until it is plugged in again.
    if (
      docked.job &&
      docked.driveId &&
      ["ready", "transferring", "paused", "pulled"].includes(docked.status)
    ) {
      const label = `${jobLabel(docked.job)} drive ${docked.driveId}`;
      docked.status = "pulled";
      docked.message = `${label}: pulled — plug it in again to resume.`;
      delete docked.mountpoint;
      delete docked.mode;
      delete docked.progress;
      this.drives.set(d.key, docked);
    }
    this.deps.log.info(
      {
        drive: d.key,
        device: d.device,
        status: docked.status,
        job: docked.job ? jobLabel(docked.job) : null,
      },
      "drive detached",
    );
  }
}
