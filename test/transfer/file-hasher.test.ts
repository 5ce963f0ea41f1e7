/** Drive-file hashing on worker threads, against hashes computed here from the same bytes. */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InlineFileHasher, newStream, WorkerFileHasher } from "../../src/transfer/core/file-hasher.js";

const dir = mkdtempSync(join(tmpdir(), "file-hasher-"));
const workers = new WorkerFileHasher(2);
afterAll(async () => {
  await workers.close();
  rmSync(dir, { recursive: true, force: true });
});
const md5 = (b: Buffer) => createHash("md5").update(b);

describe.each([
  ["worker threads", workers],
  ["the event loop", new InlineFileHasher()],
])("file hashes on %s", (_name, hasher) => {
  const data = randomBytes(3 * 1024 * 1024 + 123);
  const path = join(dir, `f-${Math.random()}`);
  writeFileSync(path, data);

  it("each range on its own, and the whole as a blob with the gaps as zeros", async () => {
    const fd = openSync(path, "r");
    try {
      const ranges: [number, number][] = [
        [0, 1000],
        [70_000, 2_000_000],
        [3 * 1024 * 1024, 123],
      ];
      const r = await hasher.hash({ fd, ranges, each: true, wholeLength: data.length + 50 });
      expect(r.short).toBe(false);
      expect(r.each).toEqual(
        ranges.map(([o, n]) =>
          md5(data.subarray(o, o + n))
            .digest("hex")
            .toUpperCase(),
        ),
      );
      const blob = Buffer.alloc(data.length + 50);
      for (const [o, n] of ranges) data.copy(blob, o, o, o + n);
      expect(r.whole).toBe(md5(blob).digest("base64"));
    } finally {
      closeSync(fd);
    }
  });

  it("a stream continues the whole-file hash across requests, each chunk hashed in the same read", async () => {
    const fd = openSync(path, "r");
    try {
      const stream = newStream();
      const a = await hasher.hash({ fd, ranges: [[0, 1 << 20]], each: true, stream });
      const b = await hasher.hash({ fd, ranges: [[2 << 20, 1 << 20]], each: true, stream });
      const end = await hasher.hash({ fd, ranges: [], stream, wholeLength: 4 << 20 });
      expect([a.each[0], b.each[0]]).toEqual([
        md5(data.subarray(0, 1 << 20))
          .digest("hex")
          .toUpperCase(),
        md5(data.subarray(2 << 20, 3 << 20))
          .digest("hex")
          .toUpperCase(),
      ]);
      const blob = Buffer.alloc(4 << 20);
      data.copy(blob, 0, 0, 1 << 20);
      data.copy(blob, 2 << 20, 2 << 20, 3 << 20);
      expect(end.whole).toBe(md5(blob).digest("base64"));
      // A discarded stream starts afresh under the same id.
      const other = newStream();
      await hasher.hash({ fd, ranges: [[0, 10]], stream: other });
      await hasher.hash({ fd, ranges: [], stream: other, discard: true });
      const fresh = await hasher.hash({ fd, ranges: [[0, 10]], stream: other, wholeLength: 10 });
      expect(fresh.whole).toBe(md5(data.subarray(0, 10)).digest("base64"));
    } finally {
      closeSync(fd);
    }
  });

  it("a file shorter than a range is reported short, never hashed as if whole", async () => {
    const fd = openSync(path, "r");
    try {
      const r = await hasher.hash({ fd, ranges: [[0, data.length + 1]], wholeLength: data.length + 1 });
      expect(r.short).toBe(true);
    } finally {
      closeSync(fd);
    }
  });

  it("a read error rejects with its code", async () => {
    const fd = 999_999; // never an open descriptor here
    await expect(hasher.hash({ fd, ranges: [[0, 10]], each: true })).rejects.toMatchObject({ code: "EBADF" });
  });
});
