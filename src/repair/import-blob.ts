/**
 * The repair of one failed blob: the import engine's pieces (block pipeline, deterministic block
 * IDs, the page blob's partial-and-copy, the disposition) run against the original file. Every
 * block is read once and checked against the log's MD5 before it is sent; what storage already
 * holds (the uncommitted blocks a failed import left, the ranges of a partial page blob) is read
 * and checked but not sent again; each blob is committed with its whole Content-MD5, under the
 * disposition's condition, and only under the name the log gives (or, for `rename`, a new one).
 */
import { type FileHandle, open } from "node:fs/promises";
import { classify } from "../storage/blob-access.js";
import type { BlobPort, BlobRef, BlobWriteOptions } from "../storage/blob-port.js";
import { type BlockPipeline, pipeBlocks } from "../transfer/core/block-pipeline.js";
import { readAt } from "../transfer/core/drive-files.js";
import type { Retrying } from "../transfer/core/retry.js";
import { Disposition } from "../transfer/import/disposition.js";
import { covered, PARTIAL_SUFFIX } from "../transfer/import/page-blob.js";
import type { RepairItem } from "./import-plan.js";
import type { RepairOutcome, RepairProgress } from "./import-progress.js";

export interface RepairContext {
  port: BlobPort;
  pipeline: BlockPipeline;
  signal: AbortSignal;
  retrying: Retrying;
  progress: RepairProgress;
  /** Bytes read and verified (the progress bar). */
  onRead(bytes: number): void;
  /** What was sent: the blocks or ranges, and their bytes. */
  sent: { chunks: number; bytes: number };
}

/** Metadata and headers the blob gets (from the log's metadata and properties files). */
export type Attributes = Pick<BlobWriteOptions, "headers" | "metadata">;

export type BlobResult = { outcome: RepairOutcome; target: string } | { outcome: "failed"; reason: string };

/** A chunk of the original file does not match the log's MD5: nothing of the blob is committed. */
class SourceMismatch extends Error {}

export async function repairBlob(
  c: RepairContext,
  item: RepairItem,
  sourcePath: string,
  attrs: Attributes,
  attrsFailed: boolean,
): Promise<BlobResult> {
  const fh = await open(sourcePath, "r");
  try {
    const size = (await fh.stat()).size;
    if (size < item.length)
      return { outcome: "failed", reason: `${sourcePath} has ${size} bytes; the blob has ${item.length}` };
    const r = new BlobRepair(c, item, fh, sourcePath, attrs, attrsFailed);
    return await r.run();
  } catch (e) {
    if (e instanceof SourceMismatch) return { outcome: "failed", reason: e.message };
    throw e;
  } finally {
    await fh.close();
  }
}

class BlobRepair {
  private wholeMd5: Buffer | undefined;

  constructor(
    private readonly c: RepairContext,
    private readonly item: RepairItem,
    private readonly fh: FileHandle,
    private readonly sourcePath: string,
    private readonly attrs: Attributes,
    private readonly attrsFailed: boolean,
  ) {}

  async run(): Promise<BlobResult> {
    const { c, item } = this;
    const claimed = c.progress.targets.get(item.blobPath);
    const d = new Disposition(
      item.container,
      item.name,
      item.disposition,
      { ...item.log },
      claimed ?? item.name,
    );
    for (;;) {
      const ref = { container: item.container, name: d.target };
      const found = await this.existing(ref);
      if (!found) break;
      const ours = found.md5 === (await this.sourceMd5()).toString("base64");
      if (ours) {
        // The blob holds exactly these bytes: finished before (by a run that crashed after its
        // commit, or by someone), at most its metadata and properties still to set.
        if (this.attrsFailed) await this.setAttributes(ref, found.kind);
        return { outcome: claimed === d.target ? "repaired" : "fine", target: ref.name };
      }
      const step = await d.taken(found, async () => false);
      if (step === "skipped") return { outcome: "kept", target: ref.name };
      if (step === "no-name") return { outcome: "failed", reason: "no free name after 1000 renames" };
      if (d.overwrite) break;
    }
    const ref = { container: item.container, name: d.target };
    c.progress.claim(item.blobPath, ref.name);
    const write: BlobWriteOptions = { ...this.attrs, conditions: d.conditions };
    if (item.kind === "page") await this.pageBlob(ref, write);
    else await this.blockBlob(ref, write);
    return { outcome: "repaired", target: ref.name };
  }

  private async existing(ref: BlobRef): Promise<{ md5?: string; kind: string } | undefined> {
    try {
      const p = await this.c.retrying(`reading ${ref.container}/${ref.name}`, (s) =>
        this.c.port.getProperties(ref, s),
      );
      return { kind: p.kind, ...(p.contentMd5 ? { md5: p.contentMd5 } : {}) };
    } catch (e) {
      if (classify(e) === "not-found") return undefined;
      throw e;
    }
  }

  /** One pass over the chunks: each verified, those `skip` names not sent. Returns the whole-blob MD5. */
  private async pass(
    send: ((k: number, data: Buffer, md5: Buffer, signal: AbortSignal) => Promise<unknown>) | undefined,
    skip: (k: number) => boolean,
  ): Promise<Buffer> {
    const { c, item } = this;
    // The whole-blob MD5 (a page blob's gaps as zeros) on one hashing thread, from the same read.
    const whole = c.pipeline.hashes.stream();
    let bad: string | undefined;
    let broken: boolean;
    try {
      broken = await pipeBlocks(
        { ...c.pipeline, signal: c.signal, retrying: c.retrying },
        {
          chunks: item.chunks,
          read: (offset, length, into) => readAt(this.fh, offset, length, into),
          verified: (ch, data) => whole.update(ch.offset, data),
          skip: (k) => !send || skip(k),
          send: (k, data, md5, s) => send!(k, data, md5, s),
          what: (k) => `sending ${item.kind === "page" ? "range" : "block"} ${k} of ${item.blobPath}`,
          onChunk: (_k, outcome, ch) => {
            if (outcome === "corrupted" || outcome === "ended") {
              bad ??= `${this.sourcePath} does not match the log's MD5 at offset ${ch.offset} (${outcome}): find the original file and give it in the path map`;
              return;
            }
            c.onRead(ch.length);
            if (outcome === "sent") {
              c.sent.chunks++;
              c.sent.bytes += ch.length;
            }
          },
        },
      );
    } catch (e) {
      whole.discard();
      throw e;
    }
    if (broken) {
      whole.discard();
      throw new SourceMismatch(bad);
    }
    const md5 = await whole.digest(item.length);
    this.wholeMd5 = md5;
    return md5;
  }

  private async sourceMd5(): Promise<Buffer> {
    return this.wholeMd5 ?? (await this.pass(undefined, () => true));
  }

  private async blockBlob(ref: BlobRef, write: BlobWriteOptions): Promise<void> {
    const { c, item } = this;
    // What landed: the blocks the failed import (or a repair that crashed) staged under these IDs.
    const staged = new Map<string, number>();
    try {
      const list = await c.retrying(`listing blocks of ${item.blobPath}`, (s) => c.port.getBlockList(ref, s));
      for (const b of list.uncommitted) staged.set(b.name, b.size);
    } catch (e) {
      if (classify(e) !== "not-found") throw e;
    }
    const contentMd5 = await this.pass(
      (k, data, md5, s) => c.port.stageBlock(ref, item.chunks[k]!.id, data, md5, s),
      (k) => staged.get(item.chunks[k]!.id) === item.chunks[k]!.length,
    );
    const ids = item.chunks.map((ch) => ch.id);
    await c.retrying(`committing ${item.blobPath}`, (s) =>
      c.port.commitBlockList(ref, ids, { ...write, headers: { ...write.headers, contentMd5 } }, s),
    );
  }

  private async pageBlob(ref: BlobRef, write: BlobWriteOptions): Promise<void> {
    const { c, item } = this;
    const partial = { container: ref.container, name: `${ref.name}${PARTIAL_SUFFIX}` };
    let landed: { offset: number; length: number }[] = [];
    if (await this.existing(partial)) {
      landed = await c.retrying(`listing the ranges of ${partial.name}`, (s) =>
        c.port.getPageRanges(partial, s),
      );
    } else {
      await c.retrying(`creating ${partial.name}`, (s) =>
        c.port.createPageBlob(partial, item.length, { headers: write.headers, metadata: write.metadata }, s),
      );
    }
    const contentMd5 = await this.pass(
      (k, data, md5, s) => c.port.putPages(partial, item.chunks[k]!.offset, data, md5, s),
      (k) => covered(landed, item.chunks[k]!),
    );
    const headers = { ...write.headers, contentMd5 };
    await c.retrying(`setting the Content-MD5 of ${partial.name}`, (s) =>
      c.port.setHeaders(partial, headers, s),
    );
    await c.retrying(`copying ${item.blobPath} into place`, (s) =>
      c.port.copyBlob(partial, ref, write.conditions, s),
    );
    const final = await this.existing(ref);
    if (final?.md5 !== contentMd5.toString("base64"))
      await c.retrying(`setting the Content-MD5 of ${item.blobPath}`, (s) =>
        c.port.setHeaders(ref, headers, s),
      );
    await c.retrying(`removing ${partial.name}`, (s) => c.port.deleteIfExists(partial, s));
  }

  /** A blob whose bytes are right but whose metadata or properties failed: set them, send no data. */
  private async setAttributes(ref: BlobRef, kind: string): Promise<void> {
    const { c } = this;
    const headers = { ...this.attrs.headers, contentMd5: await this.sourceMd5() };
    if (kind === "block") {
      // Committing the committed list again sets metadata and headers without sending a byte.
      const list = await c.retrying(`listing blocks of ${this.item.blobPath}`, (s) =>
        c.port.getBlockList(ref, s),
      );
      const ids = list.committed.map((b) => b.name);
      // A blob put in one request has no block list: committing an empty one would empty it.
      if (ids.length === 0 || list.committed.reduce((n, b) => n + b.size, 0) !== this.item.length) {
        await c.retrying(`setting the properties of ${this.item.blobPath}`, (s) =>
          c.port.setHeaders(ref, headers, s),
        );
        return;
      }
      await c.retrying(`setting the metadata of ${this.item.blobPath}`, (s) =>
        c.port.commitBlockList(ref, ids, { headers, metadata: this.attrs.metadata, conditions: {} }, s),
      );
    } else {
      await c.retrying(`setting the properties of ${this.item.blobPath}`, (s) =>
        c.port.setHeaders(ref, headers, s),
      );
    }
  }
}
