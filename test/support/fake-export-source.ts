/** An in-memory ExportSource for engine and selection unit tests, with hooks to inject faults. */
import { createHash } from "node:crypto";
import type {
  ExportBlobInfo,
  ExportBlobRef,
  ExportSource,
  RangeRead,
} from "../../src/storage/export-source.js";

export interface FakeBlob {
  data: Buffer;
  kind: "block" | "page" | "append";
  etag: string;
  lastModified: Date;
  metadata: Record<string, string>;
  contentType?: string;
  contentMd5?: string;
  leased: boolean;
  archived: boolean;
  /** Page blobs: written ranges. */
  ranges?: { offset: number; length: number }[];
}

const err = (statusCode: number, message: string) => Object.assign(new Error(message), { statusCode });
const md5 = (b: Buffer) => createHash("md5").update(b).digest();

export class FakeExportSource implements ExportSource {
  readonly containers = new Map<string, Map<string, FakeBlob>>();
  readonly uploads = new Map<string, string>();
  reads = 0;
  bytesRead = 0;
  private etagSeq = 1;
  private snapSeq = 1;
  /** Called before each range read (after counting it): mutate a blob, throw an error … */
  beforeRead?: (ref: ExportBlobRef, offset: number) => void;
  /** Corrupts what a range read returns (the service MD5 stays the true one). */
  corruptRead?: (ref: ExportBlobRef, offset: number, data: Buffer) => void;
  /** false: a service that answers ranged reads without their MD5. */
  rangeMd5 = true;

  put(
    path: string,
    data: Buffer,
    o: Partial<Omit<FakeBlob, "data" | "etag" | "lastModified">> & { snapshot?: string } = {},
  ): FakeBlob {
    const [container, ...rest] = path.split("/");
    const name = rest.join("/");
    const c = this.containers.get(container!) ?? new Map<string, FakeBlob>();
    this.containers.set(container!, c);
    const blob: FakeBlob = {
      data,
      kind: o.kind ?? "block",
      etag: `"0x${(this.etagSeq++).toString(16)}"`,
      lastModified: new Date(Date.UTC(2026, 10, 1, 0, 0, this.etagSeq)),
      metadata: o.metadata ?? {},
      leased: o.leased ?? false,
      archived: o.archived ?? false,
      ...(o.contentType ? { contentType: o.contentType } : {}),
      // "" stands for a blob stored without a Content-MD5
      contentMd5: o.contentMd5 ?? md5(data).toString("base64"),
      ...(o.ranges ? { ranges: o.ranges } : {}),
    };
    c.set(o.snapshot ? `${name}\0${o.snapshot}` : name, blob);
    return blob;
  }

  /** Rewrites a blob's bytes: a new ETag, as the service does. */
  modify(path: string, data: Buffer): void {
    const b = this.find({ container: path.split("/")[0]!, name: path.split("/").slice(1).join("/") });
    b.data = data;
    b.etag = `"0x${(this.etagSeq++).toString(16)}"`;
    b.contentMd5 = md5(data).toString("base64");
  }

  private find(ref: ExportBlobRef): FakeBlob {
    const c = this.containers.get(ref.container);
    if (!c) throw err(404, `no container ${ref.container}`);
    const b = c.get(ref.snapshot ? `${ref.name}\0${ref.snapshot}` : ref.name);
    if (!b) throw err(404, `no blob ${ref.container}/${ref.name}`);
    return b;
  }

  private info(ref: ExportBlobRef, b: FakeBlob): ExportBlobInfo {
    return {
      container: ref.container,
      name: ref.name,
      ...(ref.snapshot ? { snapshot: ref.snapshot } : {}),
      kind: b.kind,
      length: b.data.length,
      etag: b.etag,
      lastModified: b.lastModified,
      leased: b.leased,
      archived: b.archived,
      metadata: { ...b.metadata },
      ...(b.contentMd5 ? { contentMd5: b.contentMd5 } : {}),
      ...(b.contentType ? { contentType: b.contentType } : {}),
    };
  }

  async *listContainers(prefix: string): AsyncIterable<string> {
    for (const c of [...this.containers.keys()].sort()) if (c.startsWith(prefix)) yield c;
  }

  async *listBlobs(
    container: string,
    prefix: string,
    includeSnapshots: boolean,
  ): AsyncIterable<ExportBlobInfo> {
    const c = this.containers.get(container);
    if (!c) throw err(404, `no container ${container}`);
    const keys = [...c.keys()].sort((a, b) => {
      const [na, sa = "\uffff"] = a.split("\0");
      const [nb, sb = "\uffff"] = b.split("\0");
      return na! !== nb! ? (na! < nb! ? -1 : 1) : sa < sb ? -1 : sa > sb ? 1 : 0;
    });
    for (const k of keys) {
      const [name, snapshot] = k.split("\0");
      if (!name!.startsWith(prefix)) continue;
      if (snapshot && !includeSnapshots) continue;
      yield this.info({ container, name: name!, ...(snapshot ? { snapshot } : {}) }, c.get(k)!);
    }
  }

  async getBlob(ref: ExportBlobRef): Promise<ExportBlobInfo> {
    return this.info(ref, this.find(ref));
  }

  async getPageRanges(ref: ExportBlobRef, etag: string) {
    const b = this.find(ref);
    if (b.etag !== etag) throw err(412, "ConditionNotMet");
    return b.ranges ?? [];
  }

  async readRange(
    ref: ExportBlobRef,
    offset: number,
    length: number,
    etag: string,
    into: Buffer,
  ): Promise<RangeRead> {
    this.reads++;
    this.beforeRead?.(ref, offset);
    const b = this.find(ref);
    if (b.etag !== etag) throw err(412, "ConditionNotMet");
    const slice = b.data.subarray(offset, Math.min(offset + length, b.data.length));
    slice.copy(into, 0);
    const data = into.subarray(0, slice.length);
    const sum = md5(data);
    this.corruptRead?.(ref, offset, data);
    this.bytesRead += data.length;
    return this.rangeMd5 ? { data, md5: sum } : { data };
  }

  async snapshot(ref: ExportBlobRef): Promise<string> {
    const b = this.find(ref);
    const snap = `2026-11-23T09:00:${String(this.snapSeq++).padStart(2, "0")}.0000000Z`;
    this.containers.get(ref.container)!.set(`${ref.name}\0${snap}`, { ...b, leased: false });
    return snap;
  }

  async ensureContainer(container: string): Promise<void> {
    if (!this.containers.has(container)) this.containers.set(container, new Map());
  }

  async uploadStream(ref: ExportBlobRef, source: AsyncIterable<Buffer | string>): Promise<void> {
    let s = "";
    for await (const c of source) s += c.toString();
    this.uploads.set(`${ref.container}/${ref.name}`, s);
    this.put(`${ref.container}/${ref.name}`, Buffer.from(s));
  }

  async readAll(ref: ExportBlobRef): Promise<Buffer> {
    return Buffer.from(this.find(ref).data);
  }

  publicUrl(ref: ExportBlobRef): string {
    return `http://fake/${ref.container}/${ref.name}`;
  }
}
