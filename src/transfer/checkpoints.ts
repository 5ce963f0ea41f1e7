/**
 * Resume state of a drive transfer. One row per blob: `started` (its target name is ours; written
 * before the first byte of a multi-request blob goes out) or `done` (its copy-log entry).
 * Staged-but-uncommitted blocks are not recorded here: the blob service keeps them (the
 * uncommitted block list, 7 days) and is asked on resume, so a block costs no local write.
 */
import type { LogBlob } from "../formats/drive-log.js";

export interface BlobCheckpoint {
  blobIndex: number;
  state: "started" | "done";
  /** The blob name it goes to (after a rename). */
  target: string;
  /** Bytes of this blob that reached storage verified. */
  bytesSucceeded: number;
  log?: LogBlob;
}

export interface CheckpointStore {
  /** What a resumed run needs: finished blobs, bytes so far, targets of started blobs. */
  progress(
    job: string,
    driveId: string,
  ): Promise<{ done: Set<number>; started: Map<number, string>; bytesSucceeded: number }>;
  /** Finished blobs in manifest order, streamed (a drive may hold a million). */
  entries(job: string, driveId: string): AsyncIterable<BlobCheckpoint>;
  save(job: string, driveId: string, records: BlobCheckpoint[]): Promise<void>;
  clear(job: string, driveId: string): Promise<void>;
}
