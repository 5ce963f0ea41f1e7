/**
 * Checkpoint batching: finished blobs go to the store in one transaction per ~250 ms, not one per
 * blob (a drive of a million small files would otherwise spend its time in fsync). A record that
 * must be durable before the next request (a large blob's claimed target) is saved at once.
 */
import type { Logger } from "pino";
import type { BlobCheckpoint, CheckpointStore } from "../checkpoints.js";

export class CheckpointBatcher {
  private pending: BlobCheckpoint[] = [];
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: CheckpointStore,
    private readonly job: string,
    private readonly driveId: string,
    private readonly log: Logger,
    everyMs = 250,
  ) {
    this.timer = setInterval(() => void this.flush().catch(() => undefined), everyMs);
  }

  /** Queued for the next batch. */
  add(record: BlobCheckpoint): void {
    this.pending.push(record);
  }

  /** Saved now, before the caller goes on. */
  saveNow(records: BlobCheckpoint[]): Promise<void> {
    return this.store.save(this.job, this.driveId, records);
  }

  /** Writes what is queued. A failed batch goes back in the queue for the next flush. */
  flush(): Promise<void> {
    this.flushing = this.flushing
      .catch(() => undefined)
      .then(async () => {
        if (!this.pending.length) return;
        const batch = this.pending;
        this.pending = [];
        try {
          await this.store.save(this.job, this.driveId, batch);
        } catch (e) {
          this.pending = [...batch, ...this.pending];
          this.log.warn(
            { err: e, records: batch.length },
            "checkpoints not saved; retrying with the next batch",
          );
          throw e;
        }
      });
    return this.flushing;
  }

  /** Stops the timer and writes what is left (rejects when that final write fails). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
