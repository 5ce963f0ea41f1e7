/**
 * A/B of the export engine in one process: the same blobs in one local Azurite, exported by
 * `exportDrive` (no agent, no loop drive: a directory under --dir) once per variant, variants
 * interleaved, page cache dropped before each run. Prints wall seconds and the CPU seconds the
 * engine and Azurite spent, which stay comparable when other work loads the machine.
 *   node dist/bench/export-engine.js [--large-mib 256 --large-files 4 --reps 2
 *     --variants workers:medium,workers:written,inline --no-md5]
 * A variant is `<hasher>[:<verify>]`: hasher `workers` (hashing threads) or `inline`
 * (the event loop); verify `medium`
 * (default: read-backs from the medium, O_DIRECT) or `written` (from the page cache). Figures are
 * the median of the repetitions.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import PQueue from "p-queue";
import pino from "pino";
import { KeyedLock } from "../src/jobs/keyed-lock.js";
import { AzureExportSource } from "../src/storage/azure-export-source.js";
import { startAzurite } from "../src/storage/embedded-azurite.js";
import { BufferPool } from "../src/transfer/core/buffer-pool.js";
import { type FileHasher, InlineFileHasher, WorkerFileHasher } from "../src/transfer/core/file-hasher.js";
import { exportDrive } from "../src/transfer/export/export-drive.js";
import { MemoryExportStore } from "../src/transfer/export/store.js";
import { freePort, MiB } from "./tools.js";

const { values } = parseArgs({
  options: {
    "large-mib": { type: "string", default: "256" },
    "large-files": { type: "string", default: "4" },
    concurrency: { type: "string", default: "16" },
    reps: { type: "string", default: "2" },
    variants: { type: "string", default: "workers:medium,workers:written" },
    dir: { type: "string", default: tmpdir() },
    "no-md5": { type: "boolean", default: false },
  },
});
const ACCOUNT = "benchacct";
const KEY = Buffer.from("drive-station-benchmark-account-key-000000").toString("base64");

/** utime + stime of a process, in seconds. */
function cpuOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}
const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const selfSys = () => process.cpuUsage().system / 1e6;

async function main(): Promise<void> {
  const files = Number(values["large-files"]);
  const size = Number(values["large-mib"]) * MiB;
  const concurrency = Number(values.concurrency);
  const root = mkdtempSync(join(values.dir, "bench-export-engine-"));
  const port = freePort();
  const azurite = await startAzurite({
    location: join(root, "azurite"),
    host: "127.0.0.1",
    port,
    accounts: [{ name: ACCOUNT, key: KEY }],
  });
  try {
    const endpoint = `http://127.0.0.1:${port}/${ACCOUNT}`;
    const container = new BlobServiceClient(
      endpoint,
      new StorageSharedKeyCredential(ACCOUNT, KEY),
    ).getContainerClient("bench");
    await container.createIfNotExists();
    for (let i = 0; i < files; i++) {
      const data = randomBytes(size);
      await container.getBlockBlobClient(`large-${i}.bin`).uploadData(data, {
        blockSize: 4 * MiB,
        concurrency: 8,
        ...(values["no-md5"]
          ? {}
          : { blobHTTPHeaders: { blobContentMD5: createHash("md5").update(data).digest() } }),
      });
    }
    const source = new AzureExportSource({
      endpoint: { template: `http://127.0.0.1:${port}/{account}` },
      storageAccountId: `/subscriptions/b/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
      accountKey: KEY,
    });
    const workers = new WorkerFileHasher(2);
    const variants = values.variants.split(",").map((v) => {
      const [hasher, verify] = v.split(":");
      return {
        name: v,
        verify: (verify === "written" ? "written" : "medium") as "medium" | "written",
        hasher: (hasher === "inline" ? new InlineFileHasher() : workers) as FileHasher,
      };
    });
    const pid = azurite.process.pid!;
    const results = new Map<string, { wall: number; cpu: number; sys: number; az: number }[]>();
    let run = 0;
    for (let rep = 0; rep < Number(values.reps); rep++) {
      for (const v of variants) {
        const drive = mkdtempSync(join(root, "drive-"));
        try {
          writeFileSync("/proc/sys/vm/drop_caches", "3");
        } catch {
          // not root: caches stay warm alike
        }
        const [c0, s0, a0, t0] = [selfCpu(), selfSys(), cpuOf(pid), process.hrtime.bigint()];
        const r = await exportDrive({
          job: {
            key: `bench/rg/x${++run}`,
            name: `x${run}`,
            selection: { blobList: { blobPathPrefix: ["/bench/"] } },
            driveIds: ["D"],
            diagnosticsPath: "waimportexport",
            logLevel: "Error",
            backupDriveManifest: false,
          },
          driveId: "D",
          root: drive,
          source,
          store: new MemoryExportStore(),
          lock: new KeyedLock(),
          queue: new PQueue({ concurrency }),
          pool: new BufferPool(4 * MiB, Math.ceil(concurrency * 1.5)),
          hasher: v.hasher,
          verify: v.verify,
          blobConcurrency: 32,
          signal: new AbortController().signal,
          log: pino({ level: "warn" }),
          now: () => new Date(),
          retry: { attempts: 4, baseMs: 200, maxMs: 2000 },
          onProgress: () => undefined,
        });
        const wall = Number(process.hrtime.bigint() - t0) / 1e9;
        if (r.status !== "Completed") throw new Error(`${v.name}: export ended ${r.status}`);
        const row = { wall, cpu: selfCpu() - c0, sys: selfSys() - s0, az: cpuOf(pid) - a0 };
        results.set(v.name, [...(results.get(v.name) ?? []), row]);
        console.log(
          `${v.name.padEnd(18)} ${wall.toFixed(2)} s  engine CPU ${row.cpu.toFixed(2)} s (system ${row.sys.toFixed(2)} s)  Azurite CPU ${row.az.toFixed(2)} s`,
        );
        rmSync(drive, { recursive: true, force: true });
      }
    }
    const gb = (files * size) / 1e9;
    console.log(
      `\n${files} x ${values["large-mib"]} MiB, concurrency ${concurrency}, median of ${values.reps}:`,
    );
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    for (const [name, rows] of results) {
      const best = {
        wall: median(rows.map((r) => r.wall)),
        cpu: median(rows.map((r) => r.cpu)),
        az: median(rows.map((r) => r.az)),
      };
      console.log(
        `${name.padEnd(18)} ${((gb * 1000) / best.wall).toFixed(0).padStart(5)} MB/s   CPU per GB: engine ${(best.cpu / gb).toFixed(2)} s, Azurite ${(best.az / gb).toFixed(2)} s`,
      );
    }
    await workers.close();
  } finally {
    await azurite.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
