/**
 * Benchmark drives of any size: each file's bytes are an AES-128-CTR keystream keyed by its name
 * (pseudo-random, non-zero, incompressible, and reproducible at any offset), streamed onto the
 * mounted image in 4 MiB pieces, so no file is ever one Buffer: the old builders held each file
 * in one `randomBytes` Buffer, which stops at 2 GiB. The manifest is made by `station prepare`'s
 * code with skip-write (the files are already on the drive). Also plugging helpers: attach the
 * loop device, mount it for a tool that is not the agent (read-only to import from, read-write
 * to export onto), detach.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { prepareDrive } from "../src/prepare/prepare-drive.js";
import { attach, detach, makeDriveImage } from "../src/staging/images.js";
import { BENCH_KEY } from "./bench-agent.js";

const PIECE = 4 * 1024 * 1024;
const ZEROS = Buffer.alloc(PIECE);

export interface BenchFile {
  /** Path below the session folder, also the blob name below the destination. */
  rel: string;
  size: number;
}

/** `length` bytes of `rel`'s content from `offset` (a multiple of 16). */
export function fileBytes(rel: string, offset: number, length: number): Buffer {
  const key = createHash("md5").update(rel).digest();
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(offset / 16), 8);
  const c = createCipheriv("aes-128-ctr", key, iv);
  const out: Buffer[] = [];
  for (let done = 0; done < length; done += PIECE)
    out.push(c.update(ZEROS.subarray(0, Math.min(PIECE, length - done))));
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}

async function writeFile(path: string, f: BenchFile): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const fh = await open(path, "w");
  try {
    for (let off = 0; off < f.size; off += PIECE)
      await fh.write(fileBytes(f.rel, off, Math.min(PIECE, f.size - off)));
  } finally {
    await fh.close();
  }
}

export interface BenchDrive {
  image: string;
  driveId: string;
  manifestFile: string;
  manifestHash: string;
  bytes: number;
  files: number;
}

/** An ext4 drive image holding `files` in session1 (destination `dest`) and its manifest. */
export async function buildDrive(o: {
  image: string;
  driveId: string;
  files: BenchFile[];
  dest: string;
}): Promise<BenchDrive> {
  const bytes = o.files.reduce((a, f) => a + f.size, 0);
  // ext4 spends about 4 KiB per small file plus its inode; 12 % and 256 MiB of headroom.
  const sizeMiB = Math.ceil(((bytes + o.files.length * 8192) / 2 ** 20) * 1.12) + 256;
  let entry: { manifestFile: string; manifestHash: string } | undefined;
  await makeDriveImage(o.image, "ext4", sizeMiB, async (mnt) => {
    const session = join(mnt, "session1");
    for (const f of o.files) await writeFile(join(session, f.rel), f);
    const r = await prepareDrive({
      driveRoot: mnt,
      source: session,
      sessionId: "session1",
      destination: o.dest,
      driveId: o.driveId,
      credential: { kind: "accountKey", key: BENCH_KEY },
      blobType: "BlockBlob",
      disposition: "rename",
      skipWrite: true,
    });
    entry = { manifestFile: r.manifestFile, manifestHash: r.manifestHash };
  });
  return { image: o.image, driveId: o.driveId, ...entry!, bytes, files: o.files.length };
}

/** `count` files of `size` bytes, 40 to a folder. */
export const manyFiles = (count: number, size: number, prefix = "f"): BenchFile[] =>
  Array.from({ length: count }, (_, i) => ({ rel: `d${i % 40}/${prefix}-${i}.bin`, size }));

/** The whole-disk loop device's partition node, once udev/partx made it. */
function partitionOf(device: string): string {
  const part = `${device}p1`;
  for (let i = 0; i < 100 && !existsSync(part); i++) {
    if (i === 5) spawnSync("partx", ["-a", device]);
    execFileSync("sleep", ["0.02"]);
  }
  if (!existsSync(part)) throw new Error(`partition node ${part} did not appear`);
  return part;
}

/** Attaches `image` and mounts its partition read-only at `dir` (how a peer tool reads the drive). */
export const mountReadOnly = (image: string, dir: string) => mountDrive(image, dir, "ro");

/**
 * Attaches `image` and mounts its partition at `dir`: read-only for a peer tool reading an import
 * drive, read-write for one writing an export drive. `unmount` writes back what is dirty.
 */
export function mountDrive(
  image: string,
  dir: string,
  mode: "ro" | "rw",
): { device: string; unmount(): void } {
  const device = attach(image);
  mkdirSync(dir, { recursive: true });
  execFileSync("mount", ["-o", mode, partitionOf(device), dir]);
  return {
    device,
    unmount() {
      // A tool's last file handles can close just after it returns: retry, then detach lazily.
      for (let i = 0; i < 50 && spawnSync("umount", [dir]).status !== 0; i++) execFileSync("sleep", ["0.1"]);
      spawnSync("umount", ["-l", dir]);
      detach(device);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Unmounts, lazily, whatever is still mounted below `root` (an agent stopped mid-run). */
export function unmountBelow(root: string): void {
  spawnSync("sh", ["-c", `grep ' ${root}/' /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l`]);
}

/**
 * Runs a bench's `main`; however it ends: what it left mounted under `root` unmounted, every loop
 * device backed by a file under `root` detached, `root` removed, the process ended (exit code 1
 * after an error).
 */
export function runBench(main: () => Promise<void>, root: string): void {
  main()
    .catch((e) => {
      console.error(e);
      process.exitCode = 1;
    })
    .finally(() => {
      unmountBelow(root);
      const loops = spawnSync("sh", ["-c", `losetup -a | grep '${root}/' | cut -d: -f1`], {
        encoding: "utf8",
      });
      for (const d of loops.stdout.split("\n").filter(Boolean)) detach(d);
      rmSync(root, { recursive: true, force: true });
      process.exit();
    });
}

/** Loop devices backed by `image` (to detach after the agent is gone). */
export function loopsOf(image: string): string[] {
  const r = spawnSync("losetup", ["-j", image], { encoding: "utf8" });
  return r.stdout
    .split("\n")
    .map((l) => l.split(":")[0]!)
    .filter((d) => d.startsWith("/dev/loop"));
}

export const nameOf = (image: string) => basename(image, ".img");
