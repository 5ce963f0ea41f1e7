import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, statfsSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { agentKnowsHashThreads } from "./bench-agent.js";
import { buildDrive, runBench } from "./drive-images.js";
import { fmt, loadLine } from "./measure.js";
import { sinkImport } from "./sink-run.js";
import { MiB, timed } from "./tools.js";

const { values } = parseArgs({
  options: {
    threads: { type: "string", default: "1,2" },
    "upload-threads": { type: "string" },
    files: { type: "string", default: "4" },
    "file-mib": { type: "string", default: "512" },
    concurrency: { type: "string", default: "16" },
    "md5-mib": { type: "string", default: "512" },
  },
});
const bytes = Number(values.files) * Number(values["file-mib"]) * MiB;
const shmFree = (() => {
  try {
    const s = statfsSync("/dev/shm");
    return s.bavail * s.bsize;
  } catch {
    return 0;
  }
})();
const imageDir = shmFree > bytes * 2 ? "/dev/shm" : tmpdir();
// The agent's loop directory must be on the image's filesystem: plugging is a rename.
const root = mkdtempSync(join(imageDir, "bench-sink-"));
const images = join(root, "images");
const agentMain = resolve(dirname(fileURLToPath(import.meta.url)), "..", "agent", "main.js");

/**
 * MD5 MB/s on one core, 4 MiB at a time (the agent's block size), per CPU second of the hashing
 * (a core's own speed, whatever else loads the machine) and per wall second (what it got here).
 */
async function md5PerCore(mib: number): Promise<{ cpu: number; wall: number }> {
  const block = randomBytes(4 * MiB);
  const h = createHash("md5");
  const u0 = process.cpuUsage();
  const s = await timed(() => {
    for (let i = 0; i < mib / 4; i++) h.update(block);
    h.digest();
  });
  const u = process.cpuUsage(u0);
  return { cpu: (mib * MiB) / 1e6 / ((u.user + u.system) / 1e6), wall: (mib * MiB) / 1e6 / s };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: loop devices, mounts, drop_caches");
  const md5 = await md5PerCore(Number(values["md5-mib"]));
  const cores = cpus().length;
  const limit = (md5.cpu * cores) / 2;
  console.log(
    `MD5 on this machine: ${fmt(md5.cpu, 0)} MB/s per CPU second of one core (${fmt(md5.wall, 0)} MB/s of wall time under the current load); two digests per byte on ${cores} cores: ${fmt(limit, 0)} MB/s`,
  );
  mkdirSync(images);
  console.log(`building the drive: ${values.files} x ${values["file-mib"]} MiB (image in ${imageDir}) …`);
  const files = Array.from({ length: Number(values.files) }, (_, i) => ({
    rel: `big-${i}.bin`,
    size: Number(values["file-mib"]) * MiB,
  }));
  const drive = await buildDrive({
    image: join(images, "sink.img"),
    driveId: "BENCH-SINK",
    files,
    dest: "sink/",
  });
  const knows = agentKnowsHashThreads(agentMain);
  const counts = knows ? values.threads.split(",").map(Number) : [0];
  if (!knows)
    console.log(
      "this agent has no transfer.hashThreads: one run, hashing on its event loop (re-run after the pool lands)",
    );
  const load0 = loadavg();
  const rows: string[] = [];
  const rates: number[] = [];
  const uploads: (number | undefined)[] = values["upload-threads"]?.split(",").map(Number) ?? [undefined];
  const runs = counts.flatMap((threads) => uploads.map((upload) => ({ threads, upload })));
  for (const { threads, upload } of runs) {
    const runRoot = join(root, `t${threads}-u${upload ?? "d"}`);
    mkdirSync(runRoot);
    const label = `${threads ? `${threads} hashing` : "hashing on the event loop"}, ${upload === undefined ? "default" : upload} upload`;
    console.log(`importing into the sink, ${label} thread(s) …`);
    const r = await sinkImport({
      agentMain,
      runRoot,
      drive,
      concurrency: Number(values.concurrency),
      ...(threads ? { hashThreads: threads } : {}),
      ...(upload !== undefined ? { uploadThreads: upload } : {}),
    });
    const got = r.sink.bytes();
    await r.sink.stop();
    if (got < bytes) throw new Error(`the sink received ${got} bytes of ${bytes}`);
    const gbps = bytes / 1e9 / r.seconds;
    rates.push(gbps);
    const gb = bytes / 1e9;
    rows.push(
      `${(threads ? String(threads) : "event loop").padEnd(6)} ${(upload === undefined ? "default" : String(upload)).padEnd(7)} | ${fmt(gbps, 3)} GB/s (${fmt(r.seconds)} s; agent's own ${fmt(bytes / 1e9 / r.agentSeconds, 3)}) | ${fmt((gbps * 1000) / limit)}x | ${fmt(r.cpu / gb)} | ${fmt(r.main / gb)} | ${fmt(r.sinkCpu / gb)} | ${fmt(r.peakRssMiB, 0)} MiB | ${fmt(gb / r.main, 3)} / ${fmt((cpus().length * gb) / (r.cpu + r.sinkCpu), 3)} GB/s`,
    );
  }
  console.log(`\n${fmt(bytes / 1e9, 2)} GB from one loop drive into the sink (bytes discarded unhashed)`);
  console.log(
    "hash / upload threads | rate (from plug; agent's own from claim) | x MD5 limit | agent CPU s/GB | main thread s/GB | sink s/GB | peak RSS",
  );
  for (const row of rows) console.log(row);
  console.log(
    "on a loaded machine the wall-clock rates are low; the CPU figures hold: the event loop's ceiling is 1 / (main thread s/GB) GB/s, the process's on all cores is cores / (agent + sink s/GB)",
  );
  if (counts.length >= 2 && uploads.length === 1)
    console.log(`${counts[1]} threads / ${counts[0]} thread(s): ${fmt(rates[1]! / rates[0]!)}x`);
  console.log(`${loadLine(load0)}`);
}

runBench(main, root);
