/**
 * `station repair-import` against the in-memory blob port: the plan from a copy log, source
 * resolution and the path map, only the failed blocks sent, resume from the progress file.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type LogBlob, renderDriveLog } from "../../src/formats/drive-log.js";
import {
  jobNameFromLogName,
  parsePathMap,
  planRepair,
  renderPathMap,
  resolveFile,
} from "../../src/repair/import-plan.js";
import { repairImport } from "../../src/repair/import-run.js";
import { derivedBlockId } from "../../src/transfer/import/block-blob.js";
import { FakeBlobPort } from "../support/fake-blob-port.js";
import { captureLog } from "../support/log.js";
import { useTempDir } from "../support/tmp.js";

const MiB = 1024 * 1024;
const tmp = useTempDir();
const hex = (b: Buffer) => createHash("md5").update(b).digest("hex").toUpperCase();
const b64 = (b: Buffer) => createHash("md5").update(b).digest("base64");

/** A failed block blob's log entry (4 MiB blocks) with the given chunk statuses. */
function entry(
  blobPath: string,
  filePath: string,
  data: Buffer,
  statuses: string[],
  status = "CompletedWithErrors",
): LogBlob {
  const chunks = [];
  for (let off = 0, k = 0; off < data.length; off += 4 * MiB, k++) {
    const part = data.subarray(off, off + 4 * MiB);
    chunks.push({
      offset: off,
      length: part.length,
      hash: hex(part),
      id: Buffer.from(`blk-${blobPath}-${k}`).toString("base64"),
      status: statuses[k] as "Corrupted",
    });
  }
  return {
    status: status as "CompletedWithErrors",
    blobPath,
    filePath,
    length: data.length,
    disposition: { requested: "rename", status: "Created" },
    kind: "block",
    chunks,
  };
}

describe("repair-import plan", () => {
  it("lists only failed blobs; a block without Id gets the import's derived ID from the job in the log's name", async () => {
    const data = randomBytes(5 * MiB);
    const failed = entry("cont/a.bin", "\\s1\\a.bin", data, ["Uncommitted", "Corrupted"]);
    delete failed.chunks![1]!.id;
    const fine = { ...entry("cont/b.bin", "\\s1\\b.bin", data, ["Completed", "Completed"], "Completed") };
    const xml = renderDriveLog("DRV1", [failed, fine], "verbose");
    const logName = "waies/job-1_DRV1_20250101-000000-000_error.xml";
    expect(jobNameFromLogName(logName, "DRV1")).toBe("job-1");
    const { items } = await planRepair(xml, { logName });
    expect(items.map((i) => i.blobPath)).toEqual(["cont/a.bin"]);
    const seed = createHash("md5").update(`job-1\0DRV1\0cont/a.bin\0${data.length}`).digest();
    expect(items[0]!.chunks[1]!.id).toBe(derivedBlockId(seed, 1));
    expect(items[0]!.chunks[0]!.id).toBe(failed.chunks![0]!.id);
  });

  it("refuses a blob whose log lists only part of its blocks, or a block without MD5, naming why", async () => {
    const data = randomBytes(9 * MiB);
    const partial = entry("cont/p.bin", "\\p.bin", data, ["Completed", "Corrupted", "Completed"]);
    partial.chunks = partial.chunks!.filter((c) => c.status !== "Completed");
    const nohash = entry("cont/n.bin", "\\n.bin", data, ["Corrupted", "Uncommitted", "Uncommitted"]);
    delete nohash.chunks![0]!.hash;
    const { items, refused } = await planRepair(renderDriveLog("D", [partial, nohash], "error"));
    expect(items).toEqual([]);
    expect(refused.map((r) => r.blobPath)).toEqual(["cont/p.bin", "cont/n.bin"]);
    expect(refused[0]!.reason).toMatch(/lists 4194304 of its 9437184 bytes.*verbose log/);
    expect(refused[1]!.reason).toMatch(/no MD5 for the chunk at offset 0/);
  });

  it("resolves FilePath under the sources, longest suffix first; ambiguous and missing say so; the path map wins", async () => {
    const a = tmp();
    const b = tmp();
    mkdirSync(join(a, "photos"), { recursive: true });
    mkdirSync(join(b, "photos"), { recursive: true });
    writeFileSync(join(a, "photos", "x.jpg"), "1");
    writeFileSync(join(a, "only-a.txt"), "2");
    writeFileSync(join(b, "photos", "x.jpg"), "3");
    const fs = {
      isFile: async (p: string) => {
        try {
          return (await import("node:fs")).statSync(p).isFile();
        } catch {
          return false;
        }
      },
      realpath: async (p: string) => p,
    };
    const none = new Map<string, string | undefined>();
    expect(await resolveFile("\\s1\\only-a.txt", [a, b], none, fs)).toEqual({
      kind: "found",
      path: join(a, "only-a.txt"),
    });
    expect(await resolveFile("\\s1\\photos\\x.jpg", [a, b], none, fs)).toMatchObject({ kind: "ambiguous" });
    expect(await resolveFile("\\s1\\gone.txt", [a, b], none, fs)).toEqual({ kind: "missing" });
    const mapped = new Map([["\\s1\\photos\\x.jpg", join(b, "photos", "x.jpg")]]);
    expect(await resolveFile("\\s1\\photos\\x.jpg", [a, b], mapped, fs)).toEqual({
      kind: "found",
      path: join(b, "photos", "x.jpg"),
    });
  });

  it("the path map: paths without a TAB are open, located ones are kept, a TAB with no path is refused with its line", () => {
    const m = parsePathMap("\\a\\one.bin\t/real/one.bin\n\\b\\two.bin\n\n", "map.txt");
    expect([...m]).toEqual([
      ["\\a\\one.bin", "/real/one.bin"],
      ["\\b\\two.bin", undefined],
    ]);
    expect(renderPathMap(m, ["\\b\\two.bin", "\\c\\three.bin"])).toBe(
      "\\a\\one.bin\t/real/one.bin\n\\b\\two.bin\n\\c\\three.bin\n",
    );
    expect(() => parsePathMap("x\n\t/real\n", "map.txt")).toThrow(
      /map.txt line 2: no drive path before the TAB/,
    );
  });
});

describe("repair-import run (in-memory storage)", () => {
  async function scene() {
    const source = tmp();
    const big = randomBytes(10 * MiB + 5);
    const gone = randomBytes(6 * MiB);
    writeFileSync(join(source, "big.bin"), big);
    const elsewhere = tmp();
    writeFileSync(join(elsewhere, "moved.bin"), gone);
    const port = new FakeBlobPort();
    await port.ensureContainer("data", new AbortController().signal);
    const bigLog = entry("data/big.bin", "\\s1\\big.bin", big, ["Uncommitted", "Corrupted", "Uncommitted"]);
    // What the failed import left: the good blocks staged under their IDs.
    for (const k of [0, 2]) {
      const c = bigLog.chunks![k]!;
      const part = big.subarray(c.offset, c.offset + c.length);
      await port.stageBlock(
        { container: "data", name: "big.bin" },
        c.id!,
        part,
        createHash("md5").update(part).digest(),
        new AbortController().signal,
      );
    }
    const goneLog = entry(
      "data/gone.bin",
      "\\s1\\gone.bin",
      gone,
      ["Cancelled", "Cancelled"],
      "FileNotFound",
    );
    const logFile = renderDriveLog("DRV1", [bigLog, goneLog], "error");
    const work = tmp();
    return {
      source,
      big,
      gone,
      elsewhere,
      port,
      log: Buffer.from(logFile),
      progress: join(work, "r.progress"),
      pathMap: join(work, "r.paths"),
    };
  }
  const run = (s: Awaited<ReturnType<typeof scene>>, signal?: AbortSignal) =>
    repairImport({
      log: s.log,
      sources: [s.source],
      progressFile: s.progress,
      pathMapFile: s.pathMap,
      port: s.port,
      logger: captureLog().log,
      ...(signal ? { signal } : {}),
    });

  it("sends only the failed block, commits byte-exact with Content-MD5; the missing file goes through the path map", async () => {
    const s = await scene();
    s.port.bytesReceived = 0;
    const first = await run(s);
    expect(first.repaired).toEqual(["data/big.bin"]);
    expect(first.unresolved).toEqual([{ filePath: "\\s1\\gone.bin", why: "not found" }]);
    expect(s.port.bytesReceived).toBe(4 * MiB); // block 1 only
    expect(s.port.data("data", "big.bin")?.equals(s.big)).toBe(true);
    expect(s.port.contentMd5("data", "big.bin")).toBe(b64(s.big));
    expect(readFileSync(s.pathMap, "utf8")).toBe("\\s1\\gone.bin\n");

    writeFileSync(s.pathMap, `\\s1\\gone.bin\t${join(s.elsewhere, "moved.bin")}\n`);
    s.port.bytesReceived = 0;
    const second = await run(s);
    expect(second.repaired).toEqual(["data/big.bin", "data/gone.bin"]);
    expect(second.unresolved).toEqual([]);
    expect(s.port.bytesReceived).toBe(s.gone.length); // big.bin is done in the progress file: not even read
    expect(s.port.data("data", "gone.bin")?.equals(s.gone)).toBe(true);
    expect(s.port.contentMd5("data", "gone.bin")).toBe(b64(s.gone));
  });

  it("an original that differs from the log's MD5s sends nothing and says which offset", async () => {
    const s = await scene();
    const bad = Buffer.from(s.big);
    bad[9 * MiB] = bad[9 * MiB]! ^ 1;
    writeFileSync(join(s.source, "big.bin"), bad);
    s.port.bytesReceived = 0;
    const r = await run(s);
    expect(r.failed).toEqual([
      {
        blobPath: "data/big.bin",
        reason: expect.stringMatching(/does not match the log's MD5 at offset 8388608/),
      },
    ]);
    expect(s.port.data("data", "big.bin")).toBeUndefined();
    expect(s.port.requests.some((q) => q.startsWith("commitBlockList"))).toBe(false);
  });

  it("killed mid-repair, a rerun with the same progress file sends nothing twice", async () => {
    const s = await scene();
    writeFileSync(s.pathMap, `\\s1\\gone.bin\t${join(s.elsewhere, "moved.bin")}\n`);
    const stop = new AbortController();
    let staged = 0;
    s.port.fault = (op) => {
      if (op === "stageBlock" && ++staged === 3) {
        stop.abort(new Error("killed"));
        throw stop.signal.reason;
      }
    };
    s.port.bytesReceived = 0;
    await expect(run(s, stop.signal)).rejects.toThrow("killed");
    const firstSent = s.port.bytesReceived;
    s.port.fault = () => undefined;
    const r = await run(s);
    expect(r.repaired.sort()).toEqual(["data/big.bin", "data/gone.bin"]);
    // Exactly the failed bytes over both runs: block 1 of big.bin and all of gone.bin.
    expect(s.port.bytesReceived).toBe(4 * MiB + s.gone.length);
    expect(firstSent).toBeGreaterThan(0);
    expect(s.port.data("data", "gone.bin")?.equals(s.gone)).toBe(true);
    expect(s.port.data("data", "big.bin")?.equals(s.big)).toBe(true);
  });

  it("a progress file of another log is refused", async () => {
    const s = await scene();
    await run(s);
    await expect(
      repairImport({
        log: Buffer.from(renderDriveLog("OTHER", [], "error")),
        sources: [s.source],
        progressFile: s.progress,
        pathMapFile: s.pathMap,
        port: s.port,
        logger: captureLog().log,
      }),
    ).rejects.toThrow(/progress of another copy log/);
  });
});
