/**
 * Export benchmark: the same blobs in one local Azurite, downloaded onto identical ext4 loop
 * drives by drive-station's export (the real agent process: every chunk MD5-checked, written,
 * read back and verified, manifest written), by AzCopy (`--from-to BlobLocal`, its default
 * MD5 check) and by the raw @azure/storage-blob SDK (downloadToFile, no verification).
 * Prints seconds, MB/s, ratios and the agent's peak RSS. Needs root (loop devices, mount).
 *   npm run bench:export [-- --large-mib 256 --large-files 4 --concurrency 16]
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  BlobServiceClient,
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import PQueue from "p-queue";
import { attach, detach, makeDriveImage } from "../src/staging/images.js";
import { startAzurite } from "../src/storage/embedded-azurite.js";

const { values } = parseArgs({
  options: {
    "large-mib": { type: "string", default: "256" },
    "large-files": { type: "string", default: "4" },
    concurrency: { type: "string", default: "16" },
  },
});
const MiB = 1024 * 1024;
const largeMiB = Number(values["large-mib"]);
const largeFiles = Number(values["large-files"]);
const concurrency = Number(values.concurrency);
const ACCOUNT = "benchacct";
const KEY = Buffer.from("drive-station-benchmark-account-key-000000").toString("base64");
const TOKEN = "bench-operator-token-0123456789";
const here = dirname(fileURLToPath(import.meta.url));
const agentMain = resolve(here, "..", "agent", "main.js");
const root = mkdtempSync(join(tmpdir(), "bench-export-"));
const cleanups: (() => void)[] = [];
const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

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

/** An empty ext4 drive image of the given size, attached and mounted read-write at `mnt` (for the other tools). */
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

async function timed(fn: () => Promise<void>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

const dropCaches = () => {
  spawnSync("sync");
  try {
    writeFileSync("/proc/sys/vm/drop_caches", "3");
  } catch {
    // not allowed here: the page cache stays warm for every tool alike
  }
};

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error("run as root: the benchmark attaches loop devices and mounts them");
  const totalBytes = largeFiles * largeMiB * MiB;
  const driveMiB = Math.ceil((totalBytes / MiB) * 1.15) + 96;
  const azPort = freePort();
  const azurite = await startAzurite({
    location: join(root, "azurite"),
    host: "127.0.0.1",
    port: azPort,
    accounts: [{ name: ACCOUNT, key: KEY }],
  });
  cleanups.push(() => void azurite.stop());
  const endpoint = `http://127.0.0.1:${azPort}/${ACCOUNT}`;
  const cred = new StorageSharedKeyCredential(ACCOUNT, KEY);
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

  // ---------------------------------------------------------------- drive-station
  const dsImage = join(root, "BENCH-EXPORT.img");
  await makeDriveImage(dsImage, "ext4", driveMiB);
  mkdirSync(join(root, "plugged"));
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
      storage: {
        mode: "azure",
        endpointTemplate: `http://127.0.0.1:${azPort}/{account}`,
        accounts: [{ name: ACCOUNT, key: KEY }],
      },
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
  // BENCH_AGENT_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the agent.
  const nodeArgs = (process.env.BENCH_AGENT_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const agent: ChildProcess = spawn(process.execPath, [...nodeArgs, agentMain, "--config", config], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  agent.stdout!.on("data", (d: Buffer) => {
    output += d.toString();
  });
  agent.stderr!.on("data", (d: Buffer) => {
    output += d.toString();
  });
  cleanups.unshift(() => agent.kill("SIGTERM"));
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
  const path =
    "/subscriptions/bench/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/xbench?api-version=2021-01-01";
  const jobBody = {
    properties: {
      storageAccountId: `/subscriptions/bench/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
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
    const r = await api(m, path, b);
    if (!r.ok) throw new Error(`${m} job: ${r.status} ${await r.text()}`);
  }
  const checkIn = await api(
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
  const plugged = join(root, "plugged", "BENCH-EXPORT.img");
  renameSync(dsImage, plugged);
  writeFileSync(`${plugged}.serial`, "BENCH-EXPORT");
  const dev = attach(plugged);
  cleanups.push(() => detach(dev));
  let ds: { seconds: number; bytesWritten: number; status: string; chunksRewritten: number };
  for (;;) {
    const line = output.split("\n").find((l) => l.includes('"drive export finished"'));
    if (line) {
      ds = JSON.parse(line);
      break;
    }
    if (agent.exitCode !== null) throw new Error(`agent exited:\n${output.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  clearInterval(sampler);
  if (ds.status !== "Completed") throw new Error(`drive-station export ended ${ds.status}`);
  console.log(`drive-station: ${ds.seconds} s, peak RSS ${peakRss.toFixed(0)} MiB`);
  agent.kill("SIGTERM");
  await new Promise((r) => agent.once("exit", r));

  // ---------------------------------------------------------------- AzCopy
  const require = createRequire(import.meta.url);
  const { AzCopyExe } = require("@azure-tools/azcopy-linux") as { AzCopyExe: string };
  // npm does not keep the binary's execute bit: run a copy.
  const azcopyBin = join(root, "azcopy");
  copyFileSync(AzCopyExe, azcopyBin);
  chmodSync(azcopyBin, 0o755);
  const sas = generateBlobSASQueryParameters(
    {
      containerName: "bench",
      permissions: ContainerSASPermissions.parse("rl"),
      expiresOn: new Date(Date.now() + 3600_000),
    },
    cred,
  ).toString();
  const azDir = await mountedDrive("azcopy", driveMiB);
  dropCaches();
  console.log("AzCopy: downloading …");
  let azcopyNote = "";
  const azcopy = await timed(async () => {
    const r = spawnSync(
      azcopyBin,
      [
        "copy",
        `${endpoint}/bench/*?${sas}`,
        azDir,
        "--from-to",
        "BlobLocal",
        "--recursive",
        "--log-level",
        "ERROR",
        "--output-level",
        "quiet",
      ],
      {
        encoding: "utf8",
        env: {
          ...process.env,
          AZCOPY_LOG_LOCATION: join(root, "azcopy-logs"),
          AZCOPY_JOB_PLAN_LOCATION: join(root, "azcopy-plans"),
          AZCOPY_CONCURRENCY_VALUE: String(concurrency),
        },
      },
    );
    if (r.status !== 0)
      azcopyNote = `AzCopy failed (exit ${r.status}): ${(r.stdout + r.stderr).trim().slice(0, 400)}`;
  });
  if (!azcopyNote)
    for (const [f, sum] of Object.entries(sums))
      if (
        createHash("md5")
          .update(readFileSync(join(azDir, f)))
          .digest("hex") !== sum
      )
        azcopyNote = `AzCopy wrote ${f} wrong`;

  // ---------------------------------------------------------------- raw SDK (no verification)
  const sdkDir = await mountedDrive("sdk", driveMiB);
  dropCaches();
  console.log("raw @azure/storage-blob: downloading …");
  const raw = await timed(async () => {
    const q = new PQueue({ concurrency: largeFiles });
    await Promise.all(
      Object.keys(sums).map((f) => q.add(() => container.getBlobClient(f).downloadToFile(join(sdkDir, f)))),
    );
  });

  const mbps = (s: number) => (totalBytes / 1e6 / s).toFixed(1).padStart(8);
  console.log(
    `\nexport of ${largeFiles} x ${largeMiB} MiB = ${(totalBytes / 1e6).toFixed(0)} MB onto ext4 loop drives (concurrency ${concurrency})`,
  );
  console.log(
    `drive-station export    ${ds.seconds.toFixed(2).padStart(7)} s ${mbps(ds.seconds)} MB/s  (every chunk MD5-checked, written, read back; ${ds.chunksRewritten} rewritten)`,
  );
  console.log(
    azcopyNote
      ? `AzCopy BlobLocal        ${azcopyNote}`
      : `AzCopy BlobLocal        ${azcopy.toFixed(2).padStart(7)} s ${mbps(azcopy)} MB/s  (whole-file MD5 check)`,
  );
  console.log(
    `raw SDK downloadToFile  ${raw.toFixed(2).padStart(7)} s ${mbps(raw)} MB/s  (no verification, one stream per file)`,
  );
  console.log("\nratios (higher is better for drive-station):");
  if (!azcopyNote) console.log(`  ${(azcopy / ds.seconds).toFixed(2)}x AzCopy`);
  console.log(`  ${(raw / ds.seconds).toFixed(2)}x the raw SDK`);
  console.log(`drive-station agent peak RSS: ${peakRss.toFixed(0)} MiB`);
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
    }, 1000);
  });
