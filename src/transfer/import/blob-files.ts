/**
 * A blob's metadata and properties files (reference §2): the list-wide file refined by the
 * blob's own, each checked against its manifest hash. A bad file does not stop the blob; it ends
 * `CompletedWithErrors` with the file's status in the copy log.
 */
import { MAX_FILE_INFO_BYTES, readMetadataFile, readPropertiesFile } from "../../formats/blob-properties.js";
import type { LogBlob, LogFileInfo } from "../../formats/drive-log.js";
import type { HashedPath, ManifestBlob } from "../../formats/manifest.js";
import type { FileInfoStatus } from "../../formats/status.js";
import type { BlobHeaders } from "../../storage/blob-port.js";
import { FileFailure, openInside } from "../core/drive-files.js";
import { DriveReads } from "../core/drive-reads.js";

async function fileInfo(
  root: string,
  global: HashedPath | undefined,
  own: HashedPath | undefined,
  kind: "metadata" | "properties",
  reads: DriveReads,
): Promise<{ info: LogFileInfo; values: Record<string, string> } | undefined> {
  if (!global && !own) return undefined;
  const info: LogFileInfo = { status: "Completed" };
  if (global) info.globalPath = { path: global.path, hash: global.hash };
  if (own) info.path = { path: own.path, hash: own.hash };
  let values: Record<string, string> = {};
  for (const f of [global, own]) {
    if (!f) continue;
    let data: Buffer;
    try {
      const fh = await reads.open(f.path, openInside(root, f.path));
      try {
        // Checked before reading: an over-limit file is refused for this blob without being read.
        const { size } = await fh.stat();
        if (size > MAX_FILE_INFO_BYTES) {
          info.status = "XmlReadFailed";
          return { info, values: {} };
        }
        data = await reads.read(fh, f.path, 0, size);
      } finally {
        if (reads.hasHung(fh)) void fh.close().catch(() => undefined);
        else await fh.close();
      }
    } catch (e) {
      info.status = e instanceof FileFailure ? (e.status as FileInfoStatus) : "IOFailed";
      return { info, values: {} };
    }
    const r =
      kind === "metadata"
        ? await readMetadataFile(data, f.hash)
        : await readPropertiesFile(data, f.hash, "import");
    if (!r.ok) {
      info.status = r.status;
      return { info, values: {} };
    }
    // The per-blob file refines the list-wide one (reference §1.8 leaves merge vs replace open: we merge).
    values = { ...values, ...(r.value as Record<string, string>) };
  }
  return { info, values };
}

/** Reads the blob's metadata and properties files into its log entry; returns what to set on the blob. */
export async function blobAttributes(
  root: string,
  blob: ManifestBlob,
  entry: LogBlob,
  reads = new DriveReads(),
): Promise<{ metadata: Record<string, string>; headers: BlobHeaders; bad: boolean }> {
  const meta = await fileInfo(root, blob.list.metadata, blob.metadata, "metadata", reads);
  const props = await fileInfo(root, blob.list.properties, blob.properties, "properties", reads);
  if (meta) entry.metadata = meta.info;
  if (props) entry.properties = props.info;
  const bad = (meta && meta.info.status !== "Completed") || (props && props.info.status !== "Completed");
  const p = props?.values ?? {};
  const headers: BlobHeaders = {
    ...(p["Content-Type"] ? { contentType: p["Content-Type"] } : {}),
    ...(p["Content-Encoding"] ? { contentEncoding: p["Content-Encoding"] } : {}),
    ...(p["Content-Language"] ? { contentLanguage: p["Content-Language"] } : {}),
    ...(p["Cache-Control"] ? { cacheControl: p["Cache-Control"] } : {}),
  };
  return { metadata: meta?.values ?? {}, headers, bad: Boolean(bad) };
}
