/** The shared transfer core: the progress meter on an injected clock, retry vs cancellation, checkpoint batches. */
import { describe, expect, it } from "vitest";
import type { BlobCheckpoint, CheckpointStore } from "../../src/transfer/checkpoints.js";
import { CheckpointBatcher } from "../../src/transfer/core/checkpoint-batch.js";
import { ProgressMeter, type ProgressSnapshot } from "../../src/transfer/core/progress.js";
import { backoffMs, retrier, StorageOutage } from "../../src/transfer/core/retry.js";
import { storageError } from "../support/fake-blob-port.js";
import { captureLog } from "../support/log.js";

describe("ProgressMeter", () => {
  it("publishes to each subscriber at its own cadence on the injected clock, with speed and ETA", () => {
    let t = 0;
    const meter = new ProgressMeter({ now: () => new Date(t) });
    const fast: ProgressSnapshot[] = [];
    const slow: ProgressSnapshot[] = [];
    meter.subscribe(200, (s) => fast.push(s));
    meter.subscribe(2000, (s) => slow.push(s));
    meter.start(10_000, 1000);
    expect(fast).toHaveLength(1);
    expect(slow).toHaveLength(1);
    meter.add(100); // same instant: throttled
    expect(fast).toHaveLength(1);
    t = 1000;
    meter.add(900); // 2000 of 10000, 1000 bytes in 1 s
    expect(fast).toHaveLength(2);
    expect(slow).toHaveLength(1);
    expect(fast[1]).toEqual({
      bytesSucceeded: 2000,
      bytesTotal: 10_000,
      bytesPerSecond: 1000,
      etaSeconds: 8,
    });
    t = 2000;
    meter.add(1000);
    expect(slow).toHaveLength(2);
    meter.publish(); // the end of a run reaches everyone at once
    expect(fast).toHaveLength(4);
    expect(slow).toHaveLength(3);
    expect(meter.snapshot().bytesSucceeded).toBe(3000);
  });
});

describe("retrier", () => {
  const policy = { attempts: 3, baseMs: 1, maxMs: 4 };

  it("retries retryable failures with backoff, then ends in StorageOutage", async () => {
    const log = captureLog();
    let calls = 0;
    const run = retrier({ signal: new AbortController().signal, policy, log: log.log });
    await expect(
      run("writing x", async () => {
        calls++;
        throw storageError(503, "ServerBusy");
      }),
    ).rejects.toBeInstanceOf(StorageOutage);
    expect(calls).toBe(3);
    expect(log.lines().filter((l) => l.msg === "storage request failed; retrying")).toHaveLength(2);
  });

  it("a permanent failure is not retried", async () => {
    let calls = 0;
    const run = retrier({ signal: new AbortController().signal, policy, log: captureLog().log });
    await expect(
      run("x", async () => {
        calls++;
        throw storageError(400, "InvalidBlockList");
      }),
    ).rejects.toMatchObject({ statusCode: 400 });
    expect(calls).toBe(1);
  });

  it("an abort is a cancellation: the signal's reason, no retry, no warning; each call gets a child signal", async () => {
    const log = captureLog();
    const controller = new AbortController();
    const run = retrier({ signal: controller.signal, policy, log: log.log });
    let seen: AbortSignal | undefined;
    const p = run("x", (s) => {
      seen = s;
      return new Promise((_, reject) =>
        s.addEventListener("abort", () => reject(storageError(0, "aborted"))),
      );
    });
    controller.abort(new Error("the drive was removed"));
    await expect(p).rejects.toThrow("the drive was removed");
    expect(seen).not.toBe(controller.signal);
    expect(seen?.aborted).toBe(true);
    expect(log.lines()).toEqual([]);
  });

  it("backoff is exponential, capped, with jitter between half and all of it", () => {
    expect(backoffMs({ attempts: 9, baseMs: 100, maxMs: 1000 }, 1, () => 0)).toBe(50);
    expect(backoffMs({ attempts: 9, baseMs: 100, maxMs: 1000 }, 3, () => 1)).toBe(400);
    expect(backoffMs({ attempts: 9, baseMs: 100, maxMs: 1000 }, 9, () => 1)).toBe(1000);
  });
});

describe("CheckpointBatcher", () => {
  it("saves queued records in one batch, and a failed batch is saved with the next", async () => {
    const saved: BlobCheckpoint[][] = [];
    let fail = true;
    const store = {
      save: async (_j: string, _d: string, records: BlobCheckpoint[]) => {
        if (fail) throw new Error("disk full");
        saved.push(records);
      },
    } as unknown as CheckpointStore;
    const batch = new CheckpointBatcher(store, "job", "D1", captureLog().log, 60_000);
    const rec = (i: number): BlobCheckpoint => ({
      blobIndex: i,
      state: "done",
      target: `b${i}`,
      bytesSucceeded: 1,
    });
    batch.add(rec(0));
    batch.add(rec(1));
    await expect(batch.flush()).rejects.toThrow("disk full");
    fail = false;
    batch.add(rec(2));
    await batch.close();
    expect(saved).toEqual([[rec(0), rec(1), rec(2)]]);
  });
});
