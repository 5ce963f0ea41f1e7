/**
 * Staged export: real NTFS/ext4 loop drives, the real agent, a real Azurite. A selection that
 * fits on neither drive alone nor on both: byte-identical files, manifests that verify, the
 * incomplete blob list, a blob changed after selection, preview-export figures equal to what the
 * export did, and a drive holding data written only after the operator confirms it.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  createReadStream,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DockedDrive } from "../../src/drives/door.js";
import { readBlobList } from "../../src/formats/blob-list.js";
import { readDriveLog } from "../../src/formats/drive-log.js";
import { type ManifestBlob, readManifest } from "../../src/formats/manifest.js";
import type { JobKey } from "../../src/lifecycle/model.js";
import type { PreviewReport } from "../../src/transfer/export/planner.js";
import { OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { built } from "../support/built.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, loopDrives, makeDriveImage, stagedDeadlines, stagedGate } from "./loop-images.js";

const RUN = stagedGate("export");
stagedDeadlines();
const MiB = 1024 * 1024;
const SUB = "sub-export";
const key = (name: string): JobKey => ({ subscriptionId: SUB, resourceGroup: "rg", name });
const actor = { name: "test", type: "User" as const };
const md5hex = (b: Buffer) => createHash("md5").update(b).digest("hex").toUpperCase();

let root: string;
let images: string;
let station: TestAgent;
let storage: TestAzurite;
const devices: string[] = [];
const free: Record<string, number> = {};

/** An empty (or populated) drive on the shelf with its staging serial; records its free bytes. */
async function shelfDrive(
  name: string,
  fs: "ntfs" | "ext4",
  sizeMiB: number,
  populate?: (root: string) => void,
) {
  const image = join(root, "shelf", `${name}.img`);
  await makeDriveImage(image, fs, sizeMiB, async (mnt) => {
    populate?.(mnt);
    const s = await statfs(mnt);
    free[name] = s.bavail * s.bsize;
  });
  writeFileSync(`${image}.serial`, name);
  return image;
}

function plugIn(image: string): void {
  const dest = join(images, image.split("/").pop()!);
  renameSync(`${image}.serial`, `${dest}.serial`);
  renameSync(image, dest);
  devices.push(attach(dest));
}

async function until(serial: string, statuses: string[], timeoutMs = 180_000): Promise<DockedDrive> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const d = station.agent.dock!.list().find((x) => x.serial === serial);
    if (d && statuses.includes(d.status)) return d;
    if (Date.now() > end)
      throw new Error(`drive ${serial}: still ${d?.status ?? "not seen"} (${d?.message ?? ""})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function op(method: string, path: string, body?: unknown) {
  const res = await fetch(
    `${station.agent.url}/station/v1/subscriptions/${SUB}/resourceGroups/rg/jobs/${path}`,
    {
      method,
      headers: {
        authorization: `Bearer ${OPERATOR_TOKEN}`,
        ...(body ? { "content-type": "application/json" } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    },
  );
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function exportJob(
  name: string,
  driveIds: string[],
  selection: Record<string, unknown>,
  logLevel = "Verbose",
) {
  await station.agent.service.create(
    key(name),
    {
      location: "West US",
      type: "Export",
      storageAccountId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
      returnAddress,
      logLevel: logLevel as "Verbose",
      export: selection,
    },
    actor,
  );
  await station.agent.service.update(
    key(name),
    { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: `T-${name}` } },
    actor,
  );
  await station.agent.service.station(key(name), {
    type: "CheckInPackage",
    trackingNumber: `T-${name}`,
    driveIds,
  });
}

async function manifestOf(mount: string, file: string): Promise<ManifestBlob[]> {
  const out: ManifestBlob[] = [];
  for await (const item of readManifest(createReadStream(join(mount, file.slice(1))), { kind: "export" })) {
    if (item.type === "blob") {
      expect(item.problem).toBeUndefined();
      out.push(item.blob);
    }
  }
  return out;
}

const fileAt = (mount: string, filePath: string) =>
  readFileSync(join(mount, ...filePath.slice(1).split("\\")));

async function blobText(uri: string): Promise<string> {
  const path = new URL(uri).pathname.split("/").slice(2);
  return (
    await storage.client
      .getContainerClient(path[0]!)
      .getBlobClient(decodeURIComponent(path.slice(1).join("/")))
      .downloadToBuffer()
  ).toString("utf8");
}

describe.skipIf(!RUN)("staged: export engine", () => {
  const blobs: Record<string, Buffer> = {};
  for (let i = 0; i < 8; i++) blobs[`exp/b${i}.bin`] = randomBytes(9 * MiB);
  blobs["exp/empty"] = Buffer.alloc(0);
  blobs["exp/meta.txt"] = Buffer.from("with metadata\n");
  blobs["exp/odd:name?.txt"] = Buffer.from("NTFS cannot hold this name as is\n");
  const page = Buffer.alloc(12 * MiB);
  randomBytes(4096).copy(page, 512);
  randomBytes(5 * MiB).copy(page, 6 * MiB);
  const img: Record<string, string> = {};

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-export-"));
    images = join(root, "plugged");
    mkdirSync(images);
    mkdirSync(join(root, "shelf"));
    storage = await startTestAzurite(join(root, "azurite"));
    for (const c of ["exp", "vhd", "safe"]) await storage.client.getContainerClient(c).createIfNotExists();
    for (const [path, data] of Object.entries(blobs)) {
      const [c, ...n] = path.split("/");
      await storage.client
        .getContainerClient(c!)
        .getBlockBlobClient(n.join("/"))
        .upload(data, data.length, {
          blobHTTPHeaders: {
            blobContentMD5: createHash("md5").update(data).digest(),
            blobContentType: "application/x-test",
          },
          ...(path === "exp/meta.txt" ? { metadata: { Owner: "bob", DataSet: "staged" } } : {}),
        });
    }
    const vhd = storage.client.getContainerClient("vhd").getPageBlobClient("disk.vhd");
    await vhd.create(page.length);
    await vhd.uploadPages(page.subarray(512, 512 + 4096), 512, 4096);
    await vhd.uploadPages(page.subarray(6 * MiB, 11 * MiB), 6 * MiB, 5 * MiB);
    await storage.client.getContainerClient("safe").getBlockBlobClient("one.txt").upload("safe\n", 5);

    img.one = await shelfDrive("EXP-ONE", "ntfs", 40);
    img.two = await shelfDrive("EXP-TWO", "ntfs", 40);
    img.used = await shelfDrive("EXP-USED", "ext4", 24, (mnt) =>
      writeFileSync(join(mnt, "family-photos.txt"), "not blank\n"),
    );

    station = await startTestAgent(join(root, "data"), {
      drives: loopDrives(images, root),
      storageEndpoint: storage.template,
      storageAccounts: [{ name: ACCOUNT, key: ACCOUNT_KEY }],
      transfer: {
        concurrency: 4,
        blobConcurrency: 4,
        retry: { attempts: 6, baseMs: 200, maxMs: 1000 },
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

  it("two drives that cannot hold the selection: planned like the preview, byte-identical, manifests verify, incomplete list", async () => {
    expect(free["EXP-ONE"]).toBe(free["EXP-TWO"]);
    await exportJob("twodrives", ["EXP-ONE", "EXP-TWO"], {
      blobList: { blobPathPrefix: ["/exp/", "/vhd/"], blobPath: ["exp/missing.bin"] },
    });
    const preview = await op("POST", "twodrives/exportPreview", { driveSize: String(free["EXP-ONE"]) });
    expect(preview.status).toBe(200);
    const p = preview.json as unknown as PreviewReport;
    expect(p.blobsSelected).toBe(12);
    expect(p.nonexistent.map((m) => m.selector)).toEqual(["exp/missing.bin"]);
    expect(p.drives.map((d) => d.source)).toEqual(["assumed", "assumed", "assumed"]);
    expect(p.drivesNeeded).toBe(3);
    // The operator's command prints the same figures (a second preview: the selection is kept).
    const { stdout } = await promisify(execFile)(process.execPath, [
      built("src/cli/main.js"),
      "--url",
      station.agent.url,
      "--token",
      OPERATOR_TOKEN,
      "preview-export",
      "twodrives",
      "--drive-size",
      String(free["EXP-ONE"]),
    ]);
    expect(stdout).toMatch(/Number of drives needed:\s+3/);
    for (const d of p.drives) expect(stdout).toContain(`Drive #${d.ordinal} (assumed drive of`);
    expect(
      [...stdout.matchAll(/blobs = (\d+), occupied space = [\d.]+ GB \((\d+) bytes/g)].map((m) => [
        Number(m[1]),
        Number(m[2]),
      ]),
    ).toEqual(p.drives.map((d) => [d.blobs, d.usedBytes]));

    // Changed after the selection was fixed: its export must notice.
    const changed = Object.keys(blobs).find((b) => b === "exp/b4.bin")!;
    await storage.client
      .getContainerClient("exp")
      .getBlockBlobClient("b4.bin")
      .upload(randomBytes(9 * MiB), 9 * MiB);

    plugIn(img.one!);
    await until("EXP-ONE", ["transferring", "done"]);
    plugIn(img.two!);
    const d1 = await until("EXP-ONE", ["done", "failed", "error", "held"]);
    const d2 = await until("EXP-TWO", ["done", "failed", "error", "held"]);
    expect(d1.status, d1.message).toBe("done");
    expect(d2.status, d2.message).toBe("done");

    const job = await station.agent.service.get(key("twodrives"));
    const plans = new Map<string, { blobs: ManifestBlob[]; mount: string }>();
    const exported = new Set<string>();
    for (const [i, d] of [d1, d2].entries()) {
      const entry = job.drives.find((x) => x.driveId === d.driveId)!;
      expect(entry.manifestFile).toBe(`\\${d.driveId}.manifest`);
      expect(md5hex(readFileSync(join(d.mountpoint!, `${d.driveId}.manifest`)))).toBe(entry.manifestHash);
      const m = await manifestOf(d.mountpoint!, entry.manifestFile!);
      plans.set(d.driveId!, { blobs: m, mount: d.mountpoint! });
      for (const b of m) {
        exported.add(b.blobPath);
        const data = fileAt(d.mountpoint!, b.filePath);
        const want = b.blobPath === "vhd/disk.vhd" ? page : blobs[b.blobPath]!;
        expect(data.equals(want), b.blobPath).toBe(true);
        for (const c of b.chunks) expect(md5hex(data.subarray(c.offset, c.offset + c.length))).toBe(c.hash);
        expect(md5hex(fileAt(d.mountpoint!, b.properties!.path))).toBe(b.properties!.hash);
      }
      // The preview's i-th drive is this drive's plan.
      const log = station
        .logText()
        .split("\n")
        .find((l) => l.includes('"drive export finished"') && l.includes(`"driveId":"${d.driveId}"`))!;
      const fin = JSON.parse(log) as { ordinal: number; blobs: number; plannedBytes: number };
      expect(fin.ordinal).toBe(i + 1);
      expect([fin.blobs, fin.plannedBytes]).toEqual([p.drives[i]!.blobs, p.drives[i]!.usedBytes]);
      // What the drive really used stays within the plan.
      const s = await statfs(d.mountpoint!);
      expect(free[d.driveId!]! - s.bavail * s.bsize).toBeLessThanOrEqual(fin.plannedBytes);
    }
    const odd = [...plans.values()].flatMap((x) => x.blobs).find((b) => b.blobPath === "exp/odd:name?.txt")!;
    expect(odd.filePath).toBe("\\exp\\odd%3Aname%3F.txt");
    const meta = [...plans.values()].flatMap((x) => x.blobs).find((b) => b.blobPath === "exp/meta.txt")!;
    const mount = [...plans.values()].find((x) => x.blobs.includes(meta))!.mount;
    expect(fileAt(mount, meta.metadata!.path).toString()).toMatch(/<Owner>bob<\/Owner>/);
    // The page blob is sparse on the drive: only its ranges are allocated.
    const vhd = [...plans.values()].flatMap((x) => x.blobs).find((b) => b.blobPath === "vhd/disk.vhd")!;
    expect(vhd.chunks.map((c) => c.length).reduce((a, b) => a + b, 0)).toBe(4096 + 5 * MiB);

    // The changed blob: logged, not on the drive; the incomplete list holds what did not fit.
    expect(exported.has(changed)).toBe(false);
    const logged = [];
    for (const d of job.drives) logged.push(...(await readDriveLog(await blobText(d.errorLogUri!))).blobs);
    expect(logged.find((b) => b.blobPath === changed)?.status).toBe("BlobUnexpectedChange");
    // The selector that selected nothing is in the first drive's copy log.
    expect(logged.find((b) => b.blobPath === "exp/missing.bin")?.status).toBe("BlobRequestFailed");
    expect(job.incompleteBlobListUri).toMatch(
      /\/waimportexport\/waies\/twodrives_\d{8}-\d{6}-\d{3}_incompleteblobs\.xml$/,
    );
    const left = (await readBlobList([await blobText(job.incompleteBlobListUri!)])).map((e) =>
      e.kind === "path" ? e.path : e.prefix,
    );
    expect(left).toEqual(["exp/b6.bin", "exp/b7.bin"]);
    expect(p.drives[2]!.blobs).toBe(left.length);
    expect(exported.size + left.length + 1).toBe(12);
    expect(job.state).toBe("Packaging");
  });

  it("a drive that holds data is not written until the operator confirms it", async () => {
    await exportJob("safe", ["EXP-USED"], { blobList: { blobPath: ["safe/one.txt"] } }, "Error");
    plugIn(img.used!);
    const held = await until("EXP-USED", ["held", "done", "error"]);
    expect(held.status, held.message).toBe("held");
    expect(held.message).toContain("family-photos.txt");
    expect(held.message).toContain("station confirm-export-drive safe EXP-USED");
    expect(readdirSync(held.mountpoint!).sort()).toEqual(["family-photos.txt", "lost+found"]);
    const notices = await station.agent.service.get(key("safe"));
    expect(notices.drives[0]!.state).toBe("Received");

    const confirm = await op("POST", "safe/drives/EXP-USED/confirmExport", {});
    expect(confirm.status).toBe(200);
    expect(confirm.json.started).toBe(true);
    const done = await until("EXP-USED", ["done", "error"]);
    expect(done.status, done.message).toBe("done");
    expect(readFileSync(join(done.mountpoint!, "safe", "one.txt"), "utf8")).toBe("safe\n");
    expect(readFileSync(join(done.mountpoint!, "family-photos.txt"), "utf8")).toBe("not blank\n");
  });

  it("no secret reached the log", () => {
    const log = station.logText();
    expect(log).toContain("drive export finished");
    expect(log).not.toContain(ACCOUNT_KEY);
  });
});
