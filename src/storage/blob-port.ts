/**
 * The blob storage the transfer engines need, and nothing more: the narrow port between the
 * engines (src/transfer/) and the Azure SDK. `AzureBlobPort` (azure-blob-port.ts) serves the
 * embedded Azurite and a real account; test/support/fake-blob-port.ts is an in-memory one for unit
 * tests of the engines.
 *
 * Contract for failures: a method rejects with the SDK's error (or, in a fake, any error carrying
 * `statusCode`), so `classify()` in blob-access.ts sorts it the same way for every adapter:
 * 404 not-found, 409 conflict, 412 precondition, 403 forbidden, no response / 408 / 429 / 5xx
 * retryable. Every call takes the abort signal of its request.
 */

/** One blob of the job's account. */
export interface BlobRef {
  container: string;
  name: string;
}

/** The standard blob properties the station sets (properties file, reference §2) and the whole-blob MD5. */
export interface BlobHeaders {
  contentType?: string;
  contentEncoding?: string;
  contentLanguage?: string;
  cacheControl?: string;
  /** The whole blob's MD5 (16 bytes). */
  contentMd5?: Buffer;
}

/** Conditions of a write: `ifNoneMatch: "*"` creates only when the name is free (dispositions). */
export interface WriteConditions {
  ifNoneMatch?: string;
}

export interface BlobWriteOptions {
  headers: BlobHeaders;
  metadata: Record<string, string>;
  conditions: WriteConditions;
}

export interface BlobProperties {
  length: number;
  kind: "block" | "page" | "append";
  /** Base64 whole-blob Content-MD5, when the blob has one. */
  contentMd5?: string;
  etag?: string;
  lastModified?: Date;
  metadata: Record<string, string>;
}

export interface BlockListEntry {
  name: string;
  size: number;
}

export interface BlobPort {
  /** With a container SAS every blob must be in this container (reference §1.7). */
  readonly sasContainer: string | undefined;
  /** Creates the container when missing (a SAS cannot: its container exists). */
  ensureContainer(container: string, signal: AbortSignal): Promise<void>;
  /** Rejects with a 404 error when there is no such blob. */
  getProperties(blob: BlobRef, signal: AbortSignal): Promise<BlobProperties>;
  /** Sets the standard properties (Content-MD5 included) of an existing blob. */
  setHeaders(blob: BlobRef, headers: BlobHeaders, signal: AbortSignal): Promise<void>;
  /** One atomic Put Blob; the service checks `headers.contentMd5` against the body. */
  putBlob(blob: BlobRef, data: Buffer, o: BlobWriteOptions, signal: AbortSignal): Promise<void>;
  /** Stages one block; the service checks `md5` (the transactional MD5) against the body. */
  stageBlock(blob: BlobRef, id: string, data: Buffer, md5: Buffer, signal: AbortSignal): Promise<void>;
  /** Rejects with 404 when the blob has neither committed nor uncommitted blocks. */
  getBlockList(
    blob: BlobRef,
    signal: AbortSignal,
  ): Promise<{ committed: BlockListEntry[]; uncommitted: BlockListEntry[] }>;
  commitBlockList(blob: BlobRef, ids: string[], o: BlobWriteOptions, signal: AbortSignal): Promise<void>;
  /** A new, zeroed page blob of `length` bytes (a multiple of 512). */
  createPageBlob(
    blob: BlobRef,
    length: number,
    o: Omit<BlobWriteOptions, "conditions">,
    signal: AbortSignal,
  ): Promise<void>;
  /** Writes `data` at `offset` (both 512-aligned); the service checks `md5` against the body. */
  putPages(blob: BlobRef, offset: number, data: Buffer, md5: Buffer, signal: AbortSignal): Promise<void>;
  /** The written (non-zero) ranges of a page blob, as [offset, length]. */
  getPageRanges(blob: BlobRef, signal: AbortSignal): Promise<{ offset: number; length: number }[]>;
  /** Server-side copy within the account, under `conditions` on the target; resolves when done. */
  copyBlob(from: BlobRef, to: BlobRef, conditions: WriteConditions, signal: AbortSignal): Promise<void>;
  deleteIfExists(blob: BlobRef, signal: AbortSignal): Promise<void>;
  /** Streams a block blob (copy logs: a million-blob drive's log never sits in memory whole). */
  uploadStream(
    blob: BlobRef,
    source: AsyncIterable<Buffer | string>,
    contentType: string,
    signal: AbortSignal,
  ): Promise<void>;
  /** `length` bytes at `offset` (export reads blocks with it). */
  readRange(blob: BlobRef, offset: number, length: number, signal: AbortSignal): Promise<Buffer>;
  /** The blob's URL without any SAS token: safe to store, log and return in Get Job. */
  publicUrl(blob: BlobRef): string;
}
