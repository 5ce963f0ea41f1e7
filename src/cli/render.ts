/** Text views of jobs, drives and attached drives. Pure: strings in, strings out. */
import { repairImportHint } from "../repair/hint.js";
import type { Attached, AttachedProgress, Job } from "./views.js";

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function bar(percent: number, width = 20): string {
  const p = Math.max(0, Math.min(100, Math.floor(percent)));
  const filled = Math.round((p * width) / 100);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(p).padStart(3)}%`;
}

/** 3723 -> "1h02m03s", 125 -> "2m05s", 9 -> "9s". */
export function duration(totalSeconds: number): string {
  const s = Math.max(0, Math.round(totalSeconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const two = (n: number) => String(n).padStart(2, "0");
  if (h) return `${h}h${two(m)}m${two(sec)}s`;
  if (m) return `${m}m${two(sec)}s`;
  return `${sec}s`;
}

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

const rate = (bps: number) => `${(bps / 1e6).toFixed(1)} MB/s`;

/**
 * One drive's progress: a bar, bytes, speed and ETA while it transfers; the final figures (total,
 * time taken, average speed) once it is done, never a stale speed or ETA.
 */
export function progress(status: string, p: AttachedProgress | undefined): string {
  if (!p?.bytesTotal) return status === "done" ? bar(100) : "-";
  const pct = (p.bytesSucceeded * 100) / p.bytesTotal;
  const amount = `${bytes(p.bytesSucceeded)} / ${bytes(p.bytesTotal)}`;
  if (status === "done") {
    const took = p.seconds !== undefined ? ` in ${duration(p.seconds)}` : "";
    const avg = p.seconds ? `, avg ${rate(p.bytesSucceeded / p.seconds)}` : "";
    return `${bar(pct)} ${bytes(p.bytesSucceeded)}${took}${avg}`;
  }
  if (status !== "transferring") return `${bar(pct)} ${amount}`;
  const eta = p.etaSeconds !== undefined ? ` ETA ${duration(p.etaSeconds)}` : "";
  return `${bar(pct)} ${amount} ${rate(p.bytesPerSecond)}${eta}`;
}

export function attachedTable(drives: Attached[]): string {
  if (!drives.length) return "no drives attached";
  return table([
    ["DEVICE", "SERIAL", "FS", "STATUS", "JOB", "DRIVE", "PROGRESS", "DETAIL"],
    ...drives.map((d) => [
      d.device,
      d.serial ?? "-",
      d.fsType ?? "-",
      d.code ? `${d.status} (${d.code})` : d.status,
      d.job?.name ?? "-",
      d.driveId ?? "-",
      progress(d.status, d.progress),
      d.message,
    ]),
  ]);
}

const BLOCKS = "▁▂▃▄▅▆▇█";

/**
 * The newest `width` throughput values as a line of block characters, scaled to their peak (an
 * idle sample is the lowest block, so the line's length is its time span).
 */
export function sparkline(values: readonly number[], width = 60): string {
  const shown = values.slice(-width);
  const peak = Math.max(...shown, 0);
  return shown
    .map((v) => BLOCKS[peak > 0 ? Math.min(7, Math.round((Math.max(0, v) / peak) * 7)) : 0])
    .join("");
}

/** The live view: two lines per drive, the second its progress bar (or what it waits for), then its throughput sparkline. */
export function attachedWatchLines(drives: Attached[], width = 120): string[] {
  if (!drives.length) return ["no drives attached (plug one in; Ctrl-C to stop watching)"];
  const lines: string[] = [];
  for (const d of drives) {
    const who = d.job ? `${d.job.name}/${d.driveId ?? "?"}` : (d.serial ?? "no serial");
    lines.push(`${d.device}  ${who}  ${d.code ? `${d.status} (${d.code})` : d.status}`.slice(0, width));
    const p = progress(d.status, d.progress);
    lines.push(`  ${p === "-" ? d.message : p}`.slice(0, width));
    const t = d.throughput;
    if (t?.values.length) {
      const span = Math.max(10, Math.min(width - 24, 120));
      const shown = Math.min(t.values.length, span);
      lines.push(
        `  ${sparkline(t.values, span)}  last ${duration(shown * t.sampleSeconds)}, peak ${bytes(Math.max(...t.values.slice(-span)))}/s`,
      );
    }
  }
  return lines;
}

export function jobView(job: Job): string {
  const p = job.properties;
  const fault = job.station.faulted;
  const lines = [
    `job ${job.name}  (${job.station.subscriptionId}/${job.station.resourceGroup})`,
    `  type ${p.jobType}   state ${p.state}${fault ? ` (from ${fault.from}: ${fault.reason})` : ""}${p.cancelRequested ? "   CANCEL REQUESTED" : ""}`,
    `  ${bar(p.percentComplete)}`,
    "",
  ];
  if (p.driveList.length) {
    lines.push(
      table([
        ["  DRIVE", "STATE", "PROGRESS", "BYTES", "COPY STATUS", "ERROR LOG"],
        ...p.driveList.map((d) => {
          const f = job.station.drives.find((s) => s.driveId === d.driveId)?.faulted;
          return [
            `  ${d.driveId}`,
            f ? `Faulted (${f.reason})` : d.state,
            bar(d.percentComplete),
            String(d.bytesSucceeded),
            d.copyStatus ?? "",
            d.errorLogUri ?? "",
          ];
        }),
      ]),
    );
    if (p.jobType === "Import")
      for (const d of p.driveList)
        if (d.state === "CompletedMoreInfo" && d.errorLogUri)
          lines.push(`  ${d.driveId}: ${repairImportHint(d.errorLogUri)}`);
  } else lines.push("  no drives yet");
  for (const e of job.station.extraDrives)
    lines.push(
      `  extra drive ${e.driveId}${e.trackingNumber ? ` (package ${e.trackingNumber})` : ""}${e.shippedBack ? ", shipped back" : ", to return with the job"}`,
    );
  for (const h of job.station.heldPackages)
    lines.push(
      `  HELD package ${h.trackingNumber}: drives ${h.driveIds.join(", ") || "none"} since ${h.heldAt}`,
    );
  return lines.join("\n");
}
