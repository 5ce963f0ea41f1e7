/**
 * The job and drive state machines: pure functions `(job, event, now) -> { job, notices }`.
 * They never do I/O; whoever calls them persists the job and publishes the notices.
 * An illegal event throws a StationError with a code (never a plain Error).
 */
import { StationError } from "../errors.js";
import {
  type Actor,
  type DeliveryPackage,
  DRIVE_TRANSITIONS,
  type Drive,
  type DriveState,
  type ExportSelection,
  JOB_TRANSITIONS,
  type Job,
  type JobState,
  jobLabel,
  type LogLevel,
  type Notice,
  type NoticeCode,
  type ReturnAddress,
  type ReturnPackage,
  type ReturnShipping,
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
function moveJob(job: Job, to: JobState, now: Date): void {
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

function moveDrive(job: Job, drive: Drive, to: DriveState): void {
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

function notice(job: Job, code: NoticeCode, now: Date, message: string, driveId?: string): Notice {
  const n: Notice = {
    code,
    at: now.toISOString(),
    job: { subscriptionId: job.subscriptionId, resourceGroup: job.resourceGroup, name: job.name },
    message,
  };
  if (driveId !== undefined) n.driveId = driveId;
  return n;
}

function findDrive(job: Job, driveId: string): Drive {
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

// ---------------------------------------------------------------- creation

export interface DriveSpec {
  driveId: string;
  bitLockerKey?: string;
  manifestFile?: string;
  manifestHash?: string;
  driveHeaderHash?: string;
}

export interface JobSpec {
  location: string;
  tags?: Record<string, string>;
  type: "Import" | "Export";
  storageAccountId: string;
  returnAddress?: ReturnAddress;
  returnShipping?: ReturnShipping;
  deliveryPackage?: DeliveryPackage;
  diagnosticsPath?: string;
  logLevel?: LogLevel;
  backupDriveManifest?: boolean;
  driveList?: DriveSpec[];
  export?: ExportSelection;
  encryptionKey?: Job["encryptionKey"];
}

export const MAX_DRIVES_PER_JOB = 10;

function newDrive(spec: DriveSpec, state: DriveState): Drive {
  return { ...spec, state, bytesSucceeded: 0, percentComplete: 0 };
}

function checkSpec(spec: JobSpec): void {
  const drives = spec.driveList ?? [];
  if (spec.type === "Import") {
    if (drives.length === 0) {
      throw new StationError(
        "InvalidRequestContent",
        "An import job needs a driveList with 1 to 10 drives.",
        {
          target: "properties.driveList",
        },
      );
    }
    if (spec.export) {
      throw new StationError("InvalidRequestContent", "An import job must not carry an export selection.", {
        target: "properties.export",
      });
    }
    drives.forEach((d, i) => {
      for (const field of ["manifestFile", "manifestHash"] as const) {
        if (!d[field]) {
          throw new StationError("InvalidRequestContent", `Import drive ${d.driveId} needs ${field}.`, {
            target: `properties.driveList[${i}].${field}`,
          });
        }
      }
    });
  } else {
    if (drives.length > 0) {
      throw new StationError(
        "InvalidRequestContent",
        "An export job takes no driveList: the station adds the drives when they are checked in.",
        { target: "properties.driveList" },
      );
    }
    const sel = spec.export;
    const inline =
      sel?.blobList &&
      ((sel.blobList.blobPath?.length ?? 0) > 0 || (sel.blobList.blobPathPrefix?.length ?? 0) > 0);
    if (!sel || (!inline && !sel.blobListBlobPath) || (inline && sel.blobListBlobPath)) {
      throw new StationError(
        "InvalidRequestContent",
        "An export job needs exactly one blob selection: export.blobList or export.blobListBlobPath.",
        { target: "properties.export" },
      );
    }
  }
  if (drives.length > MAX_DRIVES_PER_JOB) {
    throw new StationError("InvalidRequestContent", `A job takes at most ${MAX_DRIVES_PER_JOB} drives.`, {
      target: "properties.driveList",
    });
  }
  const seen = new Set<string>();
  for (const d of drives) {
    if (seen.has(d.driveId)) {
      throw new StationError("InvalidRequestContent", `Drive ${d.driveId} is listed twice.`, {
        target: "properties.driveList",
      });
    }
    seen.add(d.driveId);
  }
}

/** Put Job on a new name, or on a job still `Creating` (which it replaces and whose expiry it resets). */
export function createJob(
  key: { subscriptionId: string; resourceGroup: string; name: string },
  spec: JobSpec,
  existing: Job | undefined,
  now: Date,
  actor: Actor,
): Job {
  if (existing && existing.state !== "Creating") {
    throw new StationError(
      "InvalidJobState",
      `Job ${jobLabel(existing)} exists and is ${existing.state}; a job can be replaced only while Creating. Use another name, or delete it once Completed.`,
      { target: "name" },
    );
  }
  checkSpec(spec);
  const t = now.toISOString();
  const job: Job = {
    ...key,
    location: spec.location,
    tags: spec.tags ?? {},
    type: spec.type,
    storageAccountId: spec.storageAccountId,
    diagnosticsPath: spec.diagnosticsPath ?? "waimportexport",
    logLevel: spec.logLevel ?? "Error",
    backupDriveManifest: spec.backupDriveManifest ?? false,
    state: "Creating",
    cancelRequested: false,
    encryptionKey: spec.encryptionKey ?? { kekType: "MicrosoftManaged" },
    drives: (spec.driveList ?? []).map((d) => newDrive(d, "Specified")),
    extraDrives: [],
    heldPackages: [],
    timestamps: {
      createdAt: existing?.timestamps.createdAt ?? t,
      creatingRefreshedAt: t,
    },
    createdBy: existing?.createdBy ?? actor,
    lastModifiedBy: actor,
    lastModifiedAt: t,
  };
  if (spec.returnAddress) job.returnAddress = spec.returnAddress;
  if (spec.returnShipping) job.returnShipping = spec.returnShipping;
  if (spec.deliveryPackage) job.deliveryPackage = spec.deliveryPackage;
  if (spec.export) job.export = spec.export;
  return job;
}

// ---------------------------------------------------------------- customer update (PATCH)

export interface JobPatch {
  tags?: Record<string, string>;
  cancelRequested?: boolean;
  /** "" means no state change (the official examples send it). */
  state?: string;
  returnAddress?: ReturnAddress;
  returnShipping?: ReturnShipping;
  deliveryPackage?: DeliveryPackage;
  logLevel?: LogLevel;
  backupDriveManifest?: boolean;
  driveList?: DriveSpec[];
}

/** The state a Faulted job will return to counts for the "may I change X now" rules. */
const effectiveState = (job: Job): JobState =>
  job.state === "Faulted" ? (job.faulted?.from as JobState) : job.state;

const BEFORE_PACKAGING: readonly JobState[] = ["Creating", "Shipping", "Received", "Transferring"];
const CANCELLABLE: readonly JobState[] = ["Creating", "Shipping", "Transferring"];

function refuse(job: Job, property: string, when: string): never {
  throw new StationError(
    "InvalidJobState",
    `Job ${jobLabel(job)} is ${job.state}: ${property} can be changed only ${when}.`,
    { target: `properties.${property}` },
  );
}

/** Update Job Properties: which property may change in which state is the classic table (§5.3). */
export function updateJob(current: Job, patch: JobPatch, now: Date, actor: Actor): Outcome {
  const job = structuredClone(current);
  const state = effectiveState(job);
  const notices: Notice[] = [];

  if (
    patch.returnAddress ||
    patch.returnShipping ||
    patch.logLevel !== undefined ||
    patch.backupDriveManifest !== undefined
  ) {
    if (!BEFORE_PACKAGING.includes(state)) {
      const which = patch.returnAddress
        ? "returnAddress"
        : patch.returnShipping
          ? "returnShipping"
          : patch.logLevel !== undefined
            ? "logLevel"
            : "backupDriveManifest";
      refuse(job, which, "before the job reaches Packaging");
    }
  }
  if (patch.deliveryPackage && state !== "Creating" && state !== "Shipping") {
    refuse(job, "deliveryPackage", "until the drives have arrived (Creating or Shipping)");
  }
  if (patch.driveList && state !== "Creating") refuse(job, "driveList", "while the job is Creating");
  if (patch.cancelRequested !== undefined) {
    if (patch.cancelRequested !== true) {
      throw new StationError("InvalidRequestContent", "cancelRequested can only be set to true.", {
        target: "properties.cancelRequested",
      });
    }
    if (!CANCELLABLE.includes(job.state))
      refuse(job, "cancelRequested", "while Creating, Shipping or Transferring");
  }
  const toShipping = patch.state !== undefined && patch.state !== "";
  if (toShipping && patch.state !== "Shipping") {
    throw new StationError(
      "InvalidRequestContent",
      `state can only be set to "Shipping", not "${patch.state}".`,
      {
        target: "properties.state",
      },
    );
  }
  if (toShipping && job.state !== "Creating") refuse(job, "state", "while the job is Creating");

  if (patch.tags) job.tags = patch.tags;
  if (patch.returnAddress) job.returnAddress = patch.returnAddress;
  if (patch.returnShipping) job.returnShipping = patch.returnShipping;
  if (patch.deliveryPackage) job.deliveryPackage = patch.deliveryPackage;
  if (patch.logLevel !== undefined) job.logLevel = patch.logLevel;
  if (patch.backupDriveManifest !== undefined) job.backupDriveManifest = patch.backupDriveManifest;
  if (patch.driveList) {
    checkSpec({
      type: job.type,
      location: job.location,
      storageAccountId: job.storageAccountId,
      driveList: patch.driveList,
      ...(job.export ? { export: job.export } : {}),
    });
    job.drives = patch.driveList.map((d) => newDrive(d, "Specified"));
  }

  if (toShipping) {
    if (!job.returnAddress || !job.deliveryPackage) {
      const missing = [
        !job.returnAddress && "returnAddress",
        !job.deliveryPackage && "deliveryPackage",
      ].filter(Boolean);
      throw new StationError(
        "ShippingInfoMissing",
        `Job ${jobLabel(job)} cannot be marked Shipping: set ${missing.join(" and ")} first (in this request or an earlier one).`,
        { target: `properties.${missing[0]}` },
      );
    }
    moveJob(job, "Shipping", now);
  }

  if (patch.cancelRequested) {
    job.cancelRequested = true;
    // Nothing has shipped yet: the job ends here. Later states walk on and skip the copy.
    if (job.state === "Creating") moveJob(job, "Completed", now);
    else if (job.state === "Transferring") settleIfDone(job, now);
  }

  // Any update while Creating restarts the two-week expiry (§5.3).
  if (job.state === "Creating") job.timestamps.creatingRefreshedAt = now.toISOString();
  job.lastModifiedAt = now.toISOString();
  job.lastModifiedBy = actor;
  return { job, notices };
}

// ---------------------------------------------------------------- station (operator and agent) events

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

export const DAY_MS = 24 * 60 * 60 * 1000;
export const CREATING_EXPIRY_DAYS = 14;
export const SHIPPING_OVERDUE_DAYS = 14;
export const UNRESPONSIVE_CLOSE_DAYS = 30;
export const RETENTION_DAYS = 90;
export const HELD_RETURN_DAYS = 14;

const plus = (iso: string, days: number): Date => new Date(Date.parse(iso) + days * DAY_MS);

const DONE: readonly DriveState[] = ["Completed", "CompletedMoreInfo", "NeverReceived", "ShippedBack"];

/** All drives processed (or skipped by a cancel) and none in flight: the job goes to Packaging. */
function settleIfDone(job: Job, now: Date): void {
  if (job.state !== "Transferring" && job.state !== "Received") return;
  const pending = job.drives.some((d) =>
    job.cancelRequested ? d.state === "Transferring" || d.state === "Faulted" : !DONE.includes(d.state),
  );
  if (!pending && job.drives.length > 0) moveJob(job, "Packaging", now);
}

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

export const percent = (done: number, total: number | undefined): number =>
  total === undefined || total <= 0 ? 0 : Math.min(100, Math.floor((done * 100) / total));

/** Job percentComplete: bytes over the drives whose totals are known, else the mean of drive percents. */
export function jobPercentComplete(job: Job): number {
  if (job.state === "Packaging" || job.state === "Completed" || job.state === "Closed") {
    return job.drives.some(
      (d) => d.state === "Completed" || d.state === "CompletedMoreInfo" || d.state === "ShippedBack",
    )
      ? 100
      : 0;
  }
  const known = job.drives.filter((d) => d.bytesTotal !== undefined);
  if (known.length > 0) {
    const total = known.reduce((s, d) => s + (d.bytesTotal ?? 0), 0);
    return percent(
      known.reduce((s, d) => s + d.bytesSucceeded, 0),
      total,
    );
  }
  return 0;
}

// ---------------------------------------------------------------- timers

export type TimerOutcome = { job: Job | null; notices: Notice[] };

/**
 * Deadlines hang on timestamps stored in the job, so a restart neither resets nor skips them:
 * whatever fell due while the agent was down fires on the first tick after it starts.
 */
export function applyTimers(current: Job, now: Date): TimerOutcome {
  const job = structuredClone(current);
  const notices: Notice[] = [];
  const ts = job.timestamps;

  if (
    job.state === "Creating" &&
    ts.creatingRefreshedAt &&
    now >= plus(ts.creatingRefreshedAt, CREATING_EXPIRY_DAYS)
  ) {
    // The job record goes, but drives held at the dock for it must still go home.
    const held = job.heldPackages.filter((h) => !h.returnNoticeSent);
    const heldNote = held.length
      ? ` Return its held drives: ${held.map((h) => `${h.driveIds.join(", ")} (package ${h.trackingNumber})`).join("; ")}.`
      : "";
    const message = `Job ${jobLabel(job)} stayed Creating for ${CREATING_EXPIRY_DAYS} days without an update: deleted.${heldNote}`;
    notices.push(notice(job, "JobExpired", now, message));
    return { job: null, notices };
  }
  if (
    (job.state === "Completed" || job.state === "Closed") &&
    ts.finishedAt &&
    now >= plus(ts.finishedAt, RETENTION_DAYS)
  ) {
    notices.push(
      notice(job, "JobPurged", now, `Job ${jobLabel(job)} ended ${RETENTION_DAYS} days ago: deleted.`),
    );
    return { job: null, notices };
  }
  if (job.state === "Shipping" && ts.shippingAt) {
    if (!ts.overdueNoticeSent && now >= plus(ts.shippingAt, SHIPPING_OVERDUE_DAYS)) {
      ts.overdueNoticeSent = true;
      for (const d of job.drives) if (d.state === "Specified") moveDrive(job, d, "NeverReceived");
      notices.push(
        notice(
          job,
          "PackageOverdue",
          now,
          `The package of job ${jobLabel(job)} has not arrived ${SHIPPING_OVERDUE_DAYS} days after shipping: its drives are NeverReceived. Notify the customer.`,
        ),
      );
    }
    if (
      !ts.closableNoticeSent &&
      now >= plus(ts.shippingAt, SHIPPING_OVERDUE_DAYS + UNRESPONSIVE_CLOSE_DAYS)
    ) {
      ts.closableNoticeSent = true;
      notices.push(
        notice(
          job,
          "JobClosable",
          now,
          `Job ${jobLabel(job)}: package overdue and no answer for ${UNRESPONSIVE_CLOSE_DAYS} days. The operator may close it: 'station close ${job.name}'.`,
        ),
      );
    }
  }
  for (const held of job.heldPackages) {
    if (!held.returnNoticeSent && now >= plus(held.heldAt, HELD_RETURN_DAYS)) {
      held.returnNoticeSent = true;
      notices.push(
        notice(
          job,
          "ReturnHeldDrives",
          now,
          `Package ${held.trackingNumber} of job ${jobLabel(job)} has been held ${HELD_RETURN_DAYS} days: return its drives to the customer.`,
        ),
      );
    }
  }
  if (
    job.state === "Faulted" &&
    job.faulted &&
    ts.faultNoticeSent === false &&
    now >= plus(job.faulted.at, RETENTION_DAYS)
  ) {
    ts.faultNoticeSent = true;
    notices.push(
      notice(
        job,
        "FaultUnresolved",
        now,
        `Job ${jobLabel(job)} has been Faulted (${job.faulted.reason}) for ${RETENTION_DAYS} days: its drives may be destroyed.`,
      ),
    );
  }
  return { job, notices };
}

/** The earliest moment `applyTimers` could change this job; the store indexes it. */
export function nextDeadline(job: Job): Date | undefined {
  const ts = job.timestamps;
  const candidates: (Date | undefined)[] = [];
  if (job.state === "Creating" && ts.creatingRefreshedAt)
    candidates.push(plus(ts.creatingRefreshedAt, CREATING_EXPIRY_DAYS));
  if ((job.state === "Completed" || job.state === "Closed") && ts.finishedAt)
    candidates.push(plus(ts.finishedAt, RETENTION_DAYS));
  if (job.state === "Shipping" && ts.shippingAt) {
    if (!ts.overdueNoticeSent) candidates.push(plus(ts.shippingAt, SHIPPING_OVERDUE_DAYS));
    else if (!ts.closableNoticeSent)
      candidates.push(plus(ts.shippingAt, SHIPPING_OVERDUE_DAYS + UNRESPONSIVE_CLOSE_DAYS));
  }
  for (const h of job.heldPackages)
    if (!h.returnNoticeSent) candidates.push(plus(h.heldAt, HELD_RETURN_DAYS));
  if (job.state === "Faulted" && job.faulted && ts.faultNoticeSent === false)
    candidates.push(plus(job.faulted.at, RETENTION_DAYS));
  const times = candidates.filter((d): d is Date => d !== undefined).map((d) => d.getTime());
  return times.length ? new Date(Math.min(...times)) : undefined;
}
