/**
 * The staged suites' gate: in CI (CI=true) a missing piece fails the suite loudly; elsewhere
 * the suite skips and says why.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { vi } from "vitest";

export * from "../../src/staging/images.js";

const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** Why staged tests cannot run here, or undefined when they can. */
export function stagedUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "staged drive tests need root (loop devices, mount)";
  if (!existsSync("/dev/loop-control")) return "no /dev/loop-control: loop devices are not available";
  for (const tool of [
    "losetup",
    "sfdisk",
    "partx",
    "blkid",
    "mkfs.ext4",
    "mkfs.ntfs",
    "mkfs.exfat",
    "ntfs-3g",
    "mount.exfat-fuse",
    "mkfs.minix",
  ]) {
    try {
      run("sh", ["-c", `command -v ${tool}`]);
    } catch {
      return `${tool} is not installed (Debian packages: util-linux, fdisk, e2fsprogs, ntfs-3g, exfatprogs, exfat-fuse)`;
    }
  }
  return undefined;
}

/**
 * The staged suites' one deadline for every test and hook: only a hang reaches it. On a loaded
 * 2-core machine a step that takes seconds alone can take minutes, so no staged test carries a
 * wall-clock budget of its own; each wait inside polls for its condition, bounded by its own
 * generous deadline that names what it waited for.
 */
export const STAGED_DEADLINE_MS = 15 * 60_000;

/** Call at the top of a staged test file: its tests and hooks get STAGED_DEADLINE_MS. */
export function stagedDeadlines(): void {
  vi.setConfig({ testTimeout: STAGED_DEADLINE_MS, hookTimeout: STAGED_DEADLINE_MS });
}

/** Call at the top of a staged suite: fails loudly in CI, skips with the reason elsewhere. */
export function stagedGate(suite: string): boolean {
  const why = stagedUnavailable();
  if (!why) return true;
  if (process.env.CI) throw new Error(`Staged suite "${suite}" cannot run in CI: ${why}.`);
  console.warn(`SKIPPING staged suite "${suite}": ${why}.`);
  return false;
}

/** The agent's drive settings for a staged suite: loop images in `images`, mounts under `root/mnt`. */
export const loopDrives = (images: string, root: string) => ({
  enabled: true,
  physical: false,
  pollIntervalMs: 200,
  loopImageDirs: [images],
  mountRoot: join(root, "mnt"),
});
