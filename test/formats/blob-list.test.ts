import { describe, expect, it } from "vitest";
import { readBlobList, writeBlobList } from "../../src/formats/blob-list.js";
import { ManifestError } from "../../src/formats/status.js";

const collect = async (it: AsyncIterable<string>) => {
  let s = "";
  for await (const c of it) s += c;
  return s;
};

describe("blob-list XML (reference §4.5)", () => {
  it("reads prefixes, paths, IncludeSnapshots and SnapshotTime", async () => {
    const xml = `<?xml version="1.0" encoding="utf-8"?>
<BlobList>
  <BlobPathPrefix>/music/</BlobPathPrefix>
  <BlobPath>videos/story.mp4</BlobPath>
  <BlobPath IncludeSnapshots="false">$root/logo.bmp</BlobPath>
  <BlobPath SnapshotTime="2026-01-02T03:04:05.0000000Z">docs/a &amp; b.txt</BlobPath>
</BlobList>`;
    expect(await readBlobList([xml])).toEqual([
      { kind: "prefix", prefix: "/music/" },
      { kind: "path", path: "videos/story.mp4", includeSnapshots: true },
      { kind: "path", path: "$root/logo.bmp", includeSnapshots: false },
      {
        kind: "path",
        path: "docs/a & b.txt",
        includeSnapshots: false,
        snapshotTime: "2026-01-02T03:04:05.0000000Z",
      },
    ]);
  });

  it.each([
    [
      "a DOCTYPE",
      '<!DOCTYPE x [<!ENTITY e "boom">]><BlobList><BlobPath>&e;</BlobPath></BlobList>',
      /DOCTYPE/,
    ],
    ["another root", "<Blobs/>", /root element is Blobs/],
    ["an unknown element", "<BlobList><Path>a/b</Path></BlobList>", /<Path> is not allowed/],
    [
      "a prefix without '/'",
      "<BlobList><BlobPathPrefix>music</BlobPathPrefix></BlobList>",
      /must start with '\/'/,
    ],
    ["an empty path", "<BlobList><BlobPath> </BlobPath></BlobList>", /empty <BlobPath>/],
    [
      "a bad IncludeSnapshots",
      '<BlobList><BlobPath IncludeSnapshots="yes">a/b</BlobPath></BlobList>',
      /true or false/,
    ],
    ["truncated XML", "<BlobList><BlobPath>a/b", /not well-formed/],
    [
      "nested elements",
      "<BlobList><BlobPath><BlobPath>a</BlobPath></BlobPath></BlobList>",
      /cannot be nested/,
    ],
  ])("refuses %s with BlobListFormatInvalid", async (_what, xml, message) => {
    const e = await readBlobList([xml]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ManifestError);
    expect((e as ManifestError).status).toBe("BlobListFormatInvalid");
    expect((e as Error).message).toMatch(message);
  });

  it("the incomplete list it writes reads back as the same selection", async () => {
    const xml = await collect(
      writeBlobList([{ path: "c/a<b>.txt" }, { path: "c/x", snapshot: "2026-11-23T09:00:01.0000000Z" }]),
    );
    expect(await readBlobList([xml])).toEqual([
      { kind: "path", path: "c/a<b>.txt", includeSnapshots: false },
      { kind: "path", path: "c/x", includeSnapshots: false, snapshotTime: "2026-11-23T09:00:01.0000000Z" },
    ]);
  });
});
