/** The manifest reader on hostile blobs: one blob fails with its own status, the others go on. */
import { describe, expect, it } from "vitest";
import { blob, block, importManifest, okBlob, read } from "./manifest-fixtures.js";

describe("hostile manifests: one blob fails, the others go on", () => {
  const B = (inner: string) => blob(inner);
  const cases: [string, string, string, RegExp][] = [
    [
      "parent traversal",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\..\\..\\etc\\shadow</FilePath><Length>1</Length><BlockList>${block(0, 1)}</BlockList>`,
      ),
      "FileNameInvalid",
      /escapes the drive root/,
    ],
    [
      "absolute drive letter",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>C:\\Windows\\win.ini</FilePath><Length>1</Length><BlockList>${block(0, 1)}</BlockList>`,
      ),
      "FileNameInvalid",
      /drive letter/,
    ],
    [
      "UNC path",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\\\server\\share\\f</FilePath><Length>1</Length><BlockList>${block(0, 1)}</BlockList>`,
      ),
      "FileNameInvalid",
      /UNC/,
    ],
    [
      "reserved NTFS name",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\dir\\CON.txt</FilePath><Length>1</Length><BlockList>${block(0, 1)}</BlockList>`,
      ),
      "FileNameInvalid",
      /reserved device name/,
    ],
    [
      "NTFS-forbidden character",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\dir\\a|b</FilePath><Length>1</Length><BlockList>${block(0, 1)}</BlockList>`,
      ),
      "FileNameInvalid",
      /NTFS does not allow/,
    ],
    [
      "segment too long",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\${"a".repeat(256)}</FilePath><Length>1</Length><BlockList>${block(0, 1)}</BlockList>`,
      ),
      "FileNameTooLong",
      /longer than 255/,
    ],
    [
      "invalid container",
      B(
        `<BlobPath>Bad_Container/x</BlobPath><FilePath>\\x</FilePath><Length>1</Length><BlockList>${block(0, 1)}</BlockList>`,
      ),
      "Failed",
      /not a valid container name/,
    ],
    [
      "blob name ending with a dot",
      B(
        `<BlobPath>c1c/x.</BlobPath><FilePath>\\x</FilePath><Length>1</Length><BlockList>${block(0, 1)}</BlockList>`,
      ),
      "Failed",
      /ends with/,
    ],
    [
      "slash in a $root blob",
      B(
        `<BlobPath>$root/a/b</BlobPath><FilePath>\\x</FilePath><Length>1</Length><BlockList>${block(0, 1)}</BlockList>`,
      ),
      "Failed",
      /root container/,
    ],
    [
      "non-numeric Length",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>ten</Length><BlockList>${block(0, 1)}</BlockList>`,
      ),
      "Failed",
      /not a whole number/,
    ],
    [
      "Length beyond safe integers",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>9999999999999999</Length><BlockList>${block(0, 1)}</BlockList>`,
      ),
      "Failed",
      /out of range/,
    ],
    [
      "block gap",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>20</Length><BlockList>${block(0, 10)}${block(11, 9)}</BlockList>`,
      ),
      "Failed",
      /contiguous/,
    ],
    [
      "blocks short of Length",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>20</Length><BlockList>${block(0, 10)}</BlockList>`,
      ),
      "Failed",
      /cover 10 bytes but Length is 20/,
    ],
    [
      "block over 4 MiB",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>4194305</Length><BlockList>${block(0, 4194305)}</BlockList>`,
      ),
      "Failed",
      /not between 1 and 4194304/,
    ],
    [
      "some block Ids missing",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>20</Length><BlockList>${block(0, 10, ' Id="AAAAAA=="')}${block(10, 10)}</BlockList>`,
      ),
      "Failed",
      /all blocks or for none/,
    ],
    [
      "block Ids of different lengths",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>20</Length><BlockList>${block(0, 10, ' Id="AAAAAA=="')}${block(10, 10, ' Id="AQAAAAAAAAA="')}</BlockList>`,
      ),
      "Failed",
      /same encoded length/,
    ],
    [
      "block Id not Base64",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>10</Length><BlockList>${block(0, 10, ' Id="not base64!"')}</BlockList>`,
      ),
      "Failed",
      /not Base64/,
    ],
    [
      "bad block hash",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>1</Length><BlockList><Block Offset="0" Length="1" Hash="XYZ"/></BlockList>`,
      ),
      "Failed",
      /not a hex MD5/,
    ],
    [
      "misaligned page range",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>1024</Length><PageRangeList><PageRange Offset="100" Length="512" Hash="263DC9C4B99C2177769C5EBE04787037"/></PageRangeList>`,
      ),
      "Failed",
      /aligned/,
    ],
    [
      "overlapping page ranges",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>2048</Length><PageRangeList><PageRange Offset="0" Length="1024" Hash="263DC9C4B99C2177769C5EBE04787037"/><PageRange Offset="512" Length="512" Hash="263DC9C4B99C2177769C5EBE04787037"/></PageRangeList>`,
      ),
      "Failed",
      /overlaps/,
    ],
    [
      "page range past Length",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>512</Length><PageRangeList><PageRange Offset="512" Length="512" Hash="263DC9C4B99C2177769C5EBE04787037"/></PageRangeList>`,
      ),
      "Failed",
      /past Length/,
    ],
    [
      "page blob Length not 512-aligned",
      B(`<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>1000</Length><PageRangeList/>`),
      "Failed",
      /multiple of 512/,
    ],
    [
      "both lists",
      B(`<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>0</Length><BlockList/><PageRangeList/>`),
      "Failed",
      /exactly one of BlockList and PageRangeList/,
    ],
    [
      "no list",
      B(`<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>0</Length>`),
      "Failed",
      /exactly one of BlockList and PageRangeList/,
    ],
    [
      "disposition in the wrong case",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>0</Length><ImportDisposition>Overwrite</ImportDisposition><BlockList/>`,
      ),
      "Failed",
      /case-sensitive/,
    ],
    [
      "duplicate BlobPath",
      B(
        `<BlobPath>c1c/x</BlobPath><BlobPath>c1c/y</BlobPath><FilePath>\\x</FilePath><Length>0</Length><BlockList/>`,
      ),
      "Failed",
      /appears twice/,
    ],
    [
      "metadata path escaping",
      B(
        `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>0</Length><BlockList/><MetadataPath Hash="E34F54B7086BCF4EC1601D056F4C7E37">..\\secret</MetadataPath>`,
      ),
      "Failed",
      /escapes the drive root/,
    ],
    [
      "no FilePath",
      B("<BlobPath>c1c/x</BlobPath><Length>0</Length><BlockList/>"),
      "FileNameInvalid",
      /FilePath is missing/,
    ],
  ];
  for (const [name, bad, status, message] of cases) {
    it(name, async () => {
      const { blobs } = await read(
        importManifest(`${okBlob("c1c/before", "\\before")}${bad}${okBlob("c1c/after", "\\after")}`),
      );
      expect(blobs.map((b) => b.problem?.status)).toEqual([undefined, status, undefined]);
      expect(blobs[1]!.problem!.message).toMatch(message);
    });
  }

  it("50,001 blocks are too many", async () => {
    const blocks = Array.from({ length: 50_001 }, (_, i) => block(i, 1)).join("");
    const { blobs } = await read(
      importManifest(
        blob(
          `<BlobPath>c1c/x</BlobPath><FilePath>\\x</FilePath><Length>50001</Length><BlockList>${blocks}</BlockList>`,
        ),
      ),
    );
    expect(blobs[0]!.problem!.message).toMatch(/more than 50000 blocks: the limit for one blob/);
  });
});
