/**
 * What the benchmarks read from /proc and how they summarise it: a process's CPU seconds split
 * into the main thread (the event loop) and the rest, peak RSS, the machine's busy cores, and
 * the median of repeated runs; plus a fresh Azurite per run, so no tool finds blobs another
 * tool left behind.
 */

import { readFileSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { startAzurite } from "../src/storage/embedded-azurite.js";
import { BENCH_ACCOUNT, BENCH_KEY, type BenchAgent, freePort, now } from "./bench-agent.js";

const ticks = (statLine: string) => {
  const f = statLine.split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
};

/** CPU seconds (user + system) of a live process, and of its main thread (the event loop). */
export function processCpu(pid: number): { total: number; main: number } {
  return {
    total: ticks(readFileSync(`/proc/${pid}/stat`, "utf8")),
    main: ticks(readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8")),
  };
}

/** Peak resident set (VmHWM) of a live process, MiB; 0 once it has exited. */
export function peakRssMiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Current resident set (VmRSS) of a live process, MiB. */
export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Busy and total CPU seconds of the whole machine so far (all cores, from /proc/stat). */
export function machineCpu(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0) / 100;
  const idle = (f[3]! + f[4]!) / 100;
  return { busy: total - idle, total };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `order` rotated by `round`: each tool runs first, second, … in turn over the rounds. */
export const rotated = <T>(order: T[], round: number): T[] =>
  order.map((_, i) => order[(i + round) % order.length]!);

export interface FreshAzurite {
  port: number;
  pid: number;
  service: BlobServiceClient;
  credential: StorageSharedKeyCredential;
  /** Stops it and deletes its files. */
  stop(): Promise<void>;
}

/** A new Azurite on an empty data directory: every tool meets the same empty account. */
export async function freshAzurite(dir: string): Promise<FreshAzurite> {
  const port = freePort();
  const location = join(dir, `azurite-${port}`);
  const azurite = await startAzurite({
    location,
    host: "127.0.0.1",
    port,
    accounts: [{ name: BENCH_ACCOUNT, key: BENCH_KEY }],
  });
  const credential = new StorageSharedKeyCredential(BENCH_ACCOUNT, BENCH_KEY);
  return {
    port,
    pid: azurite.process.pid!,
    credential,
    service: new BlobServiceClient(`http://127.0.0.1:${port}/${BENCH_ACCOUNT}`, credential),
    async stop() {
      await azurite.stop();
      rmSync(location, { recursive: true, force: true });
    },
  };
}

/** One timed run of one tool (bench/import-runs.ts, bench/export-runs.ts). */
export interface RunResult {
  seconds: number;
  /** CPU seconds of the tool (for drive-station: the agent process; `main`: its main thread). */
  cpu: number;
  main?: number;
  azurite: number;
  rssMiB?: number;
  /** drive-station's own figure (its log line: from its claim of the drive to its end). */
  agentSeconds?: number;
  cacheDropped: boolean;
}

export const fmt = (n: number, digits = 2) => n.toFixed(digits);

/** One run's line, printed as it ends (so that a bench cut short still leaves its figures). */
export const runLine = (tool: string, res: RunResult, gb: number): string =>
  `  ${tool.padEnd(26)} ${fmt(res.seconds)} s, CPU s/GB ${fmt(res.cpu / gb)}${res.main !== undefined ? ` (main thread ${fmt(res.main / gb)}), peak RSS ${fmt(res.rssMiB!, 0)} MiB, own time ${fmt(res.agentSeconds!)} s` : ""}, Azurite ${fmt(res.azurite / gb)}`;

/** The machine's load around a bench run: on a shared machine, the figures' context. */
export function loadLine(before: number[]): string {
  const f = (l: number[]) => l.map((x) => x.toFixed(1)).join("/");
  return `machine load (1/5/15 min): before ${f(before)}, after ${f(loadavg())} (on a shared machine the wall-clock figures are noisy; CPU per GB holds better); the agent sizes its own I/O and hashing threads (agent/threads.ts)`;
}

/**
 * drive-station's timed run: the bench's clock starts, `plug` plugs the drive, and the run ends at
 * the agent's `finished` log line, which must say Completed. CPU of the agent (process and main
 * thread) and of Azurite over the run, the agent's peak RSS and its own logged time.
 */
export async function timedAgentRun(
  agent: BenchAgent,
  az: Pick<FreshAzurite, "pid">,
  o: { finished: string; what: string; cacheDropped: boolean; plug(): void },
): Promise<RunResult> {
  const [c0, a0] = [processCpu(agent.pid), processCpu(az.pid).total];
  const t0 = now();
  o.plug();
  const { line, at } = await agent.logLineAt<{ seconds: number; status: string }>(o.finished);
  const c1 = processCpu(agent.pid);
  if (line.status !== "Completed") throw new Error(`${o.what} ended ${line.status}`);
  return {
    seconds: at - t0,
    cpu: c1.total - c0.total,
    main: c1.main - c0.main,
    azurite: processCpu(az.pid).total - a0,
    rssMiB: peakRssMiB(agent.pid),
    agentSeconds: line.seconds,
    cacheDropped: o.cacheDropped,
  };
}
