/** The manifest's value rules: counts, hashed paths, and a blob's whole rule set (reference §1.3-1.4, §1.10). */
import {
  type BlobListDefaults,
  type BlobProblem,
  type Chunk,
  type HashedPath,
  MAX_BLOCK_BLOB,
  MAX_BLOCKS,
  MAX_CHUNK,
  MAX_PAGE_BLOB,
  type ManifestBlob,
  PAGE,
} from "./manifest-model.js";
import { checkBlobPath, checkFilePath } from "./names.js";
import { type BlobStatus, IMPORT_DISPOSITIONS, type ImportDisposition, ManifestError } from "./status.js";

export const HEX32 = /^[0-9A-Fa-f]{32}$/;
export const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export interface RawBlob {
  blobPath?: string;
  filePath?: string;
  clientData?: string;
  snapshot?: string;
  length?: string;
  disposition?: string;
  blockList?: Record<string, string>[];
  pageRangeList?: Record<string, string>[];
  metadata?: { path: string; hash?: string };
  properties?: { path: string; hash?: string };
  duplicate?: string;
  /** The block or page-range list ran past its limit: the entries after it were not kept. */
  tooMany?: string;
  line: number;
}

export const formatError = (message: string, element?: string, line?: number) =>
  new ManifestError("ManifestFormatInvalid", message, element, line);

function parseCount(value: string | undefined, what: string): number | string {
  const v = (value ?? "").trim();
  if (!/^\d{1,16}$/.test(v)) return `${what} '${value ?? ""}' is not a whole number`;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : `${what} '${v}' is out of range`;
}

export function hashedPath(
  raw: { path: string; hash?: string } | undefined,
  element: string,
): HashedPath | string | undefined {
  if (!raw) return undefined;
  const hash = (raw.hash ?? "").trim();
  if (!HEX32.test(hash)) return `${element}/@Hash must be the hex MD5 of the file, not '${raw.hash ?? ""}'`;
  const path = checkFilePath(raw.path.trim());
  if (!path.ok) return `${element} '${raw.path}': ${path.reason}`;
  return { path: raw.path.trim(), hash: hash.toUpperCase() };
}

/** Applies the blob rules of reference §1.3-1.4 and §1.10; returns the blob or the blob's problem. */
export function checkBlob(
  raw: RawBlob,
  list: BlobListDefaults,
  kind: "import" | "export",
): { blob: ManifestBlob; problem?: BlobProblem } {
  const blob: ManifestBlob = {
    blobPath: (raw.blobPath ?? "").trim(),
    filePath: (raw.filePath ?? "").trim(),
    length: 0,
    disposition: "rename",
    kind: raw.pageRangeList ? "page" : "block",
    chunks: [],
    list,
  };
  if (raw.clientData !== undefined) blob.clientData = raw.clientData;
  if (raw.snapshot !== undefined) blob.snapshot = raw.snapshot.trim();
  const fail = (status: BlobStatus, message: string) => ({
    blob,
    problem: { status, message: `Blob ${blob.blobPath || "(no BlobPath)"}: ${message}` },
  });

  if (raw.duplicate) return fail("Failed", `element ${raw.duplicate} appears twice`);
  if (raw.tooMany) return fail("Failed", raw.tooMany);
  if (!raw.blobPath) return fail("Failed", "BlobPath is missing");
  if (raw.filePath === undefined) return fail("FileNameInvalid", "FilePath is missing");
  const path = checkFilePath(blob.filePath);
  if (!path.ok) return fail(path.status, `FilePath '${blob.filePath}': ${path.reason}`);
  const name = checkBlobPath(blob.blobPath);
  if (!name.ok) return fail("Failed", `BlobPath: ${name.reason}`);

  const length = parseCount(raw.length, "Length");
  if (typeof length === "string") return fail("Failed", length);
  blob.length = length;

  if (raw.disposition !== undefined) {
    const d = raw.disposition.trim();
    if (kind === "export") return fail("Failed", "ImportDisposition is not allowed in an export manifest");
    if (!(IMPORT_DISPOSITIONS as readonly string[]).includes(d))
      return fail(
        "Failed",
        `ImportDisposition '${d}' is not rename, no-overwrite or overwrite (case-sensitive)`,
      );
    blob.disposition = d as ImportDisposition;
  }

  for (const [which, raw_] of [
    ["MetadataPath", raw.metadata],
    ["PropertiesPath", raw.properties],
  ] as const) {
    const hp = hashedPath(raw_, which);
    if (typeof hp === "string") return fail("Failed", hp);
    if (hp) blob[which === "MetadataPath" ? "metadata" : "properties"] = hp;
  }

  if (!raw.blockList === !raw.pageRangeList)
    return fail("Failed", "a blob needs exactly one of BlockList and PageRangeList");
  const items = raw.blockList ?? raw.pageRangeList ?? [];
  const element = raw.blockList ? "Block" : "PageRange";
  let ids = 0;
  for (const [i, a] of items.entries()) {
    const offset = parseCount(a.Offset, `${element} ${i} Offset`);
    const len = parseCount(a.Length, `${element} ${i} Length`);
    if (typeof offset === "string") return fail("Failed", offset);
    if (typeof len === "string") return fail("Failed", len);
    const hash = (a.Hash ?? "").trim();
    if (!HEX32.test(hash)) {
      if (kind === "export" && hash === "") return fail("Failed", `${element} ${i} has no Hash`);
      return fail("Failed", `${element} ${i} Hash '${a.Hash ?? ""}' is not a hex MD5`);
    }
    const chunk: Chunk = { offset, length: len, hash: hash.toUpperCase() };
    if (a.Id !== undefined) {
      ids++;
      if (!BASE64.test(a.Id) || a.Id.length === 0)
        return fail("Failed", `Block ${i} Id '${a.Id}' is not Base64`);
      if (Buffer.from(a.Id, "base64").length > 64)
        return fail("Failed", `Block ${i} Id is longer than 64 bytes`);
      chunk.id = a.Id;
    }
    blob.chunks.push(chunk);
  }

  if (blob.kind === "block") {
    if (blob.length > MAX_BLOCK_BLOB)
      return fail("Failed", `Length ${blob.length} exceeds the block blob limit of ${MAX_BLOCK_BLOB} bytes`);
    if (blob.chunks.length > MAX_BLOCKS)
      return fail("Failed", `${blob.chunks.length} blocks exceed the limit of ${MAX_BLOCKS}`);
    if (ids !== 0 && ids !== blob.chunks.length)
      return fail("Failed", "block Ids must be given for all blocks or for none");
    if (ids > 0 && new Set(blob.chunks.map((c) => c.id!.length)).size > 1)
      return fail("Failed", "block Ids must all have the same encoded length");
    let expected = 0;
    for (const [i, c] of blob.chunks.entries()) {
      if (c.offset !== expected)
        return fail(
          "Failed",
          `Block ${i} starts at ${c.offset}, expected ${expected}: blocks must be contiguous from 0`,
        );
      if (c.length === 0 || c.length > MAX_CHUNK)
        return fail("Failed", `Block ${i} Length ${c.length} is not between 1 and ${MAX_CHUNK}`);
      expected += c.length;
    }
    if (expected !== blob.length)
      return fail("Failed", `the blocks cover ${expected} bytes but Length is ${blob.length}`);
  } else {
    if (blob.length > MAX_PAGE_BLOB)
      return fail("Failed", `Length ${blob.length} exceeds the page blob limit of ${MAX_PAGE_BLOB} bytes`);
    if (blob.length % PAGE !== 0)
      return fail("Failed", `a page blob's Length must be a multiple of ${PAGE}, not ${blob.length}`);
    let end = 0;
    for (const [i, c] of blob.chunks.entries()) {
      if (c.offset % PAGE || c.length % PAGE)
        return fail("Failed", `PageRange ${i} (${c.offset}, ${c.length}) is not ${PAGE}-byte aligned`);
      if (c.length === 0 || c.length > MAX_CHUNK)
        return fail("Failed", `PageRange ${i} Length ${c.length} is not between ${PAGE} and ${MAX_CHUNK}`);
      if (c.offset < end)
        return fail("Failed", `PageRange ${i} at ${c.offset} overlaps or precedes the previous range`);
      end = c.offset + c.length;
      if (end > blob.length)
        return fail("Failed", `PageRange ${i} ends at ${end}, past Length ${blob.length}`);
    }
  }
  return { blob };
}

/**
 * Reads a drive manifest as a stream. Throws ManifestError for anything that makes the whole
 * manifest untrustworthy; blob-level faults come back on the item.
 */
