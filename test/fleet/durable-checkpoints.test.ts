/** Checkpoint writes that wait out a job-store outage, without a listener per waiting write on the stop signal. */
import { describe, expect, it } from "vitest";
import { StationError } from "../../src/errors.js";
import { durableCheckpoints } from "../../src/fleet/durable-checkpoints.js";
import type { StoreHealth } from "../../src/jobs/store.js";
import type { BlobCheckpoint, CheckpointStore } from "../../src/transfer/checkpoints.js";
import { captureLog } from "../support/log.js";

describe("durableCheckpoints", () => {
  it("many writes waiting for the store at once: all recorded when it answers, no MaxListeners warning", async () => {
    let up = false;
    const waiters: (() => void)[] = [];
    const saved: BlobCheckpoint[] = [];
    const inner = {
      save: async (_job: string, _drive: string, records: BlobCheckpoint[]) => {
        if (!up) throw new StationError("StoreUnavailable", "the job database is unreachable");
        saved.push(...records);
      },
    } as unknown as CheckpointStore;
    // Like the PostgreSQL store: a waiter adds an abort listener to the signal it is given.
    const health: StoreHealth = {
      healthy: () => up,
      whenHealthy: (signal) =>
        up
          ? Promise.resolve()
          : new Promise((resolve, reject) => {
              const abort = () => reject(signal?.reason);
              signal?.addEventListener("abort", abort, { once: true });
              waiters.push(() => {
                signal?.removeEventListener("abort", abort);
                resolve();
              });
            }),
    };
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const stopping = new AbortController();
      const checkpoints = durableCheckpoints(inner, health, stopping.signal, captureLog().log);
      const writes = Array.from({ length: 40 }, (_, i) =>
        checkpoints.save("job", "D1", [
          { blobIndex: i, state: "started", target: `t${i}`, bytesSucceeded: 0 },
        ]),
      );
      while (waiters.length < 40) await new Promise((r) => setImmediate(r));
      up = true;
      for (const w of waiters.splice(0)) w();
      await Promise.all(writes);
      expect(saved.map((r) => r.blobIndex).sort((a, b) => a - b)).toEqual([...Array(40).keys()]);
      await new Promise((r) => setImmediate(r));
      expect(warnings.map((w) => w.message)).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });
});
