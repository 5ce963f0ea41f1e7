/**
 * An in-memory BlobPort for unit tests of the transfer engines. It keeps the service's rules the
 * engines rely on: transactional MD5s are checked (400 Md5Mismatch), If-None-Match: * fails on a
 * taken name (409), a commit names only staged or committed blocks, uncommitted blocks survive
 * until a commit, page blobs start zeroed. It counts the body bytes it received, and `fault` lets a
 * test fail or stall any request.
 */
import { createHash } from "node:crypto";
import type {
  BlobHeaders,
  BlobPort,
  BlobProperties,
  BlobRef,
  BlobWriteOptions,
  BlockListEntry,
  WriteConditions,
} from "../../src/storage/blob-port.js";

export const storageError = (statusCode: number, code: string): Error =>
  Object.assign(new Error(`${statusCode} ${code}`), { statusCode, code });

interface FakeBlob {
  kind: "block" | "page";
  data: Buffer;
  headers: BlobHeaders;
  metadata: Record<string, string>;
  committed: { id: string; data: Buffer }[];
  /** Page blobs: the ranges written, [start, end) */
  written: [number, number][];
}

const md5 = (b: Buffer) => createHash("md5").update(b).digest();
const key = (b: BlobRef) => `${b.container}/${b.name}`;

export class FakeBlobPort implements BlobPort {
  readonly containers = new Set<string>();
  readonly blobs = new Map<string, FakeBlob>();
  /** Staged blocks of each blob name, kept until a commit (or a Put) replaces them. */
  readonly staged = new Map<string, Map<string, Buffer>>();
  /** Body bytes received (stageBlock, putBlob, putPages). */
  bytesReceived = 0;
  /** Every request, in order, as `op container/name`. */
  readonly requests: string[] = [];
  /** Called before every request: throw (or return a promise that rejects) to fail it. */
  fault: (op: string, blob: BlobRef | undefined) => void | Promise<void> = () => undefined;

  constructor(readonly sasContainer: string | undefined = undefined) {}

  private async enter(op: string, blob: BlobRef | undefined, signal: AbortSignal): Promise<void> {
    this.requests.push(blob ? `${op} ${key(blob)}` : op);
    if (signal.aborted) throw signal.reason;
    await this.fault(op, blob);
    if (blob && !this.containers.has(blob.container)) throw storageError(404, "ContainerNotFound");
  }

  private get(b: BlobRef): FakeBlob {
    const blob = this.blobs.get(key(b));
    if (!blob) throw storageError(404, "BlobNotFound");
    return blob;
  }

  private check(b: BlobRef, conditions: WriteConditions): void {
    if (conditions.ifNoneMatch === "*" && this.blobs.has(key(b)))
      throw storageError(409, "BlobAlreadyExists");
  }

  async ensureContainer(container: string, signal: AbortSignal): Promise<void> {
    await this.enter("ensureContainer", undefined, signal);
    this.containers.add(container);
  }

  async getProperties(b: BlobRef, signal: AbortSignal): Promise<BlobProperties> {
    await this.enter("getProperties", b, signal);
    const blob = this.get(b);
    const p: BlobProperties = { length: blob.data.length, kind: blob.kind, metadata: { ...blob.metadata } };
    if (blob.headers.contentMd5) p.contentMd5 = blob.headers.contentMd5.toString("base64");
    return p;
  }

  async setHeaders(b: BlobRef, headers: BlobHeaders, signal: AbortSignal): Promise<void> {
    await this.enter("setHeaders", b, signal);
    this.get(b).headers = { ...headers };
  }

  async putBlob(b: BlobRef, data: Buffer, o: BlobWriteOptions, signal: AbortSignal): Promise<void> {
    await this.enter("putBlob", b, signal);
    this.bytesReceived += data.length;
    if (o.headers.contentMd5 && !md5(data).equals(o.headers.contentMd5))
      throw storageError(400, "Md5Mismatch");
    this.check(b, o.conditions);
    this.staged.delete(key(b));
    this.blobs.set(key(b), {
      kind: "block",
      data: Buffer.from(data),
      headers: { ...o.headers },
      metadata: { ...o.metadata },
      committed: [{ id: "", data: Buffer.from(data) }],
      written: [],
    });
  }

  async stageBlock(b: BlobRef, id: string, data: Buffer, hash: Buffer, signal: AbortSignal): Promise<void> {
    await this.enter("stageBlock", b, signal);
    this.bytesReceived += data.length;
    if (!md5(data).equals(hash)) throw storageError(400, "Md5Mismatch");
    const m = this.staged.get(key(b)) ?? new Map<string, Buffer>();
    this.staged.set(key(b), m);
    m.set(id, Buffer.from(data));
  }

  async getBlockList(b: BlobRef, signal: AbortSignal) {
    await this.enter("getBlockList", b, signal);
    const blob = this.blobs.get(key(b));
    const staged = this.staged.get(key(b));
    if (!blob && !staged?.size) throw storageError(404, "BlobNotFound");
    const committed: BlockListEntry[] = (blob?.kind === "block" ? blob.committed : []).map((c) => ({
      name: c.id,
      size: c.data.length,
    }));
    const uncommitted = [...(staged ?? new Map<string, Buffer>())].map(([name, d]) => ({
      name,
      size: d.length,
    }));
    return { committed, uncommitted };
  }

  async commitBlockList(b: BlobRef, ids: string[], o: BlobWriteOptions, signal: AbortSignal): Promise<void> {
    await this.enter("commitBlockList", b, signal);
    this.check(b, o.conditions);
    const staged = this.staged.get(key(b)) ?? new Map<string, Buffer>();
    const old = this.blobs.get(key(b));
    const blocks = ids.map((id) => {
      const data = staged.get(id) ?? old?.committed.find((c) => c.id === id)?.data;
      if (!data) throw storageError(400, "InvalidBlockList");
      return { id, data };
    });
    this.staged.delete(key(b));
    this.blobs.set(key(b), {
      kind: "block",
      data: Buffer.concat(blocks.map((x) => x.data)),
      headers: { ...o.headers },
      metadata: { ...o.metadata },
      committed: blocks,
      written: [],
    });
  }

  async createPageBlob(
    b: BlobRef,
    length: number,
    o: Omit<BlobWriteOptions, "conditions">,
    signal: AbortSignal,
  ): Promise<void> {
    await this.enter("createPageBlob", b, signal);
    if (length % 512) throw storageError(400, "InvalidHeaderValue");
    this.blobs.set(key(b), {
      kind: "page",
      data: Buffer.alloc(length),
      headers: { ...o.headers },
      metadata: { ...o.metadata },
      committed: [],
      written: [],
    });
  }

  async putPages(b: BlobRef, offset: number, data: Buffer, hash: Buffer, signal: AbortSignal): Promise<void> {
    await this.enter("putPages", b, signal);
    this.bytesReceived += data.length;
    if (!md5(data).equals(hash)) throw storageError(400, "Md5Mismatch");
    const blob = this.get(b);
    if (blob.kind !== "page" || offset % 512 || data.length % 512 || offset + data.length > blob.data.length)
      throw storageError(400, "InvalidPageRange");
    data.copy(blob.data, offset);
    blob.written.push([offset, offset + data.length]);
  }

  async getPageRanges(b: BlobRef, signal: AbortSignal) {
    await this.enter("getPageRanges", b, signal);
    const sorted = [...this.get(b).written].sort((x, y) => x[0] - y[0]);
    const merged: [number, number][] = [];
    for (const [s, e] of sorted) {
      const last = merged[merged.length - 1];
      if (last && s <= last[1]) last[1] = Math.max(last[1], e);
      else merged.push([s, e]);
    }
    return merged.map(([s, e]) => ({ offset: s, length: e - s }));
  }

  async copyBlob(
    from: BlobRef,
    to: BlobRef,
    conditions: WriteConditions,
    signal: AbortSignal,
  ): Promise<void> {
    await this.enter("copyBlob", to, signal);
    const src = this.get(from);
    this.check(to, conditions);
    this.blobs.set(key(to), {
      ...src,
      data: Buffer.from(src.data),
      headers: { ...src.headers },
      metadata: { ...src.metadata },
      written: [...src.written],
    });
  }

  async deleteIfExists(b: BlobRef, signal: AbortSignal): Promise<void> {
    await this.enter("deleteIfExists", b, signal);
    this.blobs.delete(key(b));
    this.staged.delete(key(b));
  }

  async uploadStream(
    b: BlobRef,
    source: AsyncIterable<Buffer | string>,
    contentType: string,
    signal: AbortSignal,
  ): Promise<void> {
    await this.enter("uploadStream", b, signal);
    const parts: Buffer[] = [];
    for await (const c of source) parts.push(typeof c === "string" ? Buffer.from(c) : c);
    const data = Buffer.concat(parts);
    this.blobs.set(key(b), {
      kind: "block",
      data,
      headers: { contentType },
      metadata: {},
      committed: [{ id: "", data }],
      written: [],
    });
  }

  async readRange(b: BlobRef, offset: number, length: number, signal: AbortSignal): Promise<Buffer> {
    await this.enter("readRange", b, signal);
    return Buffer.from(this.get(b).data.subarray(offset, offset + length));
  }

  publicUrl(b: BlobRef): string {
    return `http://fake.invalid/${b.container}/${b.name}`;
  }

  /** Test helper: a committed blob's bytes (undefined when the name is free). */
  data(container: string, name: string): Buffer | undefined {
    return this.blobs.get(`${container}/${name}`)?.data;
  }

  /** Test helper: a committed blob's Content-MD5, base64. */
  contentMd5(container: string, name: string): string | undefined {
    return this.blobs.get(`${container}/${name}`)?.headers.contentMd5?.toString("base64");
  }
}
