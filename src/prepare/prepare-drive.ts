/**
 * `station prepare`: the Linux counterpart of WAImportExport PrepImport (reference §6.2, §6.5).
 * Copies a source tree onto a mounted drive into a session folder (or, with skipWrite, indexes
 * data already on it), hashes every block or page range in the same single read, writes
 * DriveManifest.xml at the drive root, and returns the drive entry a job needs.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync } from "node:fs";
import { lstat, mkdir, open, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import {
  MAX_FILE_INFO_BYTES,
  md5Hex,
  readMetadataFile,
  readPropertiesFile,
} from "../formats/blob-properties.js";
import {
  type Chunk,
  type Credential,
  type HashedPath,
  MAX_BLOCKS,
  MAX_CHUNK,
  type ManifestBlob,
  PAGE,
  readManifest,
} from "../formats/manifest.js";
import { indexBlockId, type ManifestBlobOut, ManifestWriter } from "../formats/manifest-writer.js";
import { checkBlobPath, checkFilePath } from "../formats/names.js";
import type { ImportDisposition } from "../formats/status.js";

export const MANIFEST_NAME = "DriveManifest.xml";

export interface PrepareOptions {
  driveRoot: string;
  /** A directory (copied recursively) or one file. */
  source: string;
  /** Letters, digits, `_`, `-`, `#`; 3 to 30 characters. The session folder on the drive. */
  sessionId: string;
  /** `container/` or `container/prefix/` for a directory; `container/blob` for a file. */
  destination: string;
  driveId: string;
  credential: Credential;
  blobType?: "BlockBlob" | "PageBlob";
  disposition?: ImportDisposition;
  /** The data is already on the drive: `source` must be inside `driveRoot`; nothing is copied. */
  skipWrite?: boolean;
  /** Add a session to an existing manifest instead of refusing to overwrite it. */
  append?: boolean;
  /** Block size for block blobs; at most 4 MiB. */
  blockSize?: number;
  /** Metadata and properties files (reference §2) applied to every blob of this session. */
  metadataFile?: string;
  propertiesFile?: string;
}

export interface PrepareResult {
  driveId: string;
  manifestFile: string;
  manifestHash: string;
  blobs: number;
  bytes: number;
  skipped: { path: string; reason: string }[];
}

export class PrepareError extends Error {
  override name = "PrepareError";
}

export const SESSION_ID = /^[A-Za-z0-9_#-]{3,30}$/;

export interface SourceFile {
  absolute: string;
  /** Relative to the source directory, with '/'. */
  relative: string;
  size: number;
}

export async function collect(
  source: string,
  skipped: PrepareResult["skipped"],
): Promise<{ files: SourceFile[]; isDir: boolean }> {
  const st = await lstat(source).catch(() => undefined);
  if (!st) throw new PrepareError(`Source ${source} does not exist.`);
  if (st.isFile()) return { files: [{ absolute: source, relative: "", size: st.size }], isDir: false };
  if (!st.isDirectory()) throw new PrepareError(`Source ${source} is neither a file nor a directory.`);
  const files: SourceFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const abs = join(dir, e.name);
      const rel = relative(source, abs).split(sep).join("/");
      if (e.isDirectory()) await walk(abs);
      else if (e.isFile()) files.push({ absolute: abs, relative: rel, size: (await stat(abs)).size });
      else
        skipped.push({
          path: rel,
          reason: e.isSymbolicLink() ? "symbolic link (not followed)" : "not a regular file",
        });
    }
  };
  await walk(source);
  return { files, isDir: true };
}

/** Reads `file` once: copies it to `copyTo` (unless undefined) and hashes each chunk of `chunkSize`. */
export async function hashAndCopy(
  file: string,
  size: number,
  chunkSize: number,
  copyTo: string | undefined,
): Promise<Buffer[]> {
  const hashes: Buffer[] = [];
  let current = createHash("md5");
  let filled = 0;
  async function* hashing(source: AsyncIterable<Buffer>) {
    for await (const buf of source) {
      let at = 0;
      while (at < buf.length) {
        const take = Math.min(chunkSize - filled, buf.length - at);
        current.update(buf.subarray(at, at + take));
        filled += take;
        at += take;
        if (filled === chunkSize) {
          hashes.push(current.digest());
          current = createHash("md5");
          filled = 0;
        }
      }
      yield buf;
    }
    if (filled > 0) hashes.push(current.digest());
  }
  const input = createReadStream(file, { highWaterMark: 1 << 20 });
  if (copyTo) {
    await mkdir(dirname(copyTo), { recursive: true });
    await pipeline(input, hashing, createWriteStream(copyTo, { flags: "wx" }));
    const fh = await open(copyTo, "r+");
    await fh.sync();
    await fh.close();
  } else {
    for await (const _ of hashing(input)) {
      // hashing only
    }
  }
  const expected = size === 0 ? 0 : Math.ceil(size / chunkSize);
  if (hashes.length !== expected)
    throw new PrepareError(`${file} changed size while it was read (${size} bytes expected).`);
  return hashes;
}

const ZERO_PAGE_RANGE_MD5 = new Map<number, string>();
function zeroMd5(length: number): string {
  let v = ZERO_PAGE_RANGE_MD5.get(length);
  if (!v) {
    v = md5Hex(Buffer.alloc(length));
    ZERO_PAGE_RANGE_MD5.set(length, v);
  }
  return v;
}

/** A file's manifest chunks from its per-chunk MD5s: every block, or the non-zero page ranges. */
export function manifestChunks(
  hashes: Buffer[],
  size: number,
  chunkSize: number,
  blobType: "BlockBlob" | "PageBlob",
): Chunk[] {
  const out: Chunk[] = [];
  hashes.forEach((h, i) => {
    const offset = i * chunkSize;
    const length = Math.min(chunkSize, size - offset);
    const hash = h.toString("hex").toUpperCase();
    if (blobType === "PageBlob") {
      if (hash !== zeroMd5(length)) out.push({ offset, length, hash }); // zero pages stay sparse
    } else out.push({ offset, length, hash, id: indexBlockId(i) });
  });
  return out;
}

/** Writes the manifest text at the drive root (temp file, fsync, rename); returns its MD5. */
export async function writeManifestFile(driveRoot: string, text: string): Promise<string> {
  const manifestPath = join(driveRoot, MANIFEST_NAME);
  const tmp = `${manifestPath}.tmp-${process.pid}`;
  const fh = await open(tmp, "w");
  await fh.writeFile(text, "utf8");
  await fh.sync();
  await fh.close();
  await rename(tmp, manifestPath);
  return md5Hex(await readFile(manifestPath));
}

/** Checks a session's metadata or properties file (size, XML) and returns its bytes. */
export async function checkedListFile(kind: "metadata" | "properties", file: string): Promise<Buffer> {
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile()) throw new PrepareError(`${file}: the ${kind} file does not exist`);
  if (st.size > MAX_FILE_INFO_BYTES)
    throw new PrepareError(`${file}: a ${kind} file may be at most ${MAX_FILE_INFO_BYTES} bytes; shorten it`);
  const data = await readFile(file);
  const check =
    kind === "metadata"
      ? await readMetadataFile(data, md5Hex(data))
      : await readPropertiesFile(data, md5Hex(data), "import");
  if (!check.ok) throw new PrepareError(`${file}: ${check.message}`);
  return data;
}

export async function prepareDrive(o: PrepareOptions): Promise<PrepareResult> {
  const driveRoot = resolve(o.driveRoot);
  const source = resolve(o.source);
  const blobType = o.blobType ?? "BlockBlob";
  const blockSize = o.blockSize ?? MAX_CHUNK;
  if (!SESSION_ID.test(o.sessionId))
    throw new PrepareError(`Session id '${o.sessionId}' must be 3-30 letters, digits, '_', '-' or '#'.`);
  if (!(blockSize > 0 && blockSize <= MAX_CHUNK))
    throw new PrepareError(`Block size must be between 1 and ${MAX_CHUNK} bytes.`);
  if (!/^\S{1,64}$/.test(o.driveId))
    throw new PrepareError(`Drive id '${o.driveId}' must be the drive's serial number without spaces.`);
  if (!(await stat(driveRoot).catch(() => undefined))?.isDirectory())
    throw new PrepareError(`Drive root ${driveRoot} is not a directory (is the drive mounted?).`);
  if (o.skipWrite && !`${source}${sep}`.startsWith(`${driveRoot}${sep}`)) {
    throw new PrepareError(`With skip-write the source (${source}) must be on the drive (${driveRoot}).`);
  }
  const manifestPath = join(driveRoot, MANIFEST_NAME);
  if (existsSync(manifestPath) && !o.append) {
    throw new PrepareError(
      `A ${MANIFEST_NAME} file exists on the target drive. Pass --append to add a session to it, or delete it to start over.`,
    );
  }
  const sessionDir = join(driveRoot, o.sessionId);
  if (!o.skipWrite && existsSync(sessionDir))
    throw new PrepareError(`Session folder ${sessionDir} exists already: use a new session id.`);

  const skipped: PrepareResult["skipped"] = [];
  const { files, isDir } = await collect(source, skipped);
  const dest = o.destination;
  if (isDir && !dest.endsWith("/"))
    throw new PrepareError(`For a directory the destination must end with '/': '${dest}/'.`);
  if (!isDir && dest.endsWith("/"))
    throw new PrepareError(`For a single file the destination is container/blob, not '${dest}'.`);
  if (isDir && dest.startsWith("$root/") && files.some((f) => f.relative.includes("/"))) {
    throw new PrepareError("The root container cannot hold subfolders: copy a flat directory to $root/.");
  }

  // Check every name before writing anything.
  const planned = files.map((f) => {
    const blobPath = isDir ? `${dest}${f.relative}` : dest;
    const onDrive = o.skipWrite
      ? relative(driveRoot, f.absolute)
      : join(o.sessionId, isDir ? f.relative : f.absolute.split(sep).pop()!);
    const filePath = `\\${onDrive.split(/[\\/]/).join("\\")}`;
    return { ...f, blobPath, filePath, copyTo: o.skipWrite ? undefined : join(driveRoot, onDrive) };
  });
  const problems: string[] = [];
  for (const p of planned) {
    const fp = checkFilePath(p.filePath);
    if (!fp.ok) problems.push(`${p.filePath}: ${fp.reason}`);
    const bp = checkBlobPath(p.blobPath);
    if (!bp.ok) problems.push(`${p.blobPath}: ${bp.reason}`);
    if (blobType === "PageBlob" && p.size % PAGE !== 0)
      problems.push(
        `${p.relative || p.absolute}: a page blob's size must be a multiple of ${PAGE} bytes (${p.size})`,
      );
    if (blobType === "BlockBlob" && Math.ceil(p.size / blockSize) > MAX_BLOCKS)
      problems.push(`${p.relative || p.absolute}: more than ${MAX_BLOCKS} blocks of ${blockSize} bytes`);
  }
  if (problems.length)
    throw new PrepareError(
      `Nothing was written; fix these first:\n  ${problems.slice(0, 20).join("\n  ")}${problems.length > 20 ? `\n  … and ${problems.length - 20} more` : ""}`,
    );

  // Rewrite the manifest: earlier sessions (when appending), then this one as a new BlobList.
  const chunks: string[] = [];
  const writer = new ManifestWriter((c) => chunks.push(c), {
    driveId: o.driveId,
    kind: "import",
    credential: o.credential,
  });
  if (o.append && existsSync(manifestPath)) {
    let lastList = -1;
    for await (const item of readManifest(createReadStream(manifestPath), {
      kind: "import",
      expectedDriveId: o.driveId,
    })) {
      if (item.type !== "blob") continue;
      const { list, ...b } = item.blob;
      if (list.index !== lastList) {
        writer.blobList({
          ...(list.id ? { id: list.id } : {}),
          ...(list.metadata ? { metadata: list.metadata } : {}),
          ...(list.properties ? { properties: list.properties } : {}),
        });
        lastList = list.index;
      }
      writer.blob(b);
    }
  }
  // Session-wide metadata and properties files go next to the data and are listed with their MD5.
  const listFiles: { metadata?: HashedPath; properties?: HashedPath } = {};
  for (const [kind, file] of [
    ["metadata", o.metadataFile],
    ["properties", o.propertiesFile],
  ] as const) {
    if (!file) continue;
    const data = await checkedListFile(kind, file);
    const onDrive = join(o.sessionId, `${kind}.xml`);
    await mkdir(join(driveRoot, o.sessionId), { recursive: true });
    await writeFile(join(driveRoot, onDrive), data, { flag: "wx" });
    listFiles[kind] = { path: `\\${onDrive.split(sep).join("\\")}`, hash: md5Hex(data) };
  }
  writer.blobList({ id: `${o.sessionId}#1-0`, ...listFiles });

  let bytes = 0;
  for (const p of planned) {
    const chunkSize = blobType === "PageBlob" ? MAX_CHUNK : blockSize;
    const hashes = await hashAndCopy(p.absolute, p.size, chunkSize, p.copyTo);
    const blobChunks = manifestChunks(hashes, p.size, chunkSize, blobType);
    const blob: ManifestBlobOut = {
      blobPath: p.blobPath,
      filePath: p.filePath,
      length: p.size,
      kind: blobType === "PageBlob" ? "page" : "block",
      chunks: blobChunks,
      disposition: o.disposition ?? "rename",
    } satisfies Omit<ManifestBlob, "list">;
    writer.blob(blob);
    bytes += p.size;
  }
  writer.end();

  const manifestHash = await writeManifestFile(driveRoot, chunks.join(""));
  return {
    driveId: o.driveId,
    manifestFile: `\\${MANIFEST_NAME}`,
    manifestHash,
    blobs: planned.length,
    bytes,
    skipped,
  };
}
