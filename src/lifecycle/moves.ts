/** The moves every machine makes: transitions checked against the tables, notices, drive lookup. */
import { StationError } from "../errors.js";
import {
  DRIVE_TRANSITIONS,
  type Drive,
  type DriveState,
  JOB_TRANSITIONS,
  type Job,
  type JobState,
  jobLabel,
  type Notice,
  type NoticeCode,
} from "./model.js";

export interface Outcome {
  job: Job;
  notices: Notice[];
}

// ---------------------------------------------------------------- transitions

export function canMoveJob(from: JobState, to: JobState): boolean {
  return (JOB_TRANSITIONS[from] as readonly JobState[]).includes(to);
}

export function canMoveDrive(from: DriveState, to: DriveState): boolean {
  return (DRIVE_TRANSITIONS[from] as readonly DriveState[]).includes(to);
}

/** Moves a (cloned) job, enforcing the table; `now` stamps the timers that hang on states. */
export function moveJob(job: Job, to: JobState, now: Date): void {
  const allowed = job.state === "Faulted" ? job.faulted?.from === to : canMoveJob(job.state, to);
  if (!allowed) {
    throw new StationError(
      "InvalidTransition",
      `Job ${jobLabel(job)} cannot move from ${job.state} to ${to}.`,
      { target: "state" },
    );
  }
  job.state = to;
  if (to === "Shipping") job.timestamps.shippingAt ??= now.toISOString();
  if (to === "Completed" || to === "Closed") job.timestamps.finishedAt = now.toISOString();
}

export function moveDrive(job: Job, drive: Drive, to: DriveState): void {
  const allowed = drive.state === "Faulted" ? drive.faulted?.from === to : canMoveDrive(drive.state, to);
  if (!allowed) {
    throw new StationError(
      "InvalidTransition",
      `Drive ${drive.driveId} of job ${jobLabel(job)} cannot move from ${drive.state} to ${to}.`,
      { target: drive.driveId },
    );
  }
  drive.state = to;
}

export function notice(job: Job, code: NoticeCode, now: Date, message: string, driveId?: string): Notice {
  const n: Notice = {
    code,
    at: now.toISOString(),
    job: { subscriptionId: job.subscriptionId, resourceGroup: job.resourceGroup, name: job.name },
    message,
  };
  if (driveId !== undefined) n.driveId = driveId;
  return n;
}

export function findDrive(job: Job, driveId: string): Drive {
  const drive = job.drives.find((d) => d.driveId === driveId);
  if (!drive) {
    throw new StationError(
      "DriveNotFound",
      `Drive ${driveId} is not in the drive list of job ${jobLabel(job)}.`,
      {
        target: driveId,
      },
    );
  }
  return drive;
}

const DONE: readonly DriveState[] = ["Completed", "CompletedMoreInfo", "NeverReceived", "ShippedBack"];

/** All drives processed (or skipped by a cancel) and none in flight: the job goes to Packaging. */
export function settleIfDone(job: Job, now: Date): void {
  if (job.state !== "Transferring" && job.state !== "Received") return;
  const pending = job.drives.some((d) =>
    job.cancelRequested ? d.state === "Transferring" || d.state === "Faulted" : !DONE.includes(d.state),
  );
  if (!pending && job.drives.length > 0) moveJob(job, "Packaging", now);
}
