/**
 * Import engines of several drives on one station scheduler, against the in-memory blob port: a
 * drive whose storage stalls or keeps failing does not hold back another drive; a busy import
 * does not pile listeners on its drive's signal (no MaxListenersExceededWarning).
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { StationError } from "../../src/errors.js";
import { systemClock } from "../../src/jobs/service.js";
import { SqliteStore } from "../../src/jobs/sqlite-store.js";
import { createJob } from "../../src/lifecycle/machine.js";
import { InlineHashes } from "../../src/transfer/core/hash-pool.js";
import { ProgressMeter } from "../../src/transfer/core/progress.js";
import type { RetryPolicy } from "../../src/transfer/core/retry.js";
import { type DriveLane, StationScheduler } from "../../src/transfer/core/scheduler.js";
import type { DriveRun } from "../../src/transfer/engine.js";
import { importDrive } from "../../src/transfer/import/engine.js";
import { UNTIL_HANG } from "../support/deadline.js";
import { FakeBlobPort, storageError } from "../support/fake-blob-port.js";
import { actor, importSpec, key, T0 } from "../support/jobs.js";
import { captureLog } from "../support/log.js";
import { preparedDir } from "../support/prepared-dir.js";
import { useTempDir } from "../support/tmp.js";

const MiB = 1024 * 1024;
const tmp = useTempDir();
const job = createJob(key, importSpec(), undefined, T0, actor);

async function drive(driveId: string, files: Record<string, Buffer>) {
  const { root, manifestPath } = await preparedDir({ root: tmp(), src: tmp() }, files, {
    driveId,
    sessionId: `session-${driveId}`,
    destination: `${driveId.toLowerCase()}/`,
  });
  return {
    driveId,
    root,
    manifestPath,
    store: new SqliteStore(join(tmp(), "db")),
  };
}

function runOf(
  d: Awaited<ReturnType<typeof drive>>,
  port: FakeBlobPort,
  lane: DriveLane,
  o: { signal?: AbortSignal; retry?: RetryPolicy; blobConcurrency?: number } = {},
): DriveRun {
  return {
    job,
    driveId: d.driveId,
    root: d.root,
    manifestPath: d.manifestPath,
    resuming: false,
    portFor: () => port,
    pipeline: { queue: lane.queue, pool: lane.pool, hashes: new InlineHashes() },
    blobConcurrency: o.blobConcurrency ?? 4,
    checkpoints: d.store,
    signal: o.signal ?? new AbortController().signal,
    log: captureLog().log,
    clock: systemClock,
    retry: o.retry ?? { attempts: 2, baseMs: 1, maxMs: 2 },
    progress: new ProgressMeter(systemClock),
  };
}

const files = (n: number, size: number) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}.bin`, randomBytes(size)]));

/** Holds every body request of a port until the test lets one through (`tick`) or all (`open`). */
function stalled(port: FakeBlobPort) {
  const gates: (() => void)[] = [];
  let stalling = true;
  const inner = port.stageBlock.bind(port);
  port.stageBlock = async (...args: Parameters<FakeBlobPort["stageBlock"]>) => {
    if (stalling) await new Promise<void>((r) => gates.push(r));
    return inner(...args);
  };
  return {
    get waiting() {
      return gates.length;
    },
    tick: () => gates.shift()?.(),
    open: () => {
      stalling = false;
      for (const g of gates.splice(0)) g();
    },
  };
}

describe("drives on one station scheduler", () => {
  it("a drive whose storage stalls holds at most its share: the other drive completes while it is stalled", async () => {
    const sched = new StationScheduler(4, 4 * MiB, 6);
    const slowDrive = await drive("SLOW", files(3, 12 * MiB));
    const fastDrive = await drive("FAST", files(3, 12 * MiB));
    const slowPort = new FakeBlobPort();
    const gate = stalled(slowPort);
    const slow = importDrive(runOf(slowDrive, slowPort, sched.lane()));
    // The slow drive started first: every slot holds one of its requests, and they hang.
    await vi.waitFor(() => expect(gate.waiting).toBe(4), { timeout: 20_000 });
    const fastPort = new FakeBlobPort();
    let fastDone = false;
    const fastLane = sched.lane();
    let fastAsked = 0;
    const acquire = fastLane.pool.acquire;
    fastLane.pool.acquire = () => {
      fastAsked++;
      return acquire();
    };
    const fast = importDrive(runOf(fastDrive, fastPort, fastLane)).finally(() => {
      fastDone = true;
    });
    // Nothing is taken back from a request in flight: once the fast drive waits for buffers, two of
    // the stalled requests end, and from then on the slow drive takes no more than its share.
    await vi.waitFor(() => expect(fastAsked).toBeGreaterThan(0), { timeout: 20_000 });
    gate.tick();
    gate.tick();
    await vi.waitFor(() => expect(fastDone).toBe(true), { timeout: 20_000 });
    const r = await fast;
    expect(r.status).toBe("Completed");
    expect(fastPort.bytesReceived).toBe(36 * MiB);
    expect(gate.waiting).toBeGreaterThanOrEqual(2); // the slow drive is still stalled
    gate.open();
    expect((await slow).status).toBe("Completed");
    expect(slowPort.bytesReceived).toBe(36 * MiB);
  });

  it("a drive whose storage keeps failing retries without holding slots: the other drive completes meanwhile", async () => {
    const sched = new StationScheduler(4, 4 * MiB, 6);
    const slowDrive = await drive("SLOW", files(3, 12 * MiB));
    const fastDrive = await drive("FAST", files(3, 12 * MiB));
    const slowPort = new FakeBlobPort();
    let failing = true;
    let failures = 0;
    slowPort.fault = (op) => {
      if (failing && op === "stageBlock") {
        failures++;
        throw storageError(503, "ServerBusy");
      }
    };
    const retry = { attempts: 100_000, baseMs: 1, maxMs: 5 };
    const slow = importDrive(runOf(slowDrive, slowPort, sched.lane(), { retry }));
    await vi.waitFor(() => expect(failures).toBeGreaterThan(8), { timeout: 20_000 });
    const fastPort = new FakeBlobPort();
    const r = await importDrive(runOf(fastDrive, fastPort, sched.lane()));
    expect(r.status).toBe("Completed");
    expect(fastPort.bytesReceived).toBe(36 * MiB);
    expect(slowPort.bytesReceived).toBe(0); // still retrying while the fast drive finished
    failing = false;
    expect((await slow).status).toBe("Completed");
    expect(slowPort.bytesReceived).toBe(36 * MiB);
  });

  it("a busy import (many requests and retries in flight) adds no listener pile to its drive's signal", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const sched = new StationScheduler(32, 4 * MiB, 48);
      const d = await drive("BUSY", files(64, MiB));
      const port = new FakeBlobPort();
      let calls = 0;
      const failedOnce = new Set<string>();
      port.fault = (op, blob) => {
        // Every third body request fails, each blob once: retries (and their sleeps) are in flight
        // too, and no blob can run out of attempts (a global count let one fail 5 times in a row).
        if (op !== "stageBlock" && op !== "putBlob") return;
        const name = `${blob?.container}/${blob?.name}`;
        if (++calls % 3 === 0 && !failedOnce.has(name)) {
          failedOnce.add(name);
          throw storageError(503, "ServerBusy");
        }
      };
      const signal = new AbortController().signal;
      const r = await importDrive(
        runOf(d, port, sched.lane(signal), {
          signal,
          blobConcurrency: 32,
          retry: { attempts: 5, baseMs: 1, maxMs: 4 },
        }),
      );
      expect(r.status).toBe("Completed");
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(warnings.map((w) => `${w.name}: ${w.message}`)).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("a drive pulled mid-import rejects nothing unhandled: every promise has an owner", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const sched = new StationScheduler(8, 4 * MiB, 12);
      const d = await drive("PULL", {
        ...files(6, 9 * MiB),
        ...Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`s${i}.txt`, randomBytes(3000)])),
      });
      const port = new FakeBlobPort();
      const pull = new AbortController();
      let bodies = 0;
      port.fault = async (op) => {
        if (op !== "stageBlock" && op !== "putBlob") return;
        if (++bodies === 12)
          pull.abort(new StationError("Cancelled", "the drive was pulled", { target: "pulled" }));
        await new Promise((r) => setTimeout(r, 2));
      };
      const lane = sched.lane(pull.signal);
      await expect(
        importDrive(runOf(d, port, lane, { signal: pull.signal, blobConcurrency: 8 })),
      ).rejects.toThrow("the drive was pulled");
      lane.close();
      // Whatever was left in flight settles, however slowly; none of it may go unhandled.
      await vi.waitFor(() => {
        expect(sched.depth()).toEqual({ queued: 0, inFlight: 0 });
        expect(sched.buffersInUse).toBe(0);
      }, UNTIL_HANG);
      // Node reports an unhandled rejection at the end of the turn it happened in: give it one.
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});
