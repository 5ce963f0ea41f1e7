/**
 * The streaming drive manifest reader (model: manifest-model.ts; value rules: manifest-rules.ts). It yields the drive
 * header, then one item per blob, holding nothing but the blob being read: memory does not grow
 * with the number of blobs. Structural faults throw ManifestError (a drive status); a fault in
 * one blob (a path that leaves the drive, a block list with gaps) is reported on that blob only.
 */
import {
  type BlobListDefaults,
  type Credential,
  MANIFEST_VERSIONS,
  MAX_BLOCKS,
  MAX_PAGE_RANGES,
  type ManifestHeader,
  type ManifestItem,
  type ReadManifestOptions,
} from "./manifest-model.js";
import { BASE64, checkBlob, formatError, hashedPath, type RawBlob } from "./manifest-rules.js";
import { ManifestError } from "./status.js";
import { XmlSyntaxError, xmlEvents } from "./xml.js";

export * from "./manifest-model.js";
export { checkBlob } from "./manifest-rules.js";

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
            keep(blob, blob.blockList, e.attrs, MAX_BLOCKS, "blocks");
          } else if (blob && parent === "PageRangeList" && e.name === "PageRange") {
            keep(blob, blob.pageRangeList, e.attrs, MAX_PAGE_RANGES, "page ranges");
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

/**
 * Keeps one block or page range of a blob, up to the limit: a hostile manifest listing millions
 * for one blob costs no memory past it, and the blob fails on its own.
 */
function keep(
  blob: RawBlob,
  list: Record<string, string>[] | undefined,
  entry: Record<string, string>,
  limit: number,
  what: string,
): void {
  if (!list) return;
  if (list.length < limit) list.push(entry);
  else blob.tooMany ??= `more than ${limit} ${what}: the limit for one blob`;
}
