/**
 * A page blob cannot be staged, so it is written under a temporary name and copied to its final
 * name (server-side, under the disposition's condition) only when every range landed verified;
 * nothing partial or corrupt ever appears under the final name.
 *
 * Resume is range by range: a resumed run asks the partial blob which ranges it holds (each was
 * written by an earlier run of ours from bytes checked against the manifest, with a transactional
 * MD5 the service checked), reads and verifies every range again for the whole-blob MD5, and
 * sends only the ranges the partial lacks. The whole-blob Content-MD5 (ranges and the zeros
 * between them) is set on the partial before the copy, so the final blob appears with it.
 */
import type { Chunk } from "../../formats/manifest.js";
import type { BlobRef, BlobWriteOptions } from "../../storage/blob-port.js";
import { type BlobTask, existing } from "./session.js";

/** Page blobs are written under their name plus this, then copied into place when complete. */
export const PARTIAL_SUFFIX = ".drive-station-partial";

/** True when [offset, offset + length) lies inside one of `ranges` (merged, as the service reports them). */
export function covered(
  ranges: { offset: number; length: number }[],
  c: Pick<Chunk, "offset" | "length">,
): boolean {
  return ranges.some((r) => r.offset <= c.offset && c.offset + c.length <= r.offset + r.length);
}

export async function uploadPageBlob(t: BlobTask, ref: BlobRef, write: BlobWriteOptions): Promise<void> {
  const { session: s, blob, chunkLog } = t;
  const { run } = s;
  const partial: BlobRef = { container: ref.container, name: `${ref.name}${PARTIAL_SUFFIX}` };
  const claimed = s.resume.started.has(t.index);
  const partialExists = async () => (await existing(s, partial)) !== undefined;
  const resumable = claimed && (await partialExists());
  if (claimed && !resumable && (await existing(s, ref))) {
    // The run that crashed copied it into place (with its Content-MD5) and removed the partial: done.
    t.allCompleted();
    t.landed(blob.length);
    return;
  }
  let landed: { offset: number; length: number }[] = [];
  if (resumable) {
    landed = await s.retrying(`listing the ranges of ${partial.name}`, (sig) =>
      s.port.getPageRanges(partial, sig),
    );
  } else {
    await s.retrying(`creating page blob ${blob.blobPath}`, (sig) =>
      s.port.createPageBlob(partial, blob.length, { headers: write.headers, metadata: write.metadata }, sig),
    );
    await s.batch.saveNow([{ blobIndex: t.index, state: "started", target: ref.name, bytesSucceeded: 0 }]);
  }
  const dropPartial = () =>
    s.retrying(`removing ${partial.name}`, (sig) => s.port.deleteIfExists(partial, sig));
  // The whole-blob MD5 (ranges and the zeros between them) runs on one hashing thread.
  const whole = run.pipeline.hashes.stream();
  let broken: boolean;
  try {
    broken = await t.sendChunks({
      sentStatus: "Completed",
      verified: (c, data) => whole.update(c.offset, data),
      skip: (_k, c) => covered(landed, c),
      send: (k, buf, md5, sig) => s.port.putPages(partial, blob.chunks[k]!.offset, buf, md5, sig),
      what: (k) => `writing pages ${blob.chunks[k]!.offset} of ${blob.blobPath}`,
    });
  } catch (e) {
    whole.discard();
    throw e;
  }
  if (broken) {
    whole.discard();
    // Never copied into place: the ranges that were written go with the partial blob.
    for (const l of chunkLog) if (l.status === "Completed") l.status = "Cancelled";
    t.withErrors();
    await dropPartial();
    return;
  }
  const headers = { ...write.headers, contentMd5: await whole.digest(blob.length) };
  const md5 = headers.contentMd5.toString("base64");
  await s.retrying(`setting the Content-MD5 of ${partial.name}`, (sig) =>
    s.port.setHeaders(partial, headers, sig),
  );
  try {
    // A run killed after its copy into place and before it removed the partial left both: the
    // final blob with these very bytes (its Content-MD5 is the one just verified) is ours.
    const placed = resumable ? await existing(s, ref) : undefined;
    if (placed?.md5 !== md5) {
      await s.retrying(`copying ${blob.blobPath} into place`, (sig) =>
        s.port.copyBlob(partial, ref, write.conditions, sig),
      );
      // The copy carries the source's properties; should a store not, the final blob gets them here.
      if ((await existing(s, ref))?.md5 !== md5)
        await s.retrying(`setting the Content-MD5 of ${blob.blobPath}`, (sig) =>
          s.port.setHeaders(ref, headers, sig),
        );
    }
  } finally {
    if (!run.signal.aborted)
      await dropPartial().catch((e) =>
        run.log.warn({ err: e, blob: partial.name }, "partial page blob not removed"),
      );
  }
  // Ranges the manifest leaves out are zeros in a new page blob: they count as transferred.
  const sparse = blob.length - blob.chunks.reduce((sum, c) => sum + c.length, 0);
  t.landed(sparse);
}
