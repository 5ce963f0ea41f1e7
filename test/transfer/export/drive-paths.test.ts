import { describe, expect, it } from "vitest";
import { checkFilePath } from "../../../src/formats/names.js";
import { DrivePathMapper, MAX_FILE_PATH, safeSegment } from "../../../src/transfer/export/drive-paths.js";

const map = (m: DrivePathMapper, path: string, snapshot?: string) => {
  const [container, ...rest] = path.split("/");
  const p = m.propose({ container: container!, name: rest.join("/"), ...(snapshot ? { snapshot } : {}) });
  p.commit();
  return p.filePath;
};

describe("NTFS-safe drive paths", () => {
  it("mirrors an ordinary blob path", () => {
    expect(map(new DrivePathMapper(), "pictures/bob/wild/desert.jpg")).toBe(
      "\\pictures\\bob\\wild\\desert.jpg",
    );
    expect(map(new DrivePathMapper(), "$root/logo.bmp")).toBe("\\$root\\logo.bmp");
  });

  it.each([
    ["a:b*c?.txt", "a%3Ab%2Ac%3F.txt"],
    ['q"<>|', "q%22%3C%3E%7C"],
    ["back\\slash", "back%5Cslash"],
    ["trailing. ", "trailing%2E%20"],
    ["dots...", "dots%2E%2E%2E"],
    ["CON", "_CON"],
    ["nul.txt", "_nul.txt"],
    ["com1", "_com1"],
    ["CONSOLE", "CONSOLE"],
    [".", "%2E"],
    ["..", "%2E%2E"],
    ["", "%20"],
    ["tab\there", "tab%09here"],
  ])("segment %j -> %j", (seg, out) => {
    expect(safeSegment(seg)).toBe(out);
  });

  it("every mapped path passes the station's own FilePath check and stays under the limits", () => {
    const m = new DrivePathMapper();
    const names = [
      "a/../../etc/passwd",
      "x/./y",
      "CON/aux/nul.",
      "k//l",
      `long/${"é".repeat(300)}.bin`,
      `deep/${"d/".repeat(600)}f`,
    ];
    for (const n of names) {
      const p = map(m, `c/${n}`);
      const check = checkFilePath(p);
      expect(check.ok, `${n} -> ${p}`).toBe(true);
      expect(p.length).toBeLessThanOrEqual(MAX_FILE_PATH);
    }
  });

  it("case collisions and file/directory collisions get distinct paths, deterministically", () => {
    const run = () => {
      const m = new DrivePathMapper();
      return ["c/a/B.txt", "c/a/b.txt", "c/A/x", "c/f", "c/F/g", "c/a/B.txt.properties"].map((p) =>
        map(m, p),
      );
    };
    const out = run();
    expect(out).toEqual([
      "\\c\\a\\B.txt",
      "\\c\\a\\b (2).txt",
      "\\c\\a\\x", // the directory keeps its first casing
      "\\c\\f",
      "\\c\\F~2\\g",
      "\\c\\a\\B.txt (2).properties",
    ]);
    expect(new Set(out.map((p) => p.toUpperCase())).size).toBe(out.length);
    expect(run()).toEqual(out);
  });

  it("snapshots get their own file beside the base blob", () => {
    const m = new DrivePathMapper();
    expect(map(m, "c/pic.jpg", "2026-11-23T09:00:01.1234567Z")).toBe(
      "\\c\\pic (snapshot 2026-11-23T090001.1234567Z).jpg",
    );
    expect(map(m, "c/pic.jpg")).toBe("\\c\\pic.jpg");
  });

  it("a reserved name (the drive's manifest) is never given to a blob", () => {
    const m = new DrivePathMapper();
    m.reserve("\\DRIVE1.manifest");
    const p = m.propose({ container: "drive1.manifest", name: "x" });
    expect(p.filePath).toBe("\\drive1.manifest~2\\x");
  });
});
