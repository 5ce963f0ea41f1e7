import { mkdtemp, open, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MAX_FILE_INFO_BYTES, md5Hex } from "../../../src/formats/blob-properties.js";
import type { LogBlob } from "../../../src/formats/drive-log.js";
import type { ManifestBlob } from "../../../src/formats/manifest.js";
import { blobAttributes } from "../../../src/transfer/import/blob-files.js";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "blob-files-"));
});
afterEach(async () => {
  vi.restoreAllMocks();
  await rm(root, { recursive: true, force: true });
});

const blobWith = (metadataPath: string, hash: string): ManifestBlob =>
  ({ list: {}, metadata: { path: metadataPath, hash } }) as unknown as ManifestBlob;
const entry = (): LogBlob => ({ status: "Completed", blobPath: "c/b", filePath: "\\b", length: 0 });

describe("metadata and properties files are bounded", () => {
  it("refuses a sparse 10 GB metadata file for that blob without reading it", async () => {
    await writeFile(join(root, "huge.xml"), "");
    await truncate(join(root, "huge.xml"), 10 * 1024 ** 3);
    const probe = await open(join(root, "huge.xml"));
    const proto = Object.getPrototypeOf(probe);
    await probe.close();
    const readFile = vi.spyOn(proto, "readFile");
    const read = vi.spyOn(proto, "read");
    const e = entry();
    const r = await blobAttributes(root, blobWith("huge.xml", "00000000000000000000000000000000"), e);
    expect(r.bad).toBe(true);
    expect(e.metadata?.status).toBe("XmlReadFailed");
    expect(r.metadata).toEqual({});
    expect(readFile).not.toHaveBeenCalled();
    expect(read).not.toHaveBeenCalled();
  });

  it("still reads a metadata file within the limit", async () => {
    const xml = `<?xml version="1.0" encoding="UTF-8"?><Metadata><Team>blue</Team></Metadata>`;
    await writeFile(join(root, "m.xml"), xml);
    expect(xml.length).toBeLessThan(MAX_FILE_INFO_BYTES);
    const e = entry();
    const r = await blobAttributes(root, blobWith("m.xml", md5Hex(xml)), e);
    expect(r.bad).toBe(false);
    expect(e.metadata?.status).toBe("Completed");
    expect(r.metadata).toEqual({ Team: "blue" });
  });
});
