/**
 * Many-drive preparation (WAImportExport v2 on Linux) on plain directories as drives: the spread
 * by size, the manifests (every hash verifies), resume and abort, and every refused input as one
 * line naming file:line, exit 2, with nothing written.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parseCsv, parseDataset, parseDriveset } from "../../src/prepare/v2-csv.js";
import { footprint, spreadBySize } from "../../src/prepare/v2-plan.js";
import { prepareSession } from "../../src/prepare/v2-session.js";
import { built } from "../support/built.js";
import { readDriveManifest, verifyChunks } from "../support/drive-check.js";
import { useTempDir } from "../support/tmp.js";

const tempDir = useTempDir();
const run = promisify(execFile);
const KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const credential = { kind: "accountKey" as const, key: KEY };
const BITLOCKER = "060456-014509-132033-080300-252615-584177-672089-411631";

/** Three sources (a directory, a file, a flat directory to $root/) and three drives. */
function layout(t: string) {
  const photos = join(t, "src", "photos");
  mkdirSync(join(photos, "2026"), { recursive: true });
  const sizes = [900_000, 700_000, 500_000, 300_000, 120_000, 40_000, 0];
  sizes.forEach((n, i) => {
    writeFileSync(join(photos, i % 2 ? "2026" : "", `p${i}.bin`), Buffer.alloc(n, i + 1));
  });
  writeFileSync(join(t, "src", "single.dat"), Buffer.alloc(1_300_000, 9));
  const flat = join(t, "src", "flat");
  mkdirSync(flat);
  writeFileSync(join(flat, "readme.txt"), "root container file\n");
  writeFileSync(join(t, "meta.xml"), "<Metadata><Owner>bob</Owner></Metadata>");
  const drives = [1, 2, 3].map((i) => join(t, `drive${i}`));
  for (const d of drives) mkdirSync(d);
  const dataset = join(t, "dataset.csv");
  writeFileSync(
    dataset,
    [
      "BasePath,DstBlobPathOrPrefix,BlobType,Disposition,MetadataFile,PropertiesFile",
      `"${photos}/","photos/",BlockBlob,rename,"${join(t, "meta.xml")}",None`,
      `"${join(t, "src", "single.dat")}","data/single.dat",,overwrite,None,None`,
      `${flat}/,$root/,,,,`,
    ].join("\n"),
  );
  const driveset = join(t, "driveset.csv");
  writeFileSync(
    driveset,
    [
      "MountPoint,DriveId,FormatOption,SilentOrPromptOnFormat,Encryption,ExistingBitLockerKey",
      `${drives[0]},V2-A,AlreadyFormatted,SilentMode,None,`,
      `${drives[1]},V2-B,AlreadyFormatted,SilentMode,AlreadyEncrypted,${BITLOCKER}`,
      `${drives[2]},V2-C,AlreadyFormatted,SilentMode,None,`,
    ].join("\n"),
  );
  return { drives, dataset, driveset, total: sizes.reduce((s, n) => s + n, 0) + 1_300_000 + 20 };
}

/** Every path under `dir` (files and folders), for "nothing was written". */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).sort();
}

describe("v2 CSV parsing", () => {
  it("reads quoted fields with commas, doubled quotes and line numbers", () => {
    const r = parseCsv('a,b\n"x, y","say ""hi"""\n\n"multi\nline",z\n', "f.csv");
    expect(r).toEqual([
      { line: 1, fields: ["a", "b"] },
      { line: 2, fields: ["x, y", 'say "hi"'] },
      { line: 4, fields: ["multi\nline", "z"] },
    ]);
  });

  it("the sample rows of the reference, with Linux paths", () => {
    const rows = parseDataset(
      'BasePath,DstBlobPathOrPrefix,BlobType,Disposition,MetadataFile,PropertiesFile\n"/data/100M_1.csv.txt","containername/100M_1.csv.txt",BlockBlob,rename,"None",None\n"/data/50M_original/","containername/",page,,None,None\n',
      "ds.csv",
    );
    expect(rows).toMatchObject([
      { where: "ds.csv:2", isDirectory: false, blobType: "BlockBlob", disposition: "rename" },
      { where: "ds.csv:3", isDirectory: true, blobType: "PageBlob", disposition: "rename" },
    ]);
    expect(rows[0]).not.toHaveProperty("metadataFile");
    const drives = parseDriveset(
      `MountPoint,FormatOption,SilentOrPromptOnFormat,Encryption,ExistingBitLockerKey\n/mnt/g,AlreadyFormatted,SilentMode,AlreadyEncrypted,${BITLOCKER}\n/mnt/h,AlreadyFormatted,SilentMode,None,\n`,
      "dr.csv",
    );
    expect(drives).toEqual([
      { where: "dr.csv:2", mountPoint: "/mnt/g", bitLockerKey: BITLOCKER },
      { where: "dr.csv:3", mountPoint: "/mnt/h" },
    ]);
  });
});

describe("spread by size", () => {
  it("largest first to the emptiest drive: byte totals differ by at most the largest file", () => {
    const sizes = [50, 3, 40, 7, 30, 30, 9, 20, 1, 12, 8, 60].map((n) => n * 100_000);
    const files = sizes.map((size, i) => ({ size, where: `ds:${i}`, source: `f${i}` }));
    const placed = spreadBySize(files, [1e9, 1e9, 1e9]);
    const totals = [0, 0, 0];
    placed.forEach((p, i) => {
      totals[p.drive]! += footprint(sizes[i]!);
    });
    expect(Math.max(...totals) - Math.min(...totals)).toBeLessThanOrEqual(footprint(Math.max(...sizes)));
    expect(new Set(placed.map((p) => p.drive)).size).toBe(3);
  });

  it("batches: each batch is spread on its own, in dataset order", () => {
    const files = [10, 10, 10, 10].map((k, i) => ({ size: k * 1000, where: `ds:${i}`, source: `f${i}` }));
    const placed = spreadBySize(files, [1e9, 1e9], 2);
    expect(placed.map((p) => p.batch)).toEqual([0, 0, 1, 1]);
    expect(placed.map((p) => p.drive)).toEqual([0, 1, 0, 1]);
  });

  it("a file that fits on no drive is named, with the next step", () => {
    expect(() =>
      spreadBySize([{ size: 5_000_000, where: "ds.csv:4", source: "/big" }], [1_000_000, 2_000_000]),
    ).toThrow(/^ds\.csv:4: \/big \(5000000 bytes\) does not fit on any drive.*Next: add a drive/);
  });
});

describe("station prepare --dataset --driveset", () => {
  it("spreads three sources over three drives; every manifest verifies; entries for driveList", async () => {
    const t = tempDir();
    const { drives, dataset, driveset, total } = layout(t);
    const r = await prepareSession({
      datasetFile: dataset,
      drivesetFile: driveset,
      sessionId: "sess-1",
      credential,
      mode: "start",
    });
    expect(r.entries.map((e) => e.driveId)).toEqual(["V2-A", "V2-B", "V2-C"]);
    expect(r.entries[1]!.bitLockerKey).toBe(BITLOCKER);
    expect(r.drives.reduce((s, d) => s + d.bytes, 0)).toBe(total);
    for (const d of r.drives) expect(d.files).toBeGreaterThan(0);
    const blobs = new Set<string>();
    for (const [i, d] of drives.entries()) {
      const m = await readDriveManifest(d);
      expect(m.header.driveId).toBe(r.entries[i]!.driveId);
      await verifyChunks(d, m.blobs);
      for (const b of m.blobs) blobs.add(b.blobPath);
      const { md5Hex } = await import("../../src/formats/blob-properties.js");
      expect(md5Hex(readFileSync(join(d, "DriveManifest.xml")))).toBe(r.entries[i]!.manifestHash);
    }
    expect([...blobs].sort()).toEqual(
      [
        "$root/readme.txt",
        "data/single.dat",
        ...[0, 1, 2, 3, 4, 5, 6].map((i) => `photos/${i % 2 ? "2026/" : ""}p${i}.bin`),
      ].sort(),
    );
    // The journal keeps no BitLocker key.
    expect(readFileSync(join(t, "sess-1.prep-journal", "entries.json"), "utf8")).not.toContain(BITLOCKER);
  });

  it("resume copies only what the journal does not hold; abort removes the session", async () => {
    const t = tempDir();
    const { drives, dataset, driveset } = layout(t);
    const o = { datasetFile: dataset, drivesetFile: driveset, sessionId: "sess-2", credential };
    await prepareSession({ ...o, mode: "start" });
    // Simulate a run killed after three files: keep three journal lines, drop the manifests.
    const journal = join(t, "sess-2.prep-journal");
    const lines = readFileSync(join(journal, "done.jsonl"), "utf8").trim().split("\n");
    writeFileSync(join(journal, "done.jsonl"), `${lines.slice(0, 3).join("\n")}\n{"id":`);
    const { rmSync } = await import("node:fs");
    for (const d of drives) rmSync(join(d, "DriveManifest.xml"));
    rmSync(join(journal, "entries.json"));
    const r = await prepareSession({ ...o, mode: "resume" });
    expect({ alreadyDone: r.alreadyDone, copied: r.copied }).toEqual({
      alreadyDone: 3,
      copied: lines.length - 3,
    });
    for (const d of drives) await verifyChunks(d, (await readDriveManifest(d)).blobs);

    await expect(prepareSession({ ...o, mode: "start" })).rejects.toThrow(/was started before.*--resume/);
    await expect(prepareSession({ ...o, mode: "abort" })).rejects.toThrow(/finished/);
    rmSync(join(journal, "entries.json"));
    await prepareSession({ ...o, mode: "abort" });
    for (const d of drives) expect(tree(d)).toEqual([]);
    expect(existsSync(journal)).toBe(false);
  });
});

describe("refused input: one line naming file:line and the next step, exit 2, nothing written", () => {
  const cli = async (args: string[]) => {
    try {
      const r = await run(process.execPath, [built("src/cli/main.js"), ...args]);
      return { code: 0, ...r };
    } catch (e) {
      return e as { code: number; stdout: string; stderr: string };
    }
  };

  it.each([
    [
      "a bad row",
      "dataset",
      (s: string) => s.replace("overwrite", "sometimes"),
      /dataset\.csv:3: Disposition 'sometimes'.*Next: /,
    ],
    [
      "an unknown column",
      "dataset",
      (s: string) => s.replace("PropertiesFile", "Colour"),
      /dataset\.csv:1: unknown column 'Colour'.*Next: the columns are BasePath,/,
    ],
    [
      "a Windows driveset",
      "driveset",
      (s: string) => s.replace("MountPoint", "DriveLetter"),
      /driveset\.csv:1: unknown column 'DriveLetter'\. Next: Linux has no drive letters; .*MountPoint/,
    ],
    [
      "an encryption request",
      "driveset",
      (s: string) => s.replace(/None,\n/, "Encrypt,\n"),
      /driveset\.csv:2: Encryption Encrypt is not available on Linux.*Next: .*AlreadyEncrypted/,
    ],
    [
      "a format request",
      "driveset",
      (s: string) => s.replace(/AlreadyFormatted/, "Format"),
      /driveset\.csv:2: FormatOption Format cannot run here.*Next: make the filesystem yourself \(e\.g\. mkfs/,
    ],
    [
      "a missing source",
      "dataset",
      (s: string) => s.replace('single.dat"', 'gone.dat"'),
      /dataset\.csv:3: BasePath .*gone\.dat: Source .* does not exist\. Next: fix the path/,
    ],
    [
      "a row with a missing field",
      "dataset",
      (s: string) => s.replace(",,,,", ",,,"),
      /dataset\.csv:4: 5 fields, the header has 6\. Next: /,
    ],
    [
      "a key without AlreadyEncrypted",
      "driveset",
      (s: string) => s.replace("AlreadyEncrypted", "None"),
      /driveset\.csv:3: ExistingBitLockerKey is given for a drive that is not encrypted\. Next: /,
    ],
  ] as const)("%s", async (_name, which, edit, message) => {
    const t = tempDir();
    const { drives, dataset, driveset } = layout(t);
    const file = which === "dataset" ? dataset : driveset;
    writeFileSync(file, edit(readFileSync(file, "utf8")));
    writeFileSync(join(t, "key.txt"), KEY);
    const before = tree(t);
    const r = await cli([
      "prepare",
      "--dataset",
      dataset,
      "--driveset",
      driveset,
      "--session",
      "sess-3",
      "--account-key-file",
      join(t, "key.txt"),
      "--out",
      join(t, "entries.json"),
    ]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(r.stdout).toBe("");
    expect(tree(t)).toEqual(before);
    for (const d of drives) expect(tree(d)).toEqual([]);
  });
});
