/**
 * The export source on the Azure SDK: the embedded Azurite and a real account alike, with the
 * station's own key for the job's account (export manifests carry no credential, reference §1.9).
 * The customer's `station repair-export` may read with a SAS instead of the key.
 */
import { Readable } from "node:stream";
import {
  AnonymousCredential,
  type BlobClient,
  type BlobGetPropertiesResponse,
  type BlobItem,
  BlobServiceClient,
  StorageRetryPolicyType,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import { accountFromResourceId, type StorageEndpoint } from "./blob-access.js";
import {
  blobUrlPath,
  type ExportBlobInfo,
  type ExportBlobRef,
  type ExportSource,
  type RangeRead,
} from "./export-source.js";
import { proxyConfigured, RangedGet } from "./ranged-get.js";

export interface AzureExportSourceOptions {
  endpoint: StorageEndpoint;
  storageAccountId: string;
  /** The account key, or `sas`: an account or container SAS (query string, with or without `?`). */
  accountKey?: string;
  sas?: string;
  retry?: { maxTries: number; retryDelayInMs: number; maxRetryDelayInMs: number; tryTimeoutInMs: number };
}

const kindOf = (t: string | undefined): ExportBlobInfo["kind"] =>
  t === "PageBlob" ? "page" : t === "AppendBlob" ? "append" : "block";

type Props = Pick<
  BlobGetPropertiesResponse,
  | "blobType"
  | "contentLength"
  | "etag"
  | "lastModified"
  | "contentMD5"
  | "leaseState"
  | "accessTier"
  | "metadata"
  | "contentType"
  | "contentEncoding"
  | "contentLanguage"
  | "cacheControl"
>;

function info(ref: ExportBlobRef, p: Props): ExportBlobInfo {
  const out: ExportBlobInfo = {
    container: ref.container,
    name: ref.name,
    kind: kindOf(p.blobType),
    length: p.contentLength ?? 0,
    etag: p.etag ?? "",
    lastModified: p.lastModified ?? new Date(0),
    leased: p.leaseState === "leased",
    archived: p.accessTier === "Archive",
    metadata: p.metadata ?? {},
  };
  if (ref.snapshot) out.snapshot = ref.snapshot;
  if (p.contentMD5?.length) out.contentMd5 = Buffer.from(p.contentMD5).toString("base64");
  if (p.contentType) out.contentType = p.contentType;
  if (p.contentEncoding) out.contentEncoding = p.contentEncoding;
  if (p.contentLanguage) out.contentLanguage = p.contentLanguage;
  if (p.cacheControl) out.cacheControl = p.cacheControl;
  return out;
}

export class AzureExportSource implements ExportSource {
  private readonly service: BlobServiceClient;
  private readonly baseUrl: string;
  /** The bytes' GETs, off the SDK (ranged-get.ts); undefined behind a proxy, which only the SDK honours. */
  private readonly ranged: RangedGet | undefined;

  constructor(opts: AzureExportSourceOptions) {
    const account = accountFromResourceId(opts.storageAccountId);
    this.baseUrl = opts.endpoint.template.replace("{account}", account).replace(/\/$/, "");
    const r = opts.retry ?? {
      maxTries: 4,
      retryDelayInMs: 400,
      maxRetryDelayInMs: 4000,
      tryTimeoutInMs: 120_000,
    };
    if (!opts.accountKey === !opts.sas) throw new Error("an export source needs an account key or a SAS");
    const sas = opts.sas?.replace(/^\?/, "");
    const key = opts.accountKey ? new StorageSharedKeyCredential(account, opts.accountKey) : undefined;
    this.ranged = proxyConfigured()
      ? undefined
      : new RangedGet(new URL(this.baseUrl), key ? { key } : { sas: sas! }, r.tryTimeoutInMs);
    this.service = new BlobServiceClient(
      sas ? `${this.baseUrl}?${sas}` : this.baseUrl,
      key ?? new AnonymousCredential(),
      {
        retryOptions: { retryPolicyType: StorageRetryPolicyType.EXPONENTIAL, ...r },
        keepAliveOptions: { enable: true },
      },
    );
  }

  private blob(ref: ExportBlobRef): BlobClient {
    const c = this.service.getContainerClient(ref.container).getBlobClient(ref.name);
    return ref.snapshot ? c.withSnapshot(ref.snapshot) : c;
  }

  async *listContainers(prefix: string, signal: AbortSignal): AsyncIterable<string> {
    for await (const c of this.service.listContainers({ prefix, abortSignal: signal })) yield c.name;
  }

  async *listBlobs(
    container: string,
    prefix: string,
    includeSnapshots: boolean,
    signal: AbortSignal,
  ): AsyncIterable<ExportBlobInfo> {
    const client = this.service.getContainerClient(container);
    const items = client.listBlobsFlat({
      ...(prefix ? { prefix } : {}),
      includeSnapshots,
      includeMetadata: true,
      abortSignal: signal,
    });
    for await (const b of items as AsyncIterable<BlobItem>) {
      if (b.deleted) continue;
      const ref: ExportBlobRef = { container, name: b.name, ...(b.snapshot ? { snapshot: b.snapshot } : {}) };
      yield info(ref, { ...b.properties, metadata: b.metadata ?? {} } as Props);
    }
  }

  async getBlob(ref: ExportBlobRef, signal: AbortSignal): Promise<ExportBlobInfo> {
    return info(ref, await this.blob(ref).getProperties({ abortSignal: signal }));
  }

  async getPageRanges(ref: ExportBlobRef, etag: string, signal: AbortSignal) {
    const client = this.blob(ref).getPageBlobClient();
    const ranges: { offset: number; length: number }[] = [];
    const pages = client.listPageRanges(0, undefined, { conditions: { ifMatch: etag }, abortSignal: signal });
    for await (const page of pages.byPage()) {
      for (const r of page.pageRange ?? []) ranges.push({ offset: r.start, length: r.end - r.start + 1 });
    }
    return ranges.sort((a, b) => a.offset - b.offset);
  }

  async readRange(
    ref: ExportBlobRef,
    offset: number,
    length: number,
    etag: string,
    into: Buffer,
    signal: AbortSignal,
  ): Promise<RangeRead> {
    const rangeMd5 = length <= 4 * 1024 * 1024;
    if (this.ranged) {
      const r = await this.ranged.read(ref, offset, length, etag, into, rangeMd5, signal);
      const data = into.subarray(0, r.got);
      return r.md5?.length ? { data, md5: r.md5 } : { data };
    }
    const { md5, chunks } = await this.rangeBody(ref, offset, length, etag, signal, rangeMd5);
    let got = 0;
    for await (const chunk of chunks) {
      chunk.copy(into, got);
      got += chunk.length;
    }
    const data = into.subarray(0, got);
    return md5?.length ? { data, md5: Buffer.from(md5) } : { data };
  }

  /** One ranged GET, only if the blob is still `etag`; its body never runs past `length`. */
  private async rangeBody(
    ref: ExportBlobRef,
    offset: number,
    length: number,
    etag: string,
    signal: AbortSignal,
    rangeMd5: boolean,
  ): Promise<{ md5?: Uint8Array; chunks: AsyncIterable<Buffer> }> {
    const res = await this.blob(ref).download(offset, length, {
      conditions: { ifMatch: etag },
      ...(rangeMd5 ? { rangeGetContentMD5: true } : {}),
      maxRetryRequests: 0,
      abortSignal: signal,
    });
    const body = res.readableStreamBody;
    if (!body) throw new Error(`no body reading ${ref.container}/${ref.name} at ${offset}`);
    async function* bounded(): AsyncIterable<Buffer> {
      let got = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        got += chunk.length;
        if (got > length) throw new Error(`the service sent more than ${length} bytes at ${offset}`);
        yield chunk;
      }
    }
    return { ...(res.contentMD5 ? { md5: res.contentMD5 } : {}), chunks: bounded() };
  }

  async snapshot(ref: ExportBlobRef, signal: AbortSignal): Promise<string> {
    const r = await this.blob({ container: ref.container, name: ref.name }).createSnapshot({
      abortSignal: signal,
    });
    if (!r.snapshot)
      throw new Error(`the service returned no snapshot time for ${ref.container}/${ref.name}`);
    return r.snapshot;
  }

  async ensureContainer(container: string, signal: AbortSignal): Promise<void> {
    try {
      await this.service.getContainerClient(container).createIfNotExists({ abortSignal: signal });
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 409) throw e;
    }
  }

  async uploadStream(
    ref: ExportBlobRef,
    source: AsyncIterable<Buffer | string>,
    contentType: string,
    signal: AbortSignal,
  ): Promise<void> {
    await this.service
      .getContainerClient(ref.container)
      .getBlockBlobClient(ref.name)
      .uploadStream(Readable.from(source, { objectMode: false }), 4 * 1024 * 1024, 4, {
        blobHTTPHeaders: { blobContentType: contentType },
        abortSignal: signal,
      });
  }

  async readAll(ref: ExportBlobRef, signal: AbortSignal): Promise<Buffer> {
    return this.blob(ref).downloadToBuffer(0, undefined, { abortSignal: signal });
  }

  publicUrl(ref: ExportBlobRef): string {
    return `${this.baseUrl}${blobUrlPath(ref)}`;
  }
}
