/**
 * Import benchmark: builds two drive images (a few large files; many small files), imports them
 * with drive-station (the real agent process, loop devices, a local Azurite), and uploads the
 * same files with the raw @azure/storage-blob SDK (no verification: the ceiling) and with rclone
 * (when installed), to the same Azurite. Prints throughput, files per second and the agent's
 * peak RSS. Needs root (loop devices, mount).
 *   npm run bench:import [-- --large-mib 256 --large-files 4 --small-files 4000 --small-kib 4]
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import PQueue from "p-queue";
import { attach, detach, preparedDrive } from "../src/staging/images.js";
import { DEV_ACCOUNT, DEV_ACCOUNT_KEY, startAzurite } from "../src/storage/embedded-azurite.js";

const { values } = parseArgs({
  options: {
    "large-mib": { type: "string", default: "256" },
    "large-files": { type: "string", default: "4" },
    "small-files": { type: "string", default: "4000" },
    "small-kib": { type: "string", default: "4" },
    concurrency: { type: "string", default: "16" },
    "with-rclone": { type: "boolean", default: false },
  },
});
const MiB = 1024 * 1024;
const largeMiB = Number(values["large-mib"]);
const largeFiles = Number(values["large-files"]);
const smallFiles = Number(values["small-files"]);
const smallKiB = Number(values["small-kib"]);
const concurrency = Number(values.concurrency);
const ACCOUNT = "benchacct";
const KEY = Buffer.from("drive-station-benchmark-account-key-000000").toString("base64");
const TOKEN = "bench-operator-token-0123456789";
const agentMain = resolve(dirname(fileURLToPath(import.meta.url)), "..", "agent", "main.js");

const root = mkdtempSync(join(tmpdir(), "bench-import-"));
const cleanups: (() => void)[] = [];

function freePort(): number {
  const out = execFileSync(
    process.execPath,
    [
      "-e",
      "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})",
    ],
    { encoding: "utf8" },
  );
  return Number(out.trim());
}

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

  // rclone 1.60 reaches a local emulator only through use_emulator (127.0.0.1:10000, devstoreaccount1),
  // so Azurite listens there and serves both accounts: all three tools hit the same server.
  const azPort = 10000;
  const azurite = await startAzurite({
    location: join(root, "azurite"),
    host: "127.0.0.1",
    port: azPort,
    accounts: [
      { name: ACCOUNT, key: KEY },
      { name: DEV_ACCOUNT, key: DEV_ACCOUNT_KEY },
    ],
  });
  cleanups.push(() => void azurite.stop());
  const endpoint = `http://127.0.0.1:${azPort}/${ACCOUNT}`;
  const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(ACCOUNT, KEY));

  // ---------------------------------------------------------------- drive-station
  const apiPort = freePort();
  const config = join(root, "agent.json");
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: join(root, "data"),
      log: { level: "info" },
      api: { host: "127.0.0.1", port: apiPort, tokens: [{ name: "op", token: TOKEN, role: "operator" }] },
      station: {
        location: {
          id: "bench",
          name: "Bench",
          recipientName: "b",
          streetAddress1: "b",
          city: "b",
          postalCode: "1",
          countryOrRegion: "US",
          phone: "1",
          supportedCarriers: ["FedEx"],
        },
      },
      storage: { mode: "azure", endpointTemplate: `http://127.0.0.1:${azPort}/{account}` },
      drives: {
        physical: false,
        pollIntervalMs: 200,
        loopImageDirs: [join(root, "plugged")],
        mountRoot: join(root, "mnt"),
      },
      transfer: { concurrency, blobConcurrency: 32 },
    }),
  );
  let output = "";
  const agent: ChildProcess = spawn(process.execPath, [agentMain, "--config", config], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  agent.stdout!.on("data", (d: Buffer) => {
    output += d.toString();
  });
  agent.stderr!.on("data", (d: Buffer) => {
    output += d.toString();
  });
  cleanups.push(() => agent.kill("SIGTERM"));
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`http://127.0.0.1:${apiPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  for (let i = 0; ; i++) {
    if ((await api("GET", "/station/v1/jobs").catch(() => undefined))?.ok) break;
    if (i > 300) throw new Error(`agent did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  let peakRss = 0;
  const sampler = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${agent.pid}/status`, "utf8"));
      if (m) peakRss = Math.max(peakRss, Number(m[1]) / 1024);
    } catch {
      // exited
    }
  }, 200);

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
    const before = output.split('"drive import finished"').length;
    const plugged = join(root, "plugged", `${name}.img`);
    renameSync(join(root, `${name}.img`), plugged);
    const dev = attach(plugged);
    cleanups.push(() => detach(dev));
    for (;;) {
      const lines = output.split("\n").filter((l) => l.includes('"drive import finished"'));
      if (lines.length >= before)
        return JSON.parse(lines[lines.length - 1]!) as {
          seconds: number;
          bytesUploaded: number;
          status: string;
          blobs: number;
        };
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  console.log("drive-station: importing …");
  const dsLarge = await dsRun("large");
  const dsSmall = await dsRun("small");
  clearInterval(sampler);
  if (dsLarge.status !== "Completed" || dsSmall.status !== "Completed")
    throw new Error(`drive-station import did not complete: ${dsLarge.status}/${dsSmall.status}`);
  const mounts = readdirSync(join(root, "mnt")).map((d) => join(root, "mnt", d));
  const largeDir = join(mounts.find((m) => m.includes("large"))!, "session1");
  const smallDir = join(mounts.find((m) => m.includes("small"))!, "session1");

  // ---------------------------------------------------------------- raw SDK (the ceiling: no verification)
  console.log("raw @azure/storage-blob: uploading …");
  const rawLarge = await timed(async () => {
    const c = service.getContainerClient("raw-large");
    await c.createIfNotExists();
    const q = new PQueue({ concurrency: largeFiles });
    await Promise.all(
      Object.keys(large).map((f) =>
        q.add(() =>
          c.getBlockBlobClient(f).uploadFile(join(largeDir, f), {
            blockSize: 4 * MiB,
            concurrency: Math.max(1, Math.floor(concurrency / largeFiles)),
          }),
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

  // ---------------------------------------------------------------- rclone
  let rcloneLarge: number | undefined;
  let rcloneSmall: number | undefined;
  // Debian's rclone 1.60 reaches a local emulator only via use_emulator, and on these machines it hung
  // before sending a request: opt in with --with-rclone; it runs under a hard timeout.
  let rcloneNote = "not run (pass --with-rclone)";
  if (values["with-rclone"]) {
    if (spawnSync("rclone", ["version"]).status !== 0) rcloneNote = "rclone is not installed";
    else {
      console.log("rclone: copying …");
      const remote = (container: string) => `:azureblob,use_emulator=true:${container}`;
      const rclone = (src: string, dest: string, extra: string[]) => {
        const r = spawnSync(
          "timeout",
          ["120", "rclone", "copy", src, remote(dest), "--retries", "1", ...extra],
          { encoding: "utf8" },
        );
        if (r.status !== 0)
          throw new Error(
            r.status === 124
              ? "timed out after 120 s"
              : (r.stderr.split("\n").find((l) => l.includes("ERROR")) ?? `exit ${r.status}`),
          );
      };
      try {
        rcloneLarge = await timed(async () =>
          rclone(largeDir, "rclone-large", [
            "--transfers",
            String(largeFiles),
            "--azureblob-upload-concurrency",
            String(Math.max(1, Math.floor(concurrency / largeFiles))),
            "--azureblob-chunk-size",
            "4M",
          ]),
        );
        rcloneSmall = await timed(async () =>
          rclone(smallDir, "rclone-small", ["--transfers", String(concurrency)]),
        );
      } catch (e) {
        rcloneNote = `rclone failed: ${(e as Error).message}`;
        rcloneLarge = undefined;
        rcloneSmall = undefined;
      }
    }
  }

  const mbps = (bytes: number, s: number) => bytes / 1e6 / s;
  const row = (name: string, s: number | undefined, bytes: number, files: number) =>
    s === undefined
      ? `${name.padEnd(22)} ${rcloneNote}`
      : `${name.padEnd(22)} ${s.toFixed(2).padStart(7)} s ${mbps(bytes, s).toFixed(1).padStart(8)} MB/s ${(files / s).toFixed(0).padStart(7)} files/s`;
  console.log(`\nlarge files: ${largeFiles} x ${largeMiB} MiB = ${(largeBytes / 1e6).toFixed(0)} MB`);
  console.log(row("drive-station", dsLarge.seconds, largeBytes, largeFiles));
  console.log(row("raw SDK (no verify)", rawLarge, largeBytes, largeFiles));
  console.log(row("rclone", rcloneLarge, largeBytes, largeFiles));
  console.log(`small files: ${smallFiles} x ${smallKiB} KiB = ${(smallBytes / 1e6).toFixed(1)} MB`);
  console.log(row("drive-station", dsSmall.seconds, smallBytes, smallFiles));
  console.log(row("raw SDK (no verify)", rawSmall, smallBytes, smallFiles));
  console.log(row("rclone", rcloneSmall, smallBytes, smallFiles));
  console.log("\nratios (higher is better for drive-station):");
  console.log(
    `  large: ${(rawLarge / dsLarge.seconds).toFixed(2)}x the raw SDK${rcloneLarge ? `, ${(rcloneLarge / dsLarge.seconds).toFixed(2)}x rclone` : ""}`,
  );
  console.log(
    `  small: ${(rawSmall / dsSmall.seconds).toFixed(2)}x the raw SDK${rcloneSmall ? `, ${(rcloneSmall / dsSmall.seconds).toFixed(2)}x rclone` : ""}`,
  );
  console.log(
    `drive-station agent peak RSS: ${peakRss.toFixed(0)} MiB (concurrency ${concurrency}, 4 MiB blocks)`,
  );
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
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
