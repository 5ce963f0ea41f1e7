/**
 * The read-back of an exported blob's chunks from the drive (export.verify: "medium" reads past
 * every cache, core/medium-read.ts): each chunk against the MD5 recorded when it was written, a
 * disagreeing chunk written once more, a second disagreement the drive's fault.
 */
import { BlobFailure, type ChunkIo, fetchChunk, readBackOf } from "./blob-chunks.js";

/**
 * Reads back every chunk (after syncing it) and checks it against the MD5 recorded when it was
 * written (the service's range MD5); a chunk the drive does not return intact is fetched (and
 * checked in memory against the range MD5: the first download was trusted to this read-back)
 * and written once more, synced and
 * read back again (on `attempt` 1; on 2 the first disagreement fails). A chunk that still
 * disagrees fails the blob IOFailed, its chunk Corrupted: the drive cannot hold its bytes. With
 * `whole`, also returns the file's base64 MD5 as the blob (page-blob holes as zeros).
 */
export async function readBackChunks(
  io: ChunkIo,
  written: Map<number, string>,
  slab: Buffer,
  whole: boolean,
  /** 2: these bytes were already written again once; a disagreement fails at once. */
  attempt = 1,
): Promise<string | undefined> {
  const hashChunks = (ks: number[], wholeToo: boolean) =>
    io.hasher.hash({
      ...readBackOf(io),
      ranges: ks.map((k): [number, number] => [io.chunks[k]!.offset, io.chunks[k]!.length]),
      each: true,
      ...(wholeToo ? { wholeLength: io.length } : {}),
    });
  const unreliable = (k: number) =>
    new BlobFailure(
      "IOFailed",
      `${io.filePath}: chunk ${k} at offset ${io.chunks[k]!.offset} (${io.chunks[k]!.length} bytes) reads back from the drive differently from what was written, after it was written again: the drive cannot hold its bytes`,
      { index: k, status: "Corrupted" },
      true,
    );
  const all = [...io.chunks.keys()];
  await io.beforeRead(all, attempt);
  const first = await hashChunks(all, whole);
  const bad = all.filter((k) => first.each[k] !== written.get(k));
  if (bad.length && attempt > 1) throw unreliable(bad[0]!);
  for (const k of bad) {
    io.warn(
      { blob: io.blobPath, file: io.filePath, chunk: k, offset: io.chunks[k]!.offset },
      "read-back MD5 differs from what was written; writing the chunk again",
    );
    io.counters.chunksRewritten++;
    written.set(k, await fetchChunk(io, k, slab, "memory"));
  }
  if (bad.length) {
    await io.beforeRead(bad, 2);
    const again = await hashChunks(bad, false);
    const still = bad.findIndex((k, i) => again.each[i] !== written.get(k));
    if (still >= 0) throw unreliable(bad[still]!);
  }
  if (!whole) return undefined;
  if (!bad.length) return first.short ? "" : first.whole;
  const r = await io.hasher.hash({
    ...readBackOf(io),
    ranges: io.chunks.map((c) => [c.offset, c.length]),
    wholeLength: io.length,
  });
  return r.short ? "" : r.whole!;
}
