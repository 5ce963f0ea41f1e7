import { mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { attach, detach } from "../src/staging/images.js";
import { now, shipImportJob, startBenchAgent } from "./bench-agent.js";
import { type BenchDrive, buildDrive, nameOf, runBench, unmountBelow } from "./drive-images.js";
import { fmt, freshAzurite, loadLine, machineCpu, peakRssMiB, processCpu } from "./measure.js";
import { readThrottle } from "./throttle.js";
import { dropCaches, MiB } from "./tools.js";

const { values } = parseArgs({
  options: {
    drives: { type: "string", default: "1,2,4,8" },
    "rate-mb": { type: "string", default: "40" },
    files: { type: "string", default: "4" },
    "file-mib": { type: "string", default: "50" },
    concurrency: { type: "string", default: "16" },
    "hash-threads": { type: "string" },
    "rss-limit-mib": { type: "string", default: "300" },
  },
});
const counts = values.drives.split(",").map(Number);
const rate = Number(values["rate-mb"]) * 1e6;
const root = mkdtempSync(join(tmpdir(), "bench-bays-"));
const agentMain = resolve(dirname(fileURLToPath(import.meta.url)), "..", "agent", "main.js");

interface BayRun {
  n: number;
  seconds: number;
  perDrive: { driveId: string; seconds: number; mbps: number; ownMbps: number; throttledRead: number }[];
  rssMiB: number;
  agentCpu: number;
  agentMain: number;
  azuriteCpu: number;
  machineBusy: number;
}

async function run(n: number, drives: BenchDrive[]): Promise<BayRun> {
  const az = await freshAzurite(root);
  const runRoot = mkdtempSync(join(root, `bays-${n}-`));
  const throttle = readThrottle(`drive-station-bench-bays-${process.pid}`);
  const agent = await startBenchAgent({
    agentMain,
    root: runRoot,
    azPort: az.port,
    concurrency: Number(values.concurrency),
    ...(values["hash-threads"] ? { transfer: { hashThreads: Number(values["hash-threads"]) } } : {}),
  });
  const used = drives.slice(0, n);
  const devices: string[] = [];
  const plugged = used.map((d) => join(runRoot, "plugged", `${nameOf(d.image)}.img`));
  try {
    throttle.add(agent.pid);
    for (const [i, d] of used.entries()) await shipImportJob(agent, `bays-${n}-${i}`, [d]);
    dropCaches();
    const [c0, a0, m0] = [processCpu(agent.pid), processCpu(az.pid).total, machineCpu()];
    const t0 = now();
    for (const [i, d] of used.entries()) {
      renameSync(d.image, plugged[i]!);
      const dev = attach(plugged[i]!);
      throttle.limit(dev, rate); // before the agent's next 200 ms poll can see the drive
      devices.push(dev);
    }
    const ends = new Map<string, number>();
    const own = new Map<string, number>();
    for (let k = 1; k <= n; k++) {
      const { line, at } = await agent.logLineAt<{ driveId: string; status: string; mbPerSecond: number }>(
        "drive import finished",
        k,
      );
      if (line.status !== "Completed") throw new Error(`drive ${line.driveId} ended ${line.status}`);
      ends.set(line.driveId, at - t0);
      own.set(line.driveId, line.mbPerSecond);
    }
    const seconds = Math.max(...ends.values());
    const [c1, m1] = [processCpu(agent.pid), machineCpu()];
    return {
      n,
      seconds,
      perDrive: used.map((d, i) => ({
        driveId: d.driveId,
        seconds: ends.get(d.driveId)!,
        mbps: d.bytes / 1e6 / ends.get(d.driveId)!,
        ownMbps: own.get(d.driveId)!,
        throttledRead: throttle.readBytes(devices[i]!),
      })),
      rssMiB: peakRssMiB(agent.pid),
      agentCpu: c1.total - c0.total,
      agentMain: c1.main - c0.main,
      azuriteCpu: processCpu(az.pid).total - a0,
      machineBusy: (m1.busy - m0.busy) / (m1.total - m0.total),
    };
  } finally {
    await agent.stop();
    throttle.remove();
    unmountBelow(runRoot);
    for (const d of devices) detach(d);
    for (const [i, d] of used.entries()) renameSync(plugged[i]!, d.image);
    await az.stop();
    rmSync(runRoot, { recursive: true, force: true });
  }
}

/** Which resource stopped the aggregate, from what was saturated during the run. */
function limitOf(r: BayRun): string {
  const found: string[] = [];
  if (r.azuriteCpu / r.seconds >= 0.85)
    found.push(`storage (Azurite's one thread ${fmt((100 * r.azuriteCpu) / r.seconds, 0)} % busy)`);
  if (r.agentMain / r.seconds >= 0.85)
    found.push(`CPU: the agent's event loop (${fmt((100 * r.agentMain) / r.seconds, 0)} % busy)`);
  // Averaged over the run, ramp-up and tail included: 85 % of the cores is as busy as they get.
  if (r.machineBusy >= 0.85)
    found.push(
      `CPU: the machine (${fmt(100 * r.machineBusy, 0)} % of ${cpus().length} cores busy, other load included)`,
    );
  if (r.rssMiB >= Number(values["rss-limit-mib"])) found.push(`memory (peak RSS ${fmt(r.rssMiB, 0)} MiB)`);
  return found.length
    ? found.join("; ")
    : `none of CPU, storage, memory saturated (machine ${fmt(100 * r.machineBusy, 0)} % busy): look at the agent's I/O threads (transfer.ioThreads) and scheduling`;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error("run as root: loop devices, mounts, blkio cgroups, drop_caches");
  mkdirSync(join(root, "images"));
  const max = Math.max(...counts);
  const files = Number(values.files);
  const size = Number(values["file-mib"]) * MiB;
  console.log(`building ${max} drive images of ${files} x ${values["file-mib"]} MiB …`);
  const drives: BenchDrive[] = [];
  for (let i = 0; i < max; i++)
    drives.push(
      await buildDrive({
        image: join(root, "images", `bay${i}.img`),
        driveId: `BENCH-BAY-${i}`,
        files: Array.from({ length: files }, (_, k) => ({ rel: `bay${i}/f-${k}.bin`, size })),
        dest: `bay-${i}/`,
      }),
    );
  const load0 = loadavg();
  const runs: BayRun[] = [];
  for (const n of counts) {
    console.log(`${n} drive(s) at ${values["rate-mb"]} MB/s each …`);
    const r = await run(n, drives);
    runs.push(r);
    console.log(`  ${fmt(r.seconds)} s`);
  }
  console.log(
    `\neach drive ${files} x ${values["file-mib"]} MiB, reads held to ${values["rate-mb"]} MB/s per drive (blkio throttle on its loop device)`,
  );
  console.log(
    " N | aggregate MB/s | target 0.9xNxrate | per-drive MB/s (slowest-fastest) | spread | peak RSS | agent CPU s/GB (main) | Azurite % | machine %",
  );
  for (const r of runs) {
    const bytes = r.perDrive.length * drives[0]!.bytes;
    const agg = bytes / 1e6 / r.seconds;
    const rates = r.perDrive.map((d) => d.mbps);
    const spread = Math.max(...rates) / Math.min(...rates) - 1;
    const gb = bytes / 1e9;
    console.log(
      `${String(r.n).padStart(2)} | ${fmt(agg, 1).padStart(14)} | ${fmt((0.9 * r.n * rate) / 1e6, 1).padStart(17)} | ${rates.map((x) => fmt(x, 1)).join(" ")} (${fmt(Math.min(...rates), 1)}-${fmt(Math.max(...rates), 1)}) | ${fmt(100 * spread, 0)} % | ${fmt(r.rssMiB, 0)} MiB | ${fmt(r.agentCpu / gb)} (${fmt(r.agentMain / gb)}) | ${fmt((100 * r.azuriteCpu) / r.seconds, 0)} | ${fmt(100 * r.machineBusy, 0)}`,
    );
    const unthrottled = r.perDrive.filter((d) => d.throttledRead < drives[0]!.bytes * 0.9);
    if (unthrottled.length)
      console.log(
        `   WARNING: ${unthrottled.map((d) => d.driveId).join(", ")}: fewer bytes seen by the throttle than the drive holds (page cache?)`,
      );
    console.log(
      `   per drive, the agent's own rate (from its claim): ${r.perDrive.map((d) => fmt(d.ownMbps, 1)).join(" ")} MB/s`,
    );
    if (agg < (0.9 * r.n * rate) / 1e6) console.log(`   under target: limit ${limitOf(r)}`);
  }
  console.log(`${loadLine(load0)}`);
}

runBench(main, root);
