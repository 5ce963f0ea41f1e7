/**
 * The job and drive model of the Import/Export service, as data. No I/O here.
 * Wire shapes (ARM JSON) live in src/api/views.ts; this is the station's own record.
 */

export const JOB_STATES = [
  "Creating",
  "Shipping",
  "Received",
  "Transferring",
  "Packaging",
  "Completed",
  "Closed",
  "Faulted",
] as const;
export type JobState = (typeof JOB_STATES)[number];

export const DRIVE_STATES = [
  "Specified",
  "Received",
  "NeverReceived",
  "Transferring",
  "Completed",
  "CompletedMoreInfo",
  "ShippedBack",
  "Faulted",
] as const;
export type DriveState = (typeof DRIVE_STATES)[number];

/**
 * Allowed job moves (reference §8.1, §5.3). Faulted returns only to the state it left
 * (`faulted.from`), which `applyJobEvent` enforces on top of this table.
 */
export const JOB_TRANSITIONS = {
  // cancel before shipping: nothing to copy, the job ends Completed (§5.3)
  Creating: ["Shipping", "Completed"],
  // package overdue and the customer unreachable for 30 days: the operator closes it
  Shipping: ["Received", "Closed", "Faulted"],
  // a cancelled job skips the copy: Received -> Packaging
  Received: ["Transferring", "Packaging", "Faulted"],
  Transferring: ["Packaging", "Faulted"],
  Packaging: ["Completed", "Closed", "Faulted"],
  Completed: [],
  Closed: [],
  Faulted: ["Shipping", "Received", "Transferring", "Packaging"],
} as const satisfies Record<JobState, readonly JobState[]>;

/** Allowed drive moves (reference §8.2 and the seed's drive failure table). */
export const DRIVE_TRANSITIONS = {
  Specified: ["Received", "NeverReceived", "Faulted"],
  // Received -> ShippedBack: the copy was skipped (cancelled job)
  Received: ["Transferring", "ShippedBack", "Faulted"],
  // the drive turns up later, in another package
  NeverReceived: ["Received"],
  Transferring: ["Completed", "CompletedMoreInfo", "Faulted"],
  Completed: ["ShippedBack"],
  CompletedMoreInfo: ["ShippedBack"],
  ShippedBack: [],
  Faulted: ["Specified", "Received", "Transferring"],
} as const satisfies Record<DriveState, readonly DriveState[]>;

export type JobType = "Import" | "Export";
export type LogLevel = "Error" | "Verbose";

export interface ReturnAddress {
  recipientName: string;
  streetAddress1: string;
  streetAddress2?: string;
  city: string;
  stateOrProvince?: string;
  postalCode: string;
  countryOrRegion: string;
  phone: string;
  email: string;
}

export interface ReturnShipping {
  carrierName: string;
  carrierAccountNumber: string;
}

export interface DeliveryPackage {
  carrierName: string;
  trackingNumber: string;
  driveCount?: number;
  shipDate?: string;
}

export interface ReturnPackage {
  carrierName: string;
  trackingNumber: string;
  driveCount: number;
  shipDate: string;
}

export interface ShippingInformation {
  recipientName?: string;
  streetAddress1?: string;
  streetAddress2?: string;
  city?: string;
  stateOrProvince?: string;
  postalCode?: string;
  countryOrRegion?: string;
  phone?: string;
  additionalInformation?: string;
}

export interface ExportSelection {
  blobList?: { blobPath?: string[]; blobPathPrefix?: string[] };
  blobListBlobPath?: string;
}

export interface Fault {
  /** The state to return to when the fault is resolved. */
  from: string;
  reason: string;
  at: string;
}

export interface Drive {
  driveId: string;
  bitLockerKey?: string;
  manifestFile?: string;
  manifestHash?: string;
  driveHeaderHash?: string;
  state: DriveState;
  faulted?: Fault;
  copyStatus?: string;
  bytesSucceeded: number;
  /** Bytes the drive's manifest lists; known once the transfer is planned. */
  bytesTotal?: number;
  percentComplete: number;
  verboseLogUri?: string;
  errorLogUri?: string;
  manifestUri?: string;
}

/** A drive that arrived in a job's package but is not in its drive list (seed: "extra drive"). */
export interface ExtraDrive {
  driveId: string;
  trackingNumber?: string;
  arrivedAt: string;
  shippedBack: boolean;
}

/** A package that arrived for a job that was not Shipping: held, never processed (§8.1). */
export interface HeldPackage {
  trackingNumber: string;
  driveIds: string[];
  heldAt: string;
  returnNoticeSent: boolean;
}

export interface Timestamps {
  createdAt: string;
  /** Last create/update while Creating: the 14-day expiry counts from here. */
  creatingRefreshedAt?: string;
  shippingAt?: string;
  overdueNoticeSent?: boolean;
  closableNoticeSent?: boolean;
  /** When the job reached Completed or Closed: deleted 90 days later. */
  finishedAt?: string;
  faultNoticeSent?: boolean;
}

export interface JobKey {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

export interface Actor {
  name: string;
  type: "User" | "Application" | "ManagedIdentity" | "Key";
}

export interface Job extends JobKey {
  location: string;
  tags: Record<string, string>;
  type: JobType;
  storageAccountId: string;
  returnAddress?: ReturnAddress;
  returnShipping?: ReturnShipping;
  shippingInformation?: ShippingInformation;
  deliveryPackage?: DeliveryPackage;
  returnPackage?: ReturnPackage;
  diagnosticsPath: string;
  logLevel: LogLevel;
  backupDriveManifest: boolean;
  state: JobState;
  faulted?: Fault;
  cancelRequested: boolean;
  incompleteBlobListUri?: string;
  export?: ExportSelection;
  encryptionKey: {
    kekType: "MicrosoftManaged" | "CustomerManaged";
    kekUrl?: string;
    kekVaultResourceID?: string;
  };
  drives: Drive[];
  extraDrives: ExtraDrive[];
  heldPackages: HeldPackage[];
  timestamps: Timestamps;
  createdBy: Actor;
  lastModifiedBy: Actor;
  lastModifiedAt: string;
}

export const jobLabel = (k: JobKey): string => `${k.subscriptionId}/${k.resourceGroup}/${k.name}`;

/** A message for the station operator: something needs a person (call the customer, return drives). */
export interface Notice {
  code: NoticeCode;
  at: string;
  job?: JobKey;
  driveId?: string;
  message: string;
}

export type NoticeCode =
  | "PackageHeld"
  | "ReturnHeldDrives"
  | "ExtraDrive"
  | "PackageOverdue"
  | "JobClosable"
  | "JobExpired"
  | "JobPurged"
  | "Faulted"
  | "FaultUnresolved"
  | "DriveNeverReceived"
  | "UnknownDrive"
  | "TransferPaused"
  | "StorageRefused"
  | "ExportDriveNotEmpty"
  | "ExportDriveUnreliable"
  | "DriveNeedsRepair"
  | "DriveClaimedElsewhere"
  | "DriveInTwoJobs";
