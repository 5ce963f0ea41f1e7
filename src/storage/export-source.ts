/**
 * What the export engine reads from storage, and nothing more: listing for the selection,
 * one blob's properties (a snapshot's too), page ranges, a range read under If-Match, a snapshot
 * of a leased blob, and the log blobs it writes back. `AzureExportSource` serves Azurite and a
 * real account; test/support/fake-export-source.ts is the in-memory one for engine unit tests.
 *
 * Failures reject with the SDK's error (or, in a fake, any error carrying `statusCode`), so
 * `classify()` in blob-access.ts sorts them alike: 404 not-found, 412 precondition (the blob
 * changed: If-Match failed), 403 forbidden, no response / 408 / 429 / 5xx retryable.
 */

export interface ExportBlobRef {
  container: string;
  name: string;
  /** A snapshot's time stamp (`2026-11-23T09:00:00.1234567Z`); absent: the base blob. */
  snapshot?: string;
}

export interface ExportBlobInfo extends ExportBlobRef {
  kind: "block" | "page" | "append";
  length: number;
  etag: string;
  lastModified: Date;
  /** Base64 whole-blob Content-MD5, when the blob has one. */
  contentMd5?: string;
  /** A lease is held on the blob: it is exported from a snapshot (reference §7). */
  leased: boolean;
  /** Archive-tier blobs cannot be read and are not exported (reference §7). */
  archived: boolean;
  metadata: Record<string, string>;
  contentType?: string;
  contentEncoding?: string;
  contentLanguage?: string;
  cacheControl?: string;
}

export interface RangeRead {
  data: Buffer;
  /** The service's MD5 of the range (x-ms-range-get-content-md5), when it gave one. */
  md5?: Buffer;
}

export interface ExportSource {
  /** Container names starting with `prefix`, in the service's (lexicographic) order. */
  listContainers(prefix: string, signal: AbortSignal): AsyncIterable<string>;
  /** Blobs of `container` whose names start with `prefix`, in name order; snapshots before their base blob. */
  listBlobs(
    container: string,
    prefix: string,
    includeSnapshots: boolean,
    signal: AbortSignal,
  ): AsyncIterable<ExportBlobInfo>;
  /** Rejects with a 404 error when there is no such blob or snapshot. */
  getBlob(ref: ExportBlobRef, signal: AbortSignal): Promise<ExportBlobInfo>;
  /** The written ranges of a page blob, ascending, as [offset, length]. */
  getPageRanges(
    ref: ExportBlobRef,
    etag: string,
    signal: AbortSignal,
  ): Promise<{ offset: number; length: number }[]>;
  /**
   * `length` bytes at `offset` into `into` (at its start), only while the blob's ETag is `etag`
   * (If-Match: a changed blob rejects with 412). Ranges up to 4 MiB come with the service's MD5.
   */
  readRange(
    ref: ExportBlobRef,
    offset: number,
    length: number,
    etag: string,
    into: Buffer,
    signal: AbortSignal,
  ): Promise<RangeRead>;
  /** Snapshots a blob (a lease does not stop it); returns the snapshot's time stamp. */
  snapshot(ref: ExportBlobRef, signal: AbortSignal): Promise<string>;
  ensureContainer(container: string, signal: AbortSignal): Promise<void>;
  /** Writes a block blob from a stream (copy logs, the incomplete blob list). */
  uploadStream(
    ref: ExportBlobRef,
    source: AsyncIterable<Buffer | string>,
    contentType: string,
    signal: AbortSignal,
  ): Promise<void>;
  /** Reads a small blob whole (the job's blob-list blob). */
  readAll(ref: ExportBlobRef, signal: AbortSignal): Promise<Buffer>;
  /** The blob's URL without any credential: safe to store, log and return in Get Job. */
  publicUrl(ref: ExportBlobRef): string;
}

/** A blob's path and query under its account's endpoint: `/container/name` (segments escaped), `?snapshot=` for a snapshot. */
export const blobUrlPath = (r: ExportBlobRef): string => {
  const path = `/${r.container}/${r.name.split("/").map(encodeURIComponent).join("/")}`;
  return r.snapshot ? `${path}?snapshot=${encodeURIComponent(r.snapshot)}` : path;
};

export const refLabel = (r: ExportBlobRef): string =>
  `${r.container}/${r.name}${r.snapshot ? `?snapshot=${r.snapshot}` : ""}`;
