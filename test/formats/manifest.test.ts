import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ManifestBlob, type ManifestItem, readManifest } from "../../src/formats/manifest.js";
import { indexBlockId, ManifestWriter } from "../../src/formats/manifest-writer.js";
import { checkBlobPath, checkFilePath } from "../../src/formats/names.js";
import { ManifestError } from "../../src/formats/status.js";
import { blob, EXPORT_EXAMPLE, failure, importManifest, okBlob, read } from "./manifest-fixtures.js";

describe("documented shapes", () => {
  it("reads the documentation's export manifest", async () => {
    const { header, blobs, end } = await read(EXPORT_EXAMPLE, "export", "9WM35C3U");
    expect(header).toEqual({
      version: "2011-10-01",
      driveId: "9WM35C3U",
      clientCreator: "Windows Azure Import/Export service",
    });
    expect(blobs).toHaveLength(1);
    const b = blobs[0]!;
    expect(b.problem).toBeUndefined();
    expect(b.blob).toMatchObject({
      blobPath: "pictures/wild/canyon.jpg",
      filePath: "\\pictures\\wild\\canyon.jpg",
      length: 10884,
      kind: "block",
    });
    expect(b.blob.chunks.map((c) => c.id)).toEqual([0, 1, 2, 3].map(indexBlockId));
    expect(b.blob.properties).toEqual({
      path: "\\pictures\\wild\\canyon.jpg.properties",
      hash: "81D7F81B2C29F10D6E123D386C3A4D5A",
    });
    expect(end).toEqual({ type: "end", blobCount: 1, blobLists: 1 });
  });

  it("round-trips an export manifest through the writer", async () => {
    const first = await read(EXPORT_EXAMPLE, "export");
    let xml = "";
    const w = new ManifestWriter(
      (c) => {
        xml += c;
      },
      { driveId: first.header.driveId, kind: "export", version: first.header.version },
    );
    for (const { blob: b } of first.blobs) w.blob(b);
    w.end();
    const second = await read(xml, "export");
    expect(second.header).toEqual(first.header);
    expect(second.blobs.map((b) => b.blob)).toEqual(first.blobs.map((b) => b.blob));
  });

  it("round-trips an import manifest with SAS, list defaults, page blobs and dispositions", async () => {
    const blobs: Omit<ManifestBlob, "list">[] = [
      {
        blobPath: "vhds/disk.vhd",
        filePath: "\\s1\\disk.vhd",
        length: 4096,
        disposition: "overwrite",
        kind: "page",
        chunks: [{ offset: 512, length: 1024, hash: "0C52BAE2CC20EFEC15CC1E3045517AA6" }],
      },
      {
        blobPath: "$root/logo.bmp",
        filePath: "\\s1\\logo.bmp",
        length: 0,
        disposition: "no-overwrite",
        kind: "block",
        chunks: [],
        clientData: "a & b <c>",
      },
      {
        blobPath: "docs/été/naïve.txt",
        filePath: "\\s1\\été\\naïve.txt",
        length: 5,
        disposition: "rename",
        kind: "block",
        chunks: [
          {
            offset: 0,
            length: 5,
            hash: "73D1CB62CB426230C34C9F57B7148F10",
            id: "MD5/cAzn4h7VVSWXf696qp5Uaw==",
          },
        ],
        metadata: { path: "\\s1\\m.xml", hash: "E34F54B7086BCF4EC1601D056F4C7E37" },
      },
    ];
    let xml = "";
    const w = new ManifestWriter(
      (c) => {
        xml += c;
      },
      {
        driveId: "9CA995BB",
        kind: "import",
        credential: {
          kind: "containerSas",
          container: "docs",
          token: "sv=2020-08-04&sr=c&sp=rwdl&sig=abc%3D",
        },
      },
    );
    w.blobList({
      id: "session#1-0",
      metadata: { path: "\\s1\\meta.xml", hash: "E34F54B7086BCF4EC1601D056F4C7E37" },
    });
    for (const b of blobs) w.blob(b);
    w.end();
    const back = await read(xml, "import", "9CA995BB");
    expect(back.header.credential).toEqual({
      kind: "containerSas",
      container: "docs",
      token: "sv=2020-08-04&sr=c&sp=rwdl&sig=abc%3D",
    });
    expect(back.blobs.map((b) => b.problem)).toEqual([undefined, undefined, undefined]);
    expect(back.blobs.map(({ blob: { list: _l, ...rest } }) => rest)).toEqual(blobs);
    expect(back.blobs[0]!.blob.list).toEqual({
      index: 0,
      id: "session#1-0",
      metadata: { path: "\\s1\\meta.xml", hash: "E34F54B7086BCF4EC1601D056F4C7E37" },
    });
  });

  it("tolerates a BOM, a stray space in Hash and an absent ImportDisposition (rename)", async () => {
    const xml = `\uFEFF${importManifest(blob(`<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>3</Length><BlockList><Block Offset="0" Length="3" Hash=" 9C8AE14A55241F98533C4D80D85CDC68"/></BlockList>`))}`;
    const { blobs } = await read(Buffer.from(xml, "utf8"));
    expect(blobs[0]!.problem).toBeUndefined();
    expect(blobs[0]!.blob.disposition).toBe("rename");
    expect(blobs[0]!.blob.chunks[0]!.hash).toBe("9C8AE14A55241F98533C4D80D85CDC68");
  });
});

describe("hostile manifests: drive-level failures", () => {
  const cases: [string, string, string, RegExp][] = [
    [
      "XXE external entity",
      `<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><DriveManifest Version="2014-11-01"><Drive><DriveId>&x;</DriveId></Drive></DriveManifest>`,
      "ManifestFormatInvalid",
      /DOCTYPE is not allowed/,
    ],
    [
      "billion laughs",
      `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><DriveManifest Version="2014-11-01"><Drive><DriveId>&lol2;</DriveId></Drive></DriveManifest>`,
      "ManifestFormatInvalid",
      /DOCTYPE/,
    ],
    [
      "undeclared entity",
      importManifest(okBlob(), { driveId: "&boom;" }),
      "ManifestFormatInvalid",
      /not well-formed/,
    ],
    ["not XML", "this is not xml", "ManifestFormatInvalid", /not well-formed/],
    ["truncated", importManifest(okBlob()).slice(0, 300), "ManifestFormatInvalid", /not well-formed/],
    ["wrong root", "<Manifest Version='2014-11-01'/>", "ManifestFormatInvalid", /root element is Manifest/],
    [
      "unknown version",
      importManifest(okBlob(), { version: "2099-01-01" }),
      "ManifestFormatInvalid",
      /Version '2099-01-01'/,
    ],
    [
      "no credential",
      importManifest(okBlob(), { cred: "" }),
      "ManifestFormatInvalid",
      /needs StorageAccountKey or ContainerSas/,
    ],
    [
      "two credentials",
      importManifest(okBlob(), {
        cred: "<StorageAccountKey>Zm9vYmFyZm9vYmFyZm9vYmFy</StorageAccountKey><ContainerSas>c?sig=x</ContainerSas>",
      }),
      "ManifestFormatInvalid",
      /exactly one/,
    ],
    [
      "SAS without token",
      importManifest(okBlob(), { cred: "<ContainerSas>mycontainer</ContainerSas>" }),
      "ManifestFormatInvalid",
      /<container>\?<sas-token>/,
    ],
    ["NUL in XML", importManifest(okBlob("c1c/x", "\\a&#0;b")), "ManifestFormatInvalid", /not well-formed/],
    [
      "DriveId after BlobList",
      `<DriveManifest Version="2014-11-01"><Drive><StorageAccountKey>Zm9vYmFyZm9vYmFyZm9vYmFy</StorageAccountKey><BlobList>${okBlob()}</BlobList><DriveId>X</DriveId></Drive></DriveManifest>`,
      "ManifestFormatInvalid",
      /DriveId must appear before/,
    ],
    // found by the fuzzer below: a Blob with no BlobList around it once crashed the reader with a TypeError
    [
      "Blob outside a BlobList",
      `<DriveManifest Version="2014-11-01"><Drive><DriveId>A</DriveId><StorageAccountKey>Zm9vYmFyZm9vYmFyZm9vYmFy</StorageAccountKey>${okBlob()}</Drive></DriveManifest>`,
      "ManifestFormatInvalid",
      /inside a BlobList/,
    ],
    [
      "two Drives",
      `<DriveManifest Version="2014-11-01"><Drive><DriveId>A</DriveId></Drive><Drive/></DriveManifest>`,
      "ManifestFormatInvalid",
      /exactly one Drive/,
    ],
    [
      "no BlobList",
      `<DriveManifest Version="2014-11-01"><Drive><DriveId>A</DriveId><StorageAccountKey>Zm9vYmFyZm9vYmFyZm9vYmFy</StorageAccountKey></Drive></DriveManifest>`,
      "ManifestFormatInvalid",
      /no BlobList/,
    ],
    [
      "list-level path escaping the drive",
      importManifest("", {
        lists: `<BlobList><MetadataPath Hash="E34F54B7086BCF4EC1601D056F4C7E37">\\..\\m.xml</MetadataPath>${okBlob()}</BlobList>`,
      }),
      "ManifestFormatInvalid",
      /escapes the drive root/,
    ],
  ];
  for (const [name, xml, status, message] of cases) {
    it(name, async () => {
      const e = await failure(xml);
      expect(e.status).toBe(status);
      expect(e.message).toMatch(message);
    });
  }

  it("a DriveId that is not this drive's serial", async () => {
    const e = await failure(
      importManifest(okBlob(), { driveId: "OTHER-SERIAL" }),
      "import",
      "WD-WMATV123456",
    );
    expect(e.status).toBe("ManifestDriveIdMismatch");
    expect(e.message).toContain("OTHER-SERIAL");
  });

  it("credentials in an export manifest", async () => {
    expect((await failure(importManifest(okBlob()), "export")).message).toMatch(
      /not allowed in an export manifest/,
    );
  });
});

describe("name rules", () => {
  it.each([["\\a\\b.txt"], ["/a/b"], ["a\\b"], ["\\été\\日本.txt"], ["\\a..b"]])("accepts %s", (p) =>
    expect(checkFilePath(p).ok).toBe(true),
  );
  it.each([
    [""],
    ["\\a\\\\b"],
    ["\\a\0b"],
    ["\\a\u0001b"],
    ["\\.\\a"],
    ["\\a\\"],
    ["\\LPT1"],
    ["\\aux.txt"],
    ["\\a "],
  ])("refuses %j", (p) => expect(checkFilePath(p).ok).toBe(false));
  it.each([["c1c/a"], ["$root/a.bmp"], ["abc/dir/file name.txt"], ["a-b/x"]])("accepts blob %s", (p) =>
    expect(checkBlobPath(p).ok).toBe(true),
  );
  it.each([["a/x"], ["ab--c/x"], ["-abc/x"], ["ABC/x"], ["abc/"], ["abc"], ["/abc/x"]])(
    "refuses blob %s",
    (p) => expect(checkBlobPath(p).ok).toBe(false),
  );
});

describe("fuzzing: the reader throws nothing but ManifestError", () => {
  const valid = importManifest(
    `${okBlob()}${blob(`<BlobPath>c1c/p</BlobPath><FilePath>\\p</FilePath><Length>1024</Length><PageRangeList><PageRange Offset="0" Length="512" Hash="263DC9C4B99C2177769C5EBE04787037"/></PageRangeList>`)}`,
  );
  const outcome = async (xml: string) => {
    try {
      await read(xml);
      return "ok";
    } catch (e) {
      if (e instanceof ManifestError) return "manifest-error";
      throw e;
    }
  };

  it("random strings", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 400 }), async (s) => {
        expect(["ok", "manifest-error"]).toContain(await outcome(s));
      }),
      { numRuns: 300 },
    );
  });

  it("mutations of a valid manifest (deletions, insertions, byte flips)", async () => {
    const mutation = fc.tuple(
      fc.nat({ max: valid.length - 1 }),
      fc.nat({ max: 40 }),
      fc.string({ maxLength: 12, unit: fc.constantFrom(..."<>/=\"'&;#!?[]-x0 \\\u0000".split("")) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (muts) => {
        let s = valid;
        for (const [at, del, ins] of muts) s = s.slice(0, at) + ins + s.slice(at + del);
        expect(["ok", "manifest-error"]).toContain(await outcome(s));
      }),
      { numRuns: 2000 },
    );
  });

  it("split at any chunk boundary it reads the same", async () => {
    const whole = await read(valid);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat({ max: valid.length }), { maxLength: 6 }), async (cuts) => {
        const bytes = Buffer.from(valid);
        const points = [0, ...cuts.sort((a, b) => a - b), bytes.length];
        const chunks = points.slice(1).map((p, i) => bytes.subarray(points[i]!, p));
        const items: ManifestItem[] = [];
        for await (const item of readManifest(chunks, { kind: "import" })) items.push(item);
        expect(items.filter((i) => i.type === "blob").map((i) => (i as { blob: ManifestBlob }).blob)).toEqual(
          whole.blobs.map((b) => b.blob),
        );
      }),
      { numRuns: 100 },
    );
  });
});
