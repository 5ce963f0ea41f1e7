import { describe, expect, it } from "vitest";
import { inlineSelectors, prefixMatches, selectBlobs } from "../../../src/transfer/export/selection.js";
import { FakeExportSource } from "../../support/fake-export-source.js";

const sig = new AbortController().signal;
const b = (s: string) => Buffer.from(s);

function account(): FakeExportSource {
  const f = new FakeExportSource();
  for (const p of [
    "$root/logo.bmp",
    "book/a.txt",
    "books/b.txt",
    "bookkeeping/c.txt",
    "bob/x.txt",
    "bobkids/y.txt",
    "music/love song.mp3",
    "music/lovely.mp3",
    "music/rock.mp3",
    "picturecontainer/image",
    "picturecontainer/image.png",
    "picturecontainer/image2.png",
    "picturecontainer/image/photo.png",
    "picturecontainer/imagefiles/photo.png",
    "picturecontainer/other.png",
  ])
    f.put(p, b(p));
  f.put("videos/story.mp4", b("v1"));
  f.put("videos/story.mp4", b("v0"), { snapshot: "2026-01-01T00:00:00.0000000Z" });
  return f;
}

const paths = (r: Awaited<ReturnType<typeof selectBlobs>>) =>
  r.blobs.map((x) => `${x.container}/${x.name}${x.snapshot ? `@${x.snapshot.slice(0, 4)}` : ""}`);

describe("export selection, prefix semantics of reference §4.5", () => {
  it.each([
    ["/", 16],
    ["/$root/", 1],
    ["/book", 3],
    ["/bob/", 1],
    ["/music/love", 2],
    ["/picturecontainer/image", 5],
  ])("prefix %s selects %i blobs", async (prefix, n) => {
    const r = await selectBlobs([{ kind: "prefix", prefix }], account(), sig);
    expect(r.blobs).toHaveLength(n);
    for (const x of r.blobs) expect(prefixMatches(prefix, x.container, x.name)).toBe(true);
  });

  it("the table's exact sets", async () => {
    const f = account();
    expect(paths(await selectBlobs([{ kind: "prefix", prefix: "/book" }], f, sig))).toEqual([
      "book/a.txt",
      "bookkeeping/c.txt",
      "books/b.txt",
    ]);
    expect(paths(await selectBlobs([{ kind: "prefix", prefix: "/bob/" }], f, sig))).toEqual(["bob/x.txt"]);
    expect(paths(await selectBlobs([{ kind: "prefix", prefix: "/picturecontainer/image" }], f, sig))).toEqual(
      [
        "picturecontainer/image",
        "picturecontainer/image.png",
        "picturecontainer/image/photo.png",
        "picturecontainer/image2.png",
        "picturecontainer/imagefiles/photo.png",
      ],
    );
    expect(
      paths(await selectBlobs([{ kind: "path", path: "$root/logo.bmp", includeSnapshots: true }], f, sig)),
    ).toEqual(["$root/logo.bmp"]);
  });

  it("blob paths with snapshots, without, and one snapshot", async () => {
    const f = account();
    const withSnaps = await selectBlobs(
      [{ kind: "path", path: "videos/story.mp4", includeSnapshots: true }],
      f,
      sig,
    );
    expect(paths(withSnaps)).toEqual(["videos/story.mp4@2026", "videos/story.mp4"]);
    const without = await selectBlobs(
      [{ kind: "path", path: "videos/story.mp4", includeSnapshots: false }],
      f,
      sig,
    );
    expect(paths(without)).toEqual(["videos/story.mp4"]);
    const one = await selectBlobs(
      [
        {
          kind: "path",
          path: "videos/story.mp4",
          includeSnapshots: false,
          snapshotTime: "2026-01-01T00:00:00.0000000Z",
        },
      ],
      f,
      sig,
    );
    expect(paths(one)).toEqual(["videos/story.mp4@2026"]);
  });

  it("missing paths, empty prefixes and archived blobs are reported; duplicates counted; each blob once, sorted", async () => {
    const f = account();
    f.put("cold/old.bin", b("x"), { archived: true });
    const r = await selectBlobs(
      [
        { kind: "prefix", prefix: "/music/" },
        { kind: "path", path: "music/rock.mp3", includeSnapshots: true },
        { kind: "path", path: "music/none.mp3", includeSnapshots: false },
        { kind: "path", path: "nocontainer/x", includeSnapshots: true },
        {
          kind: "path",
          path: "videos/story.mp4",
          includeSnapshots: false,
          snapshotTime: "1999-01-01T00:00:00Z",
        },
        { kind: "prefix", prefix: "/nothing-here" },
        { kind: "prefix", prefix: "/music/" },
        { kind: "path", path: "BAD_container/x", includeSnapshots: false },
        { kind: "path", path: "cold/old.bin", includeSnapshots: false },
      ],
      f,
      sig,
    );
    expect(paths(r)).toEqual(["music/love song.mp3", "music/lovely.mp3", "music/rock.mp3"]);
    expect(r.duplicates).toBe(1);
    expect(r.missing.map((m) => m.selector)).toEqual([
      "music/none.mp3",
      "nocontainer/x",
      "videos/story.mp4?snapshot=1999-01-01T00:00:00Z",
      "/nothing-here",
      "BAD_container/x",
    ]);
    expect(r.unreadable).toEqual([{ selector: "cold/old.bin", reason: "the blob is in the Archive tier" }]);
  });

  it("inline selection: paths then prefixes", () => {
    expect(inlineSelectors({ blobList: { blobPath: ["a/b"], blobPathPrefix: ["/c/"] } })).toEqual([
      { kind: "path", path: "a/b", includeSnapshots: true },
      { kind: "prefix", prefix: "/c/" },
    ]);
  });
});
