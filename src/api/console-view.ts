/**
 * What the web console shows, as plain data: the dock's drives, the jobs with their drives, and
 * the notices that need a person, each with the seed documents' next step (reference §8.1:
 * drives of a job not Shipping → contact the customer, return them after 2 weeks; package
 * overdue → notify the customer, close after 30 days without an answer; extra drives → not
 * processed, returned with the job; Faulted → contact the customer, then resolve).
 */
import type { DockedDrive } from "../drives/door.js";
import { jobPercentComplete } from "../lifecycle/machine.js";
import type { Job, Notice, NoticeCode } from "../lifecycle/model.js";
import { repairExportHint, repairImportHint } from "../repair/hint.js";

/** An operator action the console offers; the route is under /station/v1/.../jobs/{name}. */
export type ConsoleAction = "checkIn" | "arrived" | "fault" | "resolve" | "shipBack" | "close";

export interface NextStep {
  /** What the operator does, in one sentence. */
  step: string;
  /** The console button that does it, when there is one. */
  action?: ConsoleAction;
  /** Informational notices need no hands. */
  info?: boolean;
}

export const NEXT_STEPS: Record<NoticeCode, NextStep> = {
  PackageHeld: {
    step: "Contact the customer: a job is processed only once it is Shipping. When it is, check the package in; without an answer in 14 days, return the drives.",
    action: "checkIn",
  },
  ReturnHeldDrives: {
    step: "The customer did not answer for 14 days: return the held drives to the return address.",
  },
  ExtraDrive: {
    step: "Keep the drive with the job's package: it is not processed and goes back with the job's drives (ship back).",
  },
  PackageOverdue: {
    step: "Notify the customer that the package has not arrived. If a drive turns up later, mark it arrived.",
    action: "arrived",
  },
  JobClosable: {
    step: "The customer has not answered for 30 days after the overdue notice: close the job.",
    action: "close",
  },
  StorageRefused: {
    step: "The storage account refused the drive's key or SAS: ask the customer for a valid one in a new drive manifest; the drive is finished and is imported again under a job that lists it.",
  },
  JobExpired: { step: "Nothing to do: the job never shipped and was deleted.", info: true },
  JobPurged: { step: "Nothing to do: the finished job passed its retention and was deleted.", info: true },
  Faulted: {
    step: "Contact the customer; once the cause is fixed, resolve: the job or drive returns to the state it left.",
    action: "resolve",
  },
  FaultUnresolved: {
    step: "Faulted for 90 days without a resolution: resolve it, or dispose of the drives as policy says.",
    action: "resolve",
  },
  DriveNeverReceived: {
    step: "If the drive turns up later, mark it arrived; otherwise the job goes on without it.",
    action: "arrived",
  },
  UnknownDrive: {
    step: "Check the drive's label and the package it came in; check it in under its job (drive ID = serial), then unplug and plug it in again.",
    action: "checkIn",
  },
  DriveClaimedElsewhere: {
    step: "Another station is transferring this drive: pull it there first to move it here, or leave it; this station takes over if that station stops renewing its claim.",
  },
  DriveInTwoJobs: {
    step: "Two live jobs list this drive: finish the job it is done for (ship its drives back) or have the customer remove it from the other job; then plug it in again.",
  },
  ExportDriveNotEmpty: {
    step: "The export drive already holds data: check it is the customer's blank drive, then confirm it with 'station confirm-export-drive <job> <drive>' to write the export onto it.",
  },
  ExportDriveUnreliable: {
    step: "The export drive did not hold what was written: do not ship it. Replace it with a new drive for the job; its copy log names the blobs and chunks that failed.",
  },
  DriveNeedsRepair: {
    step: "Nothing to do at the station: tell the customer. The drive's error log (on Get Job) names what failed; the notice gives the station command the customer runs to re-send it from the original files (import) or to mend the returned drive from storage (export).",
  },
  TransferPaused: {
    step: "Storage did not answer: the station retries by itself and sends nothing twice. If it persists, check the storage endpoint and the network.",
  },
};

export function consoleNotice(n: Notice & { id: number }) {
  return { ...n, next: NEXT_STEPS[n.code] ?? { step: "See the message." } };
}

export function consoleJob(job: Job) {
  return {
    subscriptionId: job.subscriptionId,
    resourceGroup: job.resourceGroup,
    name: job.name,
    type: job.type,
    state: job.state,
    percentComplete: jobPercentComplete(job),
    cancelRequested: job.cancelRequested,
    /** Overdue and unanswered long enough for the operator to close it (CloseUnresponsive). */
    closable: job.state === "Shipping" && Boolean(job.timestamps.closableNoticeSent),
    ...(job.faulted ? { faulted: job.faulted } : {}),
    ...(job.deliveryPackage ? { deliveryPackage: job.deliveryPackage } : {}),
    ...(job.returnPackage ? { returnPackage: job.returnPackage } : {}),
    drives: job.drives.map((d) => ({
      driveId: d.driveId,
      state: d.state,
      percentComplete: d.percentComplete,
      bytesSucceeded: d.bytesSucceeded,
      ...(d.bytesTotal !== undefined ? { bytesTotal: d.bytesTotal } : {}),
      ...(d.copyStatus ? { copyStatus: d.copyStatus } : {}),
      ...(d.faulted ? { faulted: d.faulted } : {}),
      // The customer's next step for a drive with problems: the copy log and the repair command.
      ...(d.state === "CompletedMoreInfo" && d.errorLogUri
        ? { repairHint: (job.type === "Export" ? repairExportHint : repairImportHint)(d.errorLogUri) }
        : {}),
    })),
    extraDrives: job.extraDrives,
    heldPackages: job.heldPackages,
    lastModifiedAt: job.lastModifiedAt,
  };
}

/** The dock's view without local paths the browser has no use for. */
export function consoleDrive(d: DockedDrive) {
  const { mountpoint: _m, manifestPath: _p, ...rest } = d;
  return rest;
}

const ENDED = new Set(["Completed", "Closed"]);

/** Every job still moving, then the most recently finished ones. */
export function consoleJobs(jobs: Job[], finishedShown = 20) {
  const active = jobs.filter((j) => !ENDED.has(j.state));
  const ended = jobs
    .filter((j) => ENDED.has(j.state))
    .sort((a, b) => b.lastModifiedAt.localeCompare(a.lastModifiedAt))
    .slice(0, finishedShown);
  active.sort((a, b) => b.lastModifiedAt.localeCompare(a.lastModifiedAt));
  return [...active, ...ended].map(consoleJob);
}

/** Counts for the metrics: jobs by state, and their drives by state. */
export function stateCounts(jobs: Job[]): { jobs: Record<string, number>; drives: Record<string, number> } {
  const out = { jobs: {} as Record<string, number>, drives: {} as Record<string, number> };
  for (const j of jobs) {
    out.jobs[j.state] = (out.jobs[j.state] ?? 0) + 1;
    for (const d of j.drives) out.drives[d.state] = (out.drives[d.state] ?? 0) + 1;
  }
  return out;
}
