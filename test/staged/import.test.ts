/**
 * Staged import: real loop-image drives (NTFS, ext4), the real agent, a real Azurite. Asserts on
 * the blobs' bytes and Content-MD5, Get Job, and the copy-log blobs.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DockedDrive } from "../../src/drives/door.js";
import { readDriveLog } from "../../src/formats/drive-log.js";
import type { JobSpec } from "../../src/lifecycle/machine.js";
import type { JobKey } from "../../src/lifecycle/model.js";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { built } from "../support/built.js";
import { UNTIL_HANG } from "../support/deadline.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, loopDrives, preparedDrive, stagedDeadlines, stagedGate } from "./loop-images.js";

const RUN = stagedGate("import");
stagedDeadlines();
const SUB = "sub-import";
const RG = "rg";
const key = (name: string): JobKey => ({ subscriptionId: SUB, resourceGroup: RG, name });
const actor = { name: "test", type: "User" as const };
const md5b64 = (b: Buffer) => createHash("md5").update(b).digest("base64");

let root: string;
let images: string;
let station: TestAgent;
let storage: TestAzurite;
const devices: string[] = [];

function plugIn(image: string): void {
  const dest = join(images, image.split("/").pop()!);
  renameSync(image, dest);
  devices.push(attach(dest));
}

async function until(image: string, statuses: string[], timeoutMs = 120_000): Promise<DockedDrive> {
  const name = image.split("/").pop()!;
  const end = Date.now() + timeoutMs;
  for (;;) {
    const d = station.agent.dock!.list().find((x) => x.key.endsWith(`/${name}`));
    if (d && statuses.includes(d.status)) return d;
    if (Date.now() > end)
      throw new Error(
        `drive ${name}: still ${d?.status ?? "not seen"} after ${timeoutMs} ms (${d?.message ?? ""})`,
      );
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function download(container: string, name: string): Promise<Buffer> {
  return storage.client.getContainerClient(container).getBlobClient(name).downloadToBuffer();
}

async function job(
  name: string,
  drive: { driveId: string; manifestFile: string; manifestHash: string },
  extra: Partial<JobSpec> = {},
) {
  const spec: JobSpec = {
    location: "West US",
    type: "Import",
    storageAccountId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
    returnAddress,
    driveList: [drive],
    ...extra,
  };
  await station.agent.service.create(key(name), spec, actor);
  await station.agent.service.update(
    key(name),
    { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: `T-${name}` } },
    actor,
  );
}

async function getJob(name: string) {
  const res = await fetch(
    `${station.agent.url}/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.ImportExport/jobs/${name}?api-version=2021-01-01`,
    {
      headers: { authorization: `Bearer ${CUSTOMER_TOKEN}` },
    },
  );
  return (await res.json()) as {
    properties: { state: string; percentComplete: number; driveList: Record<string, unknown>[] };
  };
}

async function logBlob(uri: string): Promise<string> {
  const path = new URL(uri).pathname.split("/").slice(2); // /<account>/<container>/<blob…>
  return (await download(path[0]!, decodeURIComponent(path.slice(1).join("/")))).toString("utf8");
}

describe.skipIf(!RUN)("staged: import engine", () => {
  const big = randomBytes(110 * 1024 * 1024);
  const page = Buffer.alloc(8 * 1024 * 1024 + 4096);
  randomBytes(4096).copy(page, 512);
  randomBytes(8192).copy(page, 5 * 1024 * 1024);
  const files: Record<string, Buffer> = {
    "empty.bin": Buffer.alloc(0),
    "small.txt": Buffer.from("sub-block file\n"),
    "big/over-100MB.bin": big,
    "été/naïve 日本.txt": Buffer.from("non-ASCII names\n"),
  };
  const img: Record<string, string> = {};
  const entry: Record<string, { driveId: string; manifestFile: string; manifestHash: string }> = {};
  const corruptedFile = randomBytes(3 * 4 * 1024 * 1024 + 100);
  const corruptedPage = randomBytes(8 * 1024 * 1024);
  const outageFile = randomBytes(160 * 1024 * 1024);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-import-"));
    images = join(root, "plugged");
    mkdirSync(images);
    mkdirSync(join(root, "shelf"));
    storage = await startTestAzurite(join(root, "azurite"));

    img.main = join(root, "shelf", "main.img");
    entry.main = await preparedDrive({
      image: img.main,
      fs: "ntfs",
      sizeMiB: 200,
      driveId: "MAIN-0001",
      accountKey: ACCOUNT_KEY,
      workDir: root,
      sessions: [
        {
          files,
          dest: "imports/",
          metadata: "<Metadata><Owner>bob</Owner><DataSetName>SampleData</DataSetName></Metadata>",
          properties:
            "<Properties><Content-Type>application/x-station-test</Content-Type><Cache-Control>no-cache</Cache-Control></Properties>",
        },
        { files: { "disk.vhd": page }, dest: "vhds/", blobType: "PageBlob" },
      ],
    });

    img.corrupt = join(root, "shelf", "corrupt.img");
    entry.corrupt = await preparedDrive({
      image: img.corrupt,
      fs: "ext4",
      sizeMiB: 48,
      driveId: "CORRUPT-0001",
      accountKey: ACCOUNT_KEY,
      workDir: root,
      sessions: [
        {
          files: {
            "a.txt": Buffer.from("fine\n"),
            "b.bin": corruptedFile,
            "c.txt": Buffer.from("also fine\n"),
          },
          dest: "corrupt/",
        },
        { files: { "bad.vhd": corruptedPage }, dest: "corrupt/", blobType: "PageBlob" },
      ],
      tamper: async (mnt) => {
        const { openSync, writeSync, closeSync } = await import("node:fs");
        const fd = openSync(join(mnt, "session1", "b.bin"), "r+");
        writeSync(fd, Buffer.from([corruptedFile[5_000_000]! ^ 0xff]), 0, 1, 5_000_000); // block 1 of 4
        closeSync(fd);
        const vhd = openSync(join(mnt, "session2", "bad.vhd"), "r+");
        const at = 4 * 1024 * 1024 + 100; // in page range 1 of 2
        writeSync(vhd, Buffer.from([corruptedPage[at]! ^ 0xff]), 0, 1, at);
        closeSync(vhd);
      },
    });

    img.disp = join(root, "shelf", "disp.img");
    entry.disp = await preparedDrive({
      image: img.disp,
      fs: "ext4",
      sizeMiB: 24,
      driveId: "DISP-0001",
      accountKey: ACCOUNT_KEY,
      workDir: root,
      sessions: [
        {
          files: { "keep.txt": Buffer.from("from the drive: keep\n") },
          dest: "disp/",
          disposition: "no-overwrite",
        },
        {
          files: { "photo.jpg": Buffer.from("from the drive: photo\n") },
          dest: "disp/",
          disposition: "rename",
        },
        {
          files: { "replace.txt": Buffer.from("from the drive: replace\n") },
          dest: "disp/",
          disposition: "overwrite",
        },
        {
          files: { "fresh.txt": Buffer.from("from the drive: fresh\n") },
          dest: "disp/",
          disposition: "no-overwrite",
        },
      ],
    });

    img.outage = join(root, "shelf", "outage.img");
    entry.outage = await preparedDrive({
      image: img.outage,
      fs: "ext4",
      sizeMiB: 200,
      driveId: "OUTAGE-0001",
      accountKey: ACCOUNT_KEY,
      workDir: root,
      sessions: [{ files: { "long.bin": outageFile }, dest: "outage/" }],
    });

    station = await startTestAgent(join(root, "data"), {
      drives: loopDrives(images, root),
      storageEndpoint: storage.template,
      transfer: {
        concurrency: 4,
        blobConcurrency: 4,
        retry: { attempts: 12, baseMs: 250, maxMs: 2000 },
        outageRetrySeconds: 2,
      },
    });
  });

  afterAll(async () => {
    await station?.agent.stop();
    for (const d of devices) detach(d);
    await storage?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("imports zero-byte, sub-block, >100 MB, page-blob and non-ASCII files byte for byte", async () => {
    await job("main", entry.main!, { backupDriveManifest: true });
    plugIn(img.main!);
    const d = await until(img.main!, ["done", "failed", "error"]);
    expect(d.status, d.message).toBe("done");

    for (const [rel, data] of Object.entries(files)) {
      const blob = storage.client.getContainerClient("imports").getBlobClient(rel);
      const props = await blob.getProperties();
      expect(props.contentLength, rel).toBe(data.length);
      expect(Buffer.from(props.contentMD5 ?? new Uint8Array()).toString("base64"), rel).toBe(md5b64(data));
      expect((await blob.downloadToBuffer()).equals(data), rel).toBe(true);
    }
    expect((await download("vhds", "disk.vhd")).equals(page)).toBe(true);
    const vhds: string[] = [];
    for await (const b of storage.client.getContainerClient("vhds").listBlobsFlat()) vhds.push(b.name);
    expect(vhds).toEqual(["disk.vhd"]); // the partial page blob was copied into place and removed

    // What the operator sees.
    const { stdout } = await promisify(execFile)(process.execPath, [
      built("src/cli/main.js"),
      "--url",
      station.agent.url,
      "--token",
      OPERATOR_TOKEN,
      "attached",
    ]);
    expect(stdout).toMatch(/\/dev\/loop\d+\s+-\s+ntfs\s+done\s+main\s+MAIN-0001\s+\[#{20}\] 100%/);

    // The session's metadata and properties files were applied to its blobs.
    const props = await storage.client
      .getContainerClient("imports")
      .getBlobClient("small.txt")
      .getProperties();
    expect(props.metadata).toEqual({ owner: "bob", datasetname: "SampleData" });
    expect(props.contentType).toBe("application/x-station-test");
    expect(props.cacheControl).toBe("no-cache");

    const j = await getJob("main");
    expect(j.properties.state).toBe("Packaging");
    expect(j.properties.percentComplete).toBe(100);
    const total = Object.values(files).reduce((s, b) => s + b.length, 0) + page.length;
    expect(j.properties.driveList[0]).toMatchObject({
      driveId: "MAIN-0001",
      state: "Completed",
      copyStatus: "Completed",
      percentComplete: 100,
      bytesSucceeded: total,
    });
    expect(j.properties.driveList[0]!.errorLogUri).toBeUndefined();
    const manifestUri = j.properties.driveList[0]!.manifestUri as string;
    expect(manifestUri).toMatch(/\/waimportexport\/waies\/main_MAIN-0001_\d{8}-\d{6}-\d{3}_manifest\.xml$/);
    expect(await logBlob(manifestUri)).toContain("<DriveId>MAIN-0001</DriveId>");
  });

  it("a file corrupted after preparation: Corrupted block in the error log, blob not committed, the others fine", async () => {
    await job("corrupt", entry.corrupt!, { logLevel: "Verbose" });
    plugIn(img.corrupt!);
    const d = await until(img.corrupt!, ["done", "failed", "error"]);
    expect(d.status, d.message).toBe("done");
    const j = await getJob("corrupt");
    const drive = j.properties.driveList[0] as {
      state: string;
      copyStatus: string;
      errorLogUri: string;
      verboseLogUri: string;
    };
    expect(drive).toMatchObject({ state: "CompletedMoreInfo", copyStatus: "CompletedWithErrors" });
    expect(drive.errorLogUri).toMatch(
      /\/waimportexport\/waies\/corrupt_CORRUPT-0001_\d{8}-\d{6}-\d{3}_error\.xml$/,
    );

    const errorLog = await readDriveLog(await logBlob(drive.errorLogUri));
    expect(errorLog.status).toBe("CompletedWithErrors");
    expect(errorLog.blobs).toHaveLength(2);
    expect(errorLog.blobs[0]).toMatchObject({
      status: "CompletedWithErrors",
      blobPath: "corrupt/b.bin",
      filePath: "\\session1\\b.bin",
    });
    // Only what did not complete: the bad block, and the good ones left uncommitted for a repair.
    expect(errorLog.blobs[0]!.chunks!.map((c) => [c.offset / (4 * 1024 * 1024), c.status])).toEqual([
      [0, "Uncommitted"],
      [1, "Corrupted"],
      [2, "Uncommitted"],
      [3, "Uncommitted"],
    ]);

    const verbose = await readDriveLog(await logBlob(drive.verboseLogUri));
    expect(verbose.blobs.map((b) => [b.blobPath, b.status])).toEqual([
      ["corrupt/a.txt", "Completed"],
      ["corrupt/b.bin", "CompletedWithErrors"],
      ["corrupt/c.txt", "Completed"],
      ["corrupt/bad.vhd", "CompletedWithErrors"],
    ]);
    expect(verbose.blobs[1]!.chunks!.map((c) => c.status)).toEqual([
      "Uncommitted",
      "Corrupted",
      "Uncommitted",
      "Uncommitted",
    ]);

    await expect(
      storage.client.getContainerClient("corrupt").getBlobClient("b.bin").getProperties(),
    ).rejects.toMatchObject({ statusCode: 404 });
    // The page blob with a damaged range never appears under its name, and no partial is left.
    await expect(
      storage.client.getContainerClient("corrupt").getBlobClient("bad.vhd").getProperties(),
    ).rejects.toMatchObject({ statusCode: 404 });
    const names: string[] = [];
    for await (const b of storage.client.getContainerClient("corrupt").listBlobsFlat()) names.push(b.name);
    expect(names.sort()).toEqual(["a.txt", "c.txt"]);
    const vhdLog = errorLog.blobs.find((b) => b.blobPath === "corrupt/bad.vhd")!;
    expect(vhdLog.status).toBe("CompletedWithErrors");
    expect(vhdLog.chunks!.map((c) => c.status)).toEqual(["Cancelled", "Corrupted"]);
    expect((await download("corrupt", "a.txt")).toString()).toBe("fine\n");
    expect((await download("corrupt", "c.txt")).toString()).toBe("also fine\n");
  });

  it("each disposition against an existing blob", async () => {
    const c = storage.client.getContainerClient("disp");
    await c.createIfNotExists();
    for (const [name, body] of [
      ["keep.txt", "already here: keep"],
      ["photo.jpg", "already here: photo"],
      ["photo (2).jpg", "already here: photo 2"],
      ["replace.txt", "already here: replace"],
    ] as const) {
      await c.getBlockBlobClient(name).upload(body, body.length);
    }
    await job("disp", entry.disp!, { logLevel: "Verbose" });
    plugIn(img.disp!);
    const d = await until(img.disp!, ["done", "failed", "error"]);
    expect(d.status, d.message).toBe("done");

    expect((await download("disp", "keep.txt")).toString()).toBe("already here: keep");
    expect((await download("disp", "photo.jpg")).toString()).toBe("already here: photo");
    expect((await download("disp", "photo (2).jpg")).toString()).toBe("already here: photo 2");
    expect((await download("disp", "photo (3).jpg")).toString()).toBe("from the drive: photo\n");
    expect((await download("disp", "replace.txt")).toString()).toBe("from the drive: replace\n");
    expect((await download("disp", "fresh.txt")).toString()).toBe("from the drive: fresh\n");

    const drive = (await getJob("disp")).properties.driveList[0] as {
      state: string;
      copyStatus: string;
      verboseLogUri: string;
      errorLogUri: string;
    };
    expect(drive).toMatchObject({ state: "CompletedMoreInfo", copyStatus: "CompletedWithWarnings" });
    const verbose = await readDriveLog(await logBlob(drive.verboseLogUri));
    expect(verbose.blobs.map((b) => [b.blobPath, b.status, b.disposition?.status])).toEqual([
      ["disp/keep.txt", "Completed", "Skipped"],
      ["disp/photo (3).jpg", "Completed", "Renamed"],
      ["disp/replace.txt", "Completed", "Overwritten"],
      ["disp/fresh.txt", "Completed", "Created"],
    ]);
    const errorLog = await readDriveLog(await logBlob(drive.errorLogUri));
    expect(errorLog.blobs.map((b) => b.disposition?.status)).toEqual(["Skipped", "Renamed", "Overwritten"]);
  });

  it("Azurite stopped for several seconds mid-transfer: the transfer completes", async () => {
    await job("outage", entry.outage!);
    plugIn(img.outage!);
    const name = img.outage!.split("/").pop()!;
    const end = Date.now() + UNTIL_HANG.timeout;
    while (
      !(
        (station.agent.dock!.list().find((x) => x.key.endsWith(`/${name}`))?.progress?.bytesSucceeded ?? 0) >
        0
      )
    ) {
      if (Date.now() > end) throw new Error("the outage transfer never started");
      await new Promise((r) => setTimeout(r, 5));
    }
    await storage.stop();
    // Down until the agent has met the outage (a retry counted), however long that takes here.
    const networkRetries = async () =>
      (
        await station.agent.metrics.registry.getSingleMetric("drive_station_storage_retries_total")!.get()
      ).values.find((v) => v.labels.reason === "network")?.value ?? 0;
    await expect.poll(networkRetries, UNTIL_HANG).toBeGreaterThan(0);
    await storage.restart();
    const d = await until(img.outage!, ["done", "failed", "error"], 180_000);
    // The metrics counted the retries the outage caused (no HTTP answer: reason "network").
    expect(await networkRetries()).toBeGreaterThan(0);
    expect(d.status, d.message).toBe("done");
    expect(station.logText()).toMatch(/storage request failed; retrying|Storage unreachable/);
    const props = await storage.client.getContainerClient("outage").getBlobClient("long.bin").getProperties();
    expect(Buffer.from(props.contentMD5!).toString("base64")).toBe(md5b64(outageFile));
    expect((await download("outage", "long.bin")).equals(outageFile)).toBe(true);
    expect((await getJob("outage")).properties.driveList[0]).toMatchObject({
      state: "Completed",
      bytesSucceeded: outageFile.length,
    });
  });

  it("no secret reached the log", () => {
    const log = station.logText();
    expect(log).toContain("drive import finished");
    expect(log).not.toContain(ACCOUNT_KEY);
  });
});
