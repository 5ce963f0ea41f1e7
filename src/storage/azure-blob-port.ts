/**
 * The blob port on the Azure SDK: the embedded Azurite and a real account alike, through one
 * job's `JobStorage` (account + the manifest's credential).
 */
import { Readable } from "node:stream";
import type { BlobHTTPHeaders } from "@azure/storage-blob";
import type { JobStorage } from "./blob-access.js";
import type { BlobHeaders, BlobPort, BlobProperties, BlobRef } from "./blob-port.js";
import { UploadThreads } from "./upload-threads.js";

const sdkHeaders = (h: BlobHeaders): BlobHTTPHeaders => ({
  ...(h.contentType ? { blobContentType: h.contentType } : {}),
  ...(h.contentEncoding ? { blobContentEncoding: h.contentEncoding } : {}),
  ...(h.contentLanguage ? { blobContentLanguage: h.contentLanguage } : {}),
  ...(h.cacheControl ? { blobCacheControl: h.cacheControl } : {}),
  ...(h.contentMd5 ? { blobContentMD5: h.contentMd5 } : {}),
});

export class AzureBlobPort implements BlobPort {
  /** `uploads`: the station's upload threads, which send block and page bodies off the event loop. */
  constructor(
    private readonly storage: JobStorage,
    private readonly uploads?: UploadThreads,
  ) {}

  /** URLs the upload threads send to, one per blob in flight: built (and confined) once, not per block. */
  private readonly urls = new Map<string, string>();

  private urlOf(b: BlobRef, make: () => string): string {
    const key = `${b.container}/${b.name}`;
    let url = this.urls.get(key);
    if (url === undefined) {
      url = make(); // the SDK client's own URL, checked by JobStorage against the blob's address
      if (this.urls.size >= 256) this.urls.delete(this.urls.keys().next().value!);
      this.urls.set(key, url);
    }
    return url;
  }

  get sasContainer(): string | undefined {
    return this.storage.sasContainerName;
  }

  private blob(b: BlobRef) {
    return this.storage.blob(b.container, b.name);
  }

  ensureContainer(container: string, signal: AbortSignal): Promise<void> {
    return this.storage.ensureContainer(container, signal);
  }

  async getProperties(b: BlobRef, signal: AbortSignal): Promise<BlobProperties> {
    const p = await this.blob(b).getProperties({ abortSignal: signal });
    const kind = p.blobType === "PageBlob" ? "page" : p.blobType === "AppendBlob" ? "append" : "block";
    const props: BlobProperties = { length: p.contentLength ?? 0, kind, metadata: p.metadata ?? {} };
    if (p.contentMD5) props.contentMd5 = Buffer.from(p.contentMD5).toString("base64");
    if (p.etag) props.etag = p.etag;
    if (p.lastModified) props.lastModified = p.lastModified;
    return props;
  }

  async setHeaders(b: BlobRef, headers: BlobHeaders, signal: AbortSignal): Promise<void> {
    await this.blob(b).setHTTPHeaders(sdkHeaders(headers), { abortSignal: signal });
  }

  async putBlob(
    b: BlobRef,
    data: Buffer,
    o: Parameters<BlobPort["putBlob"]>[2],
    signal: AbortSignal,
  ): Promise<void> {
    if (this.uploads && UploadThreads.carries(data)) {
      const url = this.urlOf(b, () => this.storage.block(b.container, b.name).url);
      const upload = {
        kind: "blob" as const,
        url,
        headers: sdkHeaders(o.headers),
        metadata: o.metadata,
        conditions: o.conditions ?? {},
      };
      return this.uploads.send(upload, this.storage.uploadTarget, data, undefined, signal);
    }
    await this.storage.block(b.container, b.name).upload(data, data.length, {
      blobHTTPHeaders: sdkHeaders(o.headers),
      metadata: o.metadata,
      conditions: o.conditions,
      abortSignal: signal,
    });
  }

  async stageBlock(b: BlobRef, id: string, data: Buffer, md5: Buffer, signal: AbortSignal): Promise<void> {
    if (this.uploads && UploadThreads.carries(data)) {
      const url = this.urlOf(b, () => this.storage.block(b.container, b.name).url);
      return this.uploads.send(
        { kind: "block", url, blockId: id },
        this.storage.uploadTarget,
        data,
        md5,
        signal,
      );
    }
    await this.storage.block(b.container, b.name).stageBlock(id, data, data.length, {
      transactionalContentMD5: md5,
      abortSignal: signal,
    });
  }

  async getBlockList(b: BlobRef, signal: AbortSignal) {
    const list = await this.storage.block(b.container, b.name).getBlockList("all", { abortSignal: signal });
    const entries = (l: { name: string; size: number }[] | undefined) =>
      (l ?? []).map((x) => ({ name: x.name, size: x.size }));
    return { committed: entries(list.committedBlocks), uncommitted: entries(list.uncommittedBlocks) };
  }

  async commitBlockList(
    b: BlobRef,
    ids: string[],
    o: Parameters<BlobPort["commitBlockList"]>[2],
    signal: AbortSignal,
  ): Promise<void> {
    await this.storage.block(b.container, b.name).commitBlockList(ids, {
      blobHTTPHeaders: sdkHeaders(o.headers),
      metadata: o.metadata,
      conditions: o.conditions,
      abortSignal: signal,
    });
  }

  async createPageBlob(
    b: BlobRef,
    length: number,
    o: Parameters<BlobPort["createPageBlob"]>[2],
    signal: AbortSignal,
  ): Promise<void> {
    await this.storage.page(b.container, b.name).create(length, {
      blobHTTPHeaders: sdkHeaders(o.headers),
      metadata: o.metadata,
      abortSignal: signal,
    });
  }

  async putPages(b: BlobRef, offset: number, data: Buffer, md5: Buffer, signal: AbortSignal): Promise<void> {
    if (this.uploads && UploadThreads.carries(data)) {
      const url = this.urlOf(b, () => this.storage.page(b.container, b.name).url);
      return this.uploads.send({ kind: "page", url, offset }, this.storage.uploadTarget, data, md5, signal);
    }
    await this.storage.page(b.container, b.name).uploadPages(data, offset, data.length, {
      transactionalContentMD5: md5,
      abortSignal: signal,
    });
  }

  async getPageRanges(b: BlobRef, signal: AbortSignal) {
    const ranges: { offset: number; length: number }[] = [];
    const client = this.storage.page(b.container, b.name);
    for await (const page of client.listPageRanges(0, undefined, { abortSignal: signal }).byPage()) {
      for (const r of page.pageRange ?? []) ranges.push({ offset: r.start, length: r.end - r.start + 1 });
    }
    return ranges;
  }

  async copyBlob(
    from: BlobRef,
    to: BlobRef,
    conditions: Parameters<BlobPort["copyBlob"]>[2],
    signal: AbortSignal,
  ): Promise<void> {
    const poller = await this.blob(to).beginCopyFromURL(this.blob(from).url, {
      conditions,
      abortSignal: signal,
    });
    const done = await poller.pollUntilDone();
    if (done.copyStatus !== "success") throw new Error(`the server-side copy ended ${done.copyStatus}`);
  }

  async deleteIfExists(b: BlobRef, signal: AbortSignal): Promise<void> {
    await this.blob(b).deleteIfExists({ abortSignal: signal });
  }

  async uploadStream(
    b: BlobRef,
    source: AsyncIterable<Buffer | string>,
    contentType: string,
    signal: AbortSignal,
  ): Promise<void> {
    await this.storage
      .block(b.container, b.name)
      .uploadStream(Readable.from(source, { objectMode: false }), 4 * 1024 * 1024, 4, {
        blobHTTPHeaders: { blobContentType: contentType },
        abortSignal: signal,
      });
  }

  async readRange(b: BlobRef, offset: number, length: number, signal: AbortSignal): Promise<Buffer> {
    return this.blob(b).downloadToBuffer(offset, length, { abortSignal: signal });
  }

  publicUrl(b: BlobRef): string {
    return this.storage.publicUrl(b.container, b.name);
  }
}
