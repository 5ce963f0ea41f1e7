/**
 * A small block blob in one request: Put Blob is atomic and the service checks Content-MD5
 * against the body. The disposition is decided by the conditional Put itself (If-None-Match: *):
 * a name is probed only when it turns out to be taken, so a fresh import costs one request per
 * small file.
 */
import { classify } from "../../storage/blob-access.js";
import type { BlobHeaders } from "../../storage/blob-port.js";
import { ReadHung } from "../core/drive-reads.js";
import type { Disposition } from "./disposition.js";
import { type BlobTask, existing } from "./session.js";

/** At most this long and in at most one chunk: one Put Blob. */
export const SMALL_BLOB = 4 * 1024 * 1024;

export async function putSmallBlob(
  t: BlobTask,
  d: Disposition,
  container: string,
  attrs: { metadata: Record<string, string>; headers: BlobHeaders; bad: boolean },
): Promise<void> {
  const { session: s, blob, chunkLog } = t;
  const { queue, pool } = s.run.pipeline;
  const slab = await pool.acquire();
  let forfeited = false;
  try {
    let data: Buffer;
    try {
      data = await s.reads.read(t.fh, blob.filePath, 0, blob.length, slab);
    } catch (e) {
      // The abandoned read may still write into the slab: it is never lent again.
      if (e instanceof ReadHung) forfeited = true;
      throw e;
    }
    if (data.length < blob.length) {
      if (chunkLog[0]) chunkLog[0].status = "FileUnexpectedEnd";
      t.withErrors();
      return t.finish(d.target);
    }
    // One MD5 on a hashing thread: the chunk's check and the blob's Content-MD5 (the same bytes).
    const md5 = await s.run.pipeline.hashes.md5(data);
    if (blob.chunks[0] && md5.toString("hex").toUpperCase() !== blob.chunks[0].hash) {
      chunkLog[0]!.status = "Corrupted";
      t.withErrors();
      return t.finish(d.target);
    }
    for (let tries = 0; ; tries++) {
      try {
        const ref = { container, name: d.target };
        const conditions = d.conditions;
        // Each attempt takes a request slot: a retry's backoff holds none.
        await s.retrying(`uploading ${blob.blobPath}`, (sig) =>
          queue.add(() =>
            s.port.putBlob(
              ref,
              data,
              { headers: { ...attrs.headers, contentMd5: md5 }, metadata: attrs.metadata, conditions },
              sig,
            ),
          ),
        );
        s.sent(data.length);
        break;
      } catch (e) {
        const kind = classify(e);
        if ((kind !== "conflict" && kind !== "precondition") || tries > 1000) throw e;
        const found = await existing(s, { container, name: d.target });
        const step = await d.taken(found, async () => t.mayBeOurs && found?.md5 === md5.toString("base64"));
        if (step === "ours") break; // landed before a crash
        if (step === "skipped") return t.finish(d.target);
        if (step === "no-name")
          return t.fail("RenameFailed", `${blob.blobPath}: no free name after 1000 renames`);
      }
    }
    d.settle();
    t.landed(data.length);
    if (chunkLog[0]) chunkLog[0].status = "Completed";
    if (attrs.bad) t.withErrors();
    return t.finish(d.target);
  } finally {
    if (forfeited) pool.forfeit(slab);
    else pool.release(slab);
  }
}
