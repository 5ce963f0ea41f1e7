/**
 * Staged: `station repair-export` on a real loop drive (ext4) against a real Azurite. The export
 * drive is written as the export engine lays it out (files, .properties/.metadata companions,
 * an export manifest, a copy log naming one Corrupted block). Damage on the drive: the logged
 * block, plus an unlogged block of another file and an unlogged properties file. Without
 * --manifest only the logged block is restored; with --manifest the rest is found and fixed,
 * and verify-drive then passes from the medium. A blob changed in storage since the export is
 * reported, not written over the good bytes' place silently.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  AccountSASPermissions,
  generateAccountSASQueryParameters,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { md5Hex } from "../../src/formats/blob-properties.js";
import { type LogBlob, renderDriveLog } from "../../src/formats/drive-log.js";
import { indexBlockId, ManifestWriter } from "../../src/formats/manifest-writer.js";
import { AzureExportSource } from "../../src/storage/azure-export-source.js";
import { companionBody } from "../../src/transfer/export/companions.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { built } from "../support/built.js";
import { makeDriveImage, stagedGate } from "./loop-images.js";

const RUN = stagedGate("repair-export");
const run = promisify(execFile);
const MiB = 1024 * 1024;
const cli = async (args: string[]) => {
  try {
    return { code: 0, ...(await run(process.execPath, [built("src/cli/main.js"), ...args])) };
  } catch (e) {
    return e as { code: number; stdout: string; stderr: string };
  }
};

let root: string;
let storage: TestAzurite;

describe.skipIf(!RUN)("staged: station repair-export", () => {
  const blobs: Record<string, Buffer> = {
    "a.bin": randomBytes(10 * MiB + 5),
    "b.bin": randomBytes(6 * MiB),
    "c.txt": Buffer.from("a small exported file\n"),
  };

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-repair-export-"));
    storage = await startTestAzurite(join(root, "azurite"));
    const container = storage.client.getContainerClient("exp");
    await container.create();
    for (const [name, data] of Object.entries(blobs))
      await container.getBlockBlobClient(name).uploadData(data, {
        blobHTTPHeaders: {
          blobContentType: "application/x-test",
          blobContentMD5: createHash("md5").update(data).digest(),
        },
        metadata: name === "a.bin" ? { owner: "bob" } : {},
      });
    writeFileSync(join(root, "key.txt"), ACCOUNT_KEY);
  }, 120_000);

  afterAll(async () => {
    await storage?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("restores the logged block; --manifest finds and fixes the unlogged damage; verify-drive passes", async () => {
    const source = new AzureExportSource({
      endpoint: { template: storage.template },
      storageAccountId: `/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
      accountKey: ACCOUNT_KEY,
    });
    const signal = new AbortController().signal;
    await makeDriveImage(join(root, "export.img"), "ext4", 48, async (mnt) => {
      // The drive as the export engine leaves it.
      const manifest: string[] = [];
      const writer = new ManifestWriter((c) => manifest.push(c), { driveId: "EXP-0001", kind: "export" });
      writer.blobList();
      const log: LogBlob[] = [];
      mkdirSync(join(mnt, "exp"));
      for (const [name, data] of Object.entries(blobs)) {
        const info = await source.getBlob({ container: "exp", name }, signal);
        writeFileSync(join(mnt, "exp", name), data);
        const chunks = [];
        for (let at = 0, i = 0; at < data.length; at += 4 * MiB, i++)
          chunks.push({
            offset: at,
            length: Math.min(4 * MiB, data.length - at),
            hash: md5Hex(data.subarray(at, at + 4 * MiB)),
            id: indexBlockId(i),
          });
        const props = companionBody("properties", info);
        writeFileSync(join(mnt, "exp", `${name}.properties`), props);
        const meta = Object.keys(info.metadata).length ? companionBody("metadata", info) : undefined;
        if (meta) writeFileSync(join(mnt, "exp", `${name}.metadata`), meta);
        const filePath = `\\exp\\${name}`;
        const p = { path: `${filePath}.properties`, hash: md5Hex(props) };
        const m = meta ? { path: `${filePath}.metadata`, hash: md5Hex(meta) } : undefined;
        writer.blob({
          blobPath: `exp/${name}`,
          filePath,
          length: data.length,
          kind: "block",
          chunks,
          properties: p,
          ...(m ? { metadata: m } : {}),
        });
        // The copy log: block 1 of a.bin failed its read-back (Corrupted); the rest completed.
        const failed = name === "a.bin";
        log.push({
          status: failed ? "CompletedWithErrors" : "Completed",
          blobPath: `exp/${name}`,
          filePath,
          length: data.length,
          kind: "block",
          chunks: chunks.map((c, i) => ({ ...c, status: failed && i === 1 ? "Corrupted" : "Completed" })),
          properties: { status: "Completed", path: p },
        });
      }
      writer.end();
      writeFileSync(join(mnt, "DriveManifest.xml"), manifest.join(""));
      const manifestHash = md5Hex(manifest.join(""));
      writeFileSync(join(root, "error.xml"), renderDriveLog("EXP-0001", log, "error"));

      const poke = (file: string, at: number, bytes: Buffer) => {
        const fd = openSync(join(mnt, "exp", file), "r+");
        writeSync(fd, bytes, 0, bytes.length, at);
        closeSync(fd);
      };
      poke("a.bin", 4 * MiB + 1000, Buffer.alloc(3000, 0xee)); // the logged block
      poke("b.bin", 123, Buffer.from("not the exported bytes")); // unlogged: block 0 of b.bin
      poke("c.txt.properties", 10, Buffer.from("XX")); // unlogged: a properties file
      const args = [
        "repair-export",
        ...["--copy-log", join(root, "error.xml"), "--drive", mnt, "--account", ACCOUNT],
        ...["--endpoint", storage.template, "--account-key-file", join(root, "key.txt")],
      ];
      const verify = () => cli(["verify-drive", mnt, "--manifest-hash", manifestHash, "--json"]);
      const before = JSON.parse((await verify()).stdout);
      expect(before.problems.map((p: { filePath: string }) => p.filePath).sort()).toEqual([
        "\\exp\\a.bin",
        "\\exp\\b.bin",
        "\\exp\\c.txt.properties",
      ]);

      const first = await cli(args);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toContain("1 files named by the copy log; 1 repaired, 0 already fine, 0 failed.");
      expect(readFileSync(join(mnt, "exp", "a.bin")).equals(blobs["a.bin"]!)).toBe(true);
      expect(readFileSync(join(mnt, "exp", "b.bin")).equals(blobs["b.bin"]!)).toBe(false); // not in the log

      // The second run reads with a read-and-list account SAS instead of the key (a customer's usual credential).
      const sas = generateAccountSASQueryParameters(
        {
          expiresOn: new Date(Date.now() + 3_600_000),
          permissions: AccountSASPermissions.parse("rl"),
          services: "b",
          resourceTypes: "sco",
        },
        new StorageSharedKeyCredential(ACCOUNT, ACCOUNT_KEY),
      ).toString();
      writeFileSync(join(root, "sas.txt"), sas);
      const withSas = args.map((a) =>
        a === "--account-key-file" ? "--sas-file" : a === join(root, "key.txt") ? join(root, "sas.txt") : a,
      );
      const second = await cli([...withSas, "--manifest", "--json"]);
      expect(second.code, second.stderr).toBe(0);
      const sig = new URLSearchParams(sas).get("sig") ?? "";
      expect(sig.length).toBeGreaterThan(10);
      expect(second.stdout + second.stderr).not.toContain(sig);
      const report = JSON.parse(second.stdout);
      const repaired = report.outcomes.filter((o: { result: string }) => o.result === "repaired");
      expect(repaired.map((o: { filePath: string; what: string }) => `${o.filePath} ${o.what}`)).toEqual([
        `\\exp\\a.bin block at ${4 * MiB} (${4 * MiB} bytes)`, // the log's block, fetched again (the log still names it)
        `\\exp\\b.bin block at 0 (${4 * MiB} bytes)`,
        "\\exp\\c.txt properties file",
      ]);
      expect(report.failed).toBe(0);
      for (const [name, data] of Object.entries(blobs))
        expect(readFileSync(join(mnt, "exp", name)).equals(data), name).toBe(true);
      const after = await verify();
      expect(after.code, after.stdout).toBe(0);

      // A blob that changed in storage since the export: reported as failed, exit 1.
      await storage.client
        .getContainerClient("exp")
        .getBlockBlobClient("c.txt")
        .uploadData(Buffer.from("changed!\n"));
      poke("c.txt", 0, Buffer.from("Z"));
      const changed = await cli([...args, "--manifest"]);
      expect(changed.code).toBe(1);
      expect(changed.stdout).toMatch(
        /FAILED \\exp\\c\.txt block at 0 \(22 bytes\): .*changed since it was exported/,
      );
      expect(changed.stderr).toMatch(/^station: repair-export: \d+ repair\(s\) failed .* Next: /m);
    });
  }, 600_000);
});
