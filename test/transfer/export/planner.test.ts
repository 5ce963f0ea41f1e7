import { describe, expect, it } from "vitest";
import { blobCost, geometryFor, sparseBytes, usableBytes } from "../../../src/transfer/export/capacity.js";
import { planDrive, previewExport, type SelectedBlob } from "../../../src/transfer/export/planner.js";

const MiB = 1024 * 1024;
const blob = (index: number, length: number, o: Partial<SelectedBlob> = {}): SelectedBlob => ({
  index,
  container: "c",
  name: `b${String(index).padStart(3, "0")}`,
  kind: "block",
  length,
  etag: `"${index}"`,
  lastModified: new Date(0),
  leased: false,
  archived: false,
  metadata: {},
  ...o,
});

describe("capacity model", () => {
  const ntfs = geometryFor("ntfs", 100 * MiB, 4096);
  it("data rounds up to the cluster; companions, records and the manifest entry are counted", () => {
    const c = blobCost(
      { kind: "block", length: 1, hasMetadata: false, filePathLength: 5, blobPathLength: 5 },
      ntfs,
      0,
    );
    expect(c).toBe(4096 + 4096 + 2 * 1024 + 600 + 2 * 10 * 3 + 120);
    const withMeta = blobCost(
      { kind: "block", length: 1, hasMetadata: true, filePathLength: 5, blobPathLength: 5 },
      ntfs,
      1,
    );
    expect(withMeta - c).toBe(4096 + 1024 + (1024 + 4096));
  });

  it("sparse page blobs cost their ranges at the sparse unit; exFAT costs the whole length", () => {
    const ranges = [
      { offset: 0, length: 512 },
      { offset: 1024, length: 512 },
      { offset: 10 * MiB, length: 128 * 1024 },
    ];
    expect(sparseBytes(ranges, 64 * 1024)).toBe(64 * 1024 + 128 * 1024);
    const page = {
      kind: "page" as const,
      length: 16 * MiB,
      ranges,
      hasMetadata: false,
      filePathLength: 1,
      blobPathLength: 1,
    };
    const onNtfs = blobCost(page, ntfs, 0);
    const onExfat = blobCost(page, geometryFor("exfat", 100 * MiB, 4096), 0);
    expect(onExfat - onNtfs).toBe(16 * MiB - 192 * 1024);
  });
});

describe("planning like PreviewExport", () => {
  const g = geometryFor("ntfs", 40 * MiB, 4096);
  const usable = usableBytes(g);

  it("first-fit in selection order: a blob that does not fit is offered to the next drive", () => {
    const sel = [blob(0, 20 * MiB), blob(1, 20 * MiB), blob(2, 5 * MiB), blob(3, 30 * MiB), blob(4, 1 * MiB)];
    const d1 = planDrive("D1", 1, g, sel);
    expect(d1.blobs.map((b) => b.index)).toEqual([0, 2, 4]);
    expect(d1.usedBytes).toBeLessThanOrEqual(usable);
    expect(d1.dataBytes).toBe(26 * MiB);
    const d2 = planDrive(
      "D2",
      2,
      g,
      sel.filter((b) => !d1.blobs.some((x) => x.index === b.index)),
    );
    expect(d2.blobs.map((b) => b.index)).toEqual([1]); // 30 MiB does not fit beside it
    expect(d1.usedBytes).toBe(d1.blobs.reduce((n, b) => n + b.cost, 0));
  });

  it("the preview reports drives needed, blobs and bytes per drive, and what cannot be exported", () => {
    const sel = [
      blob(0, 20 * MiB),
      blob(1, 20 * MiB),
      blob(2, 5 * MiB),
      blob(3, 30 * MiB),
      blob(4, 100 * MiB),
    ];
    const planned = [planDrive("D1", 1, g, sel)];
    const r = previewExport({
      selection: sel,
      selectors: 2,
      duplicateSelectors: 0,
      nonexistent: [{ selector: "c/none", reason: "no such blob" }],
      planned,
      docked: [{ driveId: "D2", geometry: g }],
      assumedDrive: g,
    });
    expect(r.drives.map((d) => [d.source, d.driveId, d.blobs])).toEqual([
      ["planned", "D1", 2],
      ["docked", "D2", 1],
      ["assumed", undefined, 1],
    ]);
    expect(r.drivesNeeded).toBe(3);
    expect(r.blobsExportable).toBe(4);
    expect(r.blobsNotExportable).toBe(1); // 100 MiB is larger than any drive
    expect(r.bytesSelected).toBe(175 * MiB);
    expect(r.drives[0]!.usedBytes).toBe(planned[0]!.usedBytes);
  });

  it("a plan is deterministic", () => {
    const sel = Array.from({ length: 50 }, (_, i) => blob(i, (i % 7) * 300_000 + 1));
    expect(planDrive("D", 1, g, sel)).toEqual(planDrive("D", 1, g, sel));
  });
});
