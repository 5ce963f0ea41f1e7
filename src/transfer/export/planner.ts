/**
 * Drive plans from a job's selection: which blobs go on which drive, at which paths, costing
 * what (capacity.ts), and the PreviewExport report (reference §6.8) computed by the same code,
 * so preview figures are the plan's figures.
 */
import type { ExportBlobInfo } from "../../storage/export-source.js";
import { blobCost, fillDrive, usableBytes, type VolumeGeometry } from "./capacity.js";
import { DrivePathMapper } from "./drive-paths.js";
import type { Missing } from "./selection.js";

/** One selected blob, numbered in the job's stable order; page blobs carry their ranges. */
export interface SelectedBlob extends ExportBlobInfo {
  index: number;
  ranges?: { offset: number; length: number }[];
}

export interface PlannedBlob {
  index: number;
  filePath: string;
  cost: number;
}

export interface DrivePlan {
  driveId: string;
  /** 1 for the first drive of the job planned, 2 for the next … */
  ordinal: number;
  geometry: VolumeGeometry;
  blobs: PlannedBlob[];
  /** Planned bytes on the drive (the sum of the blobs' costs). */
  usedBytes: number;
  /** Blob bytes (data) on the drive: the drive's bytesTotal for progress. */
  dataBytes: number;
}

/** The manifest the station writes at the drive root (the RepairExport example's `<DriveId>.manifest`). */
export const manifestFileName = (driveId: string): string => `\\${driveId}.manifest`;

export const blobPathOf = (b: { container: string; name: string }): string => `${b.container}/${b.name}`;

/** Plans one drive: first-fit over the blobs no earlier drive took. */
export function planDrive(
  driveId: string,
  ordinal: number,
  geometry: VolumeGeometry,
  remaining: Iterable<SelectedBlob>,
): DrivePlan {
  const mapper = new DrivePathMapper();
  mapper.reserve(manifestFileName(driveId));
  const plan: DrivePlan = { driveId, ordinal, geometry, blobs: [], usedBytes: 0, dataBytes: 0 };
  const proposals = new Map<number, ReturnType<DrivePathMapper["propose"]>>();
  const { used } = fillDrive(
    remaining,
    usableBytes(geometry),
    (b) => {
      const p = mapper.propose(b);
      proposals.set(b.index, p);
      return blobCost(
        {
          kind: b.kind,
          length: b.length,
          ...(b.ranges ? { ranges: b.ranges } : {}),
          hasMetadata: Object.keys(b.metadata).length > 0,
          filePathLength: p.filePath.length,
          blobPathLength: b.container.length + b.name.length + 1,
        },
        geometry,
        p.newDirs,
      );
    },
    (b, cost) => {
      const p = proposals.get(b.index)!;
      p.commit();
      plan.blobs.push({ index: b.index, filePath: p.filePath, cost });
      plan.dataBytes += b.length;
    },
  );
  plan.usedBytes = used;
  return plan;
}

export interface PreviewDrive {
  ordinal: number;
  /** Absent for a drive the preview assumed (`driveSize`), not one of the job's. */
  driveId?: string;
  /** `planned`: the export fixed this drive's plan already; `docked`: planned now from its free space. */
  source: "planned" | "docked" | "assumed";
  freeBytes: number;
  blobs: number;
  usedBytes: number;
  dataBytes: number;
}

export interface PreviewReport {
  selectors: number;
  duplicateSelectors: number;
  nonexistent: Missing[];
  blobsSelected: number;
  bytesSelected: number;
  /** Blobs that fit on the drives (job drives, then assumed ones). */
  blobsExportable: number;
  /** Blobs no drive can take (larger than a drive, or no drive of the job left and no size given). */
  blobsNotExportable: number;
  drivesNeeded: number;
  drives: PreviewDrive[];
}

/**
 * The preview: drives already planned keep their plans, docked drives of the job are planned on
 * what is left from their real free space, then drives of `assumedDrive` free bytes are added
 * until everything fits or a drive would stay empty.
 */
export function previewExport(o: {
  selection: SelectedBlob[];
  selectors: number;
  duplicateSelectors: number;
  nonexistent: Missing[];
  planned: DrivePlan[];
  docked: { driveId: string; geometry: VolumeGeometry }[];
  assumedDrive?: VolumeGeometry;
}): PreviewReport {
  const taken = new Set<number>();
  const drives: PreviewDrive[] = [];
  const add = (p: DrivePlan, source: PreviewDrive["source"]) => {
    for (const b of p.blobs) taken.add(b.index);
    drives.push({
      ordinal: drives.length + 1,
      ...(source === "assumed" ? {} : { driveId: p.driveId }),
      source,
      freeBytes: p.geometry.freeBytes,
      blobs: p.blobs.length,
      usedBytes: p.usedBytes,
      dataBytes: p.dataBytes,
    });
  };
  const remaining = () => o.selection.filter((b) => !taken.has(b.index));
  for (const p of [...o.planned].sort((a, b) => a.ordinal - b.ordinal)) add(p, "planned");
  for (const d of o.docked) {
    if (o.planned.some((p) => p.driveId === d.driveId)) continue;
    add(planDrive(d.driveId, drives.length + 1, d.geometry, remaining()), "docked");
  }
  if (o.assumedDrive) {
    for (;;) {
      const left = remaining();
      if (!left.length) break;
      const p = planDrive(`assumed-${drives.length + 1}`, drives.length + 1, o.assumedDrive, left);
      if (!p.blobs.length) break;
      add(p, "assumed");
    }
  }
  return {
    selectors: o.selectors,
    duplicateSelectors: o.duplicateSelectors,
    nonexistent: o.nonexistent,
    blobsSelected: o.selection.length,
    bytesSelected: o.selection.reduce((n, b) => n + b.length, 0),
    blobsExportable: taken.size,
    blobsNotExportable: o.selection.length - taken.size,
    drivesNeeded: drives.filter((d) => d.blobs > 0).length,
    drives,
  };
}
