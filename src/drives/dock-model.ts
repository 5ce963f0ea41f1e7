/** What the dock shows of a plugged drive, and what it needs and calls (ports and hooks). */
import type { Logger } from "pino";
import type { DriveLogStatus } from "../formats/status.js";
import type { Clock, JobService } from "../jobs/service.js";
import type { NoticeLog } from "../jobs/store.js";
import type { JobKey } from "../lifecycle/model.js";
import type { ReadLimits } from "../transfer/core/drive-reads.js";
import type { ThroughputView } from "../transfer/core/throughput.js";
import type { Exec } from "./exec.js";
import type { MatchResult } from "./match.js";
import type { AttachedDrive } from "./model.js";
import type { MountMode } from "./mount.js";
import type { DriveWatcher } from "./watcher.js";

export type DockStatus =
  | "identifying"
  | "ready"
  | "transferring"
  | "paused"
  | "pulled"
  | "done"
  | "held"
  | "extra"
  | "unknown"
  | "failed"
  | "processed"
  | "conflict"
  | "error";

export interface DockedDrive {
  key: string;
  kind: AttachedDrive["kind"];
  device: string;
  size: number;
  serial?: string;
  fsType?: string;
  mountpoint?: string;
  mode?: MountMode;
  status: DockStatus;
  /** The copy-log drive status of a failure (ManifestCorrupted, VolumeNotNtfs …). */
  code?: DriveLogStatus;
  message: string;
  job?: JobKey;
  driveId?: string;
  jobType?: "Import" | "Export";
  manifestPath?: string;
  attachedAt: string;
  /** While transferring: bytes, speed and ETA, updated a few times a second; once done: time taken. */
  progress?: {
    bytesSucceeded: number;
    bytesTotal: number;
    bytesPerSecond: number;
    etaSeconds?: number;
    seconds?: number;
  };
  /** Bytes per second over the last minutes (the sparklines), kept across the drive's runs. */
  throughput?: ThroughputView;
}

export interface DockHooks {
  /** A matched drive is mounted and its job may proceed: the transfer engine takes it. */
  onReady?(drive: DockedDrive, match: Extract<MatchResult, { kind: "import" | "export" }>): void;
  /** The drive was pulled (or the dock stops): abort whatever runs on it. */
  onGone?(drive: DockedDrive): void;
}

export interface DockDeps {
  watcher: DriveWatcher;
  exec: Exec;
  service: JobService;
  notices: NoticeLog;
  log: Logger;
  clock: Clock;
  mountRoot: string;
  hooks?: DockHooks;
  /** True while a read under this mountpoint is hung in the kernel: the dock then leaves it mounted. */
  readsHungUnder?(mountpoint: string): boolean;
  /** Bounds the manifest reads of matching (a drive whose reads hang must not hold its slot for good). */
  readLimits?: ReadLimits;
}
