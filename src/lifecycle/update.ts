/** Update Job Properties (PATCH): which property may change in which state (§5.3). */
import { isDeepStrictEqual } from "node:util";
import { StationError } from "../errors.js";
import { checkSpec, type DriveSpec, newDrive } from "./create.js";
import {
  type Actor,
  type DeliveryPackage,
  type Job,
  type JobState,
  jobLabel,
  type LogLevel,
  type Notice,
  type ReturnAddress,
  type ReturnShipping,
} from "./model.js";
import { moveJob, type Outcome, settleIfDone } from "./moves.js";

export interface JobPatch {
  tags?: Record<string, string>;
  /** false (the spec's default, sent by SDKs on every update) asks for nothing. */
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

const plain = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

/**
 * The patch without what it does not change: `cancelRequested: false`, `state: ""` and values
 * equal to the job's own. SDKs send spec defaults (`backupDriveManifest: false`) on every update
 * and read-modify-write clients send back what they read: neither is refused for the job's state.
 */
function changesOf(job: Job, patch: JobPatch): JobPatch {
  const p: JobPatch = { ...patch };
  if (p.cancelRequested === false) delete p.cancelRequested;
  if (p.state === "") delete p.state;
  for (const k of [
    "returnAddress",
    "returnShipping",
    "deliveryPackage",
    "logLevel",
    "backupDriveManifest",
  ] as const) {
    if (p[k] !== undefined && isDeepStrictEqual(plain(p[k]), plain(job[k]))) delete p[k];
  }
  return p;
}

/** Update Job Properties: which property may change in which state is the classic table (§5.3). */
export function updateJob(current: Job, given: JobPatch, now: Date, actor: Actor): Outcome {
  const job = structuredClone(current);
  const patch = changesOf(job, given);
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
  if (patch.cancelRequested) {
    if (!CANCELLABLE.includes(job.state))
      refuse(job, "cancelRequested", "while Creating, Shipping or Transferring");
  }
  const toShipping = patch.state !== undefined;
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
