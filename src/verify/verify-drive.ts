/**
 * `station verify-drive`: checks a drive (a mounted directory) against its manifest, reading
 * every byte from the MEDIUM (medium-read.ts, past the page cache and a FUSE daemon's device
 * cache): the manifest's own MD5 against the job's manifestHash, every block's and page range's
 * MD5, and every metadata and properties file's MD5. Works for an import drive before it ships
 * and an export drive when it comes back (the manifest's kind is read from its Drive element).
 */
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { md5Hex } from "../formats/blob-properties.js";
import { type HashedPath, type ManifestBlob, readManifest } from "../formats/manifest.js";
import { checkFilePath } from "../formats/names.js";
import {
  MediumFile,
  type MediumVolume,
  mediumVolumeOf,
  prepareMediumRead,
} from "../transfer/core/medium-read.js";

export interface VerifyOptions {
  driveRoot: string;
  /** Drive-relative, as in the job's driveList (`\DriveManifest.xml`). */
  manifestFile?: string;
  /** The job's manifestHash (hex MD5); required: the manifest is checked like every other file. */
  manifestHash: string;
  /** The driveList entry's driveId, when known: the manifest must name the same drive. */
  driveId?: string;
  /** Called after each file, for a progress line. */
  onFile?: (done: number, bytes: number) => void;
}

export type ProblemKind =
  | "chunk"
  | "missing"
  | "length"
  | "unreadable"
  | "metadata"
  | "properties"
  | "manifest";

export interface VerifyProblem {
  kind: ProblemKind;
  /** Drive-relative path with '\', as in the manifest. */
  filePath: string;
  blobPath?: string;
  /** For a chunk: which one (0-based in the manifest's list), where, and its block id. */
  chunk?: { index: number; offset: number; length: number; id?: string };
  expected?: string;
  actual?: string;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  driveRoot: string;
  manifest: {
    file: string;
    kind?: "import" | "export";
    driveId?: string;
    expectedHash: string;
    actualHash?: string;
  };
  checked: { blobs: number; chunks: number; infoFiles: number; bytes: number };
  /** The first MAX_LISTED problems; `problemCount` counts them all. */
  problems: VerifyProblem[];
  problemCount: number;
}

export const MAX_LISTED = 1000;

const onDrive = (root: string, filePath: string): string | undefined => {
  const c = checkFilePath(filePath);
  return c.ok ? join(root, ...c.segments) : undefined;
};

/** Reads a whole (small) file from the medium; undefined when it is missing. */
async function mediumBytes(path: string, volume: MediumVolume): Promise<Buffer | undefined> {
  let f: MediumFile;
  try {
    f = await MediumFile.open(path, volume);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  try {
    const parts: Buffer[] = [];
    for (let at = 0; ; at += 4 << 20) {
      const piece = await f.readRange(at, 4 << 20);
      parts.push(piece);
      if (piece.length < 4 << 20) break;
    }
    return Buffer.concat(parts);
  } finally {
    await f.close();
  }
}

export async function verifyDrive(o: VerifyOptions): Promise<VerifyReport> {
  const manifestFile = o.manifestFile ?? "\\DriveManifest.xml";
  const expectedHash = o.manifestHash.toUpperCase();
  const report: VerifyReport = {
    ok: false,
    driveRoot: o.driveRoot,
    manifest: { file: manifestFile, expectedHash },
    checked: { blobs: 0, chunks: 0, infoFiles: 0, bytes: 0 },
    problems: [],
    problemCount: 0,
  };
  const problem = (p: VerifyProblem) => {
    report.problemCount++;
    if (report.problems.length < MAX_LISTED) report.problems.push(p);
  };
  const volume = await mediumVolumeOf(o.driveRoot);
  await prepareMediumRead(volume);

  const manifestPath = onDrive(o.driveRoot, manifestFile);
  const text = manifestPath ? await mediumBytes(manifestPath, volume) : undefined;
  if (!text) {
    problem({ kind: "manifest", filePath: manifestFile, message: "the manifest is not on the drive" });
    return report;
  }
  report.checked.bytes += text.length;
  report.manifest.actualHash = md5Hex(text);
  if (report.manifest.actualHash !== expectedHash)
    problem({
      kind: "manifest",
      filePath: manifestFile,
      expected: expectedHash,
      actual: report.manifest.actualHash,
      message: "the manifest's MD5 is not the job's manifestHash",
    });
  const head = text.subarray(0, text.indexOf("<BlobList") >= 0 ? text.indexOf("<BlobList") : text.length);
  const kind = /<(StorageAccountKey|ContainerSas)[\s>]/.test(head.toString("utf8")) ? "import" : "export";
  report.manifest.kind = kind;

  const infoChecked = new Set<string>();
  const checkInfo = async (which: "metadata" | "properties", h: HashedPath, blobPath?: string) => {
    if (infoChecked.has(h.path)) return;
    infoChecked.add(h.path);
    const path = onDrive(o.driveRoot, h.path);
    const data = path ? await mediumBytes(path, volume) : undefined;
    report.checked.infoFiles++;
    if (!data) {
      problem({
        kind: "missing",
        filePath: h.path,
        ...(blobPath ? { blobPath } : {}),
        message: `the ${which} file is not on the drive`,
      });
      return;
    }
    report.checked.bytes += data.length;
    const actual = md5Hex(data);
    if (actual !== h.hash.toUpperCase())
      problem({
        kind: which,
        filePath: h.path,
        ...(blobPath ? { blobPath } : {}),
        expected: h.hash,
        actual,
        message: `the ${which} file's MD5 differs from the manifest`,
      });
  };

  try {
    for await (const item of readManifest([text], {
      kind,
      ...(o.driveId ? { expectedDriveId: o.driveId } : {}),
    })) {
      if (item.type === "header") report.manifest.driveId = item.header.driveId;
      if (item.type !== "blob") continue;
      const b = item.blob;
      if (item.problem) {
        problem({
          kind: "manifest",
          filePath: b.filePath,
          blobPath: b.blobPath,
          message: item.problem.message,
        });
        continue;
      }
      if (b.list.metadata) await checkInfo("metadata", b.list.metadata);
      if (b.list.properties) await checkInfo("properties", b.list.properties);
      if (b.metadata) await checkInfo("metadata", b.metadata, b.blobPath);
      if (b.properties) await checkInfo("properties", b.properties, b.blobPath);
      await verifyBlob(o.driveRoot, b, volume, report, problem);
      o.onFile?.(report.checked.blobs, report.checked.bytes);
    }
  } catch (e) {
    problem({
      kind: "manifest",
      filePath: manifestFile,
      message: `the manifest cannot be read: ${(e as Error).message}`,
    });
  }
  report.ok = report.problemCount === 0;
  return report;
}

async function verifyBlob(
  root: string,
  b: ManifestBlob,
  volume: MediumVolume,
  report: VerifyReport,
  problem: (p: VerifyProblem) => void,
): Promise<void> {
  report.checked.blobs++;
  const at = { filePath: b.filePath, blobPath: b.blobPath };
  const path = onDrive(root, b.filePath);
  if (!path) return problem({ kind: "manifest", ...at, message: "the FilePath is not a path on the drive" });
  let f: MediumFile;
  try {
    f = await MediumFile.open(path, volume);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return problem({
      kind: code === "ENOENT" ? "missing" : "unreadable",
      ...at,
      message: code === "ENOENT" ? "the file is not on the drive" : `the file cannot be opened (${code})`,
    });
  }
  try {
    const size = (await stat(path)).size;
    if (size !== b.length)
      problem({
        kind: "length",
        ...at,
        expected: String(b.length),
        actual: String(size),
        message: `${size} bytes on the drive, ${b.length} in the manifest`,
      });
    for (const [index, c] of b.chunks.entries()) {
      const md5 = createHash("md5");
      let got: number;
      try {
        got = await f.read(c.offset, c.length, (piece) => md5.update(piece));
      } catch (e) {
        problem({
          kind: "unreadable",
          ...at,
          chunk: { index, offset: c.offset, length: c.length },
          message: `read error (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
        });
        continue;
      }
      report.checked.chunks++;
      report.checked.bytes += got;
      const actual = md5.digest("hex").toUpperCase();
      if (got !== c.length || actual !== c.hash.toUpperCase())
        problem({
          kind: "chunk",
          ...at,
          chunk: { index, offset: c.offset, length: c.length, ...(c.id ? { id: c.id } : {}) },
          expected: c.hash,
          actual: got === c.length ? actual : `${got} bytes`,
          message: `${b.kind === "page" ? "page range" : "block"} ${index} (bytes ${c.offset}-${c.offset + c.length - 1}): MD5 differs from the manifest`,
        });
    }
  } finally {
    await f.close();
  }
}
