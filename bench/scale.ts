import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type BenchDrive, buildDrive, manyFiles, runBench } from "./drive-images.js";
import { fmt, loadLine } from "./measure.js";
import { type SinkImport, sinkImport } from "./sink-run.js";
import { MiB } from "./tools.js";

const { values } = parseArgs({
  options: {
    files: { type: "string", default: "200000" },
    "file-kib": { type: "string", default: "4" },
    "big-gib": { type: "string", default: "8" },
    which: { type: "string", default: "small,big" },
    concurrency: { type: "string", default: "16" },
    "hash-threads": { type: "string" },
  },
});
const root = mkdtempSync(join(tmpdir(), "bench-scale-"));
const agentMain = resolve(dirname(fileURLToPath(import.meta.url)), "..", "agent", "main.js");

/** Seconds at which a rising series first reaches `target`, by linear search from `from`. */
const reach = (series: [number, number][], target: number) =>
  series.find(([, v]) => v >= target)?.[0] ?? Number.NaN;

function report(name: string, drive: BenchDrive, r: SinkImport, dataContainer: string): void {
  const { files, bytes } = drive;
  const dataCommits = r.sink.commits.slice(0, files);
  const start = r.sink.arrivals[0]?.[0] ?? r.t0;
  console.log(
    `\n${name}: ${files} file(s), ${fmt(bytes / 1e9, 2)} GB; ${fmt(r.seconds)} s from the plug (agent's own ${fmt(r.agentSeconds)} s), ${fmt(bytes / 1e6 / r.seconds, 1)} MB/s, ${fmt(files / r.seconds, 0)} files/s; peak RSS ${fmt(r.peakRssMiB, 0)} MiB; agent CPU s/GB ${fmt(r.cpu / (bytes / 1e9))} (main thread ${fmt(r.main / (bytes / 1e9))})`,
  );
  if (files >= 10) {
    const tenth = Math.floor(files / 10);
    const first = dataCommits[tenth - 1]! - start;
    const last = dataCommits[files - 1]! - dataCommits[files - tenth - 1]!;
    console.log(
      `  files/s: first tenth ${fmt(tenth / first, 0)}, last tenth ${fmt(tenth / last, 0)} (last/first ${fmt(first / last)})`,
    );
  }
  const b10 = reach(r.sink.arrivals, bytes / 10);
  const b90 = reach(r.sink.arrivals, (bytes * 9) / 10);
  const bEnd = reach(r.sink.arrivals, bytes);
  console.log(
    `  MB/s:    first tenth ${fmt(bytes / 10 / 1e6 / (b10 - start), 1)}, last tenth ${fmt(bytes / 10 / 1e6 / (bEnd - b90), 1)} (last/first ${fmt((b10 - start) / (bEnd - b90))})`,
  );
  // Every tenth's rate: the first carries the pipeline's fill (sends run ahead of the whole-blob
  // hash by the buffer pool's size), so a steady state shows from the second on.
  const marks = [
    start,
    ...Array.from({ length: 10 }, (_, k) => reach(r.sink.arrivals, (bytes * (k + 1)) / 10)),
  ];
  console.log(
    `  MB/s by tenth of the bytes: ${marks
      .slice(1)
      .map((t, k) => fmt(bytes / 10 / 1e6 / (t - marks[k]!), 0))
      .join(", ")}`,
  );
  const rows: string[] = [];
  for (let k = 1; k <= 10; k++) {
    const until = (r.seconds * k) / 10;
    const inTenth = r.samples.filter((s) => s.at <= until && s.at > (r.seconds * (k - 1)) / 10);
    if (!inTenth.length) continue;
    const last = inTenth[inTenth.length - 1]!;
    rows.push(
      `${k}: RSS ${fmt(Math.max(...inTenth.map((s) => s.rssMiB)), 0)} MiB, data dir ${fmt(last.dataDirBytes / MiB, 1)} MiB, ${last.commits} committed`,
    );
  }
  console.log(
    `  by tenth of the run (peak RSS, data directory size, blobs committed at its end):\n    ${rows.join("\n    ")}`,
  );
  const logs = r.sink.blobs().filter((b) => !b.name.startsWith(`${dataContainer}/`));
  for (const l of logs)
    console.log(
      `  copy log at the sink: ${l.name}: ${fmt(l.length / MiB, 2)} MiB in ${l.blocks || 1} request(s)`,
    );
  if (!logs.length) console.log("  no copy log reached the sink");
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: loop devices, mounts, drop_caches");
  const which = new Set(values.which.split(","));
  mkdirSync(join(root, "images"));
  const load0 = loadavg();
  const runs: [string, () => Promise<BenchDrive>, string][] = [];
  if (which.has("small")) {
    const n = Number(values.files);
    runs.push([
      `${n} x ${values["file-kib"]} KiB`,
      () =>
        buildDrive({
          image: join(root, "images", "small.img"),
          driveId: "BENCH-SCALE-SMALL",
          files: manyFiles(n, Number(values["file-kib"]) * 1024, "s"),
          dest: "scale-small/",
        }),
      "scale-small",
    ]);
  }
  if (which.has("big")) {
    const size = Math.round(Number(values["big-gib"]) * 1024) * MiB;
    runs.push([
      `one file of ${values["big-gib"]} GiB`,
      () =>
        buildDrive({
          image: join(root, "images", "big.img"),
          driveId: "BENCH-SCALE-BIG",
          files: [{ rel: "big.bin", size }],
          dest: "scale-big/",
        }),
      "scale-big",
    ]);
  }
  for (const [name, build, container] of runs) {
    console.log(`building the drive: ${name} …`);
    const drive = await build();
    const runRoot = join(root, container);
    mkdirSync(runRoot);
    console.log(`importing ${name} into the sink …`);
    const r = await sinkImport({
      agentMain,
      runRoot,
      drive,
      concurrency: Number(values.concurrency),
      logLevel: "Verbose",
      ...(values["hash-threads"] ? { hashThreads: Number(values["hash-threads"]) } : {}),
    });
    await r.sink.stop();
    report(name, drive, r, container);
    rmSync(drive.image, { force: true });
  }
  console.log(`\n${loadLine(load0)}`);
}

runBench(main, root);
