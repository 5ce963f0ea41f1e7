/**
 * `station preview-export`: PreviewExport (reference §6.8) for a job on this station. The
 * selection is listed and kept (the export then uses exactly it), drives already planned show
 * their plans, the job's docked drives are planned on their real free space, and drives of
 * `driveSize` bytes are assumed for the rest. The same planner makes the export's plans, so
 * the figures are the ones the export then follows.
 */
import { statfs } from "node:fs/promises";
import type { Logger } from "pino";
import type { KeyedLock } from "../../jobs/keyed-lock.js";
import type { Job } from "../../lifecycle/model.js";
import type { ExportSource } from "../../storage/export-source.js";
import { type RetryPolicy, retrier } from "../core/retry.js";
import { geometryFor, type VolumeGeometry } from "./capacity.js";
import { exportJobKey } from "./export-engine.js";
import { ensureSelection } from "./export-plan.js";
import { type PreviewReport, previewExport } from "./planner.js";
import type { ExportStore } from "./store.js";

/** `500GB`, `2TB`, `1.5TB`, `123456789`: decimal units as PreviewExport's /DriveSize (1 GB = 10^9 bytes). */
export function parseDriveSize(s: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)?\s*$/i.exec(s);
  if (!m) return undefined;
  const unit = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 }[(m[2] ?? "B").toUpperCase() as "B"];
  const n = Math.floor(Number(m[1]) * unit);
  return n > 0 ? n : undefined;
}

export interface PreviewDeps {
  store: ExportStore;
  lock: KeyedLock;
  sourceFor(storageAccountId: string): ExportSource;
  log: Logger;
  retry: RetryPolicy;
}

export async function previewJob(
  deps: PreviewDeps,
  job: Job,
  docked: { driveId: string; mountpoint: string; fsType?: string }[],
  driveSize: number | undefined,
  signal: AbortSignal,
): Promise<PreviewReport> {
  const key = exportJobKey(job);
  const source = deps.sourceFor(job.storageAccountId);
  const retrying = retrier({ signal, policy: deps.retry, log: deps.log });
  const selection = await deps.lock.run(`export-selection:${key}`, () =>
    ensureSelection(
      { key, name: job.name, selection: job.export ?? {}, driveIds: job.drives.map((d) => d.driveId) },
      source,
      deps.store,
      retrying,
      signal,
    ),
  );
  const order = job.drives.map((d) => d.driveId);
  const geometries: { driveId: string; geometry: VolumeGeometry }[] = [];
  for (const d of [...docked].sort((a, b) => order.indexOf(a.driveId) - order.indexOf(b.driveId))) {
    const s = await statfs(d.mountpoint);
    geometries.push({ driveId: d.driveId, geometry: geometryFor(d.fsType, s.bavail * s.bsize, s.bsize) });
  }
  return previewExport({
    selection: selection.blobs,
    selectors: selection.selectors,
    duplicateSelectors: selection.duplicates,
    nonexistent: selection.missing,
    planned: await deps.store.plans(key),
    docked: geometries,
    ...(driveSize ? { assumedDrive: geometryFor("ntfs", driveSize, 4096) } : {}),
  });
}
