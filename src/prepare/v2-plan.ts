/**
 * The v2 layout of a preparation session: every file of every dataset row gets its blob, its
 * place on a drive, and its drive. Files are spread over the drives by size, in batches, as
 * WAImportExport v2 does (reference §6.4): within a batch, largest first, each to the drive
 * with the most room left, so the drives fill evenly.
 */
import { statfs } from "node:fs/promises";
import { basename } from "node:path";
import { MAX_BLOCKS, MAX_CHUNK, PAGE } from "../formats/manifest.js";
import { checkBlobPath, checkFilePath } from "../formats/names.js";
import { collect, PrepareError, type PrepareResult } from "./prepare-drive.js";
import type { DatasetRow } from "./v2-csv.js";

/** v2's batch: up to 100,000 files are spread at a time. */
export const BATCH_FILES = 100_000;
/** Room kept free on every drive for the manifest and the metadata and properties files. */
export const DRIVE_RESERVE = 1 << 20;
const CLUSTER = 4096;

export interface PlannedFile {
  /** Index in the plan; the journal names files by it. */
  id: number;
  /** Index of the dataset row (0-based) and its 1-based number, the folder on the drive. */
  row: number;
  source: string;
  size: number;
  blobPath: string;
  blobType: "BlockBlob" | "PageBlob";
  /** Relative to the drive root, with '/': `<session>/<row number>/<relative path>`. */
  onDrive: string;
  batch: number;
  drive: number;
}

/** What a file costs on a drive: clusters of data plus its share of the manifest. */
export function footprint(size: number, chunkSize = MAX_CHUNK): number {
  return Math.ceil(size / CLUSTER) * CLUSTER + CLUSTER + 200 * Math.ceil(size / chunkSize);
}

/**
 * Assigns each file a drive: batches of `batchFiles` in dataset order; in a batch, largest
 * first, to the drive with the most free bytes left. Throws (naming the file) when one fits nowhere.
 */
export function spreadBySize(
  files: { size: number; where: string; source: string }[],
  freeBytes: number[],
  batchFiles = BATCH_FILES,
): { drive: number; batch: number }[] {
  const left = [...freeBytes];
  const out: { drive: number; batch: number }[] = new Array(files.length);
  for (let start = 0, batch = 0; start < files.length; start += batchFiles, batch++) {
    const ids = [...Array(Math.min(batchFiles, files.length - start)).keys()].map((i) => start + i);
    ids.sort((a, b) => files[b]!.size - files[a]!.size || a - b);
    for (const id of ids) {
      const need = footprint(files[id]!.size);
      let best = 0;
      for (let d = 1; d < left.length; d++) if (left[d]! > left[best]!) best = d;
      if (left[best]! < need) {
        const f = files[id]!;
        throw new PrepareError(
          `${f.where}: ${f.source} (${f.size} bytes) does not fit on any drive (${left[best]} bytes left on the emptiest). Next: add a drive to the driveset or move some sources to another session.`,
        );
      }
      left[best]! -= need;
      out[id] = { drive: best, batch };
    }
  }
  return out;
}

export async function freeBytesOf(mountPoint: string): Promise<number> {
  const s = await statfs(mountPoint);
  return Math.max(0, s.bavail * s.bsize - DRIVE_RESERVE);
}

/**
 * Lists the files of every dataset row and checks every name before anything is written: a
 * missing source, a bad destination, a page blob of the wrong size, or two rows writing the same
 * blob each end the session with one line naming the row.
 */
export async function enumerateDataset(
  rows: DatasetRow[],
  sessionId: string,
  blockSize: number,
): Promise<{ files: Omit<PlannedFile, "id" | "batch" | "drive">[]; skipped: PrepareResult["skipped"] }> {
  const files: Omit<PlannedFile, "id" | "batch" | "drive">[] = [];
  const skipped: PrepareResult["skipped"] = [];
  const blobs = new Map<string, string>();
  for (const [row, r] of rows.entries()) {
    const fail = (msg: string): never => {
      throw new PrepareError(`${r.where}: ${msg}`);
    };
    const source = r.isDirectory ? r.basePath.replace(/\/+$/, "") || "/" : r.basePath;
    const found = await collect(source, skipped).catch((e: Error) =>
      fail(`BasePath ${r.basePath}: ${e.message.replace(/\.$/, "")}. Next: fix the path or remove the row.`),
    );
    if (found.isDir !== r.isDirectory)
      fail(
        r.isDirectory
          ? `BasePath ${r.basePath} is a file, not a directory. Next: remove the trailing '/'.`
          : `BasePath ${r.basePath} is a directory. Next: end it with '/' to copy it recursively.`,
      );
    if (r.isDirectory && found.files.length === 0)
      fail(`BasePath ${r.basePath} holds no files. Next: remove the row.`);
    if (r.destination.startsWith("$root/") && found.files.some((f) => f.relative.includes("/")))
      fail("the root container cannot hold subfolders. Next: copy a flat directory to $root/.");
    for (const f of found.files) {
      const rel = r.isDirectory ? f.relative : basename(f.absolute);
      const blobPath = r.isDirectory ? `${r.destination}${f.relative}` : r.destination;
      const onDrive = `${sessionId}/${row + 1}/${rel}`;
      const blobType = r.blobType ?? (/\.vhdx?$/i.test(f.absolute) ? "PageBlob" : "BlockBlob");
      const fp = checkFilePath(`\\${onDrive.split("/").join("\\")}`);
      if (!fp.ok) fail(`${f.absolute}: ${fp.reason}. Next: rename the file or remove it from the source.`);
      const bp = checkBlobPath(blobPath);
      if (!bp.ok) fail(`blob ${blobPath}: ${bp.reason}. Next: fix DstBlobPathOrPrefix or rename the file.`);
      if (blobType === "PageBlob" && f.size % PAGE !== 0)
        fail(
          `${f.absolute}: a page blob's size must be a multiple of ${PAGE} bytes (${f.size}). Next: set BlobType to BlockBlob for this row.`,
        );
      if (blobType === "BlockBlob" && Math.ceil(f.size / blockSize) > MAX_BLOCKS)
        fail(`${f.absolute}: more than ${MAX_BLOCKS} blocks of ${blockSize} bytes. Next: split the file.`);
      const other = blobs.get(blobPath);
      if (other)
        fail(`blob ${blobPath} also comes from ${other}. Next: give the rows different destinations.`);
      blobs.set(blobPath, r.where);
      files.push({ row, source: f.absolute, size: f.size, blobPath, blobType, onDrive });
    }
  }
  return { files, skipped };
}
