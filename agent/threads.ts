/**
 * The agent's threads, sized from its config and the machine's cores: libuv's I/O threads (drive
 * reads and opens; each hung read holds one), the hashing threads (both MD5s of every imported
 * byte) and the upload threads (the requests carrying blocks). The event loop itself only orchestrates.
 */
import { availableParallelism } from "node:os";
import type { AgentConfig } from "./config.js";

export interface ThreadSizes {
  /** libuv's pool (UV_THREADPOOL_SIZE). */
  io: number;
  /** Hashing threads; 0 hashes on the event loop. */
  hash: number;
  /** Threads sending block and page bodies; 0 sends from the event loop. */
  upload: number;
}

export function threadSizes(
  t: Pick<AgentConfig["transfer"], "ioThreads" | "hashThreads" | "uploadThreads">,
  cores = availableParallelism(),
): ThreadSizes {
  return {
    // Reads wait on disks, not on the CPU: enough for every bay's reads in flight plus hung ones.
    io: t.ioThreads ?? Math.max(32, 4 * cores),
    // Hashing is the station's CPU work: one thread per core (the event loop needs little).
    hash: t.hashThreads ?? cores,
    // A body's socket writes (and TLS) cost about a third of its two MD5s.
    upload: t.uploadThreads ?? Math.max(1, Math.min(8, Math.ceil(cores / 2))),
  };
}
