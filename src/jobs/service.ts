/**
 * Job service: the only writer of jobs. Reads a job, applies a pure lifecycle function, writes it
 * back with compare-and-swap (retrying on a concurrent write), stores the notices and logs one
 * line per state transition.
 */
import type { Logger } from "pino";
import { isStationError, StationError } from "../errors.js";
import { conflictMessage, liveJobsListing } from "../lifecycle/drive-conflict.js";
import {
  applyStationEvent,
  applyTimers,
  createJob,
  type JobPatch,
  type JobSpec,
  nextDeadline,
  type Outcome,
  type StationEvent,
  updateJob,
} from "../lifecycle/machine.js";
import {
  type Actor,
  type Job,
  type JobKey,
  jobLabel,
  type Notice,
  type ShippingInformation,
} from "../lifecycle/model.js";
import { KeyedLock } from "./keyed-lock.js";
import type { JobPage, JobScope, JobStore, NoticeLog } from "./store.js";

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export interface JobServiceDeps {
  store: JobStore;
  notices: NoticeLog;
  clock: Clock;
  log: Logger;
  /** This station's dock address, returned to customers as `shippingInformation`. */
  shippingInformation: ShippingInformation;
}

const MAX_CAS_ATTEMPTS = 20;

export class JobService {
  private readonly lock = new KeyedLock();

  constructor(private readonly deps: JobServiceDeps) {}

  async get(key: JobKey): Promise<Job> {
    const stored = await this.deps.store.get(key);
    if (!stored) throw notFound(key);
    return stored.job;
  }

  list(scope: JobScope, top: number, skipToken?: string): Promise<JobPage> {
    return this.deps.store.list(scope, top, skipToken);
  }

  create(key: JobKey, spec: JobSpec, actor: Actor): Promise<{ job: Job; created: boolean }> {
    return this.lock.run(jobLabel(key), () => this.createLocked(key, spec, actor));
  }

  private async createLocked(
    key: JobKey,
    spec: JobSpec,
    actor: Actor,
  ): Promise<{ job: Job; created: boolean }> {
    for (let attempt = 0; ; attempt++) {
      const existing = await this.deps.store.get(key);
      const job = createJob(key, spec, existing?.job, this.deps.clock.now(), actor);
      job.shippingInformation = this.deps.shippingInformation;
      try {
        await this.deps.store.put(job, existing?.version ?? 0, nextDeadline(job));
        this.deps.log.info(
          { job: jobLabel(job), type: job.type, state: job.state, drives: job.drives.length },
          existing ? "job replaced" : "job created",
        );
        return { job, created: !existing };
      } catch (e) {
        if (!(await retryable(e, attempt))) throw e;
      }
    }
  }

  update(key: JobKey, patch: JobPatch, actor: Actor): Promise<Job> {
    return this.mutate(key, "update", (job, now) => updateJob(job, patch, now, actor));
  }

  /** An event from the station: the operator (check-in, ship back, fault) or the transfer engine. */
  async station(key: JobKey, event: StationEvent): Promise<Job> {
    const job = await this.mutate(key, event.type, (job, now) => applyStationEvent(job, event, now));
    if (event.type === "CheckInPackage") await this.listedElsewhere(job, event.driveIds);
    return job;
  }

  /** A checked-in drive another live job lists too: the operator is told, naming both jobs and what to do. */
  private async listedElsewhere(job: Job, driveIds: readonly string[]): Promise<void> {
    const others: Job[] = [];
    let token: string | undefined;
    do {
      const page = await this.list({}, 100, token);
      others.push(...page.jobs.filter((j) => jobLabel(j) !== jobLabel(job)));
      token = page.skipToken;
    } while (token);
    const notices: Notice[] = [];
    for (const driveId of driveIds) {
      const elsewhere = liveJobsListing(others, driveId);
      if (!elsewhere.length) continue;
      const here = liveJobsListing([job], driveId);
      const listed = [...(here.length ? here : [{ job, entry: { state: "extra" } }]), ...elsewhere];
      notices.push({
        code: "DriveInTwoJobs",
        at: this.deps.clock.now().toISOString(),
        job: { subscriptionId: job.subscriptionId, resourceGroup: job.resourceGroup, name: job.name },
        driveId,
        message: `Checked in with package of job ${jobLabel(job)}: ${conflictMessage(driveId, listed)}`,
      });
    }
    await this.publish(notices);
  }

  delete(key: JobKey): Promise<void> {
    return this.lock.run(jobLabel(key), () => this.deleteLocked(key));
  }

  private async deleteLocked(key: JobKey): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const stored = await this.deps.store.get(key);
      if (!stored) throw notFound(key);
      const { job } = stored;
      if (job.state !== "Creating" && job.state !== "Completed") {
        throw new StationError(
          "InvalidJobState",
          `Job ${jobLabel(job)} is ${job.state}: only a Creating or Completed job can be deleted.${job.state === "Shipping" ? " Cancel it first (cancelRequested: true)." : ""}`,
          { target: "state" },
        );
      }
      if (await this.deps.store.delete(key, stored.version)) {
        this.deps.log.info({ job: jobLabel(job), state: job.state }, "job deleted");
        return;
      }
      // Changed under us: re-read and re-check the state rule.
      const conflict = new StationError(
        "VersionConflict",
        `Job ${jobLabel(key)} kept changing while being deleted; retry.`,
        { retryable: true },
      );
      if (!(await retryable(conflict, attempt))) throw conflict;
    }
  }

  /** Fires every deadline that is due (expiry, overdue package, retention). Returns how many jobs changed. */
  async runTimers(): Promise<number> {
    const now = this.deps.clock.now();
    let changed = 0;
    for (const key of await this.deps.store.due(now)) {
      if (await this.lock.run(jobLabel(key), () => this.fireTimers(key, now))) changed++;
    }
    return changed;
  }

  private async fireTimers(key: JobKey, now: Date): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      const stored = await this.deps.store.get(key);
      // Gone, or fired by another station since `due` listed it: fired once across the fleet.
      if (!stored || !((nextDeadline(stored.job)?.getTime() ?? Infinity) <= now.getTime())) return false;
      const { job, notices } = applyTimers(stored.job, now);
      try {
        if (job === null) {
          if (!(await this.deps.store.delete(key, stored.version))) {
            throw new StationError("VersionConflict", "changed", { retryable: true });
          }
          this.deps.log.info({ job: jobLabel(key), state: stored.job.state }, "job deleted by timer");
        } else {
          await this.deps.store.put(job, stored.version, nextDeadline(job));
          this.logTransitions(stored.job, job, "timer");
        }
        await this.publish(notices);
        return true;
      } catch (e) {
        if (!(await retryable(e, attempt))) throw e;
      }
    }
  }

  private mutate(key: JobKey, what: string, apply: (job: Job, now: Date) => Outcome): Promise<Job> {
    return this.lock.run(jobLabel(key), () => this.mutateLocked(key, what, apply));
  }

  private async mutateLocked(
    key: JobKey,
    what: string,
    apply: (job: Job, now: Date) => Outcome,
  ): Promise<Job> {
    for (let attempt = 0; ; attempt++) {
      const stored = await this.deps.store.get(key);
      if (!stored) throw notFound(key);
      const { job, notices } = apply(stored.job, this.deps.clock.now());
      try {
        await this.deps.store.put(job, stored.version, nextDeadline(job));
      } catch (e) {
        if (await retryable(e, attempt)) continue;
        throw e;
      }
      this.logTransitions(stored.job, job, what);
      await this.publish(notices);
      return job;
    }
  }

  private async publish(notices: Notice[]): Promise<void> {
    if (notices.length === 0) return;
    await this.deps.notices.add(notices);
    for (const n of notices) {
      this.deps.log.warn(
        { notice: n.code, job: n.job ? jobLabel(n.job) : undefined, driveId: n.driveId },
        n.message,
      );
    }
  }

  private logTransitions(before: Job, after: Job, event: string): void {
    const job = jobLabel(after);
    if (before.state !== after.state)
      this.deps.log.info({ job, event, from: before.state, to: after.state }, "job state");
    for (const d of after.drives) {
      const was = before.drives.find((b) => b.driveId === d.driveId)?.state;
      if (was !== d.state)
        this.deps.log.info({ job, driveId: d.driveId, event, from: was ?? null, to: d.state }, "drive state");
    }
  }
}

/** True (after a short jittered pause) when a write lost a compare-and-swap race and may be retried. */
async function retryable(e: unknown, attempt: number): Promise<boolean> {
  if (!(isStationError(e) && e.code === "VersionConflict" && attempt < MAX_CAS_ATTEMPTS)) return false;
  await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
  return true;
}

const notFound = (key: JobKey): StationError =>
  new StationError(
    "JobNotFound",
    `Job ${key.name} was not found in resource group ${key.resourceGroup} of subscription ${key.subscriptionId}.`,
    {
      target: key.name,
    },
  );
