/**
 * The properties and metadata files an export writes beside each file (reference §1.9, §2),
 * from the blob's properties. The export writes them (export-blob.ts) and repair-export rebuilds
 * them from the blob's current properties: one body, so an unchanged blob yields the same bytes
 * and the manifest's MD5.
 */
import { writeMetadataFile, writePropertiesFile } from "../../formats/blob-properties.js";
import type { ExportBlobInfo } from "../../storage/export-source.js";

export function companionBody(which: "metadata" | "properties", b: ExportBlobInfo): string {
  if (which === "metadata") return writeMetadataFile(b.metadata);
  return writePropertiesFile({
    "Last-Modified": new Date(b.lastModified).toUTCString(),
    Etag: b.etag,
    "Content-Length": String(b.length),
    ...(b.contentType ? { "Content-Type": b.contentType } : {}),
    ...(b.contentMd5 ? { "Content-MD5": b.contentMd5 } : {}),
    ...(b.contentEncoding ? { "Content-Encoding": b.contentEncoding } : {}),
    ...(b.contentLanguage ? { "Content-Language": b.contentLanguage } : {}),
    ...(b.cacheControl ? { "Cache-Control": b.cacheControl } : {}),
  });
}
