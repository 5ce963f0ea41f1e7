/**
 * One timed run of each tool for bench/import.ts, each against a fresh Azurite and a cold page
 * cache, each timed by the bench's clock from the same event: the drive being plugged. For
 * drive-station that is the image appearing in the agent's loop directory (the agent then finds,
 * claims and mounts it: all in its time); for the peers it is the bench attaching and mounting
 * the image read-only before starting the tool (their start-up is in their time too).
 */
import { mkdtempSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import PQueue from "p-queue";
import { attach, detach } from "../src/staging/images.js";
import { shipImportJob, startBenchAgent } from "./bench-agent.js";
import {
  type BenchDrive,
  type BenchFile,
  fileBytes,
  mountReadOnly,
  nameOf,
  unmountBelow,
} from "./drive-images.js";
import { freshAzurite, type RunResult, timedAgentRun } from "./measure.js";

export type { RunResult } from "./measure.js";

import { containerSasUrl, dropCaches, ingestCeiling, MiB, metered, runAzcopy, runRclone } from "./tools.js";

export interface Dataset {
  name: string;
  drive: BenchDrive;
  files: BenchFile[];
}

export interface RunContext {
  root: string;
  agentMain: string;
  concurrency: number;
  /** Sets `transfer.hashThreads` in the agent's config when given. */
  hashThreads?: number;
  azcopy?: string;
}

export async function driveStationRun(ctx: RunContext, ds: Dataset, tag: string): Promise<RunResult> {
  const az = await freshAzurite(ctx.root);
  const runRoot = mkdtempSync(join(ctx.root, `ds-${tag}-`));
  const agent = await startBenchAgent({
    agentMain: ctx.agentMain,
    root: runRoot,
    azPort: az.port,
    concurrency: ctx.concurrency,
    ...(ctx.hashThreads ? { transfer: { hashThreads: ctx.hashThreads } } : {}),
  });
  const plugged = join(runRoot, "plugged", `${nameOf(ds.drive.image)}.img`);
  let device: string | undefined;
  try {
    await shipImportJob(agent, `bench-${tag}`, [ds.drive]);
    return await timedAgentRun(agent, az, {
      finished: "drive import finished",
      what: `drive-station on ${ds.name}`,
      cacheDropped: dropCaches(),
      plug: () => {
        renameSync(ds.drive.image, plugged);
        device = attach(plugged);
      },
    });
  } finally {
    await agent.stop();
    unmountBelow(runRoot);
    if (device) detach(device);
    renameSync(plugged, ds.drive.image);
    await az.stop();
    rmSync(runRoot, { recursive: true, force: true });
  }
}

export type Peer = "raw SDK from the drive" | "AzCopy --put-md5" | "rclone";

export async function peerRun(ctx: RunContext, ds: Dataset, peer: Peer, tag: string): Promise<RunResult> {
  const az = await freshAzurite(ctx.root);
  const container = `peer-${tag}`;
  const dir = join(ctx.root, `mnt-${tag}`);
  try {
    await az.service.getContainerClient(container).createIfNotExists();
    const sas = containerSasUrl(az.service, az.credential, container);
    const cacheDropped = dropCaches();
    const large = ds.files.length <= 64;
    const m = await metered(az.pid, async () => {
      const drive = mountReadOnly(ds.drive.image, dir);
      try {
        const from = join(dir, "session1");
        if (peer === "AzCopy --put-md5")
          runAzcopy({ bin: ctx.azcopy!, workDir: ctx.root, from: `${from}/*`, to: sas, fromTo: "LocalBlob" });
        else if (peer === "rclone") {
          const perFile = Math.max(1, Math.floor(ctx.concurrency / ds.files.length));
          runRclone({
            from,
            container,
            sasUrl: sas,
            extra: large
              ? [
                  "--transfers",
                  String(ds.files.length),
                  "--azureblob-upload-concurrency",
                  String(perFile),
                  "--azureblob-chunk-size",
                  "4M",
                ]
              : ["--transfers", String(ctx.concurrency)],
          });
        } else {
          const c = az.service.getContainerClient(container);
          const q = new PQueue({ concurrency: large ? ds.files.length : ctx.concurrency });
          const perFile = Math.max(1, Math.floor(ctx.concurrency / ds.files.length));
          await Promise.all(
            ds.files.map((f) =>
              q.add(() =>
                c
                  .getBlockBlobClient(f.rel)
                  .uploadFile(join(from, f.rel), large ? { blockSize: 4 * MiB, concurrency: perFile } : {}),
              ),
            ),
          );
        }
      } finally {
        drive.unmount();
      }
    });
    return { seconds: m.seconds, cpu: m.cpu, azurite: m.azurite, cacheDropped };
  } finally {
    await az.stop();
  }
}

/** The storage's ingest ceiling: the same bytes from memory (generated before the clock starts). */
export async function ceilingRun(ds: Dataset, concurrency: number, root: string): Promise<RunResult> {
  const blobs = ds.files.map((f) => ({ name: f.rel, data: fileBytes(f.rel, 0, f.size) }));
  const az = await freshAzurite(root);
  try {
    const r = await ingestCeiling({
      service: az.service,
      container: "ceiling",
      blobs,
      concurrencies: [concurrency],
      azuritePid: az.pid,
    });
    return { seconds: r.seconds, cpu: r.cpu, azurite: r.azurite, cacheDropped: true };
  } finally {
    await az.stop();
  }
}
