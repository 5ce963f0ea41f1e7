/**
 * What the import of one drive shares between its blobs (the session), and the state of one blob
 * being imported (the task): its copy-log entry, open file, resume facts and byte count.
 */
import type { FileHandle } from "node:fs/promises";
import { cancelBlob, type LogBlob, type LogChunk } from "../../formats/drive-log.js";
import type { Chunk, ManifestBlob } from "../../formats/manifest.js";
import type { BlobStatus, ChunkStatus } from "../../formats/status.js";
import { type CredentialRefusal, classify } from "../../storage/blob-access.js";
import type { BlobPort, BlobRef } from "../../storage/blob-port.js";
import { type PipeOptions, pipeBlocks } from "../core/block-pipeline.js";
import type { CheckpointBatcher } from "../core/checkpoint-batch.js";
import type { DriveReads } from "../core/drive-reads.js";
import type { Retrying } from "../core/retry.js";
import type { DriveRun } from "../engine.js";

/** Chunk states that are not a failure of their own (a blob-level failure cancels them). */
const SETTLED: readonly ChunkStatus[] = ["Completed", "Uncommitted", "Committed", "Cancelled"];

/**
 * Whether storage holds this blob committed: every chunk Completed (a block blob is committed
 * only whole, a page blob copied into place only whole). A blob without chunks (skipped by its
 * disposition) landed nothing.
 */
export function heldCommitted(entry: LogBlob): boolean {
  // A blob-level failure after its chunks landed (a failed commit or copy) holds nothing either.
  if (entry.status !== "Completed" && entry.status !== "CompletedWithErrors") return false;
  return entry.chunks?.every((c) => c.status === "Completed") ?? false;
}

export interface ImportSession {
  run: DriveRun;
  port: BlobPort;
  retrying: Retrying;
  /** Creates a container once per drive. */
  ensureContainer(name: string): Promise<void>;
  batch: CheckpointBatcher;
  /** Every read of the drive's files, bounded by a timeout. */
  reads: DriveReads;
  /** From the checkpoints of earlier runs: finished blobs and the targets of started ones. */
  resume: { done: Set<number>; started: Map<number, string>; bytesSucceeded: number };
  /** Counts bytes sent to storage by this run. */
  sent(bytes: number): void;
  /** Set by the first request the account refused: every blob not yet done is refused without a request. */
  refusal?: CredentialRefusal;
  /** The refusal `e` means (recorded when it is the first), or undefined. */
  noteRefusal(e: unknown): CredentialRefusal | undefined;
}

/** The Content-MD5 of an existing blob, or undefined when the name is free. */
export async function existing(s: ImportSession, blob: BlobRef): Promise<{ md5?: string } | undefined> {
  try {
    const p = await s.retrying(`reading ${blob.container}/${blob.name}`, (sig) =>
      s.port.getProperties(blob, sig),
    );
    return p.contentMd5 ? { md5: p.contentMd5 } : {};
  } catch (e) {
    if (classify(e) === "not-found") return undefined;
    throw e;
  }
}

export class BlobTask {
  readonly entry: LogBlob;
  readonly chunkLog: LogChunk[];
  /** Bytes of this blob that reached storage verified (this run and, when skipped, before). */
  bytes = 0;
  /** The target claimed by an earlier run (a resume). */
  readonly startedTarget: string | undefined;
  /** An existing blob with this blob's exact bytes may be from an earlier run of ours. */
  readonly mayBeOurs: boolean;
  fh!: FileHandle;

  constructor(
    readonly session: ImportSession,
    readonly index: number,
    readonly blob: ManifestBlob,
  ) {
    this.chunkLog = blob.chunks.map((c) => ({
      offset: c.offset,
      length: c.length,
      hash: c.hash,
      status: "Cancelled",
      ...(c.id ? { id: c.id } : {}),
    }));
    this.entry = {
      status: "Completed",
      blobPath: blob.blobPath,
      filePath: blob.filePath,
      length: blob.length,
      disposition: { requested: blob.disposition, status: "Created" },
      kind: blob.kind,
      chunks: this.chunkLog,
    };
    this.startedTarget = session.resume.started.get(index);
    this.mayBeOurs = session.run.resuming || this.startedTarget !== undefined;
  }

  /** `bytes` of this blob landed verified. */
  landed(bytes: number): void {
    this.bytes += bytes;
    this.session.run.progress.add(bytes);
  }

  /** Every chunk is in its final place. */
  allCompleted(): void {
    for (const c of this.chunkLog) c.status = "Completed";
  }

  /** The blob is finished (whatever its status): its log entry goes to the next checkpoint batch. */
  finish(target: string, entry: LogBlob = this.entry, why?: string): void {
    // A pulled drive's files vanish before the abort lands (lazy unmount): never record that as the
    // blob's end, or the station it is plugged into next would skip it (fleet move test find).
    const { signal } = this.session.run;
    if (signal.aborted) throw signal.reason;
    if (!heldCommitted(entry) && this.bytes > 0) {
      // Staged blocks or written ranges of a blob storage does not hold committed are not bytes
      // succeeded: taken back from the drive's figures (issue 20 item 6).
      this.session.run.progress.add(-this.bytes);
      this.bytes = 0;
    }
    if (entry.status !== "Completed") {
      const bad = (entry.chunks ?? []).filter((c) => !SETTLED.includes(c.status));
      const corrupted = bad.filter((c) => c.status === "Corrupted").length;
      this.session.run.log.warn(
        { blob: entry.blobPath, file: entry.filePath, status: entry.status, corruptedBlocks: corrupted },
        `${entry.blobPath} failed (${entry.status}, ${corrupted} corrupted ${corrupted === 1 ? "block" : "blocks"}${bad.length > corrupted ? `, ${bad.length - corrupted} other bad` : ""})${why ? `: ${why}` : ""}`,
      );
    }
    this.session.batch.add({
      blobIndex: this.index,
      state: "done",
      target,
      bytesSucceeded: this.bytes,
      log: entry,
    });
  }

  fail(status: BlobStatus, message: string, target = this.blob.blobPath): void {
    // A cancellation (pull, stop) is never recorded as this blob's failure.
    if (this.session.run.signal.aborted) throw this.session.run.signal.reason;
    this.finish(target, cancelBlob(this.entry, status), message);
  }

  /**
   * The one read of the blob's chunks through the block pipeline: verified chunks go to `send`,
   * chunk statuses land in the log entry (`sentStatus` for sent and skipped ones), bytes in the
   * progress. Resolves true when a chunk was bad (corrupted or past the end of the file).
   */
  sendChunks(
    o: Pick<PipeOptions<Chunk>, "verified" | "skip" | "send" | "what"> & { sentStatus: ChunkStatus },
  ): Promise<boolean> {
    const { run } = this.session;
    return pipeBlocks(
      { ...run.pipeline, signal: run.signal, retrying: this.session.retrying },
      {
        ...o,
        chunks: this.blob.chunks,
        read: (offset, length, into) =>
          this.session.reads.read(this.fh, this.blob.filePath, offset, length, into),
        onChunk: (k, outcome, c) => {
          const log = this.chunkLog[k]!;
          if (outcome === "ended") log.status = "FileUnexpectedEnd";
          else if (outcome === "corrupted") log.status = "Corrupted";
          else {
            if (outcome === "sent") this.session.sent(c.length);
            log.status = o.sentStatus;
            this.landed(c.length);
          }
        },
      },
    );
  }

  /** Marks the blob written with errors (a bad chunk, a bad metadata file): never committed as complete. */
  withErrors(): void {
    this.entry.status = "CompletedWithErrors";
  }
}
