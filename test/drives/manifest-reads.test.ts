/**
 * Matching reads a drive's manifest (its hash, then its header) through the drive's bounded reads:
 * a manifest whose reads hang gives the drive ReadManifestFailed instead of holding its dock slot,
 * and the agent's stop, for good.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ManifestAccess } from "../../src/drives/match.js";
import { readAt } from "../../src/transfer/core/drive-files.js";
import {
  DriveReads,
  type FileReader,
  ReadHung,
  readFileStream,
} from "../../src/transfer/core/drive-reads.js";
import { useTempDir } from "../support/tmp.js";

const tmp = useTempDir();
const never: FileReader = () => new Promise<Buffer>(() => undefined);

describe("bounded manifest reads", () => {
  it("stream a file whole, in order, across many chunks and a short last one", async () => {
    const path = join(tmp(), "m.xml");
    const data = randomBytes(5 * 64 * 1024 + 777);
    writeFileSync(path, data);
    const reads = new DriveReads({ timeoutMs: 5000, hungLimit: 3 }, "/mnt/r1");
    const parts: Buffer[] = [];
    for await (const c of readFileStream(path, reads)) parts.push(c);
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    // Each chunk is its own copy: the stream's buffer is reused, what it yielded is not.
    expect(new Set(parts.map((p) => p.buffer)).size).toBe(parts.length);
  });

  it("a hanging read ends the stream with ReadHung within the timeout", async () => {
    const path = join(tmp(), "m.xml");
    writeFileSync(path, "<DriveManifest/>");
    const reads = new DriveReads({ timeoutMs: 100, hungLimit: 3, reader: never }, "/mnt/r2");
    const started = Date.now();
    const consume = async () => {
      for await (const _ of readFileStream(path, reads)) void _;
    };
    await expect(consume()).rejects.toBeInstanceOf(ReadHung);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("matching: the hash and the header of a hanging manifest fail as ReadManifestFailed", async () => {
    const root = tmp();
    const manifest = '<?xml version="1.0"?><DriveManifest Version="2014-11-01"></DriveManifest>';
    writeFileSync(join(root, "DriveManifest.xml"), manifest);
    const healthy = new ManifestAccess(root, {
      timeoutMs: 5000,
      hungLimit: 3,
      reader: (fh, o, l, into) => readAt(fh, o, l, into),
    });
    const where = await healthy.resolve("\\DriveManifest.xml");
    if (!("path" in where)) throw new Error(where.message);
    expect(await healthy.digest(where.path, "md5")).toBe(
      createHash("md5").update(readFileSync(where.path)).digest("hex").toUpperCase(),
    );

    const hanging = new ManifestAccess(root, { timeoutMs: 100, hungLimit: 3, reader: never });
    await expect(hanging.digest(where.path, "md5")).rejects.toBeInstanceOf(ReadHung);
    await expect(hanging.header(where.path)).rejects.toMatchObject({
      name: "ManifestError",
      status: "ReadManifestFailed",
    });
  });
});
