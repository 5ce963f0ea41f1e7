import { mkdtempSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runBench } from "./drive-images.js";
import { driveStationExport, type ExportContext, type ExportPeer, peerExport } from "./export-runs.js";
import { fmt, loadLine, median, type RunResult, rotated, runLine } from "./measure.js";
import { azcopyBinary, MiB, rcloneAvailable } from "./tools.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    "large-mib": { type: "string", default: "256" },
    "large-files": { type: "string", default: "4" },
    concurrency: { type: "string", default: "16" },
    tools: { type: "string", default: "medium,written,azcopy,rclone,raw" },
  },
});
const rounds = Number(values.rounds);
const wanted = new Set(values.tools.split(","));
const root = mkdtempSync(join(tmpdir(), "bench-export-"));

const MEDIUM = "drive-station (medium)";
const WRITTEN = "drive-station (written)";
type Tool = typeof MEDIUM | typeof WRITTEN | ExportPeer;
const AZCOPY: ExportPeer = "AzCopy --check-md5";

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error("run as root: the benchmark attaches loop devices, mounts them and drops the page cache");
  const largeMiB = Number(values["large-mib"]);
  const files = Array.from({ length: Number(values["large-files"]) }, (_, i) => ({
    rel: `large-${i}.bin`,
    size: largeMiB * MiB,
  }));
  const bytes = files.reduce((a, f) => a + f.size, 0);
  const ctx: ExportContext = {
    root,
    agentMain: resolve(dirname(fileURLToPath(import.meta.url)), "..", "agent", "main.js"),
    concurrency: Number(values.concurrency),
    files,
    // ext4's metadata and journal, the export manifest and copy logs: 15 % and 96 MiB of headroom.
    driveMiB: Math.ceil((bytes / MiB) * 1.15) + 96,
  };
  const notes: string[] = [];
  const tools: Tool[] = [];
  if (wanted.has("medium")) tools.push(MEDIUM);
  if (wanted.has("written")) tools.push(WRITTEN);
  const azcopy = wanted.has("azcopy") ? azcopyBinary(root) : undefined;
  if (azcopy) {
    ctx.azcopy = azcopy;
    tools.push(AZCOPY);
  } else if (wanted.has("azcopy")) notes.push("AzCopy is not installed (npm @azure-tools/azcopy-linux)");
  if (wanted.has("rclone") && rcloneAvailable()) tools.push("rclone");
  else if (wanted.has("rclone")) notes.push("rclone is not installed (apt-get install rclone)");
  if (wanted.has("raw")) tools.push("raw SDK (no check)");

  const loadBefore = loadavg();
  const results = new Map<Tool, RunResult[]>(tools.map((t) => [t, []]));
  let cacheDropped = true;
  console.log(`export of ${files.length} x ${largeMiB} MiB; tools: ${tools.join(", ")}`);
  for (let r = 0; r < rounds; r++) {
    const order = rotated(tools, r);
    console.log(`round ${r + 1}/${rounds}: ${order.join(" → ")}`);
    for (const tool of order) {
      const tag = `${r}-${tools.indexOf(tool)}`;
      const res =
        tool === MEDIUM
          ? await driveStationExport(ctx, "medium", tag)
          : tool === WRITTEN
            ? await driveStationExport(ctx, "written", tag)
            : await peerExport(ctx, tool, tag);
      cacheDropped &&= res.cacheDropped;
      results.get(tool)!.push(res);
      console.log(runLine(tool, res, bytes / 1e9));
    }
  }
  report(bytes, files.length, tools, results, notes, cacheDropped, loadBefore);
}

function report(
  bytes: number,
  count: number,
  tools: Tool[],
  results: Map<Tool, RunResult[]>,
  notes: string[],
  cacheDropped: boolean,
  loadBefore: number[],
): void {
  const gb = bytes / 1e9;
  console.log(
    `\nexport of ${count} x ${fmt(bytes / count / MiB, 0)} MiB = ${fmt(bytes / 1e6, 1)} MB onto ext4 loop drives; median of ${rounds} (min-max), fresh Azurite with the same blobs, fresh drive and cold cache each run`,
  );
  const wall = new Map<Tool, number>();
  const cpu = new Map<Tool, number>();
  for (const tool of tools) {
    const runs = results.get(tool)!;
    const secs = runs.map((r) => r.seconds);
    wall.set(tool, median(secs));
    cpu.set(tool, median(runs.map((r) => r.cpu)) / gb);
    console.log(
      `  ${tool.padEnd(26)} ${fmt(wall.get(tool)!).padStart(7)} s (${fmt(Math.min(...secs))}-${fmt(Math.max(...secs))}) ${fmt(bytes / 1e6 / wall.get(tool)!, 1).padStart(7)} MB/s   CPU s/GB tool ${fmt(cpu.get(tool)!)} + Azurite ${fmt(median(runs.map((r) => r.azurite)) / gb)}`,
    );
  }
  for (const ds of [MEDIUM, WRITTEN] as const) {
    const runs = results.get(ds);
    if (!runs) continue;
    console.log(
      `  ${ds} agent: CPU s per GB ${fmt(cpu.get(ds)!)} whole process, ${fmt(median(runs.map((r) => r.main!)) / gb)} main thread (event loop); peak RSS ${fmt(Math.max(...runs.map((r) => r.rssMiB!)), 0)} MiB; its own logged time (from its claim) ${fmt(median(runs.map((r) => r.agentSeconds!)))} s`,
    );
    if (wall.has(AZCOPY))
      console.log(
        `    / AzCopy: speed ${fmt(wall.get(AZCOPY)! / wall.get(ds)!)}x (higher is better for drive-station), CPU per GB ${fmt(cpu.get(ds)! / cpu.get(AZCOPY)!)}x (lower is better)`,
      );
    const others = tools
      .filter((t) => t !== ds && t !== AZCOPY)
      .map((t) => `${fmt(wall.get(t)! / wall.get(ds)!)}x ${t}`)
      .join(", ");
    if (others) console.log(`    speed as a multiple of the others: ${others}`);
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
