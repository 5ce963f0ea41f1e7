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

describe("opens on a stalled drive", () => {
  it("end IOFailed at the timeout, count as hung, and a late handle is closed", async () => {
    let answer: (fh: Parameters<FileReader>[0]) => void = () => undefined;
    let closed = false;
    const late = {
      close: async () => {
        closed = true;
      },
    } as unknown as Parameters<FileReader>[0];
    const reads = new DriveReads({ timeoutMs: 20, hungLimit: 2 }, "/mnt/drive-c");
    await expect(
      reads.open(
        "\\c.bin",
        new Promise((r) => {
          answer = r;
        }),
      ),
    ).rejects.toThrow(/opening it did not complete within 20 ms/);
    expect(rootsWithHungReads()).toContain("/mnt/drive-c");
    answer(late);
    await new Promise((r) => setTimeout(r, 10));
    expect(closed).toBe(true);
    expect(rootsWithHungReads()).not.toContain("/mnt/drive-c");
    // A second hang reaches the limit: the drive gets no more opens at all.
    await expect(reads.open("\\d.bin", new Promise(() => undefined))).rejects.toThrow(/did not complete/);
    expect(reads.wedged).toBe(true);
    closed = false;
    await expect(reads.open("\\e.bin", Promise.resolve(late))).rejects.toThrow(/2 reads on this drive hung/);
    await new Promise((r) => setTimeout(r, 10));
    expect(closed).toBe(true); // a handle the caller had already asked for is not leaked
  });
});

describe("the station-wide bound", () => {
  it("stops a drive that hangs once the station holds its bound of hung reads, and only such a drive", async () => {
    const never: FileReader = () => new Promise<Buffer>(() => undefined);
    const base = hungReadsInKernel();
    const limits = { timeoutMs: 10, hungLimit: 5, stationHungLimit: base + 2 };
    const first = new DriveReads({ ...limits, reader: never }, "/mnt/station-1");
    const second = new DriveReads({ ...limits, reader: never }, "/mnt/station-2");
    const healthy = new DriveReads({ ...limits, reader: async () => Buffer.from("fine") }, "/mnt/station-3");
    await expect(first.read(fh, "\\x", 0, 1)).rejects.toThrow(/did not complete/);
    expect(first.wedged).toBe(false); // 1 of its own 5, and the station below its bound
    await expect(second.read(fh, "\\y", 0, 1)).rejects.toThrow(/did not complete/);
    // The station now holds its bound: both hanging drives stop, the healthy one reads on.
    expect(first.wedged).toBe(true);
    expect(second.wedged).toBe(true);
    expect(first.wedgedMessage).toMatch(
      /1 read on this drive hung .*the station already holds \d+ hung reads/,
    );
    expect(healthy.wedged).toBe(false);
    expect((await healthy.read(fh, "\\z", 0, 4)).toString()).toBe("fine");
  });
});
