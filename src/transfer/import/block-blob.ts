/**
 * A large block blob: blocks staged with deterministic IDs, each with its transactional MD5, then
 * the block list committed with the whole-blob Content-MD5 from the same read, under the
 * disposition's condition. A blob with a bad block is never committed (its good blocks stay
 * Uncommitted for a repair). On resume the service's block lists say what landed.
 */
import { createHash } from "node:crypto";
import { classify } from "../../storage/blob-access.js";
import type { BlobRef, BlobWriteOptions } from "../../storage/blob-port.js";
import { type BlobTask, existing } from "./session.js";

/** Deterministic block IDs when the manifest gives none: the same blob gets the same IDs on every run. */
export function derivedBlockId(seed: Buffer, index: number): string {
  const b = Buffer.alloc(12);
  seed.copy(b, 0, 0, 8);
  b.writeUInt32BE(index, 8);
  return b.toString("base64");
}

export async function uploadBlockBlob(t: BlobTask, ref: BlobRef, write: BlobWriteOptions): Promise<void> {
  const { session: s, blob } = t;
  const { run } = s;
  // Claim the target before the first block: after a crash it is known to be ours.
  await s.batch.saveNow([{ blobIndex: t.index, state: "started", target: ref.name, bytesSucceeded: 0 }]);
  const seed = createHash("md5")
    .update(`${run.job.name}\0${run.driveId}\0${blob.blobPath}\0${blob.length}`)
    .digest();
  const ids = blob.chunks.map((c, k) => c.id ?? derivedBlockId(seed, k));
  // The copy log names every block's ID: `station repair-import` stages the missing ones under it.
  for (const [k, id] of ids.entries()) t.chunkLog[k]!.id = id;
  // On resume, the service says what landed: staged blocks (uncommitted list) and, if the run
  // that crashed got as far as committing, the committed list.
  const staged = new Map<string, number>();
  let committedByUs = false;
  if (t.mayBeOurs) {
    try {
      const list = await s.retrying(`listing blocks of ${blob.blobPath}`, (sig) =>
        s.port.getBlockList(ref, sig),
      );
      for (const blk of list.uncommitted) staged.set(blk.name, blk.size);
      committedByUs =
        list.committed.length === ids.length &&
        list.committed.every((blk, k) => blk.name === ids[k] && blk.size === blob.chunks[k]!.length);
    } catch (e) {
      if (classify(e) !== "not-found") throw e;
    }
  }
  const pass = async (skip: (k: number, length: number) => boolean) => {
    // The whole-blob MD5 runs on one hashing thread, fed every block in order as it is read.
    const whole = run.pipeline.hashes.stream();
    let at = 0;
    let broken: boolean;
    try {
      broken = await t.sendChunks({
        verified: (_c, data) => {
          const offset = at; // the blocks' bytes back to back, as the blob is
          at += data.length;
          return whole.update(offset, data);
        },
        skip: (k, c) => skip(k, c.length),
        sentStatus: "Uncommitted",
        send: (k, buf, md5, sig) => s.port.stageBlock(ref, ids[k]!, buf, md5, sig),
        what: (k) => `staging block ${k} of ${blob.blobPath}`,
      });
    } catch (e) {
      whole.discard();
      throw e;
    }
    if (broken) whole.discard();
    return { broken, contentMd5: broken ? Buffer.alloc(0) : await whole.digest() };
  };
  let { broken, contentMd5 } = await pass((k, length) => committedByUs || staged.get(ids[k]!) === length);
  if (broken) return t.withErrors(); // never committed: the good blocks stay Uncommitted for a repair
  if (t.mayBeOurs) {
    const found = await existing(s, ref);
    if (found?.md5 === contentMd5.toString("base64")) {
      return t.allCompleted(); // committed by the run that crashed: every byte read and checked again, none sent
    }
    if (committedByUs) {
      // The committed blob is not these bytes after all: send every block.
      run.log.warn(
        { blob: blob.blobPath },
        "a committed blob with our block list differs from the drive; sending it again",
      );
      ({ broken, contentMd5 } = await pass(() => false));
      if (broken) return t.withErrors();
    }
  }
  await s.retrying(`committing ${blob.blobPath}`, (sig) =>
    s.port.commitBlockList(ref, ids, { ...write, headers: { ...write.headers, contentMd5 } }, sig),
  );
  t.allCompleted();
}
