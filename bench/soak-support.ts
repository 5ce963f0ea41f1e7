/**
 * The soak script's instruments: a seeded PRNG, a source tree of large and small files, and the
 * final audit of the container against the source files. The counting proxy in front of the
 * storage lives in src/staging/counting-proxy.ts (the staged crash suites use it too).
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ContainerClient } from "@azure/storage-blob";

/** mulberry32: small, seedable, good enough to pick events. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SourceFile {
  name: string;
  size: number;
  md5: string;
}

/** Writes `large` files of `largeMiB` and `small` files of 1 B..2×`smallKiB` (random bytes) under `dir`. */
export async function writeSource(
  dir: string,
  o: { large: number; largeMiB: number; small: number; smallKiB: number; rand: () => number },
): Promise<SourceFile[]> {
  const files: SourceFile[] = [];
  const write = async (name: string, size: number) => {
    const path = join(dir, name);
    mkdirSync(join(path, ".."), { recursive: true });
    const md5 = createHash("md5");
    const out = createWriteStream(path);
    for (let left = size; left > 0; ) {
      const chunk = randomBytes(Math.min(left, 4 * 1024 * 1024));
      md5.update(chunk);
      left -= chunk.length;
      if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
    }
    await new Promise<void>((r, j) => {
      out.once("error", j);
      out.end(() => r());
    });
    files.push({ name, size, md5: md5.digest("base64") });
  };
  // Large files are not block-aligned: the last block of each is short.
  for (let i = 0; i < o.large; i++) await write(`large/big-${i}.bin`, o.largeMiB * 1024 * 1024 + 4097 * i);
  for (let i = 0; i < o.small; i++)
    await write(`small/d${i % 16}/f-${i}.bin`, 1 + Math.floor(o.rand() * 2 * o.smallKiB * 1024));
  return files;
}

export interface Audit {
  complete: number;
  corrupt: string[];
  missing: string[];
  wrongLength: string[];
  uncommitted: string[];
  strangers: string[];
}

const md5Of = async (stream: NodeJS.ReadableStream): Promise<string> => {
  const h = createHash("md5");
  for await (const chunk of stream) h.update(chunk as Buffer);
  return h.digest("base64");
};

/** Every blob of the container against the source: MD5 of the whole blob, length, uncommitted blocks, strangers. */
export async function audit(c: ContainerClient, source: SourceFile[], srcDir: string): Promise<Audit> {
  const r: Audit = { complete: 0, corrupt: [], missing: [], wrongLength: [], uncommitted: [], strangers: [] };
  const expected = new Map(source.map((f) => [f.name, f]));
  const seen = new Set<string>();
  // No container: nothing landed (every file is missing).
  if (!(await c.exists())) return { ...r, missing: source.map((f) => f.name) };
  for await (const b of c.listBlobsFlat({ includeUncommitedBlobs: true })) {
    const f = expected.get(b.name);
    if (!f) {
      r.strangers.push(b.name);
      continue;
    }
    seen.add(b.name);
    const blob = c.getBlockBlobClient(b.name);
    const blocks = await blob.getBlockList("uncommitted").catch(() => ({ uncommittedBlocks: [] }));
    if ((blocks.uncommittedBlocks ?? []).length) r.uncommitted.push(b.name);
    if (b.properties.contentLength !== f.size) {
      r.wrongLength.push(`${b.name} (${b.properties.contentLength} of ${f.size} bytes)`);
      continue;
    }
    const got = await md5Of((await blob.download()).readableStreamBody!);
    // The source file as it is now, not only its MD5 at creation: the drive copy came from it.
    const src = await md5Of(createReadStream(join(srcDir, f.name)));
    if (got !== f.md5 || src !== f.md5) r.corrupt.push(b.name);
    else r.complete++;
  }
  for (const f of source) if (!seen.has(f.name)) r.missing.push(f.name);
  return r;
}

/** The states of a process's threads (R, S, D…) with the kernel functions D threads wait in: where a slow stop waits. */
export function threadStates(pid: number): string {
  const states = new Map<string, number>();
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
        const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0]!;
        const wchan = state === "D" ? `@${readFileSync(`/proc/${pid}/task/${t}/wchan`, "utf8")}` : "";
        const key = `${comm}:${state}${wchan}`;
        states.set(key, (states.get(key) ?? 0) + 1);
      } catch {
        // the thread left
      }
    }
  } catch {
    return "gone";
  }
  return [...states].map(([k, n]) => `${n}× ${k}`).join(", ");
}
