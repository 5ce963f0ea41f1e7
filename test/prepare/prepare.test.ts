import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { md5Hex } from "../../src/formats/blob-properties.js";
import { PrepareError, prepareDrive } from "../../src/prepare/prepare-drive.js";
import { built } from "../support/built.js";
import { readDriveManifest, verifyChunks } from "../support/drive-check.js";
import { useTempDir } from "../support/tmp.js";

const tempDir = useTempDir();
const run = promisify(execFile);
const KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

function pseudoRandom(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    b[i] = x >>> 16;
  }
  return b;
}

function sourceTree(root: string): Record<string, Buffer> {
  const files: Record<string, Buffer> = {
    "empty.bin": Buffer.alloc(0),
    "small.txt": Buffer.from("hello drive-station\n"),
    "multi/three-blocks.bin": pseudoRandom(2 * 65536 + 123, 7),
    "été/naïve 日本.txt": Buffer.from("non-ASCII names survive\n"),
  };
  for (const [rel, data] of Object.entries(files)) {
    mkdirSync(join(root, rel, ".."), { recursive: true });
    writeFileSync(join(root, rel), data);
  }
  return files;
}

describe("station prepare", () => {
  it("copies a tree into a session folder and writes a manifest whose every hash verifies", async () => {
    const t = tempDir();
    const drive = join(t, "drive");
    const src = join(t, "src");
    mkdirSync(drive);
    const files = sourceTree(src);
    symlinkSync("/etc/passwd", join(src, "link-to-passwd"));

    const r = await prepareDrive({
      driveRoot: drive,
      source: src,
      sessionId: "session1",
      destination: "photos/2026/",
      driveId: "LOOP-0001",
      credential: { kind: "accountKey", key: KEY },
      blockSize: 65536,
    });
    expect(r.blobs).toBe(4);
    expect(r.bytes).toBe(Object.values(files).reduce((s, b) => s + b.length, 0));
    expect(r.skipped).toEqual([{ path: "link-to-passwd", reason: "symbolic link (not followed)" }]);
    expect(r.manifestFile).toBe("\\DriveManifest.xml");
    expect(r.manifestHash).toBe(md5Hex(readFileSync(join(drive, "DriveManifest.xml"))));

    const { header, blobs } = await readDriveManifest(drive);
    expect(header).toMatchObject({ driveId: "LOOP-0001", credential: { kind: "accountKey", key: KEY } });
    expect(blobs.map((b) => b.blobPath).sort()).toEqual([
      "photos/2026/empty.bin",
      "photos/2026/multi/three-blocks.bin",
      "photos/2026/small.txt",
      "photos/2026/été/naïve 日本.txt",
    ]);
    const multi = blobs.find((b) => b.blobPath.endsWith("three-blocks.bin"))!;
    expect(multi.filePath).toBe("\\session1\\multi\\three-blocks.bin");
    expect(multi.chunks.map((c) => [c.offset, c.length])).toEqual([
      [0, 65536],
      [65536, 65536],
      [131072, 123],
    ]);
    expect(await verifyChunks(drive, blobs)).toBe(5); // 0 + 1 + 3 + 1 chunks
    for (const [rel, data] of Object.entries(files))
      expect(readFileSync(join(drive, "session1", rel)).equals(data)).toBe(true);
  });

  it("indexes data already on the drive (skip-write), as page blobs with zero ranges left sparse", async () => {
    const t = tempDir();
    const drive = join(t, "drive");
    mkdirSync(join(drive, "vhds"), { recursive: true });
    const disk = Buffer.alloc(3 * 4 * 1024 * 1024 + 1024); // mostly zeros
    pseudoRandom(4096, 3).copy(disk, 4 * 1024 * 1024 + 512);
    writeFileSync(join(drive, "vhds", "disk.vhd"), disk);
    const r = await prepareDrive({
      driveRoot: drive,
      source: join(drive, "vhds"),
      sessionId: "vhd-session",
      destination: "vhds/",
      driveId: "LOOP-0002",
      credential: { kind: "containerSas", container: "vhds", token: "sv=2020&sig=x" },
      blobType: "PageBlob",
      skipWrite: true,
      disposition: "overwrite",
    });
    expect(r.blobs).toBe(1);
    const { blobs } = await readDriveManifest(drive);
    expect(blobs[0]).toMatchObject({
      blobPath: "vhds/disk.vhd",
      filePath: "\\vhds\\disk.vhd",
      kind: "page",
      disposition: "overwrite",
      length: disk.length,
    });
    expect(blobs[0]!.chunks.map((c) => c.offset)).toEqual([4 * 1024 * 1024]); // only the range with data
    expect(await verifyChunks(drive, blobs)).toBe(1);
  });

  it("appends a second session as a new BlobList and keeps the first", async () => {
    const t = tempDir();
    const drive = join(t, "drive");
    mkdirSync(drive);
    sourceTree(join(t, "a"));
    writeFileSync(join(t, "single.txt"), "one file");
    const base = {
      driveRoot: drive,
      driveId: "LOOP-0003",
      credential: { kind: "accountKey", key: KEY } as const,
    };
    await prepareDrive({ ...base, source: join(t, "a"), sessionId: "s-one", destination: "c1c/" });
    await expect(
      prepareDrive({
        ...base,
        source: join(t, "single.txt"),
        sessionId: "s-two",
        destination: "c2c/single.txt",
      }),
    ).rejects.toThrow(/DriveManifest.xml file exists/);
    await prepareDrive({
      ...base,
      source: join(t, "single.txt"),
      sessionId: "s-two",
      destination: "c2c/single.txt",
      append: true,
    });
    const { blobs } = await readDriveManifest(drive);
    expect(blobs).toHaveLength(5);
    expect(blobs.map((b) => b.list.id)).toEqual([
      "s-one#1-0",
      "s-one#1-0",
      "s-one#1-0",
      "s-one#1-0",
      "s-two#1-0",
    ]);
    expect(blobs[4]).toMatchObject({ blobPath: "c2c/single.txt", filePath: "\\s-two\\single.txt" });
    expect(await verifyChunks(drive, blobs)).toBe(4);
  });

  it("refuses bad names before writing anything", async () => {
    const t = tempDir();
    const drive = join(t, "drive");
    mkdirSync(drive);
    mkdirSync(join(t, "src"));
    writeFileSync(join(t, "src", "CON.txt"), "x");
    writeFileSync(join(t, "src", "odd.bin"), "x");
    const base = {
      driveRoot: drive,
      source: join(t, "src"),
      sessionId: "sess1",
      driveId: "D1",
      credential: { kind: "accountKey", key: KEY } as const,
    };
    await expect(prepareDrive({ ...base, destination: "BadContainer/" })).rejects.toThrow(
      /not a valid container name/,
    );
    await expect(prepareDrive({ ...base, destination: "ok1/" })).rejects.toThrow(/reserved device name/);
    await expect(prepareDrive({ ...base, destination: "ok1/", blobType: "PageBlob" })).rejects.toThrow(
      PrepareError,
    );
    await expect(prepareDrive({ ...base, destination: "ok1" })).rejects.toThrow(/must end with '\/'/);
    expect(() => readFileSync(join(drive, "DriveManifest.xml"))).toThrow();
  });

  it("runs as `station prepare`, prints the drive entry and writes it as JSON, never the key", async () => {
    const t = tempDir();
    const drive = join(t, "drive");
    mkdirSync(drive);
    sourceTree(join(t, "src"));
    writeFileSync(join(t, "key"), `${KEY}\n`);
    const { stdout, stderr } = await run(process.execPath, [
      built("src/cli/main.js"),
      "prepare",
      "--drive",
      drive,
      "--source",
      join(t, "src"),
      "--session",
      "cli-1",
      "--dest",
      "data/",
      "--drive-id",
      "LOOP-CLI",
      "--account-key-file",
      join(t, "key"),
      "--out",
      join(t, "entry.json"),
    ]);
    const entry = JSON.parse(readFileSync(join(t, "entry.json"), "utf8"));
    expect(entry).toEqual({
      driveId: "LOOP-CLI",
      manifestFile: "\\DriveManifest.xml",
      manifestHash: md5Hex(readFileSync(join(drive, "DriveManifest.xml"))),
    });
    expect(stdout).toContain(entry.manifestHash);
    expect(stdout + stderr).not.toContain(KEY);
  });
});
