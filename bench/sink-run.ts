/**
 * One import into the storage sink (bench/sink.ts) by a fresh agent, timed by the bench's clock
 * from the drive's plug to its "drive import finished" line, sampling once a second the agent's
 * RSS, its data directory's size (the checkpoint store) and the sink's counters. Used by
 * bench:sink and bench:scale.
 */
import { readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { attach, detach } from "../src/staging/images.js";
import { now, shipImportJob, startBenchAgent } from "./bench-agent.js";
import { type BenchDrive, nameOf, unmountBelow } from "./drive-images.js";
import { peakRssMiB, processCpu, rssMiB } from "./measure.js";
import { type StorageSink, startSink } from "./sink.js";
import { dropCaches } from "./tools.js";

export interface Sample {
  /** Seconds since the plug. */
  at: number;
  rssMiB: number;
  /** Bytes of the agent's data directory (job store, checkpoints), all files. */
  dataDirBytes: number;
  sinkBytes: number;
  commits: number;
}

export interface SinkImport {
  seconds: number;
  agentSeconds: number;
  t0: number;
  cpu: number;
  main: number;
  /** CPU seconds of the bench process meanwhile: the sink's work, mostly. */
  sinkCpu: number;
  peakRssMiB: number;
  samples: Sample[];
  sink: StorageSink;
}

function dirBytes(dir: string): number {
  let total = 0;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      total += e.isDirectory() ? dirBytes(p) : statSync(p).size;
    }
  } catch {
    // not there yet, or a file rotated away meanwhile
  }
  return total;
}

/** Runs the import; the caller stops `sink` once it has read its figures. */
export async function sinkImport(o: {
  agentMain: string;
  runRoot: string;
  drive: BenchDrive;
  concurrency: number;
  hashThreads?: number;
  /** The agent's transfer.uploadThreads (0: bodies sent from the event loop); its default when absent. */
  uploadThreads?: number;
  logLevel?: "Error" | "Verbose";
}): Promise<SinkImport> {
  const sink = await startSink();
  const agent = await startBenchAgent({
    agentMain: o.agentMain,
    root: o.runRoot,
    azPort: sink.port,
    concurrency: o.concurrency,
    transfer: {
      ...(o.hashThreads ? { hashThreads: o.hashThreads } : {}),
      ...(o.uploadThreads !== undefined ? { uploadThreads: o.uploadThreads } : {}),
    },
  });
  const plugged = join(o.runRoot, "plugged", `${nameOf(o.drive.image)}.img`);
  let device: string | undefined;
  try {
    await shipImportJob(
      agent,
      `sink-${nameOf(o.drive.image)}`,
      [o.drive],
      o.logLevel ? { logLevel: o.logLevel } : {},
    );
    dropCaches();
    const [c0, u0] = [processCpu(agent.pid), process.cpuUsage()];
    const t0 = now();
    const samples: Sample[] = [];
    const sample = () =>
      samples.push({
        at: now() - t0,
        rssMiB: rssMiB(agent.pid),
        dataDirBytes: dirBytes(join(o.runRoot, "data")),
        sinkBytes: sink.bytes(),
        commits: sink.commits.length,
      });
    const timer = setInterval(sample, 1000);
    renameSync(o.drive.image, plugged);
    // A disk has no page cache under it: the loop device reads its backing file directly.
    device = attach(plugged, { directIo: true });
    const { line, at } = await agent.logLineAt<{ seconds: number; status: string }>("drive import finished");
    clearInterval(timer);
    sample();
    const c1 = processCpu(agent.pid);
    const u = process.cpuUsage(u0);
    if (line.status !== "Completed") {
      const warnings = agent
        .output()
        .split("\n")
        .filter((l) => /"level":(40|50)/.test(l))
        .slice(-5);
      throw new Error(
        `the import into the sink ended ${line.status}; the agent's last warnings:\n${warnings.join("\n")}`,
      );
    }
    return {
      seconds: at - t0,
      agentSeconds: line.seconds,
      t0,
      cpu: c1.total - c0.total,
      main: c1.main - c0.main,
      sinkCpu: (u.user + u.system) / 1e6,
      peakRssMiB: peakRssMiB(agent.pid),
      samples,
      sink,
    };
  } finally {
    await agent.stop();
    unmountBelow(o.runRoot);
    if (device) detach(device);
    renameSync(plugged, o.drive.image);
    rmSync(join(o.runRoot, "data"), { recursive: true, force: true });
  }
}
