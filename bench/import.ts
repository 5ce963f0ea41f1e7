/**
 * Import benchmark: builds two drive images (a few large files; many small files), imports them
 * with drive-station (the real agent process, loop devices, a local Azurite), then, in the same
 * run against the same Azurite and reading the same mounted drives: AzCopy (npm
 * @azure-tools/azcopy-linux, `--put-md5`), rclone (when installed), the raw SDK uploading from the
 * drive, and the storage's ingest ceiling (the raw SDK uploading the same bytes from memory at its
 * best concurrency). Prints times, ratios and the agent's peak RSS. Needs root (loop devices,
 * mount). Never part of the tests.
 *   npm run bench:import [-- --large-mib 256 --large-files 4 --small-files 4000 --small-kib 4]
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import PQueue from "p-queue";
import { attach, detach, preparedDrive } from "../src/staging/images.js";
import { startAzurite } from "../src/storage/embedded-azurite.js";
import {
  BENCH_ACCOUNT as ACCOUNT,
  azcopyBinary,
  containerSasUrl,
  cpuSeconds,
  freePort,
  ingestCeiling,
  BENCH_KEY as KEY,
  MiB,
  metered,
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
    "small-files": { type: "string", default: "4000" },
    "small-kib": { type: "string", default: "4" },
    concurrency: { type: "string", default: "16" },
  },
});
const largeMiB = Number(values["large-mib"]);
const largeFiles = Number(values["large-files"]);
const smallFiles = Number(values["small-files"]);
const smallKiB = Number(values["small-kib"]);
const concurrency = Number(values.concurrency);
const agentMain = resolve(dirname(fileURLToPath(import.meta.url)), "..", "agent", "main.js");

const root = mkdtempSync(join(tmpdir(), "bench-import-"));
const cleanups: (() => void)[] = [];

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error("run as root: the benchmark attaches loop devices and mounts them");
  mkdirSync(join(root, "plugged"));
  const large: Record<string, Buffer> = {};
  for (let i = 0; i < largeFiles; i++) large[`large-${i}.bin`] = randomBytes(largeMiB * MiB);
  const small: Record<string, Buffer> = {};
  for (let i = 0; i < smallFiles; i++) small[`d${i % 40}/small-${i}.bin`] = randomBytes(smallKiB * 1024);
  const largeBytes = largeFiles * largeMiB * MiB;
  const smallBytes = smallFiles * smallKiB * 1024;
  console.log(
    `building drive images: ${largeFiles} x ${largeMiB} MiB, ${smallFiles} x ${smallKiB} KiB (ext4) …`,
  );
  const drives = {
    large: await preparedDrive({
      image: join(root, "large.img"),
      fs: "ext4",
      sizeMiB: Math.ceil((largeBytes / MiB) * 1.1) + 64,
      driveId: "BENCH-LARGE",
      accountKey: KEY,
      workDir: root,
      sessions: [{ files: large, dest: "ds-large/" }],
    }),
    small: await preparedDrive({
      image: join(root, "small.img"),
      fs: "ext4",
      sizeMiB: Math.ceil((smallFiles * 8) / 1024) + 128,
      driveId: "BENCH-SMALL",
      accountKey: KEY,
      workDir: root,
      sessions: [{ files: small, dest: "ds-small/" }],
    }),
  };

  const loadBefore = loadavg();
  const azPort = freePort();
  const azurite = await startAzurite({
    location: join(root, "azurite"),
    host: "127.0.0.1",
    port: azPort,
    accounts: [{ name: ACCOUNT, key: KEY }],
  });
  cleanups.push(() => void azurite.stop());
  const endpoint = `http://127.0.0.1:${azPort}/${ACCOUNT}`;
  const credential = new StorageSharedKeyCredential(ACCOUNT, KEY);
  const service = new BlobServiceClient(endpoint, credential);

  // ---------------------------------------------------------------- drive-station
  const azPid = azurite.process.pid!;
  const agent = await startBenchAgent({ agentMain, root, azPort, concurrency });
  cleanups.push(() => void agent.stop());
  const api = agent.api;
  const rss = rssSampler(agent.pid);

  const dsRun = async (name: "large" | "small") => {
    const path = `/subscriptions/bench/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/${name}?api-version=2021-01-01`;
    await api("PUT", path, {
      properties: {
        storageAccountId: `/subscriptions/bench/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
        jobType: "Import",
        returnAddress: {
          recipientName: "R",
          streetAddress1: "S",
          city: "C",
          postalCode: "1",
          countryOrRegion: "US",
          phone: "1",
          email: "a@b.c",
        },
        driveList: [drives[name]],
      },
    });
    await api("PATCH", path, {
      properties: { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: name } },
    });
    const count = agent.output().split('"drive import finished"').length;
    const plugged = join(root, "plugged", `${name}.img`);
    const [c0, a0] = [cpuSeconds(agent.pid), cpuSeconds(azPid)];
    renameSync(join(root, `${name}.img`), plugged);
    const dev = attach(plugged);
    cleanups.push(() => detach(dev));
    const line = await agent.logLine<{
      seconds: number;
      bytesUploaded: number;
      status: string;
      blobs: number;
    }>("drive import finished", count);
    return { ...line, cpu: cpuSeconds(agent.pid) - c0, azurite: cpuSeconds(azPid) - a0 };
  };
  console.log("drive-station: importing …");
  const dsLarge = await dsRun("large");
  const dsSmall = await dsRun("small");
  const peakRss = rss.stop();
  if (dsLarge.status !== "Completed" || dsSmall.status !== "Completed")
    throw new Error(`drive-station import did not complete: ${dsLarge.status}/${dsSmall.status}`);
  const mounts = readdirSync(join(root, "mnt")).map((d) => join(root, "mnt", d));
  const largeDir = join(mounts.find((m) => m.includes("large"))!, "session1");
  const smallDir = join(mounts.find((m) => m.includes("small"))!, "session1");

  const largeFilesList = Object.keys(large);
  const perFile = Math.max(1, Math.floor(concurrency / largeFiles));

  // ---------------------------------------------------------------- raw SDK reading the same drive
  console.log("raw @azure/storage-blob from the drive: uploading …");
  const cpuLarge = new Map<string, { cpu: number; azurite: number }>();
  const meter = async (label: string, fn: () => Promise<unknown> | unknown) => {
    const m = await metered(azPid, fn);
    cpuLarge.set(label, m);
    return m.seconds;
  };
  const rawLarge = await meter("raw SDK from the drive", async () => {
    const c = service.getContainerClient("raw-large");
    await c.createIfNotExists();
    const q = new PQueue({ concurrency: largeFiles });
    await Promise.all(
      largeFilesList.map((f) =>
        q.add(() =>
          c.getBlockBlobClient(f).uploadFile(join(largeDir, f), { blockSize: 4 * MiB, concurrency: perFile }),
        ),
      ),
    );
  });
  const rawSmall = await timed(async () => {
    const c = service.getContainerClient("raw-small");
    await c.createIfNotExists();
    const q = new PQueue({ concurrency });
    await Promise.all(
      Object.keys(small).map((f) => q.add(() => c.getBlockBlobClient(f).uploadFile(join(smallDir, f)))),
    );
  });

  // ---------------------------------------------------------------- ingest ceiling (from memory)
  console.log("ingest ceiling: the same bytes from memory …");
  const ceilLarge = await ingestCeiling({
    service,
    container: "ceil-large",
    blobs: Object.entries(large).map(([name, data]) => ({ name, data })),
    concurrencies: [8, 16, 32, 64],
    azuritePid: azPid,
  });
  cpuLarge.set(`ingest ceiling (c=${ceilLarge.concurrency})`, ceilLarge);
  const ceilSmall = await ingestCeiling({
    service,
    container: "ceil-small",
    blobs: Object.entries(small).map(([name, data]) => ({ name, data })),
    concurrencies: [16, 64, 128],
  });

  // ---------------------------------------------------------------- AzCopy
  const azcopy = azcopyBinary(root);
  let azLarge: number | undefined;
  let azSmall: number | undefined;
  let azNote = "AzCopy is not installed (npm @azure-tools/azcopy-linux)";
  if (azcopy) {
    console.log("AzCopy: copying …");
    try {
      for (const c of ["azcopy-large", "azcopy-small"])
        await service.getContainerClient(c).createIfNotExists();
      azLarge = await meter("AzCopy", () =>
        runAzcopy({
          bin: azcopy,
          workDir: root,
          from: `${largeDir}/*`,
          to: containerSasUrl(service, credential, "azcopy-large"),
          fromTo: "LocalBlob",
        }),
      );
      azSmall = await timed(() =>
        runAzcopy({
          bin: azcopy,
          workDir: root,
          from: `${smallDir}/*`,
          to: containerSasUrl(service, credential, "azcopy-small"),
          fromTo: "LocalBlob",
        }),
      );
    } catch (e) {
      azNote = `AzCopy failed: ${(e as Error).message}`;
      azLarge = azSmall = undefined;
    }
  }

  // ---------------------------------------------------------------- rclone
  let rcLarge: number | undefined;
  let rcSmall: number | undefined;
  let rcNote = "rclone is not installed (apt-get install rclone)";
  if (rcloneAvailable()) {
    console.log("rclone: copying …");
    try {
      for (const c of ["rclone-large", "rclone-small"])
        await service.getContainerClient(c).createIfNotExists();
      rcLarge = await meter("rclone", () =>
        runRclone({
          from: largeDir,
          container: "rclone-large",
          sasUrl: containerSasUrl(service, credential, "rclone-large"),
          extra: [
            "--transfers",
            String(largeFiles),
            "--azureblob-upload-concurrency",
            String(perFile),
            "--azureblob-chunk-size",
            "4M",
          ],
        }),
      );
      rcSmall = await timed(() =>
        runRclone({
          from: smallDir,
          container: "rclone-small",
          sasUrl: containerSasUrl(service, credential, "rclone-small"),
          extra: ["--transfers", String(concurrency)],
        }),
      );
    } catch (e) {
      rcNote = `rclone failed: ${(e as Error).message}`;
      rcLarge = rcSmall = undefined;
    }
  }

  const mbps = (bytes: number, s: number) => bytes / 1e6 / s;
  const row = (name: string, s: number | undefined, bytes: number, files: number, note = "") =>
    s === undefined
      ? `${name.padEnd(30)} ${note}`
      : `${name.padEnd(30)} ${s.toFixed(2).padStart(7)} s ${mbps(bytes, s).toFixed(1).padStart(8)} MB/s ${(files / s).toFixed(0).padStart(7)} files/s`;
  const ratio = (other: number | undefined, ds: number) =>
    other === undefined ? "n/a" : `${(other / ds).toFixed(2)}x`;
  console.log(`\nlarge files: ${largeFiles} x ${largeMiB} MiB = ${(largeBytes / 1e6).toFixed(0)} MB`);
  console.log(row("drive-station (verified)", dsLarge.seconds, largeBytes, largeFiles));
  console.log(row(`ingest ceiling (c=${ceilLarge.concurrency})`, ceilLarge.seconds, largeBytes, largeFiles));
  console.log(row("raw SDK from the drive", rawLarge, largeBytes, largeFiles));
  console.log(row("AzCopy --put-md5", azLarge, largeBytes, largeFiles, azNote));
  console.log(row("rclone", rcLarge, largeBytes, largeFiles, rcNote));
  console.log(`small files: ${smallFiles} x ${smallKiB} KiB = ${(smallBytes / 1e6).toFixed(1)} MB`);
  console.log(row("drive-station (verified)", dsSmall.seconds, smallBytes, smallFiles));
  console.log(row(`ingest ceiling (c=${ceilSmall.concurrency})`, ceilSmall.seconds, smallBytes, smallFiles));
  console.log(row("raw SDK from the drive", rawSmall, smallBytes, smallFiles));
  console.log(row("AzCopy --put-md5", azSmall, smallBytes, smallFiles, azNote));
  console.log(row("rclone", rcSmall, smallBytes, smallFiles, rcNote));
  const gb = largeBytes / 1e9;
  console.log("CPU seconds per GB, large files (the tool + Azurite serving it):");
  for (const [name, m] of [["drive-station", dsLarge] as const, ...cpuLarge.entries()])
    console.log(
      `  ${name.padEnd(28)} ${(m.cpu / gb).toFixed(2).padStart(5)} + ${(m.azurite / gb).toFixed(2)}`,
    );
  console.log("\ndrive-station speed as a multiple of each (higher is better for drive-station):");
  for (const [what, ds, ceil, raw, az, rc] of [
    ["large", dsLarge.seconds, ceilLarge.seconds, rawLarge, azLarge, rcLarge],
    ["small", dsSmall.seconds, ceilSmall.seconds, rawSmall, azSmall, rcSmall],
  ] as const)
    console.log(
      `  ${what}: ${ratio(ceil, ds)} the ingest ceiling, ${ratio(raw, ds)} the raw SDK from the drive, ${ratio(az, ds)} AzCopy, ${ratio(rc, ds)} rclone`,
    );
  console.log(
    `  ceiling runs: large ${ceilLarge.all.map((r) => `c=${r.concurrency} ${r.seconds.toFixed(2)} s`).join(", ")}; small ${ceilSmall.all.map((r) => `c=${r.concurrency} ${r.seconds.toFixed(2)} s`).join(", ")}`,
  );
  console.log(
    `drive-station agent peak RSS: ${peakRss.toFixed(0)} MiB (concurrency ${concurrency}, 4 MiB blocks, every block MD5-verified)`,
  );
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
    for (const c of cleanups.reverse()) c();
    setTimeout(() => {
      spawnSync("sh", ["-c", `grep ' ${root}/mnt/' /proc/mounts | cut -d' ' -f2 | xargs -r -n1 umount -l`]);
      rmSync(root, { recursive: true, force: true });
      process.exit();
    }, 1500);
  });
