/**
 * Shared benchmark helpers: the tools users would pick instead (AzCopy from npm
 * `@azure-tools/azcopy-linux`, Debian's rclone), the storage's ingest ceiling (the raw SDK
 * uploading bytes from memory at its best concurrency), container SAS URLs for Azurite, a peak-RSS
 * sampler, CPU accounting, the agent as a child process, and a timer. Used by bench/import.ts
 * and bench/export.ts.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import {
  type BlobServiceClient,
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  type StorageSharedKeyCredential,
} from "@azure/storage-blob";
import PQueue from "p-queue";

export const MiB = 1024 * 1024;

export async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

/** Samples a process's peak RSS (VmHWM) until stopped; returns MiB. */
export function rssSampler(pid: number): { stop(): number; peak(): number } {
  let peak = 0;
  const sample = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) peak = Math.max(peak, Number(m[1]) / 1024);
    } catch {
      // exited
    }
  };
  const t = setInterval(sample, 200);
  return {
    peak: () => peak,
    stop() {
      sample();
      clearInterval(t);
      return peak;
    },
  };
}

/** A container SAS URL (path-style, as Azurite serves accounts) with every permission, for one hour. */
export function containerSasUrl(
  service: BlobServiceClient,
  credential: StorageSharedKeyCredential,
  container: string,
): string {
  const sas = generateBlobSASQueryParameters(
    {
      containerName: container,
      permissions: ContainerSASPermissions.parse("racwdl"),
      expiresOn: new Date(Date.now() + 3600_000),
    },
    credential,
  ).toString();
  return `${service.getContainerClient(container).url}?${sas}`;
}

/**
 * The AzCopy binary from npm, copied into `workDir` with its execute bit (the package ships it
 * without one, and node_modules is shared: it is not chmod-ed in place).
 */
export function azcopyBinary(workDir: string): string | undefined {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = dirname(require.resolve("@azure-tools/azcopy-linux/package.json"));
  } catch {
    return undefined;
  }
  const src = join(pkg, "dist", "bin", "azcopy_linux_amd64");
  if (!existsSync(src)) return undefined;
  const bin = join(workDir, "azcopy");
  if (!existsSync(bin)) {
    copyFileSync(src, bin);
    chmodSync(bin, 0o755);
  }
  return bin;
}

/**
 * Runs `azcopy copy` between a local directory and a container SAS URL. AzCopy cannot infer the
 * direction for an emulator URL, so `--from-to` is given; `--put-md5` makes it hash every file
 * (the closest it comes to drive-station's verification); it logs and keeps job plans in `workDir`.
 */
export function runAzcopy(o: {
  bin: string;
  workDir: string;
  from: string;
  to: string;
  fromTo: "LocalBlob" | "BlobLocal";
  concurrency?: number;
  extra?: string[];
}): void {
  const logs = join(o.workDir, "azcopy-logs");
  mkdirSync(logs, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AZCOPY_LOG_LOCATION: logs,
    AZCOPY_JOB_PLAN_LOCATION: logs,
    ...(o.concurrency ? { AZCOPY_CONCURRENCY_VALUE: String(o.concurrency) } : {}),
  };
  delete env.AZCOPY_AUTO_LOGIN_TYPE;
  const args = [
    "copy",
    o.from,
    o.to,
    "--from-to",
    o.fromTo,
    "--recursive",
    "--log-level",
    "ERROR",
    "--output-level",
    "quiet",
    ...(o.fromTo === "LocalBlob"
      ? ["--put-md5", "--block-size-mb", "4"]
      : ["--check-md5", "FailIfDifferent"]),
    ...(o.extra ?? []),
  ];
  const r = spawnSync(o.bin, args, { env, encoding: "utf8", timeout: 1800_000 });
  if (r.status !== 0)
    throw new Error(
      `azcopy exited ${r.status ?? r.signal}: ${(r.stdout + r.stderr).split("\n").slice(-5).join(" ")}`,
    );
}

/**
 * Runs `rclone copy` between a local directory and a container given by SAS URL. Debian's rclone
 * 1.60 builds host-style URLs from `account`/`endpoint` (`account.endpoint`), and its
 * `use_emulator` sends requests with an empty URL ("unsupported protocol scheme"), but a container
 * `sas_url` is used as given, path-style, which Azurite serves.
 */
export function runRclone(o: {
  /** A local directory, or (download) the container's files into `to`. */
  from: string;
  to?: string;
  sasUrl: string;
  container: string;
  extra: string[];
}): void {
  const remote = `:azureblob:${o.container}`;
  const [src, dst] = o.to ? [remote, o.to] : [o.from, remote];
  const r = spawnSync("rclone", ["copy", src, dst, "--retries", "1", ...o.extra], {
    env: { ...process.env, RCLONE_AZUREBLOB_SAS_URL: o.sasUrl },
    encoding: "utf8",
    timeout: 1800_000,
  });
  if (r.status !== 0)
    throw new Error(
      `rclone exited ${r.status ?? r.signal}: ${r.stderr.split("\n").find((l) => l.includes("ERROR")) ?? ""}`,
    );
}

export const rcloneAvailable = (): boolean => spawnSync("rclone", ["version"]).status === 0;

/**
 * The storage's ingest ceiling: the same bytes uploaded from memory (no drive, no hashing) at
 * each of `concurrencies`; the best run counts. Large blobs as 4 MiB staged blocks + commit, small
 * ones as one Put Blob each.
 */
export async function ingestCeiling(o: {
  service: BlobServiceClient;
  container: string;
  blobs: { name: string; data: Buffer }[];
  concurrencies: number[];
  /** Azurite's pid: its CPU seconds per run are recorded too. */
  azuritePid?: number;
}): Promise<{
  seconds: number;
  concurrency: number;
  /** CPU seconds of the uploader and of Azurite in the best run. */
  cpu: number;
  azurite: number;
  all: { concurrency: number; seconds: number; cpu: number; azurite: number }[];
}> {
  const all: { concurrency: number; seconds: number; cpu: number; azurite: number }[] = [];
  for (const concurrency of o.concurrencies) {
    const c = o.service.getContainerClient(`${o.container}-${concurrency}`);
    await c.createIfNotExists();
    const q = new PQueue({ concurrency });
    const [u0, a0] = [process.cpuUsage(), o.azuritePid ? cpuSeconds(o.azuritePid) : 0];
    const seconds = await timed(() =>
      Promise.all(
        o.blobs.map(async ({ name, data }) => {
          const blob = c.getBlockBlobClient(name);
          if (data.length <= 4 * MiB) {
            await q.add(() => blob.upload(data, data.length));
            return;
          }
          const ids: string[] = [];
          const stages: Promise<unknown>[] = [];
          for (let off = 0, k = 0; off < data.length; off += 4 * MiB, k++) {
            const id = Buffer.from(`blk-${String(k).padStart(8, "0")}`).toString("base64");
            ids.push(id);
            const part = data.subarray(off, Math.min(off + 4 * MiB, data.length));
            stages.push(q.add(() => blob.stageBlock(id, part, part.length)));
          }
          await Promise.all(stages);
          await q.add(() => blob.commitBlockList(ids));
        }),
      ),
    );
    const u = process.cpuUsage(u0);
    const azurite = o.azuritePid ? cpuSeconds(o.azuritePid) - a0 : 0;
    all.push({ concurrency, seconds, cpu: (u.user + u.system) / 1e6, azurite });
  }
  const best = all.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  return { seconds: best.seconds, concurrency: best.concurrency, cpu: best.cpu, azurite: best.azurite, all };
}

/**
 * Runs `fn` and measures its wall seconds, the CPU seconds of this process and its waited-for
 * children (a spawnSync'd tool) meanwhile, and Azurite's.
 */
export async function metered(
  azuritePid: number,
  fn: () => Promise<unknown> | unknown,
): Promise<{ seconds: number; cpu: number; azurite: number }> {
  const [u0, c0, a0] = [process.cpuUsage(), childrenCpuSeconds(), cpuSeconds(azuritePid)];
  const seconds = await timed(fn);
  const u = process.cpuUsage(u0);
  return {
    seconds,
    cpu: (u.user + u.system) / 1e6 + childrenCpuSeconds() - c0,
    azurite: cpuSeconds(azuritePid) - a0,
  };
}

/** CPU seconds (user + system) a live process has used: the same figure whatever else loads the machine. */
export function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** CPU seconds of this process's waited-for children (spawnSync'd tools). */
export function childrenCpuSeconds(): number {
  const f = readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ");
  return (Number(f[13]) + Number(f[14])) / 100;
}

export { BENCH_ACCOUNT, BENCH_KEY, type BenchAgent, freePort, startBenchAgent } from "./bench-agent.js";

/**
 * Drops the page cache (root only), so every tool starts with the same cold drive: `sync`, then
 * `drop_caches` (which also drops a loop image's backing file pages), then BLKFLSBUF on each
 * given block device (a still-attached loop device's own buffers). Returns whether the kernel
 * let the bench drop the cache (if not, every tool reads a warm cache alike).
 */
export function dropCaches(devices: string[] = []): boolean {
  spawnSync("sync");
  for (const d of devices) spawnSync("blockdev", ["--flushbufs", d]);
  try {
    writeFileSync("/proc/sys/vm/drop_caches", "3");
    return true;
  } catch {
    return false;
  }
}
