/**
 * Export benchmark: the same blobs in one local Azurite, downloaded onto identical ext4 loop
 * drives by drive-station's export (the real agent process: every chunk written, read back and
 * hashed, every file checked against the blob's Content-MD5, manifest written), by AzCopy
 * (`--from-to BlobLocal`, `--check-md5 FailIfDifferent`), by rclone (when installed; it checks
 * the MD5 too) and by the raw @azure/storage-blob SDK (downloadToFile, no verification). Prints
 * seconds, MB/s, the CPU seconds per GB of each tool and of Azurite, ratios and the agent's peak
 * RSS. Needs root (loop devices, mount). Never part of the tests.
 *   npm run bench:export [-- --large-mib 256 --large-files 4 --concurrency 16]
 */
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import PQueue from "p-queue";
import { attach, detach, makeDriveImage } from "../src/staging/images.js";
import { startAzurite } from "../src/storage/embedded-azurite.js";
import {
  azcopyBinary,
  BENCH_ACCOUNT,
  BENCH_KEY,
  childrenCpuSeconds,
  containerSasUrl,
  cpuSeconds,
  dropCaches,
  freePort,
  MiB,
  rcloneAvailable,
  rssSampler,
  runAzcopy,
  runRclone,
  startBenchAgent,
  timed,
} from "./tools.js";

const { values } = parseArgs({
  options: {
    "large-mib": { type: "string", default: "256" },
    "large-files": { type: "string", default: "4" },
    concurrency: { type: "string", default: "16" },
  },
});
const largeMiB = Number(values["large-mib"]);
const largeFiles = Number(values["large-files"]);
const concurrency = Number(values.concurrency);
const here = dirname(fileURLToPath(import.meta.url));
const agentMain = resolve(here, "..", "agent", "main.js");
const root = mkdtempSync(join(tmpdir(), "bench-export-"));
const cleanups: (() => void)[] = [];
function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** An empty ext4 drive image of the given size, attached and mounted read-write (for the other tools). */
async function mountedDrive(name: string, sizeMiB: number): Promise<string> {
  const image = join(root, `${name}.img`);
  await makeDriveImage(image, "ext4", sizeMiB);
  const dev = attach(image);
  cleanups.push(() => detach(dev));
  const part = `${dev}p1`;
  for (let i = 0; i < 100 && !existsSync(part); i++) {
    if (i === 0) spawnSync("partx", ["-a", dev]);
    await new Promise((r) => setTimeout(r, 50));
  }
  const mnt = join(root, `mnt-${name}`);
  mkdirSync(mnt);
  run("mount", [part, mnt]);
  cleanups.push(() => spawnSync("umount", ["-l", mnt]));
  return mnt;
}

interface Figures {
  seconds?: number;
  /** CPU seconds of the tool, and of Azurite serving it. */
  cpu?: number;
  azurite?: number;
  note?: string;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error("run as root: the benchmark attaches loop devices and mounts them");
  const totalBytes = largeFiles * largeMiB * MiB;
  const driveMiB = Math.ceil((totalBytes / MiB) * 1.15) + 96;
  const loadBefore = loadavg();
  const azPort = freePort();
  const azurite = await startAzurite({
    location: join(root, "azurite"),
    host: "127.0.0.1",
    port: azPort,
    accounts: [{ name: BENCH_ACCOUNT, key: BENCH_KEY }],
  });
  cleanups.push(() => void azurite.stop());
  const azPid = azurite.process.pid!;
  const endpoint = `http://127.0.0.1:${azPort}/${BENCH_ACCOUNT}`;
  const cred = new StorageSharedKeyCredential(BENCH_ACCOUNT, BENCH_KEY);
  const service = new BlobServiceClient(endpoint, cred);
  const container = service.getContainerClient("bench");
  await container.createIfNotExists();
  console.log(`uploading ${largeFiles} x ${largeMiB} MiB blobs to Azurite …`);
  const sums: Record<string, string> = {};
  for (let i = 0; i < largeFiles; i++) {
    const data = randomBytes(largeMiB * MiB);
    const md5 = createHash("md5").update(data).digest();
    sums[`large-${i}.bin`] = md5.toString("hex");
    await container.getBlockBlobClient(`large-${i}.bin`).uploadData(data, {
      blockSize: 4 * MiB,
      concurrency: 8,
      blobHTTPHeaders: { blobContentMD5: md5 },
    });
  }
  const filesOk = (dir: string) => {
    for (const [f, sum] of Object.entries(sums))
      if (
        createHash("md5")
          .update(readFileSync(join(dir, f)))
          .digest("hex") !== sum
      )
        return `wrote ${f} wrong`;
    return undefined;
  };

  // ---------------------------------------------------------------- drive-station
  const dsImage = join(root, "BENCH-EXPORT.img");
  await makeDriveImage(dsImage, "ext4", driveMiB);
  const agent = await startBenchAgent({ agentMain, root, azPort, concurrency, withAccountKey: true });
  cleanups.unshift(() => void agent.stop());
  const rss = rssSampler(agent.pid);
  const path =
    "/subscriptions/bench/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/xbench?api-version=2021-01-01";
  const jobBody = {
    properties: {
      storageAccountId: `/subscriptions/bench/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${BENCH_ACCOUNT}`,
      jobType: "Export",
      returnAddress: {
        recipientName: "R",
        streetAddress1: "S",
        city: "C",
        postalCode: "1",
        countryOrRegion: "US",
        phone: "1",
        email: "a@b.c",
      },
      export: { blobList: { blobPathPrefix: ["/bench/"] } },
    },
  };
  for (const [m, b] of [
    ["PUT", jobBody],
    [
      "PATCH",
      { properties: { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: "X" } } },
    ],
  ] as const) {
    const r = await agent.api(m, path, b);
    if (!r.ok) throw new Error(`${m} job: ${r.status} ${await r.text()}`);
  }
  const checkIn = await agent.api(
    "POST",
    "/station/v1/subscriptions/bench/resourceGroups/rg/jobs/xbench/packages",
    {
      trackingNumber: "X",
      driveIds: ["BENCH-EXPORT"],
    },
  );
  if (!checkIn.ok) throw new Error(`check-in: ${checkIn.status} ${await checkIn.text()}`);
  dropCaches();
  console.log("drive-station: exporting …");
  const ds: Figures = {};
  const [agentCpu0, azCpu0] = [cpuSeconds(agent.pid), cpuSeconds(azPid)];
  const plugged = join(root, "plugged", "BENCH-EXPORT.img");
  renameSync(dsImage, plugged);
  writeFileSync(`${plugged}.serial`, "BENCH-EXPORT");
  const dev = attach(plugged);
  cleanups.push(() => detach(dev));
  const done = await agent.logLine<{ seconds: number; status: string; chunksRewritten: number }>(
    "drive export finished",
  );
  ds.cpu = cpuSeconds(agent.pid) - agentCpu0;
  ds.azurite = cpuSeconds(azPid) - azCpu0;
  const peakRss = rss.stop();
  if (done.status !== "Completed") throw new Error(`drive-station export ended ${done.status}`);
  ds.seconds = done.seconds;
  await agent.stop();

  // ---------------------------------------------------------------- AzCopy
  const az: Figures = {};
  const azcopy = azcopyBinary(root);
  if (!azcopy) az.note = "AzCopy is not installed (npm @azure-tools/azcopy-linux)";
  else {
    const dir = await mountedDrive("azcopy", driveMiB);
    dropCaches();
    console.log("AzCopy: downloading …");
    const [c0, a0] = [childrenCpuSeconds(), cpuSeconds(azPid)];
    try {
      az.seconds = await timed(() =>
        runAzcopy({
          bin: azcopy,
          workDir: root,
          from: `${containerSasUrl(service, cred, "bench").replace("?", "/*?")}`,
          to: dir,
          fromTo: "BlobLocal",
          concurrency,
        }),
      );
      [az.cpu, az.azurite] = [childrenCpuSeconds() - c0, cpuSeconds(azPid) - a0];
      az.note = filesOk(dir);
    } catch (e) {
      az.note = `AzCopy failed: ${(e as Error).message}`;
    }
  }

  // ---------------------------------------------------------------- rclone
  const rc: Figures = {};
  if (!rcloneAvailable()) rc.note = "rclone is not installed (apt-get install rclone)";
  else {
    const dir = await mountedDrive("rclone", driveMiB);
    dropCaches();
    console.log("rclone: downloading …");
    const [c0, a0] = [childrenCpuSeconds(), cpuSeconds(azPid)];
    try {
      rc.seconds = await timed(() =>
        runRclone({
          from: "",
          to: dir,
          container: "bench",
          sasUrl: containerSasUrl(service, cred, "bench"),
          extra: [
            "--transfers",
            String(largeFiles),
            "--multi-thread-streams",
            String(Math.max(1, concurrency / largeFiles)),
          ],
        }),
      );
      [rc.cpu, rc.azurite] = [childrenCpuSeconds() - c0, cpuSeconds(azPid) - a0];
      rc.note = filesOk(dir);
    } catch (e) {
      rc.note = `rclone failed: ${(e as Error).message}`;
    }
  }

  // ---------------------------------------------------------------- raw SDK (no verification)
  const sdkDir = await mountedDrive("sdk", driveMiB);
  dropCaches();
  console.log("raw @azure/storage-blob: downloading …");
  const raw: Figures = {};
  const [u0, a0] = [process.cpuUsage(), cpuSeconds(azPid)];
  raw.seconds = await timed(async () => {
    const q = new PQueue({ concurrency: largeFiles });
    await Promise.all(
      Object.keys(sums).map((f) => q.add(() => container.getBlobClient(f).downloadToFile(join(sdkDir, f)))),
    );
  });
  const u = process.cpuUsage(u0);
  [raw.cpu, raw.azurite] = [(u.user + u.system) / 1e6, cpuSeconds(azPid) - a0];

  const gb = totalBytes / 1e9;
  const row = (name: string, f: Figures, how: string) =>
    f.seconds === undefined
      ? `${name.padEnd(24)} ${f.note ?? ""}`
      : `${name.padEnd(24)} ${f.seconds.toFixed(2).padStart(7)} s ${((gb * 1000) / f.seconds).toFixed(1).padStart(7)} MB/s  CPU s/GB ${((f.cpu ?? 0) / gb).toFixed(2).padStart(5)} + Azurite ${((f.azurite ?? 0) / gb).toFixed(2)}  (${f.note ?? how})`;
  console.log(
    `\nexport of ${largeFiles} x ${largeMiB} MiB = ${(totalBytes / 1e6).toFixed(0)} MB onto ext4 loop drives (concurrency ${concurrency})`,
  );
  console.log(
    row(
      "drive-station export",
      ds,
      `every chunk written, read back, hashed; each file checked against Content-MD5; ${done.chunksRewritten} rewritten`,
    ),
  );
  console.log(row("AzCopy BlobLocal", az, "whole-file MD5 check"));
  console.log(row("rclone", rc, "rclone copy defaults"));
  console.log(row("raw SDK downloadToFile", raw, "no verification, one stream per file"));
  console.log("\ndrive-station speed as a multiple of each (higher is better for drive-station):");
  const ratio = (f: Figures) =>
    f.seconds === undefined || f.note ? "n/a" : `${(f.seconds / done.seconds).toFixed(2)}x`;
  console.log(`  ${ratio(az)} AzCopy, ${ratio(rc)} rclone, ${ratio(raw)} the raw SDK`);
  console.log(`drive-station agent peak RSS: ${peakRss.toFixed(0)} MiB`);
  const loadAfter = loadavg();
  console.log(
    `machine load (1/5/15 min): before ${loadBefore.map((l) => l.toFixed(1)).join("/")}, after ${loadAfter.map((l) => l.toFixed(1)).join("/")}`,
  );
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of cleanups.reverse()) {
      try {
        c();
      } catch {
        // best effort
      }
    }
    setTimeout(() => {
      rmSync(root, { recursive: true, force: true });
      process.exit();
    }, 1500);
  });
