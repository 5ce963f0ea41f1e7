/**
 * Staged: a file on a real loop drive (ext4, exFAT through exfat-fuse, NTFS through ntfs-3g),
 * written and synced, then damaged on the medium under the file system. A plain read still
 * returns what was written (the caches); `MediumFile` returns the damage.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alignedWindow, MediumFile, mediumVolumeOf } from "../../src/transfer/core/medium-read.js";
import { attach, makeDriveImage, stagedGate } from "./loop-images.js";
import { damageOnMedium, findOnMedium } from "./medium-damage.js";

const RUN = stagedGate("medium-read");

/** losetup -d, again while the device is still busy (a FUSE daemon exiting after umount). */
async function detachWhenFree(device: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      execFileSync("losetup", ["-d", device], { stdio: "ignore" });
      return;
    } catch (e) {
      if (i > 400) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
let root: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "medium-read-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("alignedWindow", () => {
  it("covers the range with 4096-aligned ends", () => {
    expect(alignedWindow(0, 1)).toEqual([0, 4096]);
    expect(alignedWindow(5000, 100)).toEqual([4096, 8192]);
    expect(alignedWindow(8192, 8192)).toEqual([8192, 16384]);
  });
});

describe.runIf(RUN).each(["ext4", "exfat", "ntfs"] as const)("reading %s from the medium", (fs) => {
  it("returns the damage under the file system that a cached read hides", async () => {
    const image = join(root, `${fs}.img`);
    await makeDriveImage(image, fs, 64);
    const device = attach(image);
    const mnt = join(root, `mnt-${fs}`);
    execFileSync("mkdir", ["-p", mnt]);
    const part = `${device}p1`;
    for (let i = 0; i < 200 && !existsSync(part); i++) {
      if (i === 0) execFileSync("partx", ["-a", device], { stdio: "ignore" });
      await new Promise((r) => setTimeout(r, 25));
    }
    if (fs === "ntfs") execFileSync("ntfs-3g", [part, mnt]);
    else if (fs === "exfat") execFileSync("mount.exfat-fuse", [part, mnt]);
    else execFileSync("mount", [part, mnt]);
    try {
      const data = randomBytes(3 * 1024 * 1024 + 1234);
      const path = join(mnt, "f.bin");
      writeFileSync(path, data);
      const fh = await open(path, "r+");
      await fh.datasync();
      await fh.close();
      const volume = await mediumVolumeOf(path);
      expect(volume.device).toBe(part);
      expect(volume.fuse).toBe(fs !== "ext4");
      expect(readFileSync(path).equals(data)).toBe(true); // the cache holds the file

      const at = 1024 * 1024 + 4096;
      const where = findOnMedium(image, data.subarray(at, at + 64));
      damageOnMedium(image, where, 4096);

      expect(readFileSync(path).equals(data)).toBe(true); // a plain read does not see it
      const file = await MediumFile.open(path, volume, 1 << 20);
      try {
        await file.prepare();
        const back = await file.readRange(0, data.length + 100); // past the end: the file's length
        expect(back.length).toBe(data.length);
        const differs = [...back.keys()].filter((i) => back[i] !== data[i]);
        expect(differs.length).toBe(4096);
        expect(differs[0]).toBe(at);
        // An unaligned range inside the damage
        const part2 = await file.readRange(at + 100, 50);
        expect(part2.equals(Buffer.from(data.subarray(at + 100, at + 150).map((b) => b ^ 0xff)))).toBe(true);
      } finally {
        await file.close();
      }
    } finally {
      execFileSync("umount", [mnt]);
      await detachWhenFree(device);
    }
  }, 120_000);
});
