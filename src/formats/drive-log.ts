/**
 * Copy logs (reference §3): the DriveLog XML the service writes per drive, which customers and
 * WAImportExport RepairImport/RepairExport read. One writer makes both logs: the verbose log has
 * every blob; the error log keeps only blobs with errors or disposition warnings, and inside
 * them only the parts that did not complete.
 */
import type {
  BlobStatus,
  ChunkStatus,
  DispositionStatus,
  DriveLogStatus,
  FileInfoStatus,
  ImportDisposition,
} from "./status.js";
import { parseXmlTree, type XmlElement, escapeXml as x } from "./xml.js";

export const DRIVE_LOG_VERSION = "2014-11-01";

export interface LogChunk {
  offset: number;
  length: number;
  id?: string;
  hash?: string;
  status: ChunkStatus;
}

export interface LogFileInfo {
  status: FileInfoStatus;
  globalPath?: { path: string; hash?: string };
  path?: { path: string; hash?: string };
}

export interface LogBlob {
  status: BlobStatus;
  /** Account-relative; after a rename, the new name. */
  blobPath: string;
  /** Relative to the drive root, with a leading backslash. */
  filePath: string;
  snapshot?: string;
  length: number;
  lastModified?: string;
  disposition?: { requested: ImportDisposition; status: DispositionStatus };
  kind?: "block" | "page";
  chunks?: LogChunk[];
  metadata?: LogFileInfo;
  properties?: LogFileInfo;
}

const DISPOSITION_WARNINGS: readonly DispositionStatus[] = ["Renamed", "Skipped", "Overwritten"];

/** A blob-level failure stops everything under it: disposition and every chunk become Cancelled (§3.6). */
export function cancelBlob(blob: LogBlob, status: BlobStatus): LogBlob {
  const out: LogBlob = { ...blob, status };
  if (blob.disposition) out.disposition = { ...blob.disposition, status: "Cancelled" };
  const done: readonly ChunkStatus[] = ["Completed", "Committed", "Uncommitted"];
  if (blob.chunks)
    out.chunks = blob.chunks.map((c) => ({ ...c, status: done.includes(c.status) ? c.status : "Cancelled" }));
  if (blob.metadata && blob.metadata.status !== "Completed")
    out.metadata = { ...blob.metadata, status: "Cancelled" };
  if (blob.properties && blob.properties.status !== "Completed")
    out.properties = { ...blob.properties, status: "Cancelled" };
  return out;
}

export const blobHasErrors = (b: LogBlob): boolean => b.status !== "Completed";
export const blobHasWarnings = (b: LogBlob): boolean =>
  b.disposition !== undefined && DISPOSITION_WARNINGS.includes(b.disposition.status);

/** The drive status a set of blob outcomes adds up to (§3.6). */
export class DriveOutcome {
  errors = 0;
  warnings = 0;
  blobs = 0;

  add(b: LogBlob): void {
    this.blobs++;
    if (blobHasErrors(b)) this.errors++;
    else if (blobHasWarnings(b)) this.warnings++;
  }

  status(): DriveLogStatus {
    return this.errors ? "CompletedWithErrors" : this.warnings ? "CompletedWithWarnings" : "Completed";
  }
}

export type LogKind = "verbose" | "error";

function fileInfo(element: "Metadata" | "Properties", info: LogFileInfo, errorOnly: boolean): string {
  if (errorOnly && info.status === "Completed") return "";
  const inner: string[] = [];
  if (info.globalPath)
    inner.push(
      `      <GlobalPath${info.globalPath.hash ? ` Hash="${info.globalPath.hash}"` : ""}>${x(info.globalPath.path)}</GlobalPath>`,
    );
  if (info.path)
    inner.push(`      <Path${info.path.hash ? ` Hash="${info.path.hash}"` : ""}>${x(info.path.path)}</Path>`);
  if (!inner.length) return `    <${element} Status="${info.status}" />\n`;
  return `    <${element} Status="${info.status}">\n${inner.join("\n")}\n    </${element}>\n`;
}

export function renderLogBlob(b: LogBlob, kind: LogKind): string {
  const errorOnly = kind === "error";
  let s = `  <Blob Status="${b.status}">\n    <BlobPath>${x(b.blobPath)}</BlobPath>\n    <FilePath>${x(b.filePath)}</FilePath>\n`;
  if (b.snapshot !== undefined) s += `    <Snapshot>${x(b.snapshot)}</Snapshot>\n`;
  s += `    <Length>${b.length}</Length>\n`;
  if (b.lastModified !== undefined) s += `    <LastModified>${x(b.lastModified)}</LastModified>\n`;
  if (b.disposition)
    s += `    <ImportDisposition Status="${b.disposition.status}">${b.disposition.requested}</ImportDisposition>\n`;
  if (b.chunks) {
    const element = b.kind === "page" ? "PageRange" : "Block";
    const list = b.kind === "page" ? "PageRangeList" : "BlockList";
    const chunks = errorOnly ? b.chunks.filter((c) => c.status !== "Completed") : b.chunks;
    if (chunks.length === 0) s += `    <${list} />\n`;
    else {
      s += `    <${list}>\n`;
      for (const c of chunks) {
        s += `      <${element} Offset="${c.offset}" Length="${c.length}"${c.id ? ` Id="${c.id}"` : ""}${c.hash ? ` Hash="${c.hash}"` : ""} Status="${c.status}"/>\n`;
      }
      s += `    </${list}>\n`;
    }
  }
  if (b.metadata) s += fileInfo("Metadata", b.metadata, errorOnly);
  if (b.properties) s += fileInfo("Properties", b.properties, errorOnly);
  return `${s}  </Blob>\n`;
}

/**
 * Streams one log. `add` every blob as it finishes; `end` writes the drive status. The error log
 * skips blobs that completed cleanly.
 */
export class DriveLogWriter {
  constructor(
    private readonly write: (chunk: string) => void,
    readonly kind: LogKind,
    driveId: string,
  ) {
    this.write(
      `<?xml version="1.0" encoding="utf-8"?>\n<DriveLog Version="${DRIVE_LOG_VERSION}">\n  <DriveId>${x(driveId)}</DriveId>\n`,
    );
  }

  add(b: LogBlob): void {
    if (this.kind === "error" && !blobHasErrors(b) && !blobHasWarnings(b)) return;
    this.write(renderLogBlob(b, this.kind));
  }

  end(status: DriveLogStatus): void {
    this.write(`  <Status>${status}</Status>\n</DriveLog>\n`);
  }
}

/** Both logs of a drive as strings (small drives, tests). */
export function renderDriveLog(
  driveId: string,
  blobs: LogBlob[],
  kind: LogKind,
  status?: DriveLogStatus,
): string {
  let out = "";
  const w = new DriveLogWriter(
    (c) => {
      out += c;
    },
    kind,
    driveId,
  );
  const outcome = new DriveOutcome();
  for (const b of blobs) {
    outcome.add(b);
    w.add(b);
  }
  w.end(status ?? outcome.status());
  return out;
}

// ---------------------------------------------------------------- where logs go (§3.2)

export type LogType = "error" | "verbose" | "manifest";

/** `yyyyMMdd-HHmmss-fff`, UTC. */
export function logTimestamp(at: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${at.getUTCFullYear()}${p(at.getUTCMonth() + 1)}${p(at.getUTCDate())}-${p(at.getUTCHours())}${p(at.getUTCMinutes())}${p(at.getUTCSeconds())}-${p(at.getUTCMilliseconds(), 3)}`;
}

export interface LogLocationInput {
  jobName: string;
  driveId: string;
  type: LogType;
  at: Date;
  /** The job's diagnosticsPath; default `waimportexport`. */
  diagnosticsPath?: string;
  /** With a container SAS the logs go into a virtual directory of that container. */
  sasContainer?: string;
}

/**
 * Account key: container = diagnosticsPath. Container SAS: a virtual directory named
 * diagnosticsPath inside the SAS container (the doc's odd extra `waimportexport/` in the
 * custom-path example, reference §9 item 5, is not reproduced).
 */
export function logBlobLocation(i: LogLocationInput): { container: string; blobName: string } {
  const dir = i.diagnosticsPath || "waimportexport";
  const file = `waies/${i.jobName}_${i.driveId}_${logTimestamp(i.at)}_${i.type}.xml`;
  if (i.sasContainer) return { container: i.sasContainer, blobName: `${dir}/${file}` };
  const [container, ...rest] = dir.split("/");
  return { container: container!, blobName: [...rest, file].join("/") };
}

// ---------------------------------------------------------------- reading a log back

export interface ParsedDriveLog {
  version?: string;
  driveId: string;
  blobs: LogBlob[];
  status: DriveLogStatus;
}

/** Reads a copy log (ours or the service's) into the model; for tests, tools and repair planning. */
export async function readDriveLog(xml: string | Buffer): Promise<ParsedDriveLog> {
  const root = await parseXmlTree(xml);
  if (root.name !== "DriveLog") throw new Error(`the root element is ${root.name}, not DriveLog`);
  const child = (el: XmlElement, name: string) => el.children.find((c) => c.name === name);
  const num = (v: string | undefined) => Number(v ?? "0");
  const pathOf = (el: XmlElement | undefined) =>
    el ? { path: el.text, ...(el.attrs.Hash ? { hash: el.attrs.Hash.trim() } : {}) } : undefined;
  const info = (el: XmlElement | undefined): LogFileInfo | undefined => {
    if (!el) return undefined;
    const out: LogFileInfo = { status: el.attrs.Status as FileInfoStatus };
    const g = pathOf(child(el, "GlobalPath"));
    const p = pathOf(child(el, "Path"));
    if (g) out.globalPath = g;
    if (p) out.path = p;
    return out;
  };
  const blobs = root.children
    .filter((c) => c.name === "Blob")
    .map((b): LogBlob => {
      const out: LogBlob = {
        status: b.attrs.Status as BlobStatus,
        blobPath: child(b, "BlobPath")?.text ?? "",
        filePath: child(b, "FilePath")?.text ?? "",
        length: num(child(b, "Length")?.text),
      };
      const snap = child(b, "Snapshot");
      if (snap) out.snapshot = snap.text;
      const lm = child(b, "LastModified");
      if (lm) out.lastModified = lm.text;
      const disp = child(b, "ImportDisposition");
      if (disp)
        out.disposition = {
          requested: disp.text.trim() as ImportDisposition,
          status: disp.attrs.Status as DispositionStatus,
        };
      const list = child(b, "BlockList") ?? child(b, "PageRangeList");
      if (list) {
        out.kind = list.name === "PageRangeList" ? "page" : "block";
        out.chunks = list.children.map((c) => {
          const chunk: LogChunk = {
            offset: num(c.attrs.Offset),
            length: num(c.attrs.Length),
            status: c.attrs.Status as ChunkStatus,
          };
          if (c.attrs.Id) chunk.id = c.attrs.Id;
          if (c.attrs.Hash) chunk.hash = c.attrs.Hash.trim();
          return chunk;
        });
      }
      const m = info(child(b, "Metadata"));
      if (m) out.metadata = m;
      const p = info(child(b, "Properties"));
      if (p) out.properties = p;
      return out;
    });
  const parsed: ParsedDriveLog = {
    driveId: child(root, "DriveId")?.text ?? "",
    blobs,
    status: (child(root, "Status")?.text ?? "") as DriveLogStatus,
  };
  if (root.attrs.Version) parsed.version = root.attrs.Version;
  return parsed;
}
