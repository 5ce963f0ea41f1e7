/**
 * The export blob-list XML (reference §4.5): the `blobListBlobPath` blob of an export job, the
 * `/ExportBlobListFile` of PreviewExport, and the incomplete blob list the station writes for
 * blobs that did not fit on the job's drives (so it can feed a follow-up export job as is).
 * Read as a stream through the saxes helpers: no DOCTYPE, no entities.
 */
import { ManifestError } from "./status.js";
import { XmlSyntaxError, escapeXml as x, xmlEvents } from "./xml.js";

export type BlobListEntry =
  | { kind: "prefix"; prefix: string }
  /** `includeSnapshots` defaults to true (§4.5); `snapshotTime` selects one snapshot. */
  | { kind: "path"; path: string; includeSnapshots: boolean; snapshotTime?: string };

/** A blob-list entry limit: the list is a selection, not a data set. */
export const MAX_BLOB_LIST_ENTRIES = 1_000_000;

const bad = (message: string) => new ManifestError("BlobListFormatInvalid", message);

/**
 * Parses a blob list. A malformed list is a `ManifestError` with the drive status
 * `BlobListFormatInvalid` (§3.5.1), which ends every drive of the job with that status.
 */
export async function readBlobList(
  source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
): Promise<BlobListEntry[]> {
  const out: BlobListEntry[] = [];
  const stack: string[] = [];
  let text = "";
  let attrs: Record<string, string> = {};
  let sawRoot = false;
  try {
    for await (const batch of xmlEvents(source)) {
      for (const e of batch) {
        if (e.t === "open") {
          if (stack.length === 0) {
            if (e.name !== "BlobList") throw bad(`the root element is ${e.name}, not BlobList`);
            sawRoot = true;
          } else if (stack.length === 1) {
            if (e.name !== "BlobPath" && e.name !== "BlobPathPrefix")
              throw bad(
                `line ${e.line}: <${e.name}> is not allowed in a BlobList (BlobPath, BlobPathPrefix)`,
              );
            attrs = e.attrs;
            text = "";
          } else throw bad(`line ${e.line}: <${e.name}> cannot be nested in <${stack.at(-1)}>`);
          stack.push(e.name);
        } else if (e.t === "text") {
          if (stack.length === 2) text += e.text;
          else if (e.text.trim()) throw bad("text outside BlobPath/BlobPathPrefix");
        } else {
          const name = stack.pop();
          if (stack.length !== 1) continue;
          const value = text.trim();
          if (!value) throw bad(`an empty <${name}>`);
          if (out.length >= MAX_BLOB_LIST_ENTRIES)
            throw bad(`more than ${MAX_BLOB_LIST_ENTRIES} entries; split the export into several jobs`);
          if (name === "BlobPathPrefix") {
            if (!value.startsWith("/")) throw bad(`prefix '${value}' must start with '/'`);
            out.push({ kind: "prefix", prefix: value });
          } else {
            const inc = attrs.IncludeSnapshots;
            if (inc !== undefined && inc !== "true" && inc !== "false")
              throw bad(`IncludeSnapshots of '${value}' must be true or false, not '${inc}'`);
            const entry: BlobListEntry = { kind: "path", path: value, includeSnapshots: inc !== "false" };
            if (attrs.SnapshotTime !== undefined) {
              if (inc !== undefined) throw bad(`'${value}' has both IncludeSnapshots and SnapshotTime`);
              entry.snapshotTime = attrs.SnapshotTime.trim();
              entry.includeSnapshots = false;
            }
            out.push(entry);
          }
        }
      }
    }
  } catch (e) {
    if (e instanceof XmlSyntaxError) throw bad(`not well-formed XML (line ${e.line}): ${e.message}`);
    throw e;
  }
  if (!sawRoot) throw bad("the document has no BlobList element");
  return out;
}

/** One `<BlobPath>` line; a snapshot is written as `SnapshotTime` so exactly that version is selected. */
export function blobListPathLine(path: string, snapshot?: string): string {
  return snapshot === undefined
    ? `  <BlobPath IncludeSnapshots="false">${x(path)}</BlobPath>\n`
    : `  <BlobPath SnapshotTime="${x(snapshot)}">${x(path)}</BlobPath>\n`;
}

/** The incomplete blob list: every blob that was not exported, as a blob list a new job accepts. */
export async function* writeBlobList(
  blobs: AsyncIterable<{ path: string; snapshot?: string }> | Iterable<{ path: string; snapshot?: string }>,
): AsyncGenerator<string> {
  yield `<?xml version="1.0" encoding="utf-8"?>\n<BlobList>\n`;
  let chunk = "";
  for await (const b of blobs) {
    chunk += blobListPathLine(b.path, b.snapshot);
    if (chunk.length > 64 * 1024) {
      yield chunk;
      chunk = "";
    }
  }
  yield `${chunk}</BlobList>\n`;
}
