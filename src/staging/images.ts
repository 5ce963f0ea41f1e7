/**
 * Staging drives: a file, a GPT partition table, a real filesystem (NTFS via ntfs-3g, ext4,
 * exFAT), attached with `losetup -P` like a disk being plugged in. Used by the staged tests and
 * the benchmarks; needs root, losetup and the mkfs tools.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

export type Fs = "ntfs" | "ext4" | "exfat" | "xfs-like" | "none";

const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

function partitionNode(device: string): string {
  const name = basename(device);
  const part = `/dev/${name}p1`;
  for (let i = 0; i < 40 && !existsSync(`/sys/block/${name}/${name}p1`); i++) {
    if (i === 0) run("partx", ["-a", device]);
    else execFileSync("sleep", ["0.05"]);
  }
  for (let i = 0; i < 40 && !existsSync(part); i++) execFileSync("sleep", ["0.05"]);
  if (!existsSync(part)) throw new Error(`partition node ${part} did not appear`);
  return part;
}

/**
 * Attaches `image` as a loop device with its partitions. `directIo`: the loop device reads and
 * writes its backing file with O_DIRECT, so no second page cache sits under the drive's own (a
 * real disk has none). Benches that read gigabytes want it: with the buffered loop, the loop's
 * kernel worker went from ~5 % to ~45 % of a core halfway through an 8 GiB read (bench:scale).
 */
export function attach(image: string, o: { directIo?: boolean } = {}): string {
  return run("losetup", ["-fP", "--show", ...(o.directIo ? ["--direct-io=on"] : []), image]).trim();
}

export function detach(device: string): void {
  try {
    run("losetup", ["-d", device]);
  } catch {
    // already gone
  }
}

/**
 * Makes a disk image with one partition and `fs` on it, lets `populate` write to it through a
 * real read-write mount, then detaches it: the image is a drive on the shelf, not yet plugged in.
 */
export async function makeDriveImage(
  image: string,
  fs: Fs,
  sizeMiB: number,
  populate?: (root: string) => Promise<void>,
): Promise<void> {
  run("truncate", ["-s", `${sizeMiB}M`, image]);
  execFileSync("sfdisk", ["-q", image], { input: "label: gpt\n,,EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n" });
  const device = attach(image);
  try {
    const part = partitionNode(device);
    if (fs === "none") return;
    if (fs === "ntfs") run("mkfs.ntfs", ["-Q", "-F", "-L", "IMPORT", part]);
    // One inode per 8 KiB (ext4 defaults to 16): a drive of 4 KiB files runs out of inodes first.
    else if (fs === "ext4") run("mkfs.ext4", ["-q", "-F", "-i", "8192", "-L", "IMPORT", part]);
    else if (fs === "exfat") run("mkfs.exfat", ["-L", "IMPORT", part]);
    else if (fs === "xfs-like") {
      // A filesystem the station does not read: a minix filesystem signature is enough for blkid.
      run("mkfs.minix", [part]);
      return;
    }
    if (!populate) return;
    const mnt = mkdtempSync(join(tmpdir(), "populate-"));
    if (fs === "ntfs") run("ntfs-3g", [part, mnt]);
    else if (fs === "exfat") run("mount.exfat-fuse", [part, mnt]);
    else run("mount", [part, mnt]);
    try {
      await populate(mnt);
    } finally {
      run("umount", [mnt]);
      rmdirSync(mnt);
    }
  } finally {
    detach(device);
  }
}

export function ensureDir(d: string): string {
  mkdirSync(d, { recursive: true });
  return d;
}

export interface Session {
  /** Files to create: relative path → content. */
  files: Record<string, Buffer>;
  dest: string;
  blobType?: "BlockBlob" | "PageBlob";
  disposition?: "rename" | "no-overwrite" | "overwrite";
  /** Session-wide metadata / properties file contents (reference §2). */
  metadata?: string;
  properties?: string;
}

/**
 * A drive image prepared like a customer's: each session copied by `station prepare` into its
 * folder with a manifest; `tamper` then edits the drive (to corrupt a file after preparation).
 */
export async function preparedDrive(o: {
  image: string;
  fs: Fs;
  sizeMiB: number;
  driveId: string;
  accountKey: string;
  sessions: Session[];
  workDir: string;
  tamper?: (root: string) => Promise<void>;
}): Promise<{ driveId: string; manifestFile: string; manifestHash: string }> {
  const { prepareDrive } = await import("../prepare/prepare-drive.js");
  const { mkdirSync: mk, writeFileSync: wf } = await import("node:fs");
  let entry: { driveId: string; manifestFile: string; manifestHash: string } | undefined;
  await makeDriveImage(o.image, o.fs, o.sizeMiB, async (mnt) => {
    for (const [i, s] of o.sessions.entries()) {
      const src = join(o.workDir, `src-${basename(o.image)}-${i}`);
      for (const [rel, data] of Object.entries(s.files)) {
        mk(join(src, rel, ".."), { recursive: true });
        wf(join(src, rel), data);
      }
      const extra: { metadataFile?: string; propertiesFile?: string } = {};
      if (s.metadata) {
        extra.metadataFile = join(o.workDir, `meta-${basename(o.image)}-${i}.xml`);
        wf(extra.metadataFile, s.metadata);
      }
      if (s.properties) {
        extra.propertiesFile = join(o.workDir, `props-${basename(o.image)}-${i}.xml`);
        wf(extra.propertiesFile, s.properties);
      }
      const r = await prepareDrive({
        ...extra,
        driveRoot: mnt,
        source: src,
        sessionId: `session${i + 1}`,
        destination: s.dest,
        driveId: o.driveId,
        credential: { kind: "accountKey", key: o.accountKey },
        blobType: s.blobType ?? "BlockBlob",
        disposition: s.disposition ?? "rename",
        append: i > 0,
      });
      entry = { driveId: o.driveId, manifestFile: r.manifestFile, manifestHash: r.manifestHash };
    }
    await o.tamper?.(mnt);
  });
  return entry!;
}
