/**
 * The job-level half of an export: the selection, listed once per job and kept (leased blobs
 * snapshotted, page blobs' ranges read), and each drive's plan, fixed the first time the drive
 * is planned. Plans are made one at a time per job, in the order drives start; when the last
 * drive checked in for the job is planned, what no drive took is the incomplete blob list.
 */
import { type BlobListEntry, readBlobList } from "../../formats/blob-list.js";
import { checkBlobPath } from "../../formats/names.js";
import { ManifestError } from "../../formats/status.js";
import type { KeyedLock } from "../../jobs/keyed-lock.js";
import type { ExportSelection } from "../../lifecycle/model.js";
import { classify } from "../../storage/blob-access.js";
import type { ExportBlobInfo, ExportSource } from "../../storage/export-source.js";
import type { Retrying } from "../core/retry.js";
import type { VolumeGeometry } from "./capacity.js";
import { type DrivePlan, planDrive, type SelectedBlob } from "./planner.js";
import { inlineSelectors, type Missing, type Selector, selectBlobs } from "./selection.js";
import type { ExportStore, StoredSelection } from "./store.js";

export interface ExportJob {
  /** Store key: the job's full label (subscription/resource group/name). */
  key: string;
  name: string;
  selection: ExportSelection;
  /** Drives checked in for the job, in the job's order. */
  driveIds: string[];
}

/** The job's selectors: inline, or read from its blob-list blob (a bad list fails every drive). */
async function selectorsOf(job: ExportJob, source: ExportSource, retrying: Retrying): Promise<Selector[]> {
  const path = job.selection.blobListBlobPath;
  if (!path) return inlineSelectors(job.selection);
  const name = checkBlobPath(path.replace(/^\//, ""));
  if (!name.ok)
    throw new ManifestError("BlobListFormatInvalid", `blobListBlobPath '${path}': ${name.reason}`);
  let data: Buffer;
  try {
    data = await retrying(`reading the blob list ${path}`, (s) =>
      source.readAll({ container: name.container, name: name.name }, s),
    );
  } catch (e) {
    if (classify(e) === "not-found")
      throw new ManifestError(
        "BlobListFormatInvalid",
        `the blob list ${path} does not exist in the storage account`,
      );
    throw e;
  }
  const entries: BlobListEntry[] = await readBlobList([data]);
  return entries;
}

/** Lists the selection once per job; later drives and restarts reuse the stored one. */
export async function ensureSelection(
  job: ExportJob,
  source: ExportSource,
  store: ExportStore,
  retrying: Retrying,
  signal: AbortSignal,
): Promise<StoredSelection> {
  const stored = await store.selection(job.key);
  if (stored) return stored;
  const selectors = await selectorsOf(job, source, retrying);
  const r = await selectBlobs(selectors, source, signal, retrying);
  const missing: Missing[] = [...r.missing, ...r.unreadable];
  const blobs: SelectedBlob[] = [];
  for (const found of r.blobs) {
    let b: ExportBlobInfo = found;
    try {
      if (b.leased && !b.snapshot) {
        // A leased blob may be written by its lease holder while we read: export a snapshot (reference §7).
        const snap = await retrying(`snapshotting leased ${b.container}/${b.name}`, (s) =>
          source.snapshot(b, s),
        );
        b = await retrying(`reading snapshot of ${b.container}/${b.name}`, (s) =>
          source.getBlob({ container: b.container, name: b.name, snapshot: snap }, s),
        );
      }
      const entry: SelectedBlob = { ...b, index: blobs.length };
      if (b.kind === "page")
        entry.ranges = await retrying(`reading page ranges of ${b.container}/${b.name}`, (s) =>
          source.getPageRanges(b, b.etag, s),
        );
      blobs.push(entry);
    } catch (e) {
      if (signal.aborted || classify(e) === "retryable") throw e;
      missing.push({
        selector: `${b.container}/${b.name}`,
        reason: `not exportable: ${(e as Error).message}`,
      });
    }
  }
  const sel: StoredSelection = { selectors: selectors.length, duplicates: r.duplicates, missing, blobs };
  await store.saveSelection(job.key, sel);
  return sel;
}

export interface DrivePlanning {
  plan: DrivePlan;
  selection: StoredSelection;
  /** Set when this was the last of the job's drives to be planned and blobs are left over. */
  incomplete?: SelectedBlob[];
}

/** This drive's plan: the stored one, or a new first-fit plan over what earlier drives left. */
export function planForDrive(
  job: ExportJob,
  driveId: string,
  geometry: () => Promise<VolumeGeometry>,
  selection: StoredSelection,
  store: ExportStore,
  lock: KeyedLock,
): Promise<DrivePlanning> {
  return lock.run(`export-plan:${job.key}`, async () => {
    const plans = await store.plans(job.key);
    const existing = plans.find((p) => p.driveId === driveId);
    const taken = new Set(plans.flatMap((p) => p.blobs.map((b) => b.index)));
    const plan =
      existing ??
      planDrive(
        driveId,
        plans.length + 1,
        await geometry(),
        selection.blobs.filter((b) => !taken.has(b.index)),
      );
    if (!existing) await store.savePlan(job.key, plan);
    for (const b of plan.blobs) taken.add(b.index);
    const planned = new Set([...plans.map((p) => p.driveId), driveId]);
    const out: DrivePlanning = { plan, selection };
    if (job.driveIds.every((id) => planned.has(id))) {
      const left = selection.blobs.filter((b) => !taken.has(b.index));
      if (left.length) out.incomplete = left;
    }
    return out;
  });
}
