/**
 * A read-back that hangs in the kernel (a dying drive) does not hang the pool: the request fails
 * `ReadHung` after the read timeout, its thread is written off (counted among the reads hung in
 * the kernel, so the agent exits by a signal), requests queued behind it are served by a fresh
 * thread, and when the read returns at last nothing breaks and the count comes back down.
 *
 * The hang is real: a FIFO opened read-write, read as a stream, blocks in read(2) until something
 * is written to it. (A pread, what the threads do, refuses a pipe with ESPIPE, so the prelude reads
 * a FIFO as a stream; every other file is read as the station reads it.)
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, constants, openSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { hungReadsInKernel, ReadHung, rootsWithHungReads } from "../../src/transfer/core/drive-reads.js";
import { newStream } from "../../src/transfer/core/file-hasher.js";
import { HashPool } from "../../src/transfer/core/hash-pool.js";
import { useTempDir } from "../support/tmp.js";

const tmp = useTempDir();
const fds: number[] = [];
const pools: HashPool[] = [];
afterAll(async () => {
  // Whatever happened, no thread stays blocked on a FIFO: write to each, then close.
  for (const fd of fds.splice(0)) {
    writeSync(fd, Buffer.alloc(64));
    closeSync(fd);
  }
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

/** Reads of a FIFO block in read(2) until it is written (a pread would fail ESPIPE at once). */
const FIFO_READS_BLOCK = `
readAt = (fd, buf, off, len, pos) =>
  require("node:fs").fstatSync(fd).isFIFO() ? readSync(fd, buf, off, len, null) : readSync(fd, buf, off, len, pos);
`;

/** Polls `check` until it passes; only a hang reaches the deadline. */
async function eventually(check: () => void, ms = 30_000): Promise<void> {
  for (const end = Date.now() + ms; ; ) {
    try {
      check();
      return;
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

const hex = (b: Buffer) => createHash("md5").update(b).digest("hex").toUpperCase();

describe("a read-back that hangs in the kernel", () => {
  it("fails ReadHung after the read timeout; the thread is written off and counted, a fresh one serves the rest, and the late read breaks nothing", async () => {
    const dir = tmp();
    const fifo = join(dir, "dying-drive.fifo");
    execFileSync("mkfifo", [fifo]);
    const hangFd = openSync(fifo, constants.O_RDWR); // read-write: the open itself does not wait for a writer
    fds.push(hangFd);
    const data = randomBytes(3 << 20);
    writeFileSync(join(dir, "fine.bin"), data);
    const fineFd = openSync(join(dir, "fine.bin"), "r");
    const faults: string[] = [];
    const pool = new HashPool({
      threads: 1, // what waits behind the stuck read can only be served by the thread replacing it
      prelude: FIFO_READS_BLOCK,
      readTimeoutMs: 1500,
      hungLimit: 1,
      onFault: (m) => faults.push(m),
    });
    pools.push(pool);
    const root = join(dir, "drive");
    const before = hungReadsInKernel();
    const fine = (range: [number, number]) => pool.hash({ fd: fineFd, ranges: [range], each: true });
    // Two whole-blob hashes under way on the thread that will hang: a read-back's and a block stream.
    const fileStream = newStream();
    await pool.hash({ fd: fineFd, ranges: [[0, 1 << 20]], stream: fileStream });
    const blockStream = pool.stream();
    await blockStream.update(0, data.subarray(0, 1 << 20));

    const hung = pool.hash({
      fd: hangFd,
      ranges: [[0, 4096]],
      each: true,
      root,
      label: "drive DRIVE-9: \\cont\\x.bin",
    });
    const queued = [fine([0, 1 << 20]), fine([1 << 20, 2 << 20])]; // behind the stuck read, on its thread
    // The streams' last requests, queued behind it too: their state is on the stuck thread, so they
    // fail; sent to a fresh thread they would hash from nothing and answer a wrong MD5.
    const endings = [
      pool.hash({ fd: fineFd, ranges: [], stream: fileStream, wholeLength: 1 << 20 }),
      blockStream.digest(),
    ].map((p) =>
      p.then(
        () => "answered",
        (e: Error) => e.message,
      ),
    );
    const err = await hung.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ReadHung);
    expect((err as ReadHung).status).toBe("IOFailed");
    expect((err as Error).message).toMatch(
      /^drive DRIVE-9: \\cont\\x\.bin: reading it back from the drive did not complete within 1500 ms; .*check it/,
    );
    // The requests that waited behind it are answered, by the fresh thread.
    expect((await Promise.all(queued)).map((r) => r.each[0])).toEqual([
      hex(data.subarray(0, 1 << 20)),
      hex(data.subarray(1 << 20, 3 << 20)),
    ]);
    for (const ending of await Promise.all(endings)) expect(ending).toMatch(/hashing thread stopped/);
    expect(pool.writtenOff).toBe(1);
    expect(pool.size).toBe(1); // back to its configured count
    expect(pool.started).toBe(2);
    expect(hungReadsInKernel()).toBe(before + 1);
    expect(rootsWithHungReads()).toContain(root);
    expect(faults.join("\n")).toMatch(/written off/);

    // The pool goes on hashing, and the block side shares the fresh thread.
    const more = await Promise.all([fine([0, 3 << 20]), pool.md5(data)]);
    expect(more[0].each[0]).toBe(hex(data));
    expect(more[1].toString("hex").toUpperCase()).toBe(hex(data));
    // That drive, with its one allowed read still stuck, gets no more read-backs.
    await expect(
      pool.hash({ fd: fineFd, ranges: [[0, 10]], each: true, root, label: "drive DRIVE-9: \\cont\\y.bin" }),
    ).rejects.toThrow(/y\.bin: not read back: 1 read-backs of this drive are still hung/);

    // The drive answers at last: the stuck thread ends, nothing is counted any more, nothing crashes.
    writeSync(hangFd, Buffer.alloc(4096));
    await eventually(() => expect(hungReadsInKernel()).toBe(before));
    expect(rootsWithHungReads()).not.toContain(root);
    const again = await pool.hash({ fd: fineFd, ranges: [[0, 3 << 20]], each: true, root });
    expect(again.each[0]).toBe(hex(data));
    expect(pool.size).toBe(1);
    closeSync(fineFd);
  });

  it("a thread that keeps reading (a long read-back) is never written off, however long the whole request takes", async () => {
    const dir = tmp();
    const data = randomBytes(20 << 20);
    writeFileSync(join(dir, "long.bin"), data);
    const fd = openSync(join(dir, "long.bin"), "r");
    // Every read takes 100 ms: 20 reads of 1 MiB, ~2 s in all, over a 1.5 s read timeout (generous
    // per read: a loaded machine may not run a thread for a while).
    const SLOW_READS = `
const innerRead = readAt;
readAt = (...a) => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100); return innerRead(...a); };
`;
    const pool = new HashPool({ threads: 1, prelude: SLOW_READS, readTimeoutMs: 1500 });
    pools.push(pool);
    const t0 = Date.now();
    const r = await pool.hash({ fd, ranges: [[0, data.length]], each: true });
    expect(Date.now() - t0).toBeGreaterThan(1500); // the request as a whole outlived the timeout
    expect(r.each[0]).toBe(hex(data));
    expect(pool.writtenOff).toBe(0);
    closeSync(fd);
  });
});
