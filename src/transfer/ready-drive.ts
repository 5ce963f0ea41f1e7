/**
 * A drive ready to transfer, as the manager takes it: a plain value (job, drive, job type,
 * mountpoint, manifest) plus the view it reports status and progress to. The dock's record of a
 * drive is such a view; `readyDrive()` turns a docked, matched drive into this value.
 */
import type { DockedDrive } from "../drives/door.js";
import type { MatchResult } from "../drives/match.js";
import type { JobKey } from "../lifecycle/model.js";
import type { ProgressSnapshot } from "./core/progress.js";

export type DriveProgress = ProgressSnapshot & {
  /** Once finished: how long the copy took (bytesPerSecond is then its average). */
  seconds?: number;
};

/** What the manager reports about a drive while it runs (the dock's view of it satisfies this). */
export interface TransferView {
  status: DockedDrive["status"];
  message: string;
  code?: DockedDrive["code"];
  progress?: DriveProgress;
  throughput?: DockedDrive["throughput"];
}

/** A drive ready to transfer: matched to a job, mounted, past the door rules. */
export interface ReadyDrive {
  /** The dock's key of the drive (one run per key). */
  key: string;
  job: JobKey;
  driveId: string;
  jobType: "Import" | "Export";
  /** The data volume's mountpoint. */
  root: string;
  /** Import: the matched drive manifest. */
  manifestPath?: string;
  /** The data volume's file system (export plans capacity by it). */
  fsType?: string;
  view: TransferView;
}

/** The dock's ready drive as the manager's plain value (the view is the dock's own record). */
export function readyDrive(
  drive: DockedDrive,
  match: Extract<MatchResult, { kind: "import" | "export" }>,
): ReadyDrive {
  return {
    key: drive.key,
    job: drive.job!,
    driveId: drive.driveId!,
    jobType: match.kind === "import" ? "Import" : "Export",
    root: drive.mountpoint!,
    ...(match.kind === "import" ? { manifestPath: match.manifestPath } : {}),
    ...(drive.fsType ? { fsType: drive.fsType } : {}),
    view: drive,
  };
}
