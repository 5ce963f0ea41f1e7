/**
 * Domain -> wire: the ARM `JobResponse` (reference §4.2-4.4) and the operator's fuller view.
 * bitLockerKey is never part of a view; only listBitLockerKeys returns keys.
 */
import { jobPercentComplete } from "../lifecycle/machine.js";
import type { Drive, Job } from "../lifecycle/model.js";

export const PROVIDER = "Microsoft.ImportExport";

export const jobId = (job: Pick<Job, "subscriptionId" | "resourceGroup" | "name">): string =>
  `/subscriptions/${job.subscriptionId}/resourceGroups/${job.resourceGroup}/providers/${PROVIDER}/jobs/${job.name}`;

/** copyStatus is not returned until the drive reaches Transferring (reference §4.4). */
const COPY_STATUS_SHOWN = new Set([
  "Transferring",
  "Completed",
  "CompletedMoreInfo",
  "ShippedBack",
  "Faulted",
]);

function driveView(d: Drive) {
  return {
    driveId: d.driveId,
    manifestFile: d.manifestFile,
    manifestHash: d.manifestHash,
    driveHeaderHash: d.driveHeaderHash ?? "",
    state: d.state,
    copyStatus: COPY_STATUS_SHOWN.has(d.state) ? d.copyStatus : undefined,
    percentComplete: d.percentComplete,
    verboseLogUri: d.verboseLogUri,
    errorLogUri: d.errorLogUri,
    manifestUri: d.manifestUri,
    bytesSucceeded: d.bytesSucceeded,
  };
}

export function jobResponse(job: Job) {
  return {
    id: jobId(job),
    name: job.name,
    type: `${PROVIDER}/jobs`,
    location: job.location,
    tags: job.tags,
    systemData: {
      createdBy: job.createdBy.name,
      createdByType: job.createdBy.type,
      createdAt: job.timestamps.createdAt,
      lastModifiedBy: job.lastModifiedBy.name,
      lastModifiedByType: job.lastModifiedBy.type,
      lastModifiedAt: job.lastModifiedAt,
    },
    identity: { type: "None" },
    properties: {
      storageAccountId: job.storageAccountId,
      jobType: job.type,
      returnAddress: job.returnAddress,
      returnShipping: job.returnShipping,
      shippingInformation: job.shippingInformation,
      deliveryPackage: job.deliveryPackage,
      returnPackage: job.returnPackage,
      diagnosticsPath: job.diagnosticsPath,
      logLevel: job.logLevel,
      backupDriveManifest: job.backupDriveManifest,
      state: job.state,
      cancelRequested: job.cancelRequested,
      percentComplete: jobPercentComplete(job),
      incompleteBlobListUri: job.incompleteBlobListUri,
      driveList: job.drives.map(driveView),
      export: job.export,
      provisioningState: "Succeeded",
      encryptionKey: job.encryptionKey,
    },
  };
}

/** What the operator sees on top of Get Job: faults, extra drives, held packages, timers. */
export function operatorView(job: Job) {
  return {
    ...jobResponse(job),
    station: {
      subscriptionId: job.subscriptionId,
      resourceGroup: job.resourceGroup,
      faulted: job.faulted,
      drives: job.drives.map((d) => ({
        driveId: d.driveId,
        state: d.state,
        faulted: d.faulted,
        bytesTotal: d.bytesTotal,
        hasBitLockerKey: d.bitLockerKey !== undefined,
      })),
      extraDrives: job.extraDrives,
      heldPackages: job.heldPackages,
      timestamps: job.timestamps,
    },
  };
}

/** The operations list as Azure answers it (the spec's ListOperations example, all three versions). */
export const OPERATIONS = [
  [
    "locations/read",
    "Locations",
    "Get or List Locations",
    "Gets the properties for the specified location or returns the list of locations.",
  ],
  [
    "jobs/write",
    "Jobs",
    "Create or Update Job",
    "Creates a job with the specified parameters or update the properties or tags for the specified job.",
  ],
  [
    "jobs/read",
    "Jobs",
    "Get or List Jobs",
    "Gets the properties for the specified job or returns the list of jobs.",
  ],
  [
    "jobs/listBitLockerKeys/action",
    "Jobs",
    "List BitLocker Keys",
    "Gets the BitLocker keys for the specified job.",
  ],
  ["jobs/delete", "Jobs", "Delete Job", "Deletes an existing job."],
  [
    "register/action",
    "Import/Export Resource Provider",
    "Registers the Import/Export Resource Provider",
    "Registers the subscription for the import/export resource provider and enables the creation of import/export jobs.",
  ],
].map(([name, resource, operation, description]) => ({
  name: `${PROVIDER}/${name}`,
  display: { provider: "Microsoft Import/Export", resource, operation, description },
}));
