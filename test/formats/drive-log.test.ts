import { describe, expect, it } from "vitest";
import {
  cancelBlob,
  DriveLogWriter,
  type LogBlob,
  logBlobLocation,
  logTimestamp,
  readDriveLog,
  renderDriveLog,
} from "../../src/formats/drive-log.js";

// The documentation's verbose-log example (reference §3.7), byte for byte as our writer lays it out.
const VERBOSE_EXAMPLE = `<?xml version="1.0" encoding="utf-8"?>
<DriveLog Version="2014-11-01">
  <DriveId>WD-WMATV123456</DriveId>
  <Blob Status="Completed">
    <BlobPath>pictures/bob/wild/desert.jpg</BlobPath>
    <FilePath>\\Users\\bob\\Pictures\\wild\\desert.jpg</FilePath>
    <Length>98304</Length>
    <ImportDisposition Status="Created">overwrite</ImportDisposition>
    <BlockList>
      <Block Offset="0" Length="65536" Id="AAAAAA==" Hash="9C8AE14A55241F98533C4D80D85CDC68" Status="Completed"/>
      <Block Offset="65536" Length="32768" Id="AQAAAA==" Hash="DF54C531C9B3CA2570FDDDB3BCD0E27D" Status="Completed"/>
    </BlockList>
    <Metadata Status="Completed">
      <GlobalPath Hash="E34F54B7086BCF4EC1601D056F4C7E37">\\Users\\bob\\Pictures\\wild\\metadata.xml</GlobalPath>
    </Metadata>
  </Blob>
  <Status>CompletedWithErrors</Status>
</DriveLog>
`;

const desert: LogBlob = {
  status: "Completed",
  blobPath: "pictures/bob/wild/desert.jpg",
  filePath: "\\Users\\bob\\Pictures\\wild\\desert.jpg",
  length: 98304,
  disposition: { requested: "overwrite", status: "Created" },
  kind: "block",
  chunks: [
    {
      offset: 0,
      length: 65536,
      id: "AAAAAA==",
      hash: "9C8AE14A55241F98533C4D80D85CDC68",
      status: "Completed",
    },
    {
      offset: 65536,
      length: 32768,
      id: "AQAAAA==",
      hash: "DF54C531C9B3CA2570FDDDB3BCD0E27D",
      status: "Completed",
    },
  ],
  metadata: {
    status: "Completed",
    globalPath: {
      path: "\\Users\\bob\\Pictures\\wild\\metadata.xml",
      hash: "E34F54B7086BCF4EC1601D056F4C7E37",
    },
  },
};

describe("copy logs", () => {
  it("writes the documentation's verbose log example exactly, and reads it back", async () => {
    expect(renderDriveLog("WD-WMATV123456", [desert], "verbose", "CompletedWithErrors")).toBe(
      VERBOSE_EXAMPLE,
    );
    const back = await readDriveLog(VERBOSE_EXAMPLE);
    expect(back).toEqual({
      version: "2014-11-01",
      driveId: "WD-WMATV123456",
      blobs: [desert],
      status: "CompletedWithErrors",
    });
  });

  it("reads the RepairImport sample shape, which has no Version and a stray space in Hash", async () => {
    const log = await readDriveLog(
      `<DriveLog><DriveId>9WM35C2V</DriveId><Blob Status="CompletedWithErrors"><BlobPath>pictures/x.jpg</BlobPath><FilePath>\\x.jpg</FilePath><Length>1024</Length><PageRangeList><PageRange Offset="512" Length="512" Hash=" 9C8AE14A55241F98533C4D80D85CDC68" Status="Corrupted"/></PageRangeList></Blob><Status>CompletedWithErrors</Status></DriveLog>`,
    );
    expect(log.version).toBeUndefined();
    expect(log.blobs[0]!.chunks).toEqual([
      { offset: 512, length: 512, hash: "9C8AE14A55241F98533C4D80D85CDC68", status: "Corrupted" },
    ]);
  });

  it("a blob-level failure cascades: disposition and blocks Cancelled (documented FileNotFound example)", async () => {
    const failed = cancelBlob(
      { ...desert, chunks: desert.chunks!.map((c) => ({ ...c, status: "Failed" })) },
      "FileNotFound",
    );
    expect(failed.status).toBe("FileNotFound");
    expect(failed.disposition).toEqual({ requested: "overwrite", status: "Cancelled" });
    expect(failed.chunks!.map((c) => c.status)).toEqual(["Cancelled", "Cancelled"]);
  });

  it("the error log is the verbose log without what succeeded", async () => {
    const corrupted: LogBlob = {
      ...desert,
      blobPath: "pictures/bob/wild/broken.jpg",
      status: "CompletedWithErrors",
      chunks: [desert.chunks![0]!, { ...desert.chunks![1]!, status: "Corrupted" }],
    };
    const renamed: LogBlob = {
      ...desert,
      blobPath: "pictures/bob/wild/desert (2).jpg",
      disposition: { requested: "rename", status: "Renamed" },
    };
    const blobs = [desert, corrupted, renamed];

    const verbose = await readDriveLog(renderDriveLog("D1", blobs, "verbose"));
    expect(verbose.blobs.map((b) => b.blobPath)).toEqual(blobs.map((b) => b.blobPath));
    expect(verbose.status).toBe("CompletedWithErrors");

    const error = await readDriveLog(renderDriveLog("D1", blobs, "error"));
    expect(error.blobs.map((b) => b.blobPath)).toEqual([
      "pictures/bob/wild/broken.jpg",
      "pictures/bob/wild/desert (2).jpg",
    ]);
    expect(error.blobs[0]!.chunks).toEqual([{ ...desert.chunks![1]!, status: "Corrupted" }]);
    expect(error.blobs[0]!.metadata).toBeUndefined(); // completed metadata is left out
    expect(error.blobs[1]!.chunks).toEqual([]); // <BlockList /> with nothing failed
    expect(error.status).toBe("CompletedWithErrors");
  });

  it("derives the drive status: Completed, CompletedWithWarnings, CompletedWithErrors", async () => {
    expect((await readDriveLog(renderDriveLog("D", [desert], "verbose"))).status).toBe("Completed");
    const skipped: LogBlob = { ...desert, disposition: { requested: "no-overwrite", status: "Skipped" } };
    expect((await readDriveLog(renderDriveLog("D", [desert, skipped], "verbose"))).status).toBe(
      "CompletedWithWarnings",
    );
    expect(
      (await readDriveLog(renderDriveLog("D", [skipped, { ...desert, status: "IOFailed" }], "verbose")))
        .status,
    ).toBe("CompletedWithErrors");
  });

  it("escapes names and writes status-only elements", () => {
    let out = "";
    const w = new DriveLogWriter(
      (c) => {
        out += c;
      },
      "verbose",
      "D<1>",
    );
    w.add({
      status: "CompletedWithErrors",
      blobPath: "c/a&b",
      filePath: "\\a&b",
      length: 0,
      properties: { status: "Failed" },
    });
    w.end("CompletedWithErrors");
    expect(out).toContain("<DriveId>D&lt;1&gt;</DriveId>");
    expect(out).toContain("<BlobPath>c/a&amp;b</BlobPath>");
    expect(out).toContain('<Properties Status="Failed" />');
  });

  it("names and places log blobs by the key-vs-SAS rules", () => {
    const at = new Date("2017-08-13T19:46:18.350Z");
    expect(logTimestamp(at)).toBe("20170813-194618-350");
    const base = { jobName: "test-bn1-import-cpu100-02", driveId: "KV6H86XP", at };
    expect(logBlobLocation({ ...base, type: "verbose" })).toEqual({
      container: "waimportexport",
      blobName: "waies/test-bn1-import-cpu100-02_KV6H86XP_20170813-194618-350_verbose.xml",
    });
    expect(logBlobLocation({ ...base, type: "error", diagnosticsPath: "mylogs" })).toEqual({
      container: "mylogs",
      blobName: "waies/test-bn1-import-cpu100-02_KV6H86XP_20170813-194618-350_error.xml",
    });
    expect(logBlobLocation({ ...base, type: "manifest", sasContainer: "data" })).toEqual({
      container: "data",
      blobName: "waimportexport/waies/test-bn1-import-cpu100-02_KV6H86XP_20170813-194618-350_manifest.xml",
    });
    expect(
      logBlobLocation({ ...base, type: "error", sasContainer: "data", diagnosticsPath: "custom" }).blobName,
    ).toBe("custom/waies/test-bn1-import-cpu100-02_KV6H86XP_20170813-194618-350_error.xml");
  });
});
