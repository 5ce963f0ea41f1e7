/**
 * Staged: an export drive that does not hold what was written. On real loop drives (ext4, exFAT
 * through exfat-fuse, NTFS through ntfs-3g), the agent's read-back hook damages the medium under
 * the file system (the loop image's backing file, found by the blob's bytes) after a blob's
 * chunks are synced and before they are read back:
 * - `medium`, damaged once: the export sees it, writes the chunk again and ends byte-exact;
 * - `written`, the same damage: nothing notices, the drive ships damaged (the test can fail);
 * - `medium`, damaged again after the re-write: the blobs fail IOFailed, their chunk Corrupted in
 *   the copy log, the drive ends CompletedMoreInfo and a notice says to replace it.
 * Each job holds a blob with a Content-MD5 (read back into one whole-file hash) and one without
 * (read back chunk by chunk against the range MD5s). The hook runs before every read-back: the
 * blob with a Content-MD5 meets the damage twice on its first write (its whole-file hash
 * disagrees, then its chunk-by-chunk read-back finds the chunk), the other once.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DockedDrive } from "../../src/drives/door.js";
import { readDriveLog } from "../../src/formats/drive-log.js";
import type { JobKey } from "../../src/lifecycle/model.js";
import { MediumFile, mediumVolumeOf } from "../../src/transfer/core/medium-read.js";
import type { ReadBackHook } from "../../src/transfer/export/export-blob.js";
import { OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, loopDrives, makeDriveImage, stagedGate } from "./loop-images.js";
import { damageOnMedium, findOnMedium } from "./medium-damage.js";

const RUN = stagedGate("export-medium");
const MiB = 1024 * 1024;
const SUB = "sub-export";
const key = (name: string): JobKey => ({ subscriptionId: SUB, resourceGroup: "rg", name });
const actor = { name: "test", type: "User" as const };
const FILESYSTEMS = ["ext4", "exfat", "ntfs"] as const;
type Fs = (typeof FILESYSTEMS)[number];
/** The damaged chunk: the second 4 MiB block, 8 KiB in. */
const CHUNK = 4 * MiB;
const AT = CHUNK + 8192;
const DAMAGE = 4096;

let root: string;
let storage: TestAzurite;
const devices: string[] = [];
const data: Record<string, Buffer> = {
  "with.bin": randomBytes(9 * MiB),
  "without.bin": randomBytes(9 * MiB),
};

/** A case: its container (= job name), image, and whether the damage comes back after a re-write. */
interface Case {
  fs: Fs;
  name: string;
  image: string;
  always: boolean;
  /** Where the damaged bytes of each blob are on the medium (found on the first damage). */
  where: Map<string, number>;
  damaged: number;
}
const cases = new Map<string, Case>();

/** The hook the agent calls after chunks are synced and before they are read back. */
const damageHook: ReadBackHook = async ({ path, chunks, attempt }) => {
  const file = basename(path).replace(/\.drive-station-partial$/, "");
  const c = cases.get(basename(dirname(path)));
  if (!c || !chunks.some((x) => x.offset === CHUNK)) return;
  if (attempt > 1 && !c.always) return;
  const want = data[file]!.subarray(AT, AT + DAMAGE);
  let at = c.where.get(file);
  if (at === undefined) {
    at = findOnMedium(c.image, want.subarray(0, 64));
    c.where.set(file, at);
  }
  damageOnMedium(c.image, at, DAMAGE, Buffer.from(want.map((b) => b ^ 0xff)));
  c.damaged++;
};

async function until(station: TestAgent, serial: string, timeoutMs = 180_000): Promise<DockedDrive> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const d = station.agent.dock!.list().find((x) => x.serial === serial);
    if (d && ["done", "failed", "error", "held"].includes(d.status)) return d;
    if (Date.now() > end)
      throw new Error(`drive ${serial}: still ${d?.status ?? "not seen"} (${d?.message ?? ""})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Makes the drive, the job for container `name`, plugs the drive in, waits for the export to end. */
async function exportCase(station: TestAgent, images: string, fs: Fs, name: string, always: boolean) {
  const serial = name.toUpperCase();
  const shelf = join(root, "shelf", `${serial}.img`);
  await makeDriveImage(shelf, fs, 64);
  const image = join(images, `${serial}.img`);
  cases.set(name, { fs, name, image, always, where: new Map(), damaged: 0 });
  await station.agent.service.create(
    key(name),
    {
      location: "West US",
      type: "Export",
      storageAccountId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
      returnAddress,
      logLevel: "Verbose",
      export: { blobList: { blobPathPrefix: [`/${name}/`] } },
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
    driveIds: [serial],
  });
  writeFileSync(`${image}.serial`, serial);
  renameSync(shelf, image);
  devices.push(attach(image));
  const d = await until(station, serial);
  const job = await station.agent.service.get(key(name));
  return { d, job, entry: job.drives[0]!, c: cases.get(name)! };
}

/** What the drive's medium holds for `file` (past every cache). */
async function onMedium(mount: string, file: string): Promise<Buffer> {
  const path = join(mount, ...file.split("/"));
  const f = await MediumFile.open(path, await mediumVolumeOf(path));
  try {
    await f.prepare();
    return await f.readRange(0, 16 * MiB);
  } finally {
    await f.close();
  }
}

async function blobText(uri: string): Promise<string> {
  const path = new URL(uri).pathname.split("/").slice(2);
  return (
    await storage.client
      .getContainerClient(path[0]!)
      .getBlobClient(decodeURIComponent(path.slice(1).join("/")))
      .downloadToBuffer()
  ).toString("utf8");
}

async function agentFor(mode: "medium" | "written") {
  const images = join(root, `plugged-${mode}`);
  mkdirSync(images);
  const station = await startTestAgent(join(root, `data-${mode}`), {
    drives: loopDrives(images, join(root, mode)),
    storageEndpoint: storage.template,
    storageAccounts: [{ name: ACCOUNT, key: ACCOUNT_KEY }],
    transfer: { concurrency: 4, blobConcurrency: 2, retry: { attempts: 4, baseMs: 100, maxMs: 500 } },
    exportVerify: mode,
    beforeExportReadBack: damageHook,
  });
  return { station, images };
}

describe.skipIf(!RUN)("staged: export read-back from the medium", () => {
  let medium: { station: TestAgent; images: string };
  let written: { station: TestAgent; images: string };

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-export-medium-"));
    mkdirSync(join(root, "shelf"));
    storage = await startTestAzurite(join(root, "azurite"));
    for (const fs of FILESYSTEMS)
      for (const kind of ["rec", "wr", "bad"]) {
        const cont = storage.client.getContainerClient(`${fs}-${kind}`);
        await cont.createIfNotExists();
        const withMd5 = data["with.bin"]!;
        await cont.getBlockBlobClient("with.bin").upload(withMd5, withMd5.length, {
          blobHTTPHeaders: { blobContentMD5: createHash("md5").update(withMd5).digest() },
        });
        // Put Blob would give it a Content-MD5 (the service computes one): blocks and a list do not.
        const without = cont.getBlockBlobClient("without.bin");
        const ids = [0, 1, 2].map((i) => Buffer.from(`block-${i}`).toString("base64"));
        for (const [i, id] of ids.entries()) {
          const block = data["without.bin"]!.subarray(i * 3 * MiB, (i + 1) * 3 * MiB);
          await without.stageBlock(id, block, block.length);
        }
        await without.commitBlockList(ids);
        expect((await without.getProperties()).contentMD5).toBeUndefined();
      }
    medium = await agentFor("medium");
    written = await agentFor("written");
  }, 300_000);

  afterAll(async () => {
    await medium?.station.agent.stop();
    await written?.station.agent.stop();
    for (const d of devices) detach(d);
    await storage?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it.each(FILESYSTEMS)(
    "%s, medium: damage under the file system is seen, the chunk written again, the drive byte-exact",
    async (fs) => {
      const { d, entry, c } = await exportCase(medium.station, medium.images, fs, `${fs}-rec`, false);
      expect(d.status, d.message).toBe("done");
      expect(entry.state).toBe("Completed");
      expect(c.damaged).toBe(3); // with.bin: whole-file, then chunk by chunk; without.bin: once
      for (const [name, bytes] of Object.entries(data)) {
        const back = await onMedium(d.mountpoint!, `${fs}-rec/${name}`);
        expect(back.equals(bytes), `${name} on the medium`).toBe(true);
      }
      const fin = medium.station
        .logText()
        .split("\n")
        .find((l) => l.includes('"drive export finished"') && l.includes(`"driveId":"${d.driveId}"`))!;
      expect((JSON.parse(fin) as { chunksRewritten: number }).chunksRewritten).toBe(2);
    },
    300_000,
  );

  it.each(FILESYSTEMS)(
    "%s, written: the same damage goes unnoticed and the drive ships damaged",
    async (fs) => {
      const { d, entry, c } = await exportCase(written.station, written.images, fs, `${fs}-wr`, false);
      expect(d.status, d.message).toBe("done");
      expect(entry.state).toBe("Completed");
      expect(c.damaged).toBe(2);
      for (const [name, bytes] of Object.entries(data)) {
        const back = await onMedium(d.mountpoint!, `${fs}-wr/${name}`);
        expect(back.length).toBe(bytes.length);
        const differs = [...back.keys()].filter((i) => back[i] !== bytes[i]);
        expect(differs.length, name).toBe(DAMAGE);
        expect(differs[0]).toBe(AT);
      }
    },
    300_000,
  );

  it.each(FILESYSTEMS)(
    "%s, medium: a drive that cannot hold its bytes ends CompletedMoreInfo, its copy log naming the blob and chunk",
    async (fs) => {
      const name = `${fs}-bad`;
      const { d, entry, job, c } = await exportCase(medium.station, medium.images, fs, name, true);
      expect(d.status, d.message).toBe("done");
      expect(entry.state).toBe("CompletedMoreInfo");
      expect(c.damaged).toBe(5); // each blob as above, then again after its re-write
      const log = await readDriveLog(await blobText(entry.errorLogUri!));
      for (const file of Object.keys(data)) {
        const b = log.blobs.find((x) => x.blobPath === `${name}/${file}`)!;
        expect(b.status, file).toBe("IOFailed");
        expect(b.chunks?.find((x) => x.status === "Corrupted")?.offset, file).toBe(CHUNK);
      }
      expect(job.drives[0]!.copyStatus).toBe("CompletedWithErrors");
      const notices = (await (
        await fetch(`${medium.station.agent.url}/station/v1/notices`, {
          headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
        })
      ).json()) as { value: { code: string; driveId?: string; message: string }[] };
      const n = notices.value.find((x) => x.code === "ExportDriveUnreliable" && x.driveId === d.driveId);
      expect(n?.message).toMatch(/Replace the drive/);
      expect(n?.message).toContain(`chunk 1 at offset ${CHUNK}`);
      expect(readFileSync(join(d.mountpoint!, `${d.driveId}.manifest`), "utf8")).not.toContain("with.bin");
    },
    300_000,
  );
});
