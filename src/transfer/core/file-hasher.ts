/**
 * MD5s of what a drive file holds (an export's read-back: every chunk once, the whole file once
 * more), computed on the station's hashing threads (hash-pool.ts `HashPool.hash`): on the event
 * loop they would cost ~1.7 s per GB and be the export's bottleneck. A thread reads the ranges
 * itself through the open file's descriptor, so no bytes cross threads: from the page cache, or
 * with `direct` through an O_DIRECT descriptor from the medium (core/medium-read.ts). Every
 * request is bounded by the drive read timeout: a read a dying drive never answers fails
 * `ReadHung` (drive-reads.ts) and its thread is written off.
 *
 * The caller keeps the file open until the promise settles.
 */
import { type BlockHashes, HashPool } from "./hash-pool.js";
import { InlineHashes } from "./inline-hashes.js";

export interface HashRequest {
  fd: number;
  /** [offset, length] pairs, ascending and not overlapping. */
  ranges: [number, number][];
  /** Hash each range on its own (upper-case hex). */
  each?: boolean;
  /**
   * Hash the file as a blob of this length: the ranges in order, gaps as zeros (base64). With
   * `stream`, this request ends the stream and returns its hash.
   */
  wholeLength?: number;
  /**
   * A whole-file hash kept across requests (from `newStream()`): each request's ranges continue
   * it, in the order the requests are made, until one with `wholeLength` ends it.
   */
  stream?: number;
  /** Drops the stream's state (a blob that failed). */
  discard?: boolean;
  /**
   * `fd` was opened with O_DIRECT (core/medium-read.ts): read through a page-aligned buffer in
   * aligned steps, so the bytes come from the medium, not the page cache.
   */
  direct?: boolean;
  /** Where the drive is mounted: a read that hangs is counted against it (drive-reads.ts). */
  root?: string;
  /** The file as the operator knows it ("drive X: \dir\file"), for the error of a read that hangs. */
  label?: string;
}

export interface HashResult {
  each: string[];
  whole?: string;
  /** The file ended before a range did: the hashes describe fewer bytes than asked. */
  short: boolean;
}

/** What export hashes with: read-backs of drive files, and downloaded ranges (`md5`). */
export interface FileHasher extends Pick<BlockHashes, "md5"> {
  hash(req: HashRequest): Promise<HashResult>;
}

let streams = 0;
export const newStream = (): number => ++streams;

/** A pool of `threads` hashing threads of its own (bench/, tests); the agent shares the station's. */
export class WorkerFileHasher extends HashPool {
  constructor(threads: number) {
    super({ threads });
  }
}

/** The same hashes on the event loop (synchronous reads): for comparison in bench/ and in tests. */
export { InlineHashes as InlineFileHasher };
