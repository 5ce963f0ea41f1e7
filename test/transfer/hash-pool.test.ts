/**
 * Hashing on the pool's threads: a block whose bytes do not match the manifest is never sent, even
 * with the pool saturated and its thread slow; a thread that dies or throws fails only the blob it
 * was hashing (IOFailed, never committed), the engine carries on, and the pool replaces the thread.
 */
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import PQueue from "p-queue";
import { afterEach, describe, expect, it } from "vitest";
import { systemClock } from "../../src/jobs/service.js";
import { SqliteStore } from "../../src/jobs/sqlite-store.js";
import { createJob } from "../../src/lifecycle/machine.js";
import { type ChunkOutcome, pipeBlocks } from "../../src/transfer/core/block-pipeline.js";
import { BufferPool } from "../../src/transfer/core/buffer-pool.js";
import { type BlockHashes, HashPool } from "../../src/transfer/core/hash-pool.js";
import { ProgressMeter } from "../../src/transfer/core/progress.js";
import { retrier } from "../../src/transfer/core/retry.js";
import { importDrive } from "../../src/transfer/import/engine.js";
import { FakeBlobPort } from "../support/fake-blob-port.js";
import { actor, importSpec, key, T0 } from "../support/jobs.js";
import { captureLog } from "../support/log.js";
import { preparedDir } from "../support/prepared-dir.js";
import { useTempDir } from "../support/tmp.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const md5 = (b: Buffer) => createHash("md5").update(b).digest();
const tmp = useTempDir();
const pools: HashPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});
const hashPool = (threads: number, prelude?: string) => {
  const p = new HashPool({ threads, ...(prelude ? { prelude } : {}) });
  pools.push(p);
  return p;
};

/** Every request waits ~3 ms on its thread first: a slow thread, so requests pile up behind it. */
const SLOW = `
const inner = serve;
serve = (m) => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3); return inner(m); };
`;

describe("hashing on the pool: a corrupt block is never sent", () => {
  it("with one slow thread saturated by four blobs' blocks, only verified bytes are sent and each bad block is held back", async () => {
    const pool = hashPool(1, SLOW);
    // Counts the block checks the thread has in hand: the proof the pool was saturated.
    let inHand = 0;
    let most = 0;
    const hashes: BlockHashes = {
      md5: async (d) => {
        most = Math.max(most, ++inHand);
        try {
          return await pool.md5(d);
        } finally {
          inHand--;
        }
      },
      stream: () => pool.stream(),
    };
    const signal = new AbortController().signal;
    const p = {
      queue: new PQueue({ concurrency: 4 }),
      pool: new BufferPool(64 * KiB, 40),
      hashes,
      signal,
      retrying: retrier({ signal, policy: { attempts: 1, baseMs: 1, maxMs: 1 }, log: captureLog().log }),
    };
    const size = 64 * KiB;
    const blobs = [3, 11, 17, undefined, 22].map((bad) => {
      const data = randomBytes(24 * size);
      const chunks = Array.from({ length: 24 }, (_, k) => ({
        offset: k * size,
        length: size,
        hash: md5(data.subarray(k * size, (k + 1) * size))
          .toString("hex")
          .toUpperCase(),
      }));
      const onDrive = Buffer.from(data);
      if (bad !== undefined) onDrive[bad * size + 7]! ^= 0xff; // the drive's copy differs from the manifest
      return { data, onDrive, chunks, bad };
    });
    const sent: string[] = [];
    const outcomes: string[] = [];
    const runs = blobs.map(async (b, i) => {
      const whole = hashes.stream();
      const broken = await pipeBlocks(p, {
        chunks: b.chunks,
        read: async (offset, length, into) => {
          b.onDrive.copy(into, 0, offset, offset + length);
          return into.subarray(0, length);
        },
        verified: (c, data) => whole.update(c.offset, data),
        send: async (k, data, digest) => {
          // What is sent is what was checked, and stays so while the request is in flight.
          expect(md5(data).toString("hex").toUpperCase()).toBe(b.chunks[k]!.hash);
          expect(digest.toString("hex").toUpperCase()).toBe(b.chunks[k]!.hash);
          await new Promise((r) => setTimeout(r, 2));
          expect(md5(data).toString("hex").toUpperCase()).toBe(b.chunks[k]!.hash);
          sent.push(`${i}/${k}`);
        },
        what: (k) => `block ${k} of blob ${i}`,
        onChunk: (k, outcome: ChunkOutcome) => {
          if (outcome !== "sent") outcomes.push(`${i}/${k} ${outcome}`);
        },
      });
      return { broken, whole: await whole.digest() };
    });
    const results = await Promise.all(runs);

    expect(most).toBeGreaterThanOrEqual(8); // many block checks queued on the one thread at once
    expect(outcomes.sort()).toEqual(["0/3 corrupted", "1/11 corrupted", "2/17 corrupted", "4/22 corrupted"]);
    for (const [i, b] of blobs.entries()) {
      expect(results[i]!.broken).toBe(b.bad !== undefined);
      for (let k = 0; k < 24; k++) expect(sent.includes(`${i}/${k}`)).toBe(k !== b.bad);
    }
    // The good blob's whole-blob MD5, computed on the thread in order while its blocks were checked.
    expect(results[3]!.whole.equals(md5(blobs[3]!.data))).toBe(true);
  });
});

/** A thread that meets "DIE!" at the start of a block exits; one that meets "THROW" throws. */
const FAULTY = `
const inner = serve;
serve = (m) => {
  const head = m.buf ? Buffer.from(m.buf, m.off, Math.min(5, m.len)).toString("latin1") : "";
  if (head.startsWith("DIE!")) process.exit(3);
  if (head === "THROW") throw new Error("this thread throws on THROW");
  return inner(m);
};
`;

describe("a hashing thread that dies or throws", () => {
  it("fails only the blob it was hashing (IOFailed, never committed); the pool starts a new thread and later blobs import", async () => {
    const marked = (head: string, size: number) => {
      const b = randomBytes(size);
      b.write(head, 0, "latin1");
      return b;
    };
    const lateDeath = randomBytes(10 * MiB);
    lateDeath.write("DIE!", 4 * MiB, "latin1"); // its second block kills the thread holding its stream
    const files: Record<string, Buffer> = {
      "a-dies.bin": marked("DIE!", 100 * KiB),
      "b-fine.bin": randomBytes(9 * MiB),
      "c-throws.bin": marked("THROW", 50 * KiB),
      "d-fine.bin": randomBytes(70 * KiB),
      "e-dies-late.bin": lateDeath,
      "f-fine.bin": randomBytes(5 * MiB),
    };
    const { root, manifestPath } = await preparedDir({ root: tmp(), src: tmp() }, files);
    const pool = hashPool(1, FAULTY);
    const store = new SqliteStore(join(tmp(), "db.sqlite"));
    const port = new FakeBlobPort();
    const log = captureLog();
    const job = createJob(key, importSpec(), undefined, T0, actor);
    const result = await importDrive({
      job,
      driveId: "DRIVE-1",
      root,
      manifestPath,
      resuming: false,
      portFor: () => port,
      pipeline: { queue: new PQueue({ concurrency: 4 }), pool: new BufferPool(4 * MiB, 6), hashes: pool },
      blobConcurrency: 1, // one blob at a time: each death can only reach the blob being hashed
      checkpoints: store,
      signal: new AbortController().signal,
      log: log.log,
      clock: systemClock,
      retry: { attempts: 2, baseMs: 1, maxMs: 2 },
      progress: new ProgressMeter(systemClock),
    });

    const status: Record<string, string> = {};
    for await (const c of store.entries(job.name, "DRIVE-1"))
      status[c.log!.blobPath.split("/").pop()!] = c.log!.status;
    store.close();
    expect(status).toEqual({
      "a-dies.bin": "IOFailed",
      "b-fine.bin": "Completed",
      "c-throws.bin": "IOFailed",
      "d-fine.bin": "Completed",
      "e-dies-late.bin": "IOFailed",
      "f-fine.bin": "Completed",
    });
    expect(result.blobs).toBe(6);
    for (const name of ["a-dies.bin", "c-throws.bin", "e-dies-late.bin"])
      expect(port.data("data", name)).toBeUndefined();
    expect(port.requests.some((r) => r.startsWith("commitBlockList") && r.includes("e-dies-late"))).toBe(
      false,
    );
    for (const name of ["b-fine.bin", "d-fine.bin", "f-fine.bin"])
      expect(port.data("data", name)?.equals(files[name]!)).toBe(true);
    // Two deaths, two fresh threads; the thrower carried on.
    expect(pool.started).toBe(3);
    expect(pool.size).toBe(1);
    expect(log.text()).toMatch(/hashing thread stopped/);
  });
});
