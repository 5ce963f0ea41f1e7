/**
 * The contract between the transfer manager and a direction's engine (import/, export/). The
 * manager owns the drive's run (states, pause/resume, progress publishing); an engine moves the
 * bytes of one drive using the shared core (core/) and returns what the copy logs say.
 */

import type { Logger } from "pino";
import type { Credential } from "../formats/manifest.js";
import type { DriveLogStatus } from "../formats/status.js";
import type { Clock } from "../jobs/service.js";
import type { Job } from "../lifecycle/model.js";
import type { CredentialRefusal } from "../storage/blob-access.js";
import type { BlobPort } from "../storage/blob-port.js";
import type { CheckpointStore } from "./checkpoints.js";
import type { BlockPipeline } from "./core/block-pipeline.js";
import type { ReadLimits } from "./core/drive-reads.js";
import type { ProgressMeter } from "./core/progress.js";
import type { RetryPolicy } from "./core/retry.js";

/** One run of one drive, as the manager hands it to an engine. */
export interface DriveRun {
  /** The job as it was when the run started (export reads its selection). */
  job: Job;
  driveId: string;
  /** Where the drive's data volume is mounted (read-only for import, read-write for export). */
  root: string;
  /** Import: the matched drive manifest on the drive. */
  manifestPath?: string;
  /** The data volume's file system (export plans its capacity by it). */
  fsType?: string;
  /** The drive was Transferring before this run (a restart or a re-plug): blobs may be ours already. */
  resuming: boolean;
  /** The job's storage account seen through `credential` (the manifest's key or SAS). */
  portFor(credential: Credential): BlobPort;
  /** The drive's lane of the station's request slots and block buffers (core/scheduler.ts). */
  pipeline: BlockPipeline;
  /** Blobs of this drive worked on at once (many small files need this). */
  blobConcurrency: number;
  checkpoints: CheckpointStore;
  /** Aborted when the drive is pulled or the agent stops: a cancellation, not a failure. */
  signal: AbortSignal;
  log: Logger;
  clock: Clock;
  retry: RetryPolicy;
  /** A storage request is retried after a retryable failure (reason: HTTP status or "network"); metrics. */
  onRetry?(reason: string): void;
  /** Bounds every read of the drive's files (timeout, hung reads tolerated); defaults when absent. */
  readLimits?: ReadLimits;
  /** The drive's one progress meter: the engine adds verified bytes, the manager reads it. */
  progress: ProgressMeter;
}

export interface DriveRunResult {
  status: DriveLogStatus;
  bytesSucceeded: number;
  bytesTotal: number;
  /** Bytes this run moved (block bodies sent or written); resumed work is not counted twice. */
  bytesTransferred: number;
  blobs: number;
  errorLogUri?: string;
  verboseLogUri?: string;
  manifestUri?: string;
  /** The account refused the drive's credential: the drive stopped at the first refusal. */
  refusal?: CredentialRefusal;
  /** Why a copy log (or the manifest backup) could not be written to the customer's account. */
  logsNotWritten?: string;
  /** Export: the export manifest written at the drive root, and its hash (Get Job's drive entry). */
  manifestFile?: string;
  manifestHash?: string;
  /** Export: the blobs no drive of the job could hold, as a blob list. */
  incompleteBlobListUri?: string;
  /** Export: the drive did not hold what was written (read back from its medium); why, for the notice. */
  driveUnreliable?: string;
  /** Figures for the finished-run log line (export: its plan's ordinal and size, bytes written). */
  details?: Record<string, number>;
}

/**
 * Why an engine will not run a drive yet (decided before any state changes). `waits`: it starts
 * when the operator confirms it (`confirmExportDrive`) or the station is configured for it; the
 * notice, when given, tells the operator.
 */
export interface DriveHold {
  message: string;
  waits: boolean;
  notice?: "ExportDriveNotEmpty";
}

/**
 * An engine moves one drive's bytes. It throws `StorageOutage` to pause, the signal's reason when
 * aborted. `admit`, when present, runs before the drive is marked Transferring and may hold it.
 */
export type DriveEngine = ((run: DriveRun) => Promise<DriveRunResult>) & {
  admit?(job: Job, drive: { driveId: string; root: string }): Promise<DriveHold | undefined>;
};
