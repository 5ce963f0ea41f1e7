/**
 * What `station repair-import` has to do, decided from the copy log alone (pure): which blobs
 * failed, the block IDs to stage them under, where each one's original file is (the `--source`
 * directories and the path map), and the path-map file's format (reference §6.7).
 */
import { createHash } from "node:crypto";
import { type LogBlob, type ParsedDriveLog, readDriveLog } from "../formats/drive-log.js";
import { checkBlobPath, checkFilePath } from "../formats/names.js";
import { derivedBlockId } from "../transfer/import/block-blob.js";

/** One failed blob of the log, with everything the repair needs to send it. */
export interface RepairItem {
  /** The blob as the log names it (after a rename, the new name): the only name repair writes. */
  blobPath: string;
  container: string;
  name: string;
  filePath: string;
  length: number;
  kind: "block" | "page";
  status: string;
  disposition: "rename" | "no-overwrite" | "overwrite";
  /** Every chunk the log lists: offset, length, MD5 (hex, required), and for blocks the ID. */
  chunks: { offset: number; length: number; hash: string; id: string; status: string }[];
  log: LogBlob;
}

export class RepairInputError extends Error {
  override name = "RepairInputError";
}

/** `waies/<job>_<drive>_<timestamp>_<type>.xml` (reference §3.2): the job name, when the name says it. */
export function jobNameFromLogName(name: string, driveId: string): string | undefined {
  const file = name.split("/").pop() ?? "";
  const m = /^(.*)_\d{8}-\d{6}-\d{3}_(error|verbose)\.xml$/.exec(file);
  if (!m) return undefined;
  const suffix = `_${driveId}`;
  return m[1]!.endsWith(suffix) ? m[1]!.slice(0, -suffix.length) : undefined;
}

/**
 * The failed blobs of a copy log. A blob the import did not finish has every chunk in the log
 * (none is `Completed`), so the log alone gives its whole block list. Blocks without an `Id`
 * (logs of other tools) get the import's derived IDs, which need the job's name.
 */
export async function planRepair(
  xml: string | Buffer,
  o: { jobName?: string; logName?: string } = {},
): Promise<{ log: ParsedDriveLog; items: RepairItem[]; refused: { blobPath: string; reason: string }[] }> {
  let log: ParsedDriveLog;
  try {
    log = await readDriveLog(xml);
  } catch (e) {
    throw new RepairInputError(`the copy log is not a DriveLog: ${(e as Error).message}`);
  }
  if (!log.driveId) throw new RepairInputError("the copy log names no DriveId");
  const jobName = o.jobName ?? (o.logName ? jobNameFromLogName(o.logName, log.driveId) : undefined);
  const items: RepairItem[] = [];
  const refused: { blobPath: string; reason: string }[] = [];
  for (const b of log.blobs) {
    if (b.status === "Completed") continue; // a warning (renamed, skipped, overwritten) needs no repair
    const name = checkBlobPath(b.blobPath);
    if (!name.ok) {
      refused.push({ blobPath: b.blobPath, reason: name.reason });
      continue;
    }
    const fp = checkFilePath(b.filePath);
    if (!fp.ok) {
      refused.push({ blobPath: b.blobPath, reason: `FilePath ${b.filePath}: ${fp.reason}` });
      continue;
    }
    const chunks = b.chunks ?? [];
    const kind = b.kind ?? "block";
    const covered = chunks.reduce((s, c) => s + c.length, 0);
    if (kind === "block" && covered !== b.length) {
      refused.push({
        blobPath: b.blobPath,
        reason: `the log lists ${covered} of its ${b.length} bytes (an error log of another tool keeps only the failed blocks); give the verbose log`,
      });
      continue;
    }
    const unhashed = chunks.findIndex((c) => !c.hash);
    if (unhashed >= 0) {
      refused.push({
        blobPath: b.blobPath,
        reason: `the log gives no MD5 for the chunk at offset ${chunks[unhashed]!.offset}: its bytes cannot be checked before they are sent`,
      });
      continue;
    }
    const seed = createHash("md5")
      .update(`${jobName ?? ""}\0${log.driveId}\0${b.blobPath}\0${b.length}`)
      .digest();
    items.push({
      blobPath: b.blobPath,
      container: name.container,
      name: name.name,
      filePath: b.filePath,
      length: b.length,
      kind,
      status: b.status,
      disposition: b.disposition?.requested ?? "rename",
      chunks: chunks.map((c, k) => ({
        offset: c.offset,
        length: c.length,
        hash: c.hash!.toUpperCase(),
        id: c.id ?? derivedBlockId(seed, k),
        status: c.status,
      })),
      log: b,
    });
  }
  return { log, items, refused };
}

// ---------------------------------------------------------------- the path map (§6.7)

/** Drive-relative path → real location. Lines without a TAB are paths still to be located. */
export function parsePathMap(text: string, file: string): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/\s+$/, "");
    if (!line) continue;
    const tab = line.indexOf("\t");
    if (tab < 0) {
      out.set(line, undefined);
      continue;
    }
    const drivePath = line.slice(0, tab);
    const real = line.slice(tab + 1).trim();
    if (!drivePath)
      throw new RepairInputError(
        `${file} line ${i + 1}: no drive path before the TAB; write <drive path><TAB><real location>`,
      );
    out.set(drivePath, real || undefined);
  }
  return out;
}

/** The path map after a run: every located entry kept, then the paths still unresolved, one a line. */
export function renderPathMap(map: Map<string, string | undefined>, unresolved: string[]): string {
  const lines: string[] = [];
  for (const [p, real] of map) if (real) lines.push(`${p}\t${real}`);
  for (const p of unresolved) if (!map.get(p)) lines.push(p);
  return lines.length ? `${lines.join("\n")}\n` : "";
}

// ---------------------------------------------------------------- finding the original files

export type Resolution =
  | { kind: "found"; path: string }
  | { kind: "missing" }
  | { kind: "ambiguous"; candidates: string[] };

/**
 * A drive-relative FilePath beneath each source directory (RepairImport's `/d`): the whole path
 * first, then without its leading directories (`station prepare` puts a source's files under
 * the session's directory on the drive, so `\s1\photos\a.jpg` is `photos/a.jpg` of the source).
 * The longest suffix found wins. Found as different files under several sources is ambiguous,
 * like nowhere: the path map then says which. Whatever is found is still checked block by block
 * against the log's MD5s before a byte is sent.
 */
export async function resolveFile(
  filePath: string,
  sources: readonly string[],
  pathMap: Map<string, string | undefined>,
  fs: { isFile(path: string): Promise<boolean>; realpath(path: string): Promise<string> },
): Promise<Resolution> {
  const mapped = pathMap.get(filePath);
  if (mapped) return (await fs.isFile(mapped)) ? { kind: "found", path: mapped } : { kind: "missing" };
  const check = checkFilePath(filePath);
  if (!check.ok) return { kind: "missing" };
  for (let skip = 0; skip < check.segments.length; skip++) {
    const tail = check.segments.slice(skip);
    const found = new Set<string>();
    for (const s of sources) {
      const p = [s.replace(/\/+$/, ""), ...tail].join("/");
      if (await fs.isFile(p)) found.add(await fs.realpath(p));
    }
    if (found.size === 1) return { kind: "found", path: [...found][0]! };
    if (found.size > 1) return { kind: "ambiguous", candidates: [...found].sort() };
  }
  return { kind: "missing" };
}
