/**
 * Blob path -> file path on an export drive (reference §7: the path mirrors the blob path
 * unless NTFS naming rules force something else; the manifest's FilePath is authoritative).
 *
 * Rules, per segment: characters NTFS refuses (`< > : " | ? *`, `\`, control characters) and a
 * trailing dot or space become `%XX`; `.`/`..`/empty segments become `%2E`/`%2E%2E`/`%20`; a
 * reserved device name (CON, NUL, COM1, …, with any extension) gets a leading `_`; a segment over
 * 255 UTF-16 units is cut and given a hash. A path over MAX_FILE_PATH moves to
 * `\<container>\~long\<hash>[.ext]`. NTFS folds case and a blob store does not: `a/B.txt` and
 * `a/b.txt`, or a blob `c/a` beside a blob `c/a/b`, would collide, so the mapper tracks every
 * name on the drive case-folded; a later file gets ` (2)`, ` (3)` before its extension, a
 * directory that would land on a file gets `~2`, `~3`. Companion files (`.properties`,
 * `.metadata`) and the in-progress name (`.drive-station-partial`) are reserved with their file.
 */
import { createHash } from "node:crypto";

export const PARTIAL_SUFFIX = ".drive-station-partial";
export const PROPERTIES_SUFFIX = ".properties";
export const METADATA_SUFFIX = ".metadata";
/** Drive-relative, in UTF-16 units: well inside Linux's PATH_MAX with the mount point in front. */
export const MAX_FILE_PATH = 1024;
const MAX_SEGMENT = 255;

const RESERVED = /^(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]|CONIN\$|CONOUT\$)(\..*)?$/i;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what NTFS refuses
const ILLEGAL = /[<>:"|?*\\\u0000-\u001f\u007f]/g;

const hex = (c: string) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`;
const shortHash = (s: string) => createHash("md5").update(s).digest("hex").slice(0, 12).toUpperCase();

/** One blob-name segment made NTFS-safe (without collision handling). */
export function safeSegment(seg: string): string {
  if (seg === "") return "%20";
  if (seg === ".") return "%2E";
  if (seg === "..") return "%2E%2E";
  let s = seg.replace(ILLEGAL, hex);
  const trail = /[. ]+$/.exec(s);
  if (trail) s = s.slice(0, trail.index) + [...trail[0]].map(hex).join("");
  if (RESERVED.test(s)) s = `_${s}`;
  if (s.length > MAX_SEGMENT) {
    const ext = extension(s);
    const keep = MAX_SEGMENT - 13 - (ext.length <= 16 ? ext.length : 0);
    s = `${s.slice(0, keep)}~${shortHash(seg)}${ext.length <= 16 ? ext : ""}`;
  }
  return s;
}

/** `.jpg` of `photo.jpg`; `` for `name` and `.bashrc`. */
function extension(name: string): string {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot) : "";
}

/** `name (n).ext`, the import rename rule (reference §1.6) reused for files. */
function numbered(name: string, n: number): string {
  const ext = extension(name);
  return `${name.slice(0, name.length - ext.length)} (${n})${ext}`;
}

/** A snapshot's file keeps the blob's name with its time stamp before the extension. */
export function snapshotName(name: string, snapshot: string): string {
  const ext = extension(name);
  const stamp = snapshot.replace(/:/g, "");
  return `${name.slice(0, name.length - ext.length)} (snapshot ${stamp})${ext}`;
}

const fold = (s: string) => s.toUpperCase();

export interface PathProposal {
  /** Drive-relative, with a leading backslash: what the manifest records. */
  filePath: string;
  /** Directories this file would create (each costs an MFT record and an index cluster). */
  newDirs: number;
  /** Registers the path: later proposals see it taken. */
  commit(): void;
}

/** Every name on one export drive, case-folded; deterministic for the same sequence of blobs. */
export class DrivePathMapper {
  private readonly used = new Map<string, "file" | "dir">();
  private readonly realDir = new Map<string, string>();

  /** Names the station itself puts on the drive (its manifest). */
  reserve(filePath: string): void {
    this.used.set(fold(filePath), "file");
  }

  propose(blob: { container: string; name: string; snapshot?: string }): PathProposal {
    const rawSegs = blob.name.split("/");
    if (blob.snapshot) rawSegs[rawSegs.length - 1] = snapshotName(rawSegs.at(-1)!, blob.snapshot);
    let segs = [safeSegment(blob.container), ...rawSegs.map(safeSegment)];
    if (segs.reduce((n, s) => n + s.length + 1, 0) > MAX_FILE_PATH) {
      const ext = extension(segs.at(-1)!);
      segs = [
        segs[0]!,
        "~long",
        `${shortHash(`${blob.container}/${blob.name}\0${blob.snapshot ?? ""}`)}${ext.length <= 16 ? ext : ""}`,
      ];
    }
    const newDirs: string[] = [];
    const dirs: string[] = [];
    let prefix = "";
    for (const seg of segs.slice(0, -1)) {
      let candidate = seg;
      for (let n = 2; ; n++) {
        const key = fold(`${prefix}\\${candidate}`);
        const kind = this.used.get(key) ?? (newDirs.includes(key) ? "dir" : undefined);
        if (kind === undefined) {
          newDirs.push(key);
          break;
        }
        if (kind === "dir") {
          candidate = this.realDir.get(key) ?? candidate; // NTFS keeps the first casing
          break;
        }
        candidate = `${seg}~${n}`;
      }
      prefix = `${prefix}\\${candidate}`;
      dirs.push(candidate);
    }
    const last = segs.at(-1)!;
    let file = last;
    for (let n = 2; this.taken(`${prefix}\\${file}`); n++) file = numbered(last, n);
    const filePath = `${prefix}\\${file}`;
    return {
      filePath,
      newDirs: newDirs.length,
      commit: () => {
        let p = "";
        for (const d of dirs) {
          p = `${p}\\${d}`;
          if (!this.used.has(fold(p))) {
            this.used.set(fold(p), "dir");
            this.realDir.set(fold(p), d);
          }
        }
        for (const s of ["", PROPERTIES_SUFFIX, METADATA_SUFFIX, PARTIAL_SUFFIX])
          this.used.set(fold(filePath + s), "file");
      },
    };
  }

  private taken(path: string): boolean {
    return ["" as string, PROPERTIES_SUFFIX, METADATA_SUFFIX, PARTIAL_SUFFIX].some((s) =>
      this.used.has(fold(path + s)),
    );
  }
}

/** `\a\b.txt` -> path segments for `join(root, ...)`. */
export const fileSegments = (filePath: string): string[] => filePath.replace(/^\\/, "").split("\\");
