import { mkdirSync, mkdtempSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildDrive, manyFiles, runBench } from "./drive-images.js";
import {
  ceilingRun,
  type Dataset,
  driveStationRun,
  type Peer,
  peerRun,
  type RunContext,
  type RunResult,
} from "./import-runs.js";
import { fmt, loadLine, median, rotated, runLine } from "./measure.js";
import { azcopyBinary, MiB, rcloneAvailable } from "./tools.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    "large-mib": { type: "string", default: "256" },
    "large-files": { type: "string", default: "4" },
    "small-files": { type: "string", default: "4000" },
    "small-kib": { type: "string", default: "4" },
    concurrency: { type: "string", default: "16" },
    "hash-threads": { type: "string" },
    tools: { type: "string", default: "ds,ceiling,raw,azcopy,rclone" },
    "ceiling-large": { type: "string", default: "8,32" },
    "ceiling-small": { type: "string", default: "16,128" },
  },
});
const rounds = Number(values.rounds);
const wanted = new Set(values.tools.split(","));
const root = mkdtempSync(join(tmpdir(), "bench-import-"));

type Tool = "drive-station (verified)" | "ingest ceiling" | Peer;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error("run as root: the benchmark attaches loop devices, mounts them and drops the page cache");
  mkdirSync(join(root, "images"));
  const largeMiB = Number(values["large-mib"]);
  const sets: Dataset[] = [];
  const largeFiles = Array.from({ length: Number(values["large-files"]) }, (_, i) => ({
    rel: `large-${i}.bin`,
    size: largeMiB * MiB,
  }));
  const smallFiles = manyFiles(Number(values["small-files"]), Number(values["small-kib"]) * 1024, "small");
  console.log(
    `building drive images: ${largeFiles.length} x ${largeMiB} MiB, ${smallFiles.length} x ${values["small-kib"]} KiB (ext4) …`,
  );
  for (const [name, files] of [
    ["large", largeFiles],
    ["small", smallFiles],
  ] as const) {
    const image = join(root, "images", `${name}.img`);
    const drive = await buildDrive({
      image,
      driveId: `BENCH-${name.toUpperCase()}`,
      files,
      dest: `ds-${name}/`,
    });
    sets.push({ name, drive, files });
  }

  const ctx: RunContext = {
    root,
    agentMain: resolve(dirname(fileURLToPath(import.meta.url)), "..", "agent", "main.js"),
    concurrency: Number(values.concurrency),
    ...(values["hash-threads"] ? { hashThreads: Number(values["hash-threads"]) } : {}),
  };
  const notes: string[] = [];
  const tools: Tool[] = [];
  if (wanted.has("ds")) tools.push("drive-station (verified)");
  if (wanted.has("ceiling")) tools.push("ingest ceiling");
  if (wanted.has("raw")) tools.push("raw SDK from the drive");
  const azcopy = wanted.has("azcopy") ? azcopyBinary(root) : undefined;
  if (azcopy) {
    ctx.azcopy = azcopy;
    tools.push("AzCopy --put-md5");
  } else if (wanted.has("azcopy")) notes.push("AzCopy is not installed (npm @azure-tools/azcopy-linux)");
  if (wanted.has("rclone") && rcloneAvailable()) tools.push("rclone");
  else if (wanted.has("rclone")) notes.push("rclone is not installed (apt-get install rclone)");

  const loadBefore = loadavg();
  const results = new Map<string, Map<Tool, RunResult[]>>();
  let cacheDropped = true;
  for (const ds of sets) {
    const perTool = new Map<Tool, RunResult[]>(tools.map((t) => [t, []]));
    results.set(ds.name, perTool);
    const ceilingCs = (ds.name === "large" ? values["ceiling-large"] : values["ceiling-small"])
      .split(",")
      .map(Number);
    for (let r = 0; r < rounds; r++) {
      const order = rotated(tools, r);
      console.log(`${ds.name}, round ${r + 1}/${rounds}: ${order.join(" → ")}`);
      for (const tool of order) {
        const tag = `${ds.name}-${r}-${tools.indexOf(tool)}`;
        let res: RunResult;
        if (tool === "drive-station (verified)") res = await driveStationRun(ctx, ds, tag);
        else if (tool === "ingest ceiling") {
          // The ceiling is the best of its concurrencies, each on its own fresh Azurite.
          const runs: RunResult[] = [];
          for (const c of ceilingCs) runs.push(await ceilingRun(ds, c, root));
          res = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
        } else res = await peerRun(ctx, ds, tool, tag);
        cacheDropped &&= res.cacheDropped;
        perTool.get(tool)!.push(res);
        // Each run's own line, so that a run cut short still leaves its figures.
        console.log(runLine(tool, res, ds.drive.bytes / 1e9));
      }
    }
  }
  report(sets, tools, results, notes, cacheDropped, loadBefore);
}

function report(
  sets: Dataset[],
  tools: Tool[],
  results: Map<string, Map<Tool, RunResult[]>>,
  notes: string[],
  cacheDropped: boolean,
  loadBefore: number[],
): void {
  const ds: Tool = "drive-station (verified)";
  for (const set of sets) {
    const { bytes, files } = set.drive;
    const perTool = results.get(set.name)!;
    console.log(
      `\n${set.name} files: ${files} x ${fmt(bytes / files / 1024, 0)} KiB = ${fmt(bytes / 1e6, 1)} MB; median of ${rounds} (min-max), fresh Azurite each run`,
    );
    const med = new Map<Tool, number>();
    for (const tool of tools) {
      const runs = perTool.get(tool)!;
      const secs = runs.map((r) => r.seconds);
      const m = median(secs);
      med.set(tool, m);
      console.log(
        `  ${tool.padEnd(26)} ${fmt(m).padStart(7)} s (${fmt(Math.min(...secs))}-${fmt(Math.max(...secs))}) ${fmt(bytes / 1e6 / m, 1).padStart(7)} MB/s ${fmt(files / m, 0).padStart(7)} files/s   CPU s/GB tool ${fmt(median(runs.map((r) => r.cpu)) / (bytes / 1e9))} + Azurite ${fmt(median(runs.map((r) => r.azurite)) / (bytes / 1e9))}`,
      );
    }
    const dsRuns = perTool.get(ds);
    if (dsRuns) {
      const gb = bytes / 1e9;
      console.log(
        `  drive-station agent: CPU s per GB ${fmt(median(dsRuns.map((r) => r.cpu)) / gb)} whole process, ${fmt(median(dsRuns.map((r) => r.main!)) / gb)} main thread (event loop); peak RSS ${fmt(Math.max(...dsRuns.map((r) => r.rssMiB!)), 0)} MiB; its own logged time (from its claim) ${fmt(median(dsRuns.map((r) => r.agentSeconds!)))} s`,
      );
      const others = tools
        .filter((t) => t !== ds)
        .map((t) => `${fmt(med.get(t)! / med.get(ds)!)}x ${t}`)
        .join(", ");
      console.log(
        `  drive-station speed as a multiple of each (higher is better for drive-station): ${others}`,
      );
    }
  }
  for (const n of notes) console.log(`note: ${n}`);
  console.log(
    cacheDropped
      ? "page cache dropped (sync; drop_caches=3) before every run"
      : "WARNING: the kernel refused drop_caches: every tool read a warm cache",
  );
  console.log(`${loadLine(loadBefore)}`);
}

runBench(main, root);
