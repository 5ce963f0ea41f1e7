/**
 * Drive manifest model (reference §1) and its streaming reader. The reader yields the drive
 * header, then one item per blob, holding nothing but the blob being read: memory does not grow
 * with the number of blobs. Structural faults throw ManifestError (a drive status); a fault in
 * one blob (a path that leaves the drive, a block list with gaps) is reported on that blob only.
 */
import { checkBlobPath, checkFilePath } from "./names.js";
import { type BlobStatus, IMPORT_DISPOSITIONS, type ImportDisposition, ManifestError } from "./status.js";
import { XmlSyntaxError, xmlEvents } from "./xml.js";

export const MANIFEST_VERSIONS = ["2014-11-01", "2011-10-01"] as const;
export const MAX_CHUNK = 4 * 1024 * 1024;
export const MAX_BLOCKS = 50_000;
export const MAX_BLOCK_BLOB = MAX_BLOCKS * MAX_CHUNK;
export const MAX_PAGE_BLOB = 1024 ** 4;
export const PAGE = 512;

export type Credential =
  | { kind: "accountKey"; key: string }
  | { kind: "containerSas"; container: string; token: string };

export interface HashedPath {
  path: string;
  /** Upper-case hex MD5 of the file. */
  hash: string;
}

export interface ManifestHeader {
  version: string;
  driveId: string;
  credential?: Credential;
  clientCreator?: string;
}

export interface BlobListDefaults {
  /** 0-based position of the BlobList in the manifest. */
  index: number;
  id?: string;
  metadata?: HashedPath;
  properties?: HashedPath;
}

export interface Chunk {
  offset: number;
  length: number;
  /** Upper-case hex MD5. */
  hash: string;
  id?: string;
}

export interface ManifestBlob {
  blobPath: string;
  filePath: string;
  clientData?: string;
  snapshot?: string;
  length: number;
  disposition: ImportDisposition;
  /** `block` with BlockList, `page` with PageRangeList. */
  kind: "block" | "page";
  chunks: Chunk[];
  metadata?: HashedPath;
  properties?: HashedPath;
  list: BlobListDefaults;
}

export interface BlobProblem {
  status: BlobStatus;
  /** Names the element and the reason. */
  message: string;
}

export type ManifestItem =
  | { type: "header"; header: ManifestHeader }
  | { type: "blob"; blob: ManifestBlob; problem?: BlobProblem; line: number }
  | { type: "end"; blobCount: number; blobLists: number };

export interface ReadManifestOptions {
  kind: "import" | "export";
  /** The serial read from the drive; a different DriveId is ManifestDriveIdMismatch. */
  expectedDriveId?: string;
}

const HEX32 = /^[0-9A-Fa-f]{32}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

interface RawBlob {
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
  line: number;
}

const formatError = (message: string, element?: string, line?: number) =>
  new ManifestError("ManifestFormatInvalid", message, element, line);

function parseCount(value: string | undefined, what: string): number | string {
  const v = (value ?? "").trim();
  if (!/^\d{1,16}$/.test(v)) return `${what} '${value ?? ""}' is not a whole number`;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : `${what} '${v}' is out of range`;
}

function hashedPath(
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
export async function* readManifest(
  source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  options: ReadManifestOptions,
): AsyncGenerator<ManifestItem> {
  const stack: string[] = [];
  let text = "";
  let version: string | undefined;
  let driveId: string | undefined;
  let credential: Credential | undefined;
  let credentials = 0;
  let clientCreator: string | undefined;
  let headerSent = false;
  let drives = 0;
  let lists = 0;
  let blobs = 0;
  let list: BlobListDefaults | undefined;
  let blob: RawBlob | undefined;
  let hashAttr: string | undefined;
  const out: ManifestItem[] = [];

  const header = (): ManifestHeader => {
    if (driveId === undefined) throw formatError("DriveId must appear before the first BlobList", "DriveId");
    if (options.kind === "import" && credentials !== 1) {
      throw formatError(
        credentials === 0
          ? "an import manifest needs StorageAccountKey or ContainerSas before its first BlobList"
          : "an import manifest takes exactly one of StorageAccountKey and ContainerSas",
        "Drive",
      );
    }
    const h: ManifestHeader = { version: version!, driveId };
    if (credential) h.credential = credential;
    if (clientCreator !== undefined) h.clientCreator = clientCreator;
    return h;
  };

  const set = (field: keyof RawBlob, value: string) => {
    if (!blob) return;
    if (blob[field] !== undefined) blob.duplicate = field;
    (blob as unknown as Record<string, unknown>)[field] = value;
  };

  try {
    for await (const batch of xmlEvents(source)) {
      for (const e of batch) {
        if (e.t === "text") {
          text += e.text;
          continue;
        }
        if (e.t === "open") {
          const parent = stack[stack.length - 1];
          stack.push(e.name);
          text = "";
          const depth = stack.length;
          if (depth === 1) {
            if (e.name !== "DriveManifest")
              throw formatError(`the root element is ${e.name}, not DriveManifest`, e.name, e.line);
            version = e.attrs.Version;
            if (!version || !(MANIFEST_VERSIONS as readonly string[]).includes(version)) {
              throw formatError(
                `DriveManifest Version '${version ?? ""}' is not one of ${MANIFEST_VERSIONS.join(", ")}`,
                "DriveManifest",
                e.line,
              );
            }
          } else if (depth === 2) {
            if (e.name !== "Drive")
              throw formatError(`unexpected element ${e.name} under DriveManifest`, e.name, e.line);
            if (++drives > 1) throw formatError("a manifest holds exactly one Drive", "Drive", e.line);
          } else if (parent === "Drive" && e.name === "BlobList") {
            if (!headerSent) {
              out.push({ type: "header", header: header() });
              headerSent = true;
            }
            list = { index: lists++ };
            if (e.attrs.Id !== undefined) list.id = e.attrs.Id;
          } else if (e.name === "Blob") {
            if (parent !== "BlobList" || !list)
              throw formatError("a Blob element must be inside a BlobList", "Blob", e.line);
            blob = { line: e.line };
          } else if (parent === "Blob" && blob && (e.name === "BlockList" || e.name === "PageRangeList")) {
            const key = e.name === "BlockList" ? "blockList" : "pageRangeList";
            if (blob[key]) blob.duplicate = e.name;
            blob[key] = [];
          } else if (blob && parent === "BlockList" && e.name === "Block") {
            blob.blockList?.push(e.attrs);
          } else if (blob && parent === "PageRangeList" && e.name === "PageRange") {
            blob.pageRangeList?.push(e.attrs);
          } else if (e.name === "MetadataPath" || e.name === "PropertiesPath") {
            hashAttr = e.attrs.Hash;
          }
          continue;
        }
        // close
        const name = stack.pop()!;
        const parent = stack[stack.length - 1];
        const value = text;
        text = "";
        if (parent === "Drive") {
          if (name === "DriveId") {
            if (driveId !== undefined) throw formatError("DriveId appears twice", "DriveId");
            driveId = value.trim();
            if (!driveId) throw formatError("DriveId is empty", "DriveId");
            if (options.expectedDriveId !== undefined && driveId !== options.expectedDriveId) {
              throw new ManifestError(
                "ManifestDriveIdMismatch",
                `The manifest is for drive ${driveId}, but this drive's serial number is ${options.expectedDriveId}.`,
                "DriveId",
              );
            }
          } else if (name === "StorageAccountKey" || name === "ContainerSas") {
            if (options.kind === "export")
              throw formatError(`${name} is not allowed in an export manifest`, name);
            if (headerSent) throw formatError(`${name} must appear before the first BlobList`, name);
            credentials++;
            const v = value.trim();
            if (name === "StorageAccountKey") {
              if (!BASE64.test(v) || v.length < 16)
                throw formatError("StorageAccountKey is not a Base64 account key", name);
              credential = { kind: "accountKey", key: v };
            } else {
              const q = v.indexOf("?");
              if (q <= 0 || q === v.length - 1)
                throw formatError("ContainerSas must be <container>?<sas-token>", name);
              credential = { kind: "containerSas", container: v.slice(0, q), token: v.slice(q + 1) };
            }
          } else if (name === "ClientCreator") clientCreator = value;
          else if (name === "BlobList") list = undefined;
        } else if (parent === "BlobList" && list) {
          if (name === "MetadataPath" || name === "PropertiesPath") {
            if (options.kind === "export")
              throw formatError(`BlobList/${name} is not allowed in an export manifest`, name);
            const hp = hashedPath(
              { path: value, ...(hashAttr !== undefined ? { hash: hashAttr } : {}) },
              `BlobList/${name}`,
            );
            if (typeof hp === "string") throw formatError(hp, name);
            if (hp) list[name === "MetadataPath" ? "metadata" : "properties"] = hp;
          } else if (name === "Blob" && blob) {
            const checked = checkBlob(blob, list, options.kind);
            blobs++;
            out.push(
              checked.problem
                ? { type: "blob", blob: checked.blob, problem: checked.problem, line: blob.line }
                : { type: "blob", blob: checked.blob, line: blob.line },
            );
            blob = undefined;
          }
        } else if (parent === "Blob" && blob) {
          const field = (
            {
              BlobPath: "blobPath",
              FilePath: "filePath",
              ClientData: "clientData",
              Snapshot: "snapshot",
              Length: "length",
              ImportDisposition: "disposition",
            } as const
          )[name as "BlobPath"];
          if (field) set(field, value);
          else if (name === "MetadataPath" || name === "PropertiesPath") {
            const key = name === "MetadataPath" ? "metadata" : "properties";
            if (blob[key]) blob.duplicate = name;
            blob[key] = { path: value, ...(hashAttr !== undefined ? { hash: hashAttr } : {}) };
          }
        }
      }
      for (const item of out) yield item;
      out.length = 0;
    }
  } catch (e) {
    if (e instanceof ManifestError) throw e;
    if (e instanceof XmlSyntaxError)
      throw formatError(
        `The manifest is not well-formed XML (line ${e.line}, column ${e.column}): ${e.message}`,
        undefined,
        e.line,
      );
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM")
      throw new ManifestError("ManifestAccessDenied", `The manifest cannot be read: ${code}.`);
    if (code)
      throw new ManifestError(
        "ReadManifestFailed",
        `Reading the manifest failed: ${code} (${(e as Error).message}).`,
      );
    throw e;
  }
  if (drives === 0) throw formatError("the manifest has no Drive element", "Drive");
  if (lists === 0) throw formatError("the manifest has no BlobList", "BlobList");
  yield { type: "end", blobCount: blobs, blobLists: lists };
}
