/**
 * Staged: many-drive preparation and verify-drive on real loop drives (ext4), a real agent and
 * Azurite. A dataset of three sources (a directory, one file, a flat directory to $root/) over
 * a driveset of three drives: the first `station prepare` is killed -9 mid-copy, `--resume`
 * finishes it; verify-drive passes, then fails naming the file and block after one byte is
 * flipped in the loop image's backing file (under the file system); the three driveList entries
 * create a job through the ARM API and importing the drives makes every blob byte-exact.
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CUSTOMER_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { built } from "../support/built.js";
import { readDriveManifest } from "../support/drive-check.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, loopDrives, makeDriveImage, stagedGate } from "./loop-images.js";
import { damageOnMedium, findOnMedium } from "./medium-damage.js";

const RUN = stagedGate("prepare-v2");
const SUB = "sub-staged";
const run = promisify(execFile);
const cli = async (args: string[]) => {
  try {
    return { code: 0, ...(await run(process.execPath, [built("src/cli/main.js"), ...args])) };
  } catch (e) {
    return e as { code: number; stdout: string; stderr: string };
  }
};
const MiB = 1024 * 1024;

let root: string;
let storage: TestAzurite;
let station: TestAgent | undefined;
const devices: string[] = [];

describe.skipIf(!RUN)("staged: station prepare --dataset --driveset, verify-drive", () => {
  const sources: Record<string, Buffer> = {};
  const expected = new Map<string, Buffer>(); // blob path -> bytes
  let entries: { driveId: string; manifestFile: string; manifestHash: string }[] = [];
  const images = ["v2a", "v2b", "v2c"].map((n) => n);
  const log: string[] = [];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-prep-v2-"));
    mkdirSync(join(root, "shelf"));
    mkdirSync(join(root, "plugged"));
    storage = await startTestAzurite(join(root, "azurite"));
    // A directory of files of many sizes, one 9 MiB file, a flat directory for $root/.
    const sizes = [13, 11, 7, 6, 5, 5, 3, 2, 1, 0.5, 0.25, 0].map((m) => Math.floor(m * MiB) + 17);
    sizes.forEach((n, i) => {
      const rel = `${i % 3 ? "sub/" : ""}f${i}.bin`;
      sources[`photos/${rel}`] = randomBytes(n);
      expected.set(`photos/${rel}`, sources[`photos/${rel}`]!);
    });
    sources["one/big.dat"] = randomBytes(9 * MiB + 3);
    expected.set("archive/big.dat", sources["one/big.dat"]!);
    sources["flat/a.txt"] = Buffer.from("root container a\n");
    sources["flat/b.txt"] = Buffer.from("root container b\n");
    expected.set("$root/a.txt", sources["flat/a.txt"]!);
    expected.set("$root/b.txt", sources["flat/b.txt"]!);
    for (const [rel, data] of Object.entries(sources)) {
      mkdirSync(join(root, "src", rel, ".."), { recursive: true });
      writeFileSync(join(root, "src", rel), data);
    }
    writeFileSync(join(root, "key.txt"), ACCOUNT_KEY);
  }, 120_000);

  afterAll(async () => {
    await station?.agent.stop();
    for (const d of devices) detach(d);
    await storage?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("prepares three drives (killed -9 mid-way, resumed), verify-drive reads the medium", async () => {
    const shelf = images.map((n) => join(root, "shelf", `${n}.img`));
    const journal = join(root, "sess-v2.prep-journal");
    const withDrives = async (mounts: string[]) => {
      writeFileSync(
        join(root, "dataset.csv"),
        [
          "BasePath,DstBlobPathOrPrefix,BlobType,Disposition,MetadataFile,PropertiesFile",
          `"${join(root, "src", "photos")}/","photos/",BlockBlob,rename,None,None`,
          `"${join(root, "src", "one", "big.dat")}","archive/big.dat",,overwrite,None,None`,
          `${join(root, "src", "flat")}/,$root/,,,None,None`,
        ].join("\n"),
      );
      writeFileSync(
        join(root, "driveset.csv"),
        [
          "MountPoint,DriveId,FormatOption,SilentOrPromptOnFormat,Encryption,ExistingBitLockerKey",
          ...mounts.map((m, i) => `${m},V2DRIVE-${i + 1},AlreadyFormatted,SilentMode,None,`),
        ].join("\n"),
      );
      const args = [
        "prepare",
        ...["--dataset", join(root, "dataset.csv"), "--driveset", join(root, "driveset.csv")],
        ...[
          "--session",
          "sess-v2",
          "--account-key-file",
          join(root, "key.txt"),
          "--out",
          join(root, "entries.json"),
        ],
      ];
      // The first run is killed -9 once the journal holds a finished file.
      const child = spawn(process.execPath, [built("src/cli/main.js"), ...args], { stdio: "ignore" });
      const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
      const doneFile = join(journal, "done.jsonl");
      const deadline = Date.now() + 120_000;
      while (!(existsSync(doneFile) && readFileSync(doneFile, "utf8").includes("\n"))) {
        if (Date.now() > deadline) throw new Error("the first prepare run recorded no file");
        await new Promise((r) => setTimeout(r, 5));
      }
      child.kill("SIGKILL");
      expect(await exited).toBeNull(); // killed, not finished
      const doneBefore = readFileSync(doneFile, "utf8").trim().split("\n").length;
      expect(doneBefore).toBeLessThan(expected.size);
      expect(existsSync(join(journal, "entries.json"))).toBe(false);
      for (const m of mounts) expect(existsSync(join(m, "DriveManifest.xml"))).toBe(false);

      const again = await cli([...args]);
      expect(again.code, again.stderr).toBe(2);
      expect(again.stderr).toMatch(/Session sess-v2 was started before .* Next: --resume/);

      const resumed = await cli([...args, "--resume"]);
      expect(resumed.code, resumed.stderr).toBe(0);
      const m = /Resumed: (\d+) files were already on the drives, (\d+) copied now/.exec(resumed.stdout);
      expect(m, resumed.stdout).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThanOrEqual(doneBefore);
      expect(Number(m![1]) + Number(m![2])).toBe(expected.size);
      expect(Number(m![2])).toBeGreaterThan(0);
      log.push(resumed.stdout);
      entries = JSON.parse(readFileSync(join(root, "entries.json"), "utf8"));
      expect(entries.map((e) => e.driveId)).toEqual(["V2DRIVE-1", "V2DRIVE-2", "V2DRIVE-3"]);

      // Spread by size: every drive holds files; the byte totals differ by at most the largest file.
      const totals: number[] = [];
      for (const mnt of mounts) {
        const { blobs } = await readDriveManifest(mnt);
        expect(blobs.length).toBeGreaterThan(0);
        totals.push(blobs.reduce((s, b) => s + b.length, 0));
      }
      const largest = Math.max(...[...expected.values()].map((b) => b.length));
      expect(Math.max(...totals) - Math.min(...totals)).toBeLessThanOrEqual(largest + MiB);

      // verify-drive: each drive passes, from the medium.
      for (const mnt of mounts) {
        const v = await cli(["verify-drive", mnt, "--entry", join(root, "entries.json")]);
        expect(v.code, v.stdout + v.stderr).toBe(0);
        expect(v.stdout).toContain("OK: every byte matches the manifest.");
      }
      // One byte flipped under the file system: in the image's backing file, not through the mount.
      const { blobs } = await readDriveManifest(mounts[0]!);
      const victim = blobs.filter((b) => b.chunks.length > 1).sort((a, b) => b.length - a.length)[0]!;
      const file = join(mounts[0]!, ...victim.filePath.split("\\").filter(Boolean));
      const content = readFileSync(file);
      const at = victim.chunks[1]!.offset + 4096;
      const onMedium = findOnMedium(shelf[0]!, content.subarray(at, at + 4096));
      const was = damageOnMedium(shelf[0]!, onMedium + 100, 1);
      try {
        expect(readFileSync(file).equals(content)).toBe(true); // the page cache still has the good bytes
        const bad = await cli(["verify-drive", mounts[0]!, "--entry", join(root, "entries.json"), "--json"]);
        expect(bad.code).toBe(1);
        expect(bad.stderr).toMatch(/^station: verify-drive: 1 problem\(s\) on the drive .* Next: /);
        const report = JSON.parse(bad.stdout);
        expect(report.ok).toBe(false);
        expect(report.problems).toEqual([
          expect.objectContaining({
            kind: "chunk",
            filePath: victim.filePath,
            blobPath: victim.blobPath,
            chunk: expect.objectContaining({ index: 1, offset: victim.chunks[1]!.offset }),
            expected: victim.chunks[1]!.hash,
          }),
        ]);
        const text = await cli(["verify-drive", mounts[0]!, "--entry", join(root, "entries.json")]);
        expect(text.stdout).toContain(
          `BAD ${victim.filePath} -> ${victim.blobPath}: block 1 (bytes ${victim.chunks[1]!.offset}-`,
        );
      } finally {
        const { openSync, writeSync, closeSync } = await import("node:fs");
        const fd = openSync(shelf[0]!, "r+");
        writeSync(fd, was, 0, 1, onMedium + 100);
        closeSync(fd);
      }
      const healed = await cli(["verify-drive", mounts[0]!, "--entry", join(root, "entries.json")]);
      expect(healed.code, healed.stdout).toBe(0);
    };
    // Three drives mounted at once (nested populate callbacks keep each mounted).
    const mounts: string[] = [];
    const nest = async (i: number): Promise<void> => {
      if (i === shelf.length) return withDrives(mounts);
      await makeDriveImage(shelf[i]!, "ext4", 56, async (mnt) => {
        mounts.push(mnt);
        await nest(i + 1);
      });
    };
    await nest(0);
  }, 600_000);

  it("the three driveList entries create a job; importing the drives makes every blob byte-exact", async () => {
    expect(entries).toHaveLength(3);
    station = await startTestAgent(join(root, "data"), {
      drives: loopDrives(join(root, "plugged"), root),
      storageEndpoint: storage.template,
    });
    const arm = `${station.agent.url}/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/v2job?api-version=2021-01-01`;
    const call = async (method: string, body: unknown) => {
      const res = await fetch(arm, {
        method,
        headers: { authorization: `Bearer ${CUSTOMER_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(res.status, await res.clone().text()).toBeLessThan(300);
      return res.json();
    };
    await call("PUT", {
      properties: {
        storageAccountId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
        jobType: "Import",
        returnAddress,
        returnShipping: { carrierName: "FedEx", carrierAccountNumber: "000000000" },
        driveList: entries,
      },
    });
    await call("PATCH", {
      properties: { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: "V2-1" } },
    });
    for (const n of images) {
      const dest = join(root, "plugged", `${n}.img`);
      renameSync(join(root, "shelf", `${n}.img`), dest);
      devices.push(attach(dest));
    }
    const deadline = Date.now() + 300_000;
    for (;;) {
      const drives = station.agent
        .dock!.list()
        .filter((d) => images.some((n) => d.key.endsWith(`/${n}.img`)));
      if (drives.length === 3 && drives.every((d) => ["done", "failed", "error"].includes(d.status))) {
        for (const d of drives) expect(d.status, d.message).toBe("done");
        break;
      }
      if (Date.now() > deadline)
        throw new Error(`drives: ${drives.map((d) => `${d.key} ${d.status}`).join(", ")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const [blobPath, data] of expected) {
      const slash = blobPath.indexOf("/");
      const blob = storage.client
        .getContainerClient(blobPath.slice(0, slash))
        .getBlobClient(blobPath.slice(slash + 1));
      expect((await blob.downloadToBuffer()).equals(data), blobPath).toBe(true);
    }
    const job = (await call("GET", undefined)) as {
      properties: { state: string; driveList: { state: string }[] };
    };
    expect(job.properties.state).toBe("Packaging");
    expect(job.properties.driveList.map((d) => d.state)).toEqual(["Completed", "Completed", "Completed"]);
  }, 600_000);
});
