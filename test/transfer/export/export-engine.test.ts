/**
 * Export as a DriveEngine on the shared core: admission (the safety rules, before any state
 * changes), the run's progress meter, the scheduler lane, the core's retries, and the figures the
 * manager records. The in-memory export source stands in for storage.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { KeyedLock } from "../../../src/jobs/keyed-lock.js";
import { InlineHashes } from "../../../src/transfer/core/hash-pool.js";
import { ProgressMeter, type ProgressSnapshot } from "../../../src/transfer/core/progress.js";
import { StorageOutage } from "../../../src/transfer/core/retry.js";
import { StationScheduler } from "../../../src/transfer/core/scheduler.js";
import type { DriveRun } from "../../../src/transfer/engine.js";
import { exportEngine } from "../../../src/transfer/export/export-engine.js";
import { MemoryExportStore } from "../../../src/transfer/export/store.js";
import { FakeExportSource } from "../../support/fake-export-source.js";
import { exportSpec, importJobIn } from "../../support/jobs.js";
import { captureLog } from "../../support/log.js";
import { useTempDir } from "../../support/tmp.js";

const MiB = 1024 * 1024;
const tmp = useTempDir();
const job = importJobIn("Received", exportSpec()); // an Export job, DRIVE-A and DRIVE-B checked in

function setup() {
  const source = new FakeExportSource();
  const store = new MemoryExportStore();
  const engine = exportEngine({
    store,
    lock: new KeyedLock(),
    sourceFor: () => source,
    hasher: new InlineHashes(),
  });
  return { source, store, engine };
}

function runOf(root: string, o: { retries?: string[]; signal?: AbortSignal } = {}) {
  let t = 0;
  const progress = new ProgressMeter({
    now: () => {
      t += 100;
      return new Date(t);
    },
  });
  const seen: ProgressSnapshot[] = [];
  progress.subscribe(0, (s) => seen.push(s));
  const lane = new StationScheduler(4, 4 * MiB, 6).lane();
  const run: DriveRun = {
    job,
    driveId: "DRIVE-A",
    root,
    resuming: false,
    portFor: () => {
      throw new Error("export reads through the station's own account access");
    },
    pipeline: { queue: lane.queue, pool: lane.pool, hashes: new InlineHashes() },
    blobConcurrency: 2,
    checkpoints: undefined as never, // export keeps its own store
    signal: o.signal ?? new AbortController().signal,
    log: captureLog().log,
    clock: { now: () => new Date("2026-11-23T10:00:00Z") },
    retry: { attempts: 3, baseMs: 1, maxMs: 2 },
    onRetry: (reason) => o.retries?.push(reason),
    progress,
  };
  return { run, seen };
}

describe("export engine (DriveEngine)", () => {
  it("admits an empty checked-in drive; holds one with data until confirmed, and a drive not checked in", async () => {
    const { store, engine } = setup();
    const empty = tmp();
    expect(await engine.admit!(job, { driveId: "DRIVE-A", root: empty })).toBeUndefined();
    const used = tmp();
    writeFileSync(join(used, "family-photos.txt"), "x");
    const hold = await engine.admit!(job, { driveId: "DRIVE-A", root: used });
    expect(hold).toMatchObject({ waits: true, notice: "ExportDriveNotEmpty" });
    expect(hold!.message).toContain("family-photos.txt");
    expect(hold!.message).toContain(`station confirm-export-drive ${job.name} DRIVE-A`);
    await store.confirm(`${job.subscriptionId}/${job.resourceGroup}/${job.name}`, "DRIVE-A", {
      by: "op",
      at: "2026-11-23T10:00:00Z",
    });
    expect(await engine.admit!(job, { driveId: "DRIVE-A", root: used })).toBeUndefined();
    const stranger = await engine.admit!(job, { driveId: "NOT-CHECKED-IN", root: empty });
    expect(stranger).toMatchObject({ waits: false });
    expect(stranger!.message).toContain("not a checked-in drive of an export job in progress");
  });

  it("runs on the lane and the run's progress meter, retrying through the core, and reports the manager's figures", async () => {
    const { source, engine } = setup();
    const blobs = { "cont/a.bin": randomBytes(9 * MiB), "cont/b.txt": randomBytes(1000) };
    for (const [name, data] of Object.entries(blobs)) source.put(name, data);
    let reads = 0;
    source.beforeRead = () => {
      if (++reads === 2) throw Object.assign(new Error("503 ServerBusy"), { statusCode: 503 });
    };
    const root = tmp();
    const retries: string[] = [];
    const { run, seen } = runOf(root, { retries });
    const r = await engine(run);
    expect(r.status).toBe("Completed");
    expect(r.blobs).toBe(2);
    expect(r.bytesSucceeded).toBe(9 * MiB + 1000);
    expect(r.bytesTransferred).toBe(9 * MiB + 1000);
    expect(r.manifestFile).toBe("\\DRIVE-A.manifest");
    expect(r.manifestHash).toMatch(/^[0-9A-F]{32}$/);
    expect(r.details).toMatchObject({ ordinal: 1, bytesWritten: 9 * MiB + 1000, chunksRewritten: 0 });
    expect(retries).toEqual(["503"]);
    // The meter started at what earlier runs wrote (nothing) and ends at the total.
    expect(seen[0]).toMatchObject({ bytesSucceeded: 0, bytesTotal: 9 * MiB + 1000 });
    expect(seen.at(-1)).toMatchObject({ bytesSucceeded: 9 * MiB + 1000, bytesTotal: 9 * MiB + 1000 });
    expect(readFileSync(join(root, "cont", "a.bin")).equals(blobs["cont/a.bin"])).toBe(true);
  });

  it("storage that stays down ends in the core's StorageOutage (the manager pauses and retries)", async () => {
    const { source, engine } = setup();
    source.put("cont/a.bin", randomBytes(1000));
    source.beforeRead = () => {
      throw Object.assign(new Error("503 ServerBusy"), { statusCode: 503 });
    };
    await expect(engine(runOf(tmp()).run)).rejects.toBeInstanceOf(StorageOutage);
  });
});
