/**
 * `station repair-export`: RepairExport's semantics (reference §6.7) on Linux. For every blob of
 * the export copy log that did not complete, each failed block or page range is downloaded from
 * storage and written into the file at the same offset (a blob failed before any chunk is
 * fetched whole); failed properties and metadata files are written again. With the drive's
 * export manifest, every block, range, properties and metadata file it lists is then read back
 * from the medium and checked against its MD5, and any mismatch is fetched again. Every write is
 * synced and read back from the medium before it counts as repaired.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, mkdir, open, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { MAX_FILE_INFO_BYTES, md5Hex } from "../formats/blob-properties.js";
import { type LogBlob, readDriveLog } from "../formats/drive-log.js";
import { type HashedPath, MAX_CHUNK, type ManifestBlob, readManifest } from "../formats/manifest.js";
import { checkFilePath } from "../formats/names.js";
import type { ExportBlobInfo, ExportBlobRef, ExportSource } from "../storage/export-source.js";
import {
  MediumFile,
  type MediumVolume,
  mediumVolumeOf,
  prepareMediumRead,
} from "../transfer/core/medium-read.js";
import { companionBody } from "../transfer/export/companions.js";

export type RepairSource = Pick<ExportSource, "getBlob" | "readRange">;

export interface RepairExportOptions {
  /** The export copy log (verbose or error), as bytes. */
  copyLog: Buffer | string;
  /** The export drive's root, or a copy of it. */
  driveRoot: string;
  source: RepairSource;
  /** The drive's export manifest (bytes): then every chunk and companion file is checked too. */
  manifest?: Buffer | string;
  onLine?: (line: string) => void;
  signal?: AbortSignal;
}

export interface RepairOutcome {
  filePath: string;
  blobPath: string;
  what: string;
  result: "repaired" | "fine" | "failed";
  reason?: string;
}

export interface RepairExportReport {
  /** Blobs of the log that needed repair. */
  logged: number;
  repaired: number;
  fine: number;
  failed: number;
  outcomes: RepairOutcome[];
}

interface Target {
  path: string;
  blob: ExportBlobRef;
  length: number;
}

/** Reads back from the medium; a copy on a file system without O_DIRECT is read normally. */
class ReadBack {
  constructor(private readonly volume: MediumVolume) {}

  /** Before reading what was just written and synced: the device flush a FUSE volume needs. */
  prepare(): Promise<void> {
    return prepareMediumRead(this.volume);
  }

  async range(path: string, offset: number, length: number): Promise<Buffer | undefined> {
    let f: MediumFile | undefined;
    try {
      f = await MediumFile.open(path, this.volume);
      return await f.readRange(offset, length);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return undefined;
      if (code !== "EINVAL") throw e;
      const fh = await open(path, constants.O_RDONLY);
      try {
        const buf = Buffer.alloc(length);
        const { bytesRead } = await fh.read(buf, 0, length, offset);
        return buf.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    } finally {
      await f?.close();
    }
  }
}

export async function repairExport(o: RepairExportOptions): Promise<RepairExportReport> {
  const signal = o.signal ?? new AbortController().signal;
  const report: RepairExportReport = { logged: 0, repaired: 0, fine: 0, failed: 0, outcomes: [] };
  const readBack = new ReadBack(await mediumVolumeOf(o.driveRoot));
  const infos = new Map<string, Promise<ExportBlobInfo>>();
  const infoOf = (ref: ExportBlobRef) => {
    const key = `${ref.container}/${ref.name}@${ref.snapshot ?? ""}`;
    if (!infos.has(key)) infos.set(key, o.source.getBlob(ref, signal));
    return infos.get(key)!;
  };
  const note = (r: RepairOutcome) => {
    report.outcomes.push(r);
    report[r.result]++;
    o.onLine?.(`${r.result.padEnd(8)} ${r.filePath} ${r.what}${r.reason ? `: ${r.reason}` : ""}`);
  };
  const targetOf = (b: {
    blobPath: string;
    filePath: string;
    snapshot?: string;
    length: number;
  }): Target | string => {
    const fp = checkFilePath(b.filePath);
    if (!fp.ok) return `the FilePath is not a path on the drive (${fp.reason})`;
    const slash = b.blobPath.indexOf("/");
    if (slash <= 0) return "the BlobPath has no container";
    const blob: ExportBlobRef = { container: b.blobPath.slice(0, slash), name: b.blobPath.slice(slash + 1) };
    if (b.snapshot) blob.snapshot = b.snapshot;
    return { path: join(o.driveRoot, ...fp.segments), blob, length: b.length };
  };

  /**
   * Downloads [offset, offset+length), checks it against `hash` when known BEFORE writing (a blob
   * changed since the export never overwrites the drive), writes it, syncs, reads it back.
   */
  const fixRange = async (
    t: Target,
    offset: number,
    length: number,
    hash?: string,
  ): Promise<string | undefined> => {
    const info = await infoOf(t.blob);
    if (info.length !== t.length)
      return `the blob changed since it was exported (${info.length} bytes in storage, ${t.length} exported)`;
    const fh = await openForWrite(t.path, t.length);
    try {
      for (let at = offset; at < offset + length; at += MAX_CHUNK) {
        const n = Math.min(MAX_CHUNK, offset + length - at);
        const { data, md5 } = await o.source.readRange(t.blob, at, n, info.etag, Buffer.alloc(n), signal);
        if (data.length !== n) return `storage returned ${data.length} of ${n} bytes`;
        const got = createHash("md5").update(data).digest();
        if (md5 && !md5.equals(got)) return "the download failed its MD5 check";
        if (hash && n === length && got.toString("hex").toUpperCase() !== hash.toUpperCase())
          return `the blob changed since it was exported (MD5 ${got.toString("hex").toUpperCase()} in storage, ${hash} exported)`;
        await fh.write(data, 0, n, at);
      }
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await readBack.prepare();
    const back = await readBack.range(t.path, offset, length);
    const actual = back ? md5Hex(back) : "";
    if (hash && actual !== hash.toUpperCase())
      return `written, but the drive reads back MD5 ${actual}, not ${hash}: the drive does not hold its bytes`;
    return undefined;
  };

  const fixCompanion = async (
    t: Target,
    which: "metadata" | "properties",
    h: { path: string; hash?: string },
  ) => {
    const fp = checkFilePath(h.path);
    if (!fp.ok) return `the ${which} path is not a path on the drive`;
    const body = companionBody(which, await infoOf(t.blob));
    if (h.hash && md5Hex(body) !== h.hash.toUpperCase())
      return `the blob's ${which} changed since it was exported`;
    const path = join(o.driveRoot, ...fp.segments);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, body);
    const fh = await open(path, "r");
    await fh.datasync();
    await fh.close();
    return undefined;
  };

  const attempt = async (
    t: Target | string,
    r: Omit<RepairOutcome, "result" | "reason">,
    fix: (t: Target) => Promise<string | undefined>,
  ) => {
    if (typeof t === "string") return note({ ...r, result: "failed", reason: t });
    try {
      const why = await fix(t);
      note({ ...r, result: why ? "failed" : "repaired", ...(why ? { reason: why } : {}) });
    } catch (e) {
      note({ ...r, result: "failed", reason: storageReason(e) });
    }
  };

  // 1. What the copy log names.
  const log = await readDriveLog(o.copyLog);
  for (const b of log.blobs.filter(needsRepair)) {
    report.logged++;
    const t = targetOf(b);
    const at = { filePath: b.filePath, blobPath: b.blobPath };
    const bad = (b.chunks ?? []).filter((c) => c.status !== "Completed");
    if (!b.chunks?.length && b.length > 0)
      await attempt(t, { ...at, what: "whole file" }, (x) => fixRange(x, 0, b.length));
    for (const c of bad)
      await attempt(t, { ...at, what: chunkLabel(b.kind, c.offset, c.length) }, (x) =>
        fixRange(x, c.offset, c.length, c.hash),
      );
    for (const which of ["metadata", "properties"] as const) {
      const f = b[which];
      if (!f || f.status === "Completed" || !f.path) continue;
      await attempt(t, { ...at, what: `${which} file` }, (x) => fixCompanion(x, which, f.path!));
    }
  }

  // 2. With the manifest: every chunk and companion file, read back and fetched again if wrong.
  if (o.manifest !== undefined) {
    await readBack.prepare();
    for await (const item of readManifest([o.manifest], { kind: "export" })) {
      if (item.type !== "blob") continue;
      const b = item.blob;
      const t = targetOf(b);
      const at = { filePath: b.filePath, blobPath: b.blobPath };
      if (typeof t === "string") {
        note({ ...at, what: "file", result: "failed", reason: t });
        continue;
      }
      for (const c of b.chunks) {
        const what = chunkLabel(b.kind, c.offset, c.length);
        const back = await readBack.range(t.path, c.offset, c.length);
        if (back && back.length === c.length && md5Hex(back) === c.hash.toUpperCase()) {
          report.fine++;
          continue;
        }
        await attempt(t, { ...at, what }, (x) => fixRange(x, c.offset, c.length, c.hash));
      }
      for (const [which, h] of [
        ["metadata", b.metadata],
        ["properties", b.properties],
      ] as const) {
        if (!h) continue;
        if (await companionFine(o.driveRoot, h, readBack)) {
          report.fine++;
          continue;
        }
        await attempt(t, { ...at, what: `${which} file` }, (x) => fixCompanion(x, which, h));
      }
    }
  }
  return report;
}

const needsRepair = (b: LogBlob) => b.status !== "Completed";

const chunkLabel = (kind: ManifestBlob["kind"] | undefined, offset: number, length: number) =>
  `${kind === "page" ? "page range" : "block"} at ${offset} (${length} bytes)`;

async function companionFine(root: string, h: HashedPath, readBack: ReadBack): Promise<boolean> {
  const fp = checkFilePath(h.path);
  if (!fp.ok) return false;
  const data = await readBack.range(join(root, ...fp.segments), 0, MAX_FILE_INFO_BYTES + 1);
  return data !== undefined && md5Hex(data) === h.hash.toUpperCase();
}

/** The file at its exported length: created (sparse) when it is missing, never shortened. */
async function openForWrite(path: string, length: number): Promise<FileHandle> {
  await mkdir(dirname(path), { recursive: true });
  const fh = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  if ((await fh.stat()).size < length) await fh.truncate(length);
  return fh;
}

function storageReason(e: unknown): string {
  const err = e as { statusCode?: number; code?: string; message?: string };
  if (err.statusCode === 404) return "the blob is no longer in storage";
  if (err.statusCode === 412) return "the blob changed in storage since the export";
  if (err.statusCode === 403) return "storage refused the credential (403): check the account key";
  return `${err.code ?? err.statusCode ?? ""} ${err.message ?? String(e)}`.trim();
}
