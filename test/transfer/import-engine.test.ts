/**
 * The import engine against the in-memory blob port: verification, resume and dispositions
 * without Azurite or loop devices. The staged tests run the same engine against real drives and
 * a real Azurite.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import PQueue from "p-queue";
import { afterAll, describe, expect, it } from "vitest";
import { systemClock } from "../../src/jobs/service.js";
import { SqliteStore } from "../../src/jobs/sqlite-store.js";
import { createJob } from "../../src/lifecycle/machine.js";
import { BufferPool } from "../../src/transfer/core/buffer-pool.js";
import { readAt } from "../../src/transfer/core/drive-files.js";
import type { FileReader, ReadLimits } from "../../src/transfer/core/drive-reads.js";
import { HashPool } from "../../src/transfer/core/hash-pool.js";
import { ProgressMeter } from "../../src/transfer/core/progress.js";
import type { DriveRun } from "../../src/transfer/engine.js";
import { importDrive } from "../../src/transfer/import/engine.js";
import { FakeBlobPort, storageError } from "../support/fake-blob-port.js";
import { actor, importSpec, key, T0 } from "../support/jobs.js";
import { captureLog } from "../support/log.js";
import { preparedDir } from "../support/prepared-dir.js";
import { useTempDir } from "../support/tmp.js";

const MiB = 1024 * 1024;
const tmp = useTempDir();
const md5b64 = (b: Buffer) => createHash("md5").update(b).digest("base64");
const job = createJob(key, importSpec(), undefined, T0, actor);
// Every import here hashes on real threads, as the agent does.
const hashes = new HashPool({ threads: 2 });
afterAll(() => hashes.close());

interface Drive {
  root: string;
  manifestPath: string;
  store: SqliteStore;
}

async function drive(
  files: Record<string, Buffer>,
  o: { blobType?: "BlockBlob" | "PageBlob"; disposition?: "rename" | "no-overwrite" | "overwrite" } = {},
): Promise<Drive> {
  const { root, manifestPath } = await preparedDir({ root: tmp(), src: tmp() }, files, {
    ...(o.blobType ? { blobType: o.blobType } : {}),
    ...(o.disposition ? { disposition: o.disposition } : {}),
  });
  return {
    root,
    manifestPath,
    store: new SqliteStore(join(tmp(), "db.sqlite")),
  };
}

function runOf(
  port: FakeBlobPort,
  d: Drive,
  o: { resuming?: boolean; signal?: AbortSignal; readLimits?: ReadLimits } = {},
) {
  const log = captureLog();
  const progress = new ProgressMeter(systemClock);
  const run: DriveRun = {
    job,
    driveId: "DRIVE-1",
    root: d.root,
    manifestPath: d.manifestPath,
    resuming: o.resuming ?? false,
    portFor: () => port,
    pipeline: { queue: new PQueue({ concurrency: 4 }), pool: new BufferPool(4 * MiB, 6), hashes },
    blobConcurrency: 4,
    checkpoints: d.store,
    signal: o.signal ?? new AbortController().signal,
    log: log.log,
    clock: systemClock,
    retry: { attempts: 2, baseMs: 1, maxMs: 2 },
    progress,
    ...(o.readLimits ? { readLimits: o.readLimits } : {}),
  };
  return { run, log, progress };
}

async function logEntries(d: Drive) {
  const out = [];
  for await (const c of d.store.entries(job.name, "DRIVE-1")) out.push(c.log!);
  return out;
}

describe("import engine (in-memory storage)", () => {
  // A reader whose reads of one file never complete, as on a failing disk or a hung FUSE mount.
  const hangingOn =
    (...hung: string[]): FileReader =>
    (fh, offset, length, into, filePath) =>
      hung.some((h) => filePath.endsWith(h))
        ? new Promise<Buffer>(() => {})
        : readAt(fh, offset, length, into);

  it("a manifest whose reads hang ends the drive ReadManifestFailed, before any request", async () => {
    const d = await drive({ "a.bin": randomBytes(1000) });
    const port = new FakeBlobPort();
    const manifestName = d.manifestPath.split("/").pop()!;
    const readLimits = { timeoutMs: 200, hungLimit: 3, reader: hangingOn(manifestName) };
    const failure = await importDrive(runOf(port, d, { readLimits }).run).catch((e: unknown) => e);
    expect(failure).toMatchObject({ name: "ManifestError", status: "ReadManifestFailed" });
    expect((failure as Error).message).toMatch(
      /DRIVE-1 .*reading the manifest failed .*did not complete within 200 ms/,
    );
    expect(port.requests).toEqual([]);
  });

  it("a read that hangs ends that blob IOFailed, uncommitted; the others complete", async () => {
    const files = {
      "a.bin": randomBytes(1000),
      "hang.bin": randomBytes(6 * MiB),
      "c.bin": randomBytes(5 * MiB),
    };
    const d = await drive(files);
    const port = new FakeBlobPort();
    // Long enough that no honest open or read of a loaded test machine hits it.
    const readLimits = { timeoutMs: 1000, hungLimit: 3, reader: hangingOn("hang.bin") };
    const result = await importDrive(runOf(port, d, { readLimits }).run);
    expect(result.status).toBe("CompletedWithErrors");
    expect(port.data("data", "hang.bin")).toBeUndefined();
    expect(port.requests.some((r) => r.includes("hang.bin") && r.startsWith("commitBlockList"))).toBe(false);
    for (const name of ["a.bin", "c.bin"])
      expect(port.data("data", name)?.equals(files[name as "a.bin"])).toBe(true);
    const entries = await logEntries(d);
    const byPath = new Map(entries.map((e) => [e.blobPath, e.status]));
    expect(byPath.get("data/hang.bin")).toBe("IOFailed");
    expect(byPath.get("data/a.bin")).toBe("Completed");
    expect(byPath.get("data/c.bin")).toBe("Completed");
  });

  it("after hungLimit hung reads a drive gets no more reads: the rest end IOFailed", async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 6; i++) files[`f${i}.bin`] = randomBytes(2000);
    const d = await drive(files);
    const port = new FakeBlobPort();
    const reads: string[] = [];
    const base = hangingOn(".bin");
    const reader: FileReader = (fh, offset, length, into, filePath) => {
      reads.push(filePath);
      return base(fh, offset, length, into, filePath);
    };
    const run = runOf(port, d, { readLimits: { timeoutMs: 300, hungLimit: 2, reader } }).run;
    run.blobConcurrency = 1;
    const result = await importDrive(run);
    expect(result.status).toBe("CompletedWithErrors");
    // No blob read scheduled after the second hang (the manifest is read through the same bound).
    expect(reads.filter((f) => f.endsWith(".bin"))).toHaveLength(2);
    const entries = await logEntries(d);
    expect(entries).toHaveLength(6);
    expect(entries.every((e) => e.status === "IOFailed")).toBe(true);
    expect(port.requests.filter((r) => r.startsWith("putBlob") || r.startsWith("commitBlockList"))).toEqual(
      [],
    );
  });

  it("imports block and page blobs byte for byte, each with a whole-blob Content-MD5", async () => {
    const files = {
      "small.txt": randomBytes(1000),
      "large.bin": randomBytes(9 * MiB + 17),
      "empty.bin": Buffer.alloc(0),
    };
    const d = await drive(files);
    const port = new FakeBlobPort();
    const { run, progress } = runOf(port, d);
    const result = await importDrive(run);
    expect(result.status).toBe("Completed");
    expect(result.bytesSucceeded).toBe(result.bytesTotal);
    expect(progress.snapshot().bytesSucceeded).toBe(result.bytesTotal);
    for (const [name, data] of Object.entries(files)) {
      expect(port.data("data", name)?.equals(data), name).toBe(true);
      expect(port.contentMd5("data", name), name).toBe(md5b64(data));
    }
    // Nothing sent twice: the bytes received are the files' bytes.
    expect(port.bytesReceived).toBe(Object.values(files).reduce((s, b) => s + b.length, 0));
  });

  it("a corrupted block never commits; its good blocks stay uncommitted and the log says Corrupted", async () => {
    const data = randomBytes(10 * MiB);
    const d = await drive({ "big.bin": data });
    const path = join(d.root, "session1", "big.bin");
    const onDrive = readFileSync(path);
    onDrive[5 * MiB] = onDrive[5 * MiB]! ^ 0xff; // in the second 4 MiB block
    writeFileSync(path, onDrive);
    const port = new FakeBlobPort();
    const result = await importDrive(runOf(port, d).run);
    expect(result.status).toBe("CompletedWithErrors");
    expect(port.data("data", "big.bin")).toBeUndefined();
    expect(port.requests.some((r) => r.startsWith("commitBlockList"))).toBe(false);
    const [entry] = await logEntries(d);
    expect(entry!.status).toBe("CompletedWithErrors");
    expect(entry!.chunks!.map((c) => c.status)).toEqual(["Uncommitted", "Corrupted", "Uncommitted"]);
    expect(port.staged.get("data/big.bin")?.size).toBe(2);
    expect(result.errorLogUri).toMatch(/^http:\/\/fake\.invalid\//);
  });

  it("bytesSucceeded counts only committed blobs; each failed blob is one warning with its corrupted blocks", async () => {
    const good = randomBytes(3 * MiB);
    const d = await drive({
      "big.bin": randomBytes(10 * MiB),
      "good.bin": good,
      "gone.bin": randomBytes(5 * MiB),
    });
    const path = join(d.root, "session1", "big.bin");
    const onDrive = readFileSync(path);
    onDrive[5 * MiB] = onDrive[5 * MiB]! ^ 0xff; // the second of three blocks
    writeFileSync(path, onDrive);
    truncateSync(join(d.root, "session1", "gone.bin"), 1 * MiB); // ends inside its first block
    const port = new FakeBlobPort();
    const { run, log, progress } = runOf(port, d);
    const result = await importDrive(run);
    expect(result.status).toBe("CompletedWithErrors");
    // Two good blocks of big.bin were staged, but storage holds only good.bin committed.
    expect(port.staged.get("data/big.bin")?.size).toBe(2);
    expect(result.bytesSucceeded).toBe(good.length);
    expect(progress.snapshot().bytesSucceeded).toBe(good.length);
    const warnings = log.lines().filter((l) => l.level === 40);
    expect(warnings.map((w) => [w.blob, w.status, w.corruptedBlocks])).toEqual(
      expect.arrayContaining([
        ["data/big.bin", "CompletedWithErrors", 1],
        ["data/gone.bin", "CompletedWithErrors", 0],
      ]),
    );
    expect(warnings.filter((w) => w.blob === "data/big.bin")).toHaveLength(1);
    expect(warnings.filter((w) => w.blob === "data/gone.bin")).toHaveLength(1);
    // The log names every block's ID, so a repair can stage the missing ones under it.
    const entries = await logEntries(d);
    const big = entries.find((e) => e.blobPath === "data/big.bin")!;
    expect(big.chunks!.every((c) => typeof c.id === "string" && c.id.length > 0)).toBe(true);
    expect(new Set(big.chunks!.map((c) => c.id)).size).toBe(3);
  });

  it("a resumed blob skips the blocks already staged and sends only the rest", async () => {
    const data = randomBytes(20 * MiB);
    const d = await drive({ "big.bin": data });
    const port = new FakeBlobPort();
    // The first run is cut off (the drive pulled) after three blocks landed.
    const controller = new AbortController();
    let staged = 0;
    port.fault = (op) => {
      if (op === "stageBlock" && ++staged > 3) {
        controller.abort(new Error("the drive was removed"));
        throw controller.signal.reason;
      }
    };
    await expect(importDrive(runOf(port, d, { signal: controller.signal }).run)).rejects.toThrow(
      "the drive was removed",
    );
    expect(port.data("data", "big.bin")).toBeUndefined();
    const landed = [...(port.staged.get("data/big.bin")?.values() ?? [])].reduce((s, b) => s + b.length, 0);
    expect(landed).toBe(3 * 4 * MiB);

    port.fault = () => undefined;
    port.bytesReceived = 0;
    const result = await importDrive(runOf(port, d, { resuming: true }).run);
    expect(result.status).toBe("Completed");
    expect(port.bytesReceived).toBe(data.length - landed);
    expect(result.bytesTransferred).toBe(data.length - landed);
    expect(port.data("data", "big.bin")?.equals(data)).toBe(true);
    expect(port.contentMd5("data", "big.bin")).toBe(md5b64(data));
  });

  it("a page blob lands with a whole-blob Content-MD5 (zeros between its ranges included)", async () => {
    const data = Buffer.alloc(12 * MiB);
    randomBytes(MiB).copy(data, 0);
    randomBytes(3 * MiB).copy(data, 8 * MiB); // a zero gap between, and zeros at the end
    const d = await drive({ "disk.vhd": data }, { blobType: "PageBlob" });
    const port = new FakeBlobPort();
    const result = await importDrive(runOf(port, d).run);
    expect(result.status).toBe("Completed");
    expect(port.data("data", "disk.vhd")?.equals(data)).toBe(true);
    expect(port.contentMd5("data", "disk.vhd")).toBe(md5b64(data));
    expect(port.data("data", "disk.vhd.drive-station-partial")).toBeUndefined();
    expect(port.bytesReceived).toBeLessThan(data.length); // the zero ranges are not sent
  });

  it("a page blob killed after its copy into place, before the partial was removed, is found done on resume", async () => {
    const data = randomBytes(9 * MiB);
    const d = await drive({ "disk.vhd": data }, { blobType: "PageBlob" });
    const port = new FakeBlobPort();
    const controller = new AbortController();
    // The copy lands; the crash comes at the next request (the check of the final blob).
    let copied = false;
    port.fault = (op, b) => {
      if (op === "copyBlob") copied = true;
      else if (copied && op === "getProperties" && b?.name === "disk.vhd") {
        controller.abort(new Error("kill -9"));
        throw controller.signal.reason;
      }
    };
    await expect(importDrive(runOf(port, d, { signal: controller.signal }).run)).rejects.toThrow("kill -9");
    expect(port.data("data", "disk.vhd")?.equals(data)).toBe(true);
    expect(port.data("data", "disk.vhd.drive-station-partial")).toBeDefined();

    port.fault = () => undefined;
    port.bytesReceived = 0;
    const result = await importDrive(runOf(port, d, { resuming: true }).run);
    expect(result.status).toBe("Completed"); // it was RenameFailed: "the name was taken"
    expect(port.bytesReceived).toBe(0);
    expect(port.data("data", "disk.vhd")?.equals(data)).toBe(true);
    expect(port.contentMd5("data", "disk.vhd")).toBe(md5b64(data));
    expect(port.data("data", "disk.vhd.drive-station-partial")).toBeUndefined();
  });

  it("a resumed page blob sends only the ranges its partial blob lacks; a corrupted range never reaches the final name", async () => {
    const data = randomBytes(20 * MiB);
    const d = await drive({ "disk.vhd": data }, { blobType: "PageBlob" });
    const port = new FakeBlobPort();
    const controller = new AbortController();
    let ranges = 0;
    port.fault = (op) => {
      if (op === "putPages" && ++ranges > 2) {
        controller.abort(new Error("the drive was removed"));
        throw controller.signal.reason;
      }
    };
    await expect(importDrive(runOf(port, d, { signal: controller.signal }).run)).rejects.toThrow(
      "the drive was removed",
    );
    expect(port.data("data", "disk.vhd")).toBeUndefined();
    const partial = await port.getPageRanges(
      { container: "data", name: "disk.vhd.drive-station-partial" },
      new AbortController().signal,
    );
    const landed = partial.reduce((s, r) => s + r.length, 0);
    expect(landed).toBe(2 * 4 * MiB);

    port.fault = () => undefined;
    port.bytesReceived = 0;
    const result = await importDrive(runOf(port, d, { resuming: true }).run);
    expect(result.status).toBe("Completed");
    expect(port.bytesReceived).toBe(data.length - landed);
    expect(port.data("data", "disk.vhd")?.equals(data)).toBe(true);
    expect(port.contentMd5("data", "disk.vhd")).toBe(md5b64(data));
    expect(port.data("data", "disk.vhd.drive-station-partial")).toBeUndefined();

    // Corrupt one range on the drive: a fresh import of it leaves nothing under the final name.
    const bad = await drive({ "disk.vhd": data }, { blobType: "PageBlob" });
    const path = join(bad.root, "session1", "disk.vhd");
    const onDrive = readFileSync(path);
    onDrive[9 * MiB] = onDrive[9 * MiB]! ^ 1;
    writeFileSync(path, onDrive);
    const other = new FakeBlobPort();
    expect((await importDrive(runOf(other, bad).run)).status).toBe("CompletedWithErrors");
    expect(other.blobs.size).toBe(1); // only the error log
  });

  it("rename: an existing blob keeps its bytes, the import goes to `name (2)`, small and large alike", async () => {
    const files = { "a.txt": randomBytes(100), "b.bin": randomBytes(6 * MiB) };
    const d = await drive(files);
    const port = new FakeBlobPort();
    port.containers.add("data");
    const theirs = Buffer.from("someone else's");
    const put = { headers: {}, metadata: {}, conditions: {} };
    const sig = new AbortController().signal;
    await port.putBlob({ container: "data", name: "a.txt" }, theirs, put, sig);
    await port.putBlob({ container: "data", name: "b.bin" }, theirs, put, sig);
    const result = await importDrive(runOf(port, d).run);
    expect(result.status).toBe("CompletedWithWarnings"); // a rename is a warning
    expect(port.data("data", "a.txt")?.equals(theirs)).toBe(true);
    expect(port.data("data", "a (2).txt")?.equals(files["a.txt"])).toBe(true);
    expect(port.data("data", "b (2).bin")?.equals(files["b.bin"])).toBe(true);
    const entries = await logEntries(d);
    expect(entries.map((e) => [e.blobPath, e.disposition?.status])).toEqual([
      ["data/a (2).txt", "Renamed"],
      ["data/b (2).bin", "Renamed"],
    ]);
  });

  it("no-overwrite skips a taken name; overwrite replaces it", async () => {
    const theirs = Buffer.from("theirs");
    const sig = new AbortController().signal;
    for (const disposition of ["no-overwrite", "overwrite"] as const) {
      const files = { "a.txt": randomBytes(100), "b.bin": randomBytes(5 * MiB) };
      const d = await drive(files, { disposition });
      const port = new FakeBlobPort();
      port.containers.add("data");
      for (const n of Object.keys(files))
        await port.putBlob(
          { container: "data", name: n },
          theirs,
          { headers: {}, metadata: {}, conditions: {} },
          sig,
        );
      const result = await importDrive(runOf(port, d).run);
      const entries = await logEntries(d);
      if (disposition === "no-overwrite") {
        expect(port.data("data", "a.txt")?.equals(theirs)).toBe(true);
        expect(port.data("data", "b.bin")?.equals(theirs)).toBe(true);
        expect(entries.map((e) => e.disposition?.status)).toEqual(["Skipped", "Skipped"]);
        // The small blob's conditional Put carried its body; the large one was probed, not sent.
        expect(port.bytesReceived).toBe(2 * theirs.length + files["a.txt"].length);
      } else {
        expect(result.status).toBe("CompletedWithWarnings"); // an overwrite is a warning
        expect(port.bytesReceived).toBe(
          2 * theirs.length + files["a.txt"].length * 2 + files["b.bin"].length,
        );
        expect(port.data("data", "a.txt")?.equals(files["a.txt"])).toBe(true);
        expect(port.data("data", "b.bin")?.equals(files["b.bin"])).toBe(true);
        expect(entries.map((e) => e.disposition?.status)).toEqual(["Overwritten", "Overwritten"]);
      }
    }
  });

  it("storage down through every retry: StorageOutage, nothing marked failed", async () => {
    const d = await drive({ "a.txt": randomBytes(100) });
    const port = new FakeBlobPort();
    port.fault = (op) => {
      if (op === "putBlob") throw storageError(503, "ServerBusy");
    };
    await expect(importDrive(runOf(port, d).run)).rejects.toMatchObject({ name: "StorageOutage" });
    expect(await logEntries(d)).toEqual([]);
  });
});
