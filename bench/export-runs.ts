/**
 * One timed run of each tool for bench/export.ts. Every run gets the same storage state (a fresh
 * Azurite with the same blobs, uploaded before the clock starts, each with its Content-MD5), a
 * fresh empty ext4 drive image and a cold page cache, and is timed by the bench's clock from the
 * same event, the empty drive being plugged: for drive-station the image appearing in the agent's
 * loop directory (finding, claiming, mounting, exporting, syncing and the manifest are in its
 * time); for the peers the bench attaching and mounting the image read-write, then the tool, then
 * the unmount that writes the drive's dirty pages back (drive-station syncs each blob before it
 * counts it, so a peer's bytes must reach the drive too). Peers' files are checked byte-exact
 * against the blobs' MD5s afterwards, off the clock.
 */
import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import PQueue from "p-queue";
import { attach, detach, makeDriveImage } from "../src/staging/images.js";
import { shipExportJob, startBenchAgent } from "./bench-agent.js";
import { type BenchFile, fileBytes, mountDrive, unmountBelow } from "./drive-images.js";
import { type FreshAzurite, freshAzurite, type RunResult, timedAgentRun } from "./measure.js";
import { containerSasUrl, dropCaches, MiB, metered, runAzcopy, runRclone } from "./tools.js";

export interface ExportContext {
  root: string;
  agentMain: string;
  concurrency: number;
  files: BenchFile[];
  /** Size of each run's empty drive image. */
  driveMiB: number;
  azcopy?: string;
}

export type Verify = "medium" | "written";
export type ExportPeer = "AzCopy --check-md5" | "rclone" | "raw SDK (no check)";

const CONTAINER = "bench";
const BLOCK = 4 * MiB;

/** A fresh Azurite holding `files` as block blobs with their Content-MD5; returns their MD5s (hex). */
async function seededAzurite(ctx: ExportContext): Promise<{ az: FreshAzurite; md5s: Map<string, string> }> {
  const az = await freshAzurite(ctx.root);
  const container = az.service.getContainerClient(CONTAINER);
  await container.createIfNotExists();
  const md5s = new Map<string, string>();
  const q = new PQueue({ concurrency: 8 });
  for (const f of ctx.files) {
    const blob = container.getBlockBlobClient(f.rel);
    const hash = createHash("md5");
    const ids: string[] = [];
    const stages: Promise<unknown>[] = [];
    for (let off = 0, k = 0; off < f.size; off += BLOCK, k++) {
      const part = fileBytes(f.rel, off, Math.min(BLOCK, f.size - off));
      hash.update(part);
      const id = Buffer.from(`blk-${String(k).padStart(8, "0")}`).toString("base64");
      ids.push(id);
      stages.push(q.add(() => blob.stageBlock(id, part, part.length)));
    }
    await Promise.all(stages);
    const md5 = hash.digest();
    await blob.commitBlockList(ids, { blobHTTPHeaders: { blobContentMD5: md5 } });
    md5s.set(f.rel, md5.toString("hex"));
  }
  return { az, md5s };
}

async function md5Of(path: string): Promise<string> {
  const hash = createHash("md5");
  for await (const chunk of createReadStream(path, { highWaterMark: BLOCK })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export async function driveStationExport(
  ctx: ExportContext,
  verify: Verify,
  tag: string,
): Promise<RunResult> {
  const { az } = await seededAzurite(ctx);
  const runRoot = mkdtempSync(join(ctx.root, `ds-${tag}-`));
  const driveId = `BENCH-X${tag.replace(/\W/g, "")}`.toUpperCase();
  const image = join(runRoot, `${driveId}.img`);
  const plugged = join(runRoot, "plugged", `${driveId}.img`);
  let device: string | undefined;
  const agent = await startBenchAgent({
    agentMain: ctx.agentMain,
    root: runRoot,
    azPort: az.port,
    concurrency: ctx.concurrency,
    withAccountKey: true,
    export: { verify },
  });
  try {
    await makeDriveImage(image, "ext4", ctx.driveMiB);
    await shipExportJob(agent, `xbench-${tag}`, CONTAINER, driveId);
    return await timedAgentRun(agent, az, {
      finished: "drive export finished",
      what: `drive-station (${verify}) export`,
      cacheDropped: dropCaches(),
      plug: () => {
        writeFileSync(`${plugged}.serial`, driveId);
        renameSync(image, plugged);
        device = attach(plugged);
      },
    });
  } finally {
    await agent.stop();
    unmountBelow(runRoot);
    if (device) detach(device);
    await az.stop();
    rmSync(runRoot, { recursive: true, force: true });
  }
}

export async function peerExport(ctx: ExportContext, peer: ExportPeer, tag: string): Promise<RunResult> {
  const { az, md5s } = await seededAzurite(ctx);
  const image = join(ctx.root, `peer-${tag}.img`);
  const dir = join(ctx.root, `mnt-${tag}`);
  try {
    await makeDriveImage(image, "ext4", ctx.driveMiB);
    const cacheDropped = dropCaches();
    const n = ctx.files.length;
    const m = await metered(az.pid, async () => {
      const drive = mountDrive(image, dir, "rw");
      try {
        if (peer === "AzCopy --check-md5") {
          const sas = containerSasUrl(az.service, az.credential, CONTAINER);
          runAzcopy({
            bin: ctx.azcopy!,
            workDir: ctx.root,
            from: sas.replace("?", "/*?"),
            to: dir,
            fromTo: "BlobLocal",
            concurrency: ctx.concurrency,
          });
        } else if (peer === "rclone")
          runRclone({
            from: "",
            to: dir,
            container: CONTAINER,
            sasUrl: containerSasUrl(az.service, az.credential, CONTAINER),
            extra: [
              "--transfers",
              String(n),
              "--multi-thread-streams",
              String(Math.max(1, ctx.concurrency / n)),
            ],
          });
        else {
          const c = az.service.getContainerClient(CONTAINER);
          const q = new PQueue({ concurrency: n });
          await Promise.all(
            ctx.files.map((f) => q.add(() => c.getBlobClient(f.rel).downloadToFile(join(dir, f.rel)))),
          );
        }
      } finally {
        drive.unmount();
      }
    });
    // Off the clock: the drive holds every blob byte-exact (from the medium: caches dropped).
    dropCaches();
    const check = mountDrive(image, dir, "ro");
    try {
      for (const [rel, md5] of md5s)
        if ((await md5Of(join(dir, rel))) !== md5)
          throw new Error(`${peer} wrote ${rel} wrong (its MD5 differs from the blob's Content-MD5)`);
    } finally {
      check.unmount();
    }
    return { seconds: m.seconds, cpu: m.cpu, azurite: m.azurite, cacheDropped };
  } finally {
    await az.stop();
    rmSync(image, { force: true });
  }
}
