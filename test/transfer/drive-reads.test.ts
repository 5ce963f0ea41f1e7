/** The station-wide count of reads abandoned while still hung in the kernel (the exit and the dock's unmount consult it). */
import { describe, expect, it } from "vitest";
import {
  DriveReads,
  type FileReader,
  hungReadsInKernel,
  rootsWithHungReads,
} from "../../src/transfer/core/drive-reads.js";

const fh = {} as Parameters<FileReader>[0];

describe("reads hung in the kernel", () => {
  it("are counted per drive root from their timeout until they return at last", async () => {
    let finish: (b: Buffer) => void = () => undefined;
    const hanging: FileReader = () =>
      new Promise<Buffer>((r) => {
        finish = r;
      });
    const reads = new DriveReads({ timeoutMs: 20, hungLimit: 3, reader: hanging }, "/mnt/drive-a");
    const before = hungReadsInKernel();
    await expect(reads.read(fh, "\\a.bin", 0, 10)).rejects.toThrow(/did not complete within 20 ms/);
    expect(hungReadsInKernel()).toBe(before + 1);
    expect(rootsWithHungReads()).toContain("/mnt/drive-a");
    expect(reads.hasHung(fh)).toBe(true);
    finish(Buffer.alloc(10)); // the kernel answers at last: the thread is free again
    await new Promise((r) => setTimeout(r, 10));
    expect(hungReadsInKernel()).toBe(before);
    expect(rootsWithHungReads()).not.toContain("/mnt/drive-a");
  });

  it("a read that returns in time is never counted", async () => {
    const quick: FileReader = async () => Buffer.from("ok");
    const reads = new DriveReads({ timeoutMs: 1000, hungLimit: 3, reader: quick }, "/mnt/drive-b");
    expect((await reads.read(fh, "\\b.bin", 0, 2)).toString()).toBe("ok");
    await new Promise((r) => setTimeout(r, 10));
    expect(rootsWithHungReads()).not.toContain("/mnt/drive-b");
  });
});
