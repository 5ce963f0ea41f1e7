/** What the operator routes return, as the CLI reads it. */
export interface JobDrive {
  driveId: string;
  state: string;
  percentComplete: number;
  bytesSucceeded: number;
  copyStatus?: string;
  errorLogUri?: string;
  verboseLogUri?: string;
}

export interface Job {
  name: string;
  properties: {
    state: string;
    jobType: string;
    percentComplete: number;
    cancelRequested: boolean;
    storageAccountId?: string;
    diagnosticsPath?: string;
    driveList: JobDrive[];
  };
  station: {
    subscriptionId: string;
    resourceGroup: string;
    faulted?: { from: string; reason: string; at: string };
    drives: { driveId: string; faulted?: { from: string; reason: string } }[];
    extraDrives: { driveId: string; trackingNumber?: string; shippedBack: boolean }[];
    heldPackages: { trackingNumber: string; driveIds: string[]; heldAt: string }[];
  };
}

export interface AttachedProgress {
  bytesSucceeded: number;
  bytesTotal: number;
  bytesPerSecond: number;
  etaSeconds?: number;
  /** Set once the drive finished: how long the whole copy took. */
  seconds?: number;
}

export interface Attached {
  key?: string;
  device: string;
  serial?: string;
  fsType?: string;
  status: string;
  code?: string;
  driveId?: string;
  job?: { subscriptionId?: string; resourceGroup?: string; name: string };
  message: string;
  progress?: AttachedProgress;
  /** Bytes per second over the last minutes, one value per `sampleSeconds`, newest last. */
  throughput?: { sampleSeconds: number; lastBucket: number; values: number[] };
}

export interface Notice {
  at: string;
  code: string;
  message: string;
  driveId?: string;
}
