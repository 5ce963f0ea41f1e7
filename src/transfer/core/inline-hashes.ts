/** The station's hashes on the calling thread (hash-pool.ts does them on threads). */
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import type { FileHasher, HashRequest, HashResult } from "./file-hasher.js";
import type { BlockHashes, HashStream } from "./hash-pool.js";
import { FILE_SERVE_JS } from "./hash-thread-source.js";

const ZEROS = Buffer.alloc(1 << 20);

/**
 * The same hashes on the calling thread: unit tests and `transfer.hashThreads: 0`. Its read-backs
 * are synchronous reads on the event loop, without a timeout.
 */
export class InlineHashes implements BlockHashes, FileHasher {
  private readonly serveFile = new Function("require", `${FILE_SERVE_JS}\nreturn serveFile;`)(
    createRequire(import.meta.url),
  ) as (req: HashRequest) => HashResult;

  async md5(data: Buffer): Promise<Buffer> {
    return createHash("md5").update(data).digest();
  }

  async hash(req: HashRequest): Promise<HashResult> {
    await new Promise((r) => setImmediate(r));
    return this.serveFile(req);
  }

  /** Nothing to stop. */
  async close(): Promise<void> {}

  stream(): HashStream {
    const hash = createHash("md5");
    let at = 0;
    const zeros = (upTo: number) => {
      for (; at < upTo; at += Math.min(ZEROS.length, upTo - at))
        hash.update(ZEROS.subarray(0, Math.min(ZEROS.length, upTo - at)));
    };
    return {
      update: async (offset, data) => {
        zeros(offset);
        hash.update(data);
        at = offset + data.length;
      },
      digest: async (length) => {
        if (length !== undefined) zeros(length);
        return hash.digest();
      },
      discard: () => undefined,
    };
  }
}
