/** Builders that walk a job to a given state through the real lifecycle functions. */
import {
  applyStationEvent,
  createJob,
  type JobSpec,
  type StationEvent,
  updateJob,
} from "../../src/lifecycle/machine.js";
import type { Actor, Job, JobState } from "../../src/lifecycle/model.js";

export const T0 = new Date("2026-01-01T00:00:00.000Z");
export const actor: Actor = { name: "test", type: "User" };
export const key = { subscriptionId: "sub-1", resourceGroup: "rg-1", name: "job-1" };

export const returnAddress = {
  recipientName: "Test",
  streetAddress1: "Street1",
  city: "Redmond",
  stateOrProvince: "wa",
  postalCode: "98007",
  countryOrRegion: "USA",
  phone: "4250000000",
  email: "test@contoso.com",
};
export const deliveryPackage = {
  carrierName: "FedEx",
  trackingNumber: "TRK-1",
  driveCount: 2,
  shipDate: "2026-01-02",
};

export const importSpec = (): JobSpec => ({
  location: "West US",
  type: "Import",
  storageAccountId:
    "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Storage/storageAccounts/acct",
  returnAddress,
  returnShipping: { carrierName: "FedEx", carrierAccountNumber: "989ffff" },
  driveList: [
    {
      driveId: "DRIVE-A",
      manifestFile: "\\DriveManifest.xml",
      manifestHash: "109B21108597EF36D5785F08303F3638",
      bitLockerKey: "238810-662376-448998-450120-652806-203390-606320-483076",
    },
    {
      driveId: "DRIVE-B",
      manifestFile: "\\DriveManifest.xml",
      manifestHash: "B306C4B34DAA0E99957A4B9C779D2FA2",
    },
  ],
});

export const exportSpec = (): JobSpec => ({
  location: "West US",
  type: "Export",
  storageAccountId:
    "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Storage/storageAccounts/acct",
  returnAddress,
  export: { blobList: { blobPathPrefix: ["/"] } },
});

const at = (days: number): Date => new Date(T0.getTime() + days * 86_400_000);

export function step(job: Job, event: StationEvent, day = 1): Job {
  return applyStationEvent(job, event, at(day)).job;
}

/** An import job in `state`, reached through the real transitions. */
export function importJobIn(state: JobState, spec: JobSpec = importSpec()): Job {
  let job = createJob(key, spec, undefined, T0, actor);
  if (state === "Creating") return job;
  job = updateJob(job, { deliveryPackage, state: "Shipping" }, at(1), actor).job;
  if (state === "Shipping") return job;
  job = step(job, { type: "CheckInPackage", trackingNumber: "TRK-1", driveIds: ["DRIVE-A", "DRIVE-B"] }, 2);
  if (state === "Received") return job;
  job = step(job, { type: "TransferStarted", driveId: "DRIVE-A", bytesTotal: 1000 }, 3);
  if (state === "Transferring") return job;
  if (state === "Faulted") return step(job, { type: "Fault", reason: "ReturnAddressInvalid" }, 3);
  job = step(
    job,
    {
      type: "TransferFinished",
      driveId: "DRIVE-A",
      outcome: "Completed",
      copyStatus: "Completed",
      bytesSucceeded: 1000,
    },
    4,
  );
  job = step(job, { type: "TransferStarted", driveId: "DRIVE-B", bytesTotal: 500 }, 4);
  job = step(
    job,
    {
      type: "TransferFinished",
      driveId: "DRIVE-B",
      outcome: state === "Closed" ? "CompletedMoreInfo" : "Completed",
      copyStatus: "Completed",
      bytesSucceeded: 500,
    },
    5,
  );
  if (state === "Packaging") return job;
  return step(
    job,
    {
      type: "ShipBack",
      returnPackage: { carrierName: "FedEx", trackingNumber: "RET-1", driveCount: 2, shipDate: "2026-01-07" },
    },
    6,
  );
}

export { at };
