/**
 * Capacity planning for export drives, like WAImportExport PreviewExport (reference §6.8), whose
 * formula is undocumented; this one is ours and errs on the side of room to spare.
 *
 * A drive's usable space: the volume's free bytes at planning time minus a reserve (1 MiB plus
 * 0.1 %, for file-system metadata growth). A blob costs:
 *   - its data, rounded up to the cluster; a page blob on a sparse-capable volume (NTFS, ext4)
 *     only its written ranges, each widened to the sparse unit (64 KiB on NTFS: its compression
 *     unit); on exFAT (no sparse files) its whole length;
 *   - one cluster for its properties file and one for a metadata file when it has metadata;
 *   - an MFT record (1 KiB) per file, and per new directory a record plus an index cluster;
 *   - its export-manifest entry (fixed part, paths, one line per block or range).
 * Packing is first-fit in the selection's stable order (selection.ts): each drive, when it is
 * planned, takes every remaining blob that still fits, in order; a blob that does not fit is
 * offered to the next drive. Whole blobs only: a blob never spans drives (as PreviewExport's
 * per-drive counts suggest). What no drive takes is the incomplete blob list.
 */
import { MAX_CHUNK } from "../../formats/manifest.js";

export const MFT_RECORD = 1024;
export const NTFS_SPARSE_UNIT = 64 * 1024;

export interface VolumeGeometry {
  /** Free bytes of the empty (or confirmed) volume. */
  freeBytes: number;
  /** Allocation unit. */
  cluster: number;
  /** Sparse allocation unit; 0 when the file system has no sparse files (exFAT). */
  sparseUnit: number;
}

export function geometryFor(fsType: string | undefined, freeBytes: number, cluster: number): VolumeGeometry {
  const fs = (fsType ?? "").toLowerCase();
  const sparseUnit =
    fs === "ntfs" || fs === "ntfs3" || fs === "fuseblk"
      ? Math.max(NTFS_SPARSE_UNIT, cluster)
      : fs === "exfat"
        ? 0
        : cluster;
  return { freeBytes, cluster, sparseUnit };
}

export const reserveFor = (freeBytes: number): number => 1024 * 1024 + Math.ceil(freeBytes / 1000);
export const usableBytes = (g: VolumeGeometry): number => Math.max(0, g.freeBytes - reserveFor(g.freeBytes));

const roundUp = (n: number, unit: number) => (unit > 0 ? Math.ceil(n / unit) * unit : n);

export interface SizedBlob {
  kind: "block" | "page" | "append";
  length: number;
  /** Page blobs: the written ranges. */
  ranges?: { offset: number; length: number }[];
  hasMetadata: boolean;
  /** Drive path and blob path lengths, for the manifest entry. */
  filePathLength: number;
  blobPathLength: number;
}

/** Chunks a blob is read and written in: 4 MiB blocks, or its page ranges cut at 4 MiB. */
export function chunkCount(b: Pick<SizedBlob, "kind" | "length" | "ranges">): number {
  if (b.kind === "page") return (b.ranges ?? []).reduce((n, r) => n + Math.ceil(r.length / MAX_CHUNK), 0);
  return Math.ceil(b.length / MAX_CHUNK);
}

/** Bytes a page blob's ranges occupy on a sparse volume. */
export function sparseBytes(ranges: { offset: number; length: number }[], unit: number): number {
  let used = 0;
  let end = 0; // end of the last allocated unit
  for (const r of ranges) {
    const start = Math.max(Math.floor(r.offset / unit) * unit, end);
    const stop = Math.ceil((r.offset + r.length) / unit) * unit;
    if (stop > start) used += stop - start;
    end = Math.max(end, stop);
  }
  return used;
}

/** The space one blob takes on a drive (see the module comment). `newDirs` from the path mapper. */
export function blobCost(b: SizedBlob, g: VolumeGeometry, newDirs: number): number {
  const data =
    b.kind === "page" && g.sparseUnit > 0
      ? sparseBytes(b.ranges ?? [], g.sparseUnit)
      : roundUp(b.length, g.cluster);
  const files = b.hasMetadata ? 3 : 2;
  const companions = (files - 1) * g.cluster;
  const manifest = 600 + 2 * (b.filePathLength + b.blobPathLength) * 3 + 120 * chunkCount(b);
  return data + companions + files * MFT_RECORD + newDirs * (MFT_RECORD + g.cluster) + manifest;
}

export interface PlanCandidate {
  /** Position in the job's selection. */
  index: number;
  /** Cost on this drive; undefined when the caller could not place it (never fits). */
  cost: number;
}

/**
 * First-fit for one drive: walks `candidates` in order and keeps each that still fits.
 * `costOf` is asked once per candidate (it may look at the drive's path mapper); `accept`
 * is told about each kept one (to commit its path).
 */
export function fillDrive<T>(
  candidates: Iterable<T>,
  capacity: number,
  costOf: (c: T) => number,
  accept: (c: T, cost: number) => void,
): { used: number; taken: number } {
  let used = 0;
  let taken = 0;
  for (const c of candidates) {
    const cost = costOf(c);
    if (used + cost > capacity) continue;
    used += cost;
    taken++;
    accept(c, cost);
  }
  return { used, taken };
}
