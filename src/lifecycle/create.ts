/** Put Job: the spec rules and the new job record. */
import { StationError } from "../errors.js";
import {
  type Actor,
  type DeliveryPackage,
  type Drive,
  type DriveState,
  type ExportSelection,
  type Job,
  jobLabel,
  type LogLevel,
  type ReturnAddress,
  type ReturnShipping,
} from "./model.js";

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

export function newDrive(spec: DriveSpec, state: DriveState): Drive {
  return { ...spec, state, bytesSucceeded: 0, percentComplete: 0 };
}

export function checkSpec(spec: JobSpec): void {
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
