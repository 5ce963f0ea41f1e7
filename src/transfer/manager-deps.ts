/** What the transfer manager is built from: its collaborators and settings (agent/agent.ts fills them). */

import type { Logger } from "pino";
import type { Clock, JobService } from "../jobs/service.js";
import type { DriveClaims, NoticeLog, StoreHealth } from "../jobs/store.js";
import type { JobStorageOptions, StorageEndpoint } from "../storage/blob-access.js";
import type { UploadThreads } from "../storage/upload-threads.js";
import type { CheckpointStore } from "./checkpoints.js";
import type { ReadLimits } from "./core/drive-reads.js";
import type { BlockHashes } from "./core/hash-pool.js";
import type { RetryPolicy } from "./core/retry.js";
import type { DriveEngine } from "./engine.js";
import type { ExportEngineDeps } from "./export/export-engine.js";

export interface TransferSettings {
  concurrency: number;
  blobConcurrency: number;
  retry: RetryPolicy;
  outageRetryMs: number;
  /** Bounds every read of a drive's files (transfer.readTimeoutSeconds, transfer.hungReadsPerDrive); defaults when absent. */
  readLimits?: ReadLimits;
  storageRetry?: JobStorageOptions["retry"];
}

/** This station in the fleet: drive claims in the shared store, and whether that store answers. */
export interface FleetSettings {
  claims: DriveClaims;
  health: StoreHealth;
  stationId: string;
  leaseMs: number;
}

/** Abort reason when the job store stops answering: the run pauses and resumes when it is back. */
export class StorePaused extends Error {
  override name = "StorePaused";
}

export interface TransferManagerDeps {
  service: JobService;
  checkpoints: CheckpointStore;
  notices: NoticeLog;
  log: Logger;
  clock: Clock;
  endpoint: StorageEndpoint;
  settings: TransferSettings;
  /** The station's hashing threads (the composition root owns and closes them). */
  hashes: BlockHashes;
  /** The station's upload threads (block and page bodies sent off the event loop); owned by the composition root. */
  uploads?: UploadThreads;
  /** The export engine's store and the station's own access to job storage accounts. */
  exports?: ExportEngineDeps;
  fleet: FleetSettings;
  /** The engine per job type. Import defaults to the import engine; without an export engine an export drive waits. */
  engines?: Partial<Record<"Import" | "Export", DriveEngine>>;
  /** Metrics for what progress snapshots cannot show (observability/metrics.ts). */
  observer?: {
    driveFinished(job: string, driveId: string, outcome: string, seconds: number): void;
    storageRetry(reason: string): void;
  };
}
