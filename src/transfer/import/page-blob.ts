/**
 * A page blob cannot be staged, so it is written under a temporary name and copied to its final
 * name (server-side, under the disposition's condition) only when every range landed verified;
 * nothing partial or corrupt ever appears under the final name.
 */
import type { BlobRef, BlobWriteOptions } from "../../storage/blob-port.js";
import { type BlobTask, existing } from "./session.js";

/** Page blobs are written under their name plus this, then copied into place when complete. */
export const PARTIAL_SUFFIX = ".drive-station-partial";

export async function uploadPageBlob(t: BlobTask, ref: BlobRef, write: BlobWriteOptions): Promise<void> {
  const { session: s, blob, chunkLog } = t;
  const { run } = s;
  const partial: BlobRef = { container: ref.container, name: `${ref.name}${PARTIAL_SUFFIX}` };
  const claimed = s.resume.started.has(t.index);
  const partialExists = async () => (await existing(s, partial)) !== undefined;
  if (claimed && !(await partialExists()) && (await existing(s, ref))) {
    // The run that crashed copied it into place and removed the partial: done.
    t.allCompleted();
    t.landed(blob.length);
    return;
  }
  if (!claimed || !(await partialExists())) {
    await s.retrying(`creating page blob ${blob.blobPath}`, (sig) =>
      s.port.createPageBlob(partial, blob.length, { headers: write.headers, metadata: write.metadata }, sig),
    );
    await s.batch.saveNow([{ blobIndex: t.index, state: "started", target: ref.name, bytesSucceeded: 0 }]);
  }
  const dropPartial = () =>
    s.retrying(`removing ${partial.name}`, (sig) => s.port.deleteIfExists(partial, sig));
  const broken = await t.sendChunks({
    sentStatus: "Completed",
    send: (k, buf, md5, sig) => s.port.putPages(partial, blob.chunks[k]!.offset, buf, md5, sig),
    what: (k) => `writing pages ${blob.chunks[k]!.offset} of ${blob.blobPath}`,
  });
  if (broken) {
    // Never copied into place: the ranges that were written go with the partial blob.
    for (const l of chunkLog) if (l.status === "Completed") l.status = "Cancelled";
    t.withErrors();
    await dropPartial();
    return;
  }
  try {
    await s.retrying(`copying ${blob.blobPath} into place`, (sig) =>
      s.port.copyBlob(partial, ref, write.conditions, sig),
    );
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
