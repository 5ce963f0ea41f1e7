/** Station (operator and agent) events: packages and drives at the door, transfers, faults, ship back. */
import { StationError } from "../errors.js";
import { MAX_DRIVES_PER_JOB, newDrive } from "./create.js";
import {
  HELD_RETURN_DAYS,
  plus,
  RETENTION_DAYS,
  SHIPPING_OVERDUE_DAYS,
  UNRESPONSIVE_CLOSE_DAYS,
} from "./deadlines.js";
import {
  type Drive,
  type DriveState,
  type Job,
  type JobState,
  jobLabel,
  type Notice,
  type ReturnPackage,
} from "./model.js";
import { canMoveDrive, findDrive, moveDrive, moveJob, notice, type Outcome, settleIfDone } from "./moves.js";
import { percent } from "./progress.js";

export type StationEvent =
  /** A package was checked in at the dock. Drives not in the job's list are extra drives. */
  | { type: "CheckInPackage"; trackingNumber: string; driveIds: string[] }
  /** One drive turned up (plugged in, or in a later package). */
  | { type: "DriveArrived"; driveId: string; trackingNumber?: string }
  | { type: "TransferStarted"; driveId: string; bytesTotal?: number }
  | {
      type: "TransferProgress";
      driveId: string;
      bytesSucceeded: number;
      bytesTotal?: number;
      copyStatus?: string;
    }
  | {
      type: "TransferFinished";
      driveId: string;
      outcome: "Completed" | "CompletedMoreInfo";
      copyStatus: string;
      bytesSucceeded: number;
      errorLogUri?: string;
      verboseLogUri?: string;
      manifestUri?: string;
      /** Export: the manifest the station wrote on the drive (relative path, hex MD5). */
      manifestFile?: string;
      manifestHash?: string;
      /** Export: the blob listing what did not fit on the job's drives (reference §4.3). */
      incompleteBlobListUri?: string;
    }
  /** driveCount and shipDate default to the drives shipped and now. */
  | {
      type: "ShipBack";
      returnPackage: Pick<ReturnPackage, "carrierName" | "trackingNumber"> & Partial<ReturnPackage>;
    }
  | { type: "Fault"; driveId?: string; reason: string }
  | { type: "Resolve"; driveId?: string }
  /** Overdue package, customer unreachable 30 days: the operator closes the job (§8.1). */
  | { type: "CloseUnresponsive" };

function receiveDrive(job: Job, drive: Drive, now: Date, notices: Notice[]): void {
  if (drive.state === "NeverReceived") {
    notices.push(
      notice(
        job,
        "DriveNeverReceived",
        now,
        `Drive ${drive.driveId}, marked NeverReceived, has arrived: moved to Received.`,
        drive.driveId,
      ),
    );
  }
  if (drive.state === "Specified" || drive.state === "NeverReceived") moveDrive(job, drive, "Received");
}

function addExtra(
  job: Job,
  driveId: string,
  trackingNumber: string | undefined,
  now: Date,
  notices: Notice[],
): void {
  if (job.extraDrives.some((e) => e.driveId === driveId)) return;
  const extra: Job["extraDrives"][number] = { driveId, arrivedAt: now.toISOString(), shippedBack: false };
  if (trackingNumber) extra.trackingNumber = trackingNumber;
  job.extraDrives.push(extra);
  notices.push(
    notice(
      job,
      "ExtraDrive",
      now,
      `Drive ${driveId} arrived with job ${jobLabel(job)} but is not in its drive list: not processed, returned with the job's drives.`,
      driveId,
    ),
  );
}

function holdPackage(
  job: Job,
  trackingNumber: string,
  driveIds: string[],
  now: Date,
  notices: Notice[],
): void {
  job.heldPackages.push({ trackingNumber, driveIds, heldAt: now.toISOString(), returnNoticeSent: false });
  notices.push(
    notice(
      job,
      "PackageHeld",
      now,
      `Package ${trackingNumber} (drives ${driveIds.join(", ") || "none"}) arrived for job ${jobLabel(job)}, which is ${job.state}, not Shipping: drives held, not processed. Contact the customer; without an answer in ${HELD_RETURN_DAYS} days, return the drives.`,
    ),
  );
}

export function applyStationEvent(current: Job, event: StationEvent, now: Date): Outcome {
  const job = structuredClone(current);
  const notices: Notice[] = [];
  const t = now.toISOString();

  switch (event.type) {
    case "CheckInPackage": {
      if (job.state !== "Shipping" && !(job.state === "Received" || job.state === "Transferring")) {
        holdPackage(job, event.trackingNumber, event.driveIds, now, notices);
        break;
      }
      if (job.type === "Export") {
        for (const id of event.driveIds) {
          if (job.drives.some((d) => d.driveId === id)) continue;
          if (job.drives.length >= MAX_DRIVES_PER_JOB) addExtra(job, id, event.trackingNumber, now, notices);
          else job.drives.push(newDrive({ driveId: id }, "Received")); // export drives start Received
        }
      } else {
        const inPackage = new Set(event.driveIds);
        for (const id of event.driveIds) {
          const drive = job.drives.find((d) => d.driveId === id);
          if (drive) receiveDrive(job, drive, now, notices);
          else addExtra(job, id, event.trackingNumber, now, notices);
        }
        if (job.state === "Shipping") {
          // The package is here; listed drives it does not hold were never received (seed table).
          for (const d of job.drives) {
            if (d.state === "Specified" && !inPackage.has(d.driveId)) {
              moveDrive(job, d, "NeverReceived");
              notices.push(
                notice(
                  job,
                  "DriveNeverReceived",
                  now,
                  `Drive ${d.driveId} was not in package ${event.trackingNumber}: NeverReceived.`,
                  d.driveId,
                ),
              );
            }
          }
        }
      }
      if (job.state === "Shipping") moveJob(job, "Received", now);
      if (job.cancelRequested) settleIfDone(job, now);
      break;
    }
    case "DriveArrived": {
      const drive = job.drives.find((d) => d.driveId === event.driveId);
      const accepting = job.state === "Shipping" || job.state === "Received" || job.state === "Transferring";
      if (!accepting) {
        holdPackage(job, event.trackingNumber ?? "(no package)", [event.driveId], now, notices);
        break;
      }
      if (!drive) {
        if (job.type === "Export" && job.drives.length < MAX_DRIVES_PER_JOB)
          job.drives.push(newDrive({ driveId: event.driveId }, "Received"));
        else addExtra(job, event.driveId, event.trackingNumber, now, notices);
      } else {
        receiveDrive(job, drive, now, notices);
      }
      if (job.state === "Shipping") moveJob(job, "Received", now);
      break;
    }
    case "TransferStarted": {
      const drive = findDrive(job, event.driveId);
      if (job.cancelRequested) {
        throw new StationError(
          "InvalidJobState",
          `Job ${jobLabel(job)} was cancelled: drive ${drive.driveId} is not to be copied.`,
          { target: drive.driveId },
        );
      }
      if (job.state !== "Received" && job.state !== "Transferring") {
        throw new StationError(
          "InvalidJobState",
          `Job ${jobLabel(job)} is ${job.state}: drives are copied only once it is Received or Transferring.`,
          { target: drive.driveId },
        );
      }
      moveDrive(job, drive, "Transferring");
      drive.copyStatus = "InProgress";
      if (event.bytesTotal !== undefined) drive.bytesTotal = event.bytesTotal;
      if (job.state === "Received") moveJob(job, "Transferring", now);
      break;
    }
    case "TransferProgress": {
      const drive = findDrive(job, event.driveId);
      if (drive.state !== "Transferring") {
        throw new StationError(
          "InvalidJobState",
          `Drive ${drive.driveId} is ${drive.state}, not Transferring: no progress to record.`,
          { target: drive.driveId },
        );
      }
      if (event.bytesTotal !== undefined) drive.bytesTotal = event.bytesTotal;
      drive.bytesSucceeded = event.bytesSucceeded;
      drive.percentComplete = percent(drive.bytesSucceeded, drive.bytesTotal);
      if (event.copyStatus) drive.copyStatus = event.copyStatus;
      break;
    }
    case "TransferFinished": {
      const drive = findDrive(job, event.driveId);
      moveDrive(job, drive, event.outcome);
      drive.copyStatus = event.copyStatus;
      drive.bytesSucceeded = event.bytesSucceeded;
      drive.percentComplete =
        event.outcome === "Completed" ? 100 : percent(drive.bytesSucceeded, drive.bytesTotal);
      if (event.errorLogUri) drive.errorLogUri = event.errorLogUri;
      if (event.verboseLogUri) drive.verboseLogUri = event.verboseLogUri;
      if (event.manifestUri) drive.manifestUri = event.manifestUri;
      if (event.manifestFile) drive.manifestFile = event.manifestFile;
      if (event.manifestHash) drive.manifestHash = event.manifestHash;
      if (event.incompleteBlobListUri) job.incompleteBlobListUri = event.incompleteBlobListUri;
      settleIfDone(job, now);
      break;
    }
    case "ShipBack": {
      if (job.state !== "Packaging") {
        throw new StationError(
          "InvalidJobState",
          `Job ${jobLabel(job)} is ${job.state}: drives ship back once it is Packaging.`,
          { target: "state" },
        );
      }
      for (const d of job.drives) if (canMoveDrive(d.state, "ShippedBack")) moveDrive(job, d, "ShippedBack");
      for (const e of job.extraDrives) e.shippedBack = true;
      const shipped = job.drives.filter((d) => d.state === "ShippedBack").length + job.extraDrives.length;
      job.returnPackage = {
        carrierName: event.returnPackage.carrierName,
        trackingNumber: event.returnPackage.trackingNumber,
        driveCount: event.returnPackage.driveCount ?? shipped,
        shipDate: event.returnPackage.shipDate ?? t,
      };
      const hadErrors =
        !job.cancelRequested &&
        current.drives.some((d) => d.state === "CompletedMoreInfo" || d.state === "NeverReceived");
      moveJob(job, hadErrors ? "Closed" : "Completed", now);
      break;
    }
    case "Fault": {
      if (event.driveId !== undefined) {
        const drive = findDrive(job, event.driveId);
        const from = drive.state;
        moveDrive(job, drive, "Faulted");
        drive.faulted = { from, reason: event.reason, at: t };
        notices.push(
          notice(
            job,
            "Faulted",
            now,
            `Drive ${drive.driveId} faulted (${event.reason}): contact the customer, then resolve.`,
            drive.driveId,
          ),
        );
      } else {
        const from = job.state;
        moveJob(job, "Faulted", now);
        job.faulted = { from, reason: event.reason, at: t };
        job.timestamps.faultNoticeSent = false;
        notices.push(
          notice(
            job,
            "Faulted",
            now,
            `Job ${jobLabel(job)} faulted (${event.reason}): contact the customer, then resolve. Unresolved after ${RETENTION_DAYS} days, its drives may be destroyed.`,
          ),
        );
      }
      break;
    }
    case "Resolve": {
      if (event.driveId !== undefined) {
        const drive = findDrive(job, event.driveId);
        if (drive.state !== "Faulted" || !drive.faulted) {
          throw new StationError(
            "InvalidTransition",
            `Drive ${drive.driveId} is ${drive.state}, not Faulted: nothing to resolve.`,
            { target: drive.driveId },
          );
        }
        moveDrive(job, drive, drive.faulted.from as DriveState);
        delete drive.faulted;
      } else {
        if (job.state !== "Faulted" || !job.faulted) {
          throw new StationError(
            "InvalidTransition",
            `Job ${jobLabel(job)} is ${job.state}, not Faulted: nothing to resolve.`,
            { target: "state" },
          );
        }
        moveJob(job, job.faulted.from as JobState, now);
        delete job.faulted;
        delete job.timestamps.faultNoticeSent;
      }
      break;
    }
    case "CloseUnresponsive": {
      const since = job.timestamps.shippingAt;
      const closable = since ? plus(since, SHIPPING_OVERDUE_DAYS + UNRESPONSIVE_CLOSE_DAYS) : undefined;
      if (job.state !== "Shipping" || !closable || now < closable) {
        throw new StationError(
          "NotYetAllowed",
          `Job ${jobLabel(job)} can be closed for lack of response only ${UNRESPONSIVE_CLOSE_DAYS} days after its package became overdue${closable ? ` (from ${closable.toISOString()})` : ""}.`,
          { target: "state" },
        );
      }
      moveJob(job, "Closed", now);
      break;
    }
  }
  job.lastModifiedAt = t;
  return { job, notices };
}
