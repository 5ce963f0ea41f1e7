/**
 * Checkpoint writes that survive a job-store outage: a save that finds the store unreachable
 * waits until it answers again (backoff) and then records the checkpoint, so a blob committed
 * just before the outage still gets its checkpoint afterwards. Only stopping the station gives
 * up (the committed blob is then recognised on resume by its Content-MD5).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { isStationError } from "../errors.js";
import type { StoreHealth } from "../jobs/store.js";
import type { CheckpointStore } from "../transfer/checkpoints.js";
import { SignalFanout } from "../transfer/core/retry.js";

export const isStoreDown = (e: unknown): boolean => isStationError(e) && e.code === "StoreUnavailable";

export function durableCheckpoints(
  inner: CheckpointStore,
  health: StoreHealth,
  stopping: AbortSignal,
  log: Logger,
): CheckpointStore {
  // Every blob of every drive may wait here at once: one listener on `stopping`, fanned out.
  const fanout = new SignalFanout(stopping);
  const retrying = async <T>(what: string, op: () => Promise<T>): Promise<T> => {
    let delay = 200;
    for (let attempt = 1; ; attempt++) {
      try {
        return await op();
      } catch (e) {
        if (!isStoreDown(e) || stopping.aborted) throw e;
        if (attempt === 1) log.warn({ what }, "job store unreachable: checkpoint write waits for it");
        await fanout.run((s) => health.whenHealthy(s));
        await fanout.run((s) => sleep(delay, undefined, { signal: s }));
        delay = Math.min(5000, delay * 2);
      }
    }
  };
  return {
    progress: (job, driveId) => retrying("reading checkpoints", () => inner.progress(job, driveId)),
    entries: (job, driveId) => inner.entries(job, driveId),
    save: (job, driveId, records) => retrying("saving checkpoints", () => inner.save(job, driveId, records)),
    clear: (job, driveId) => retrying("clearing checkpoints", () => inner.clear(job, driveId)),
  };
}
