/**
 * Mounting data volumes: read-only for import (never a byte written, ext4 journals not
 * replayed), read-write only for a drive assigned to an export job. NTFS through ntfs-3g, ext4
 * through the kernel, exFAT through the kernel or exfat-fuse. Anything else is refused clearly.
 */
import { mkdir, readFile, rmdir } from "node:fs/promises";
import type { DriveLogStatus } from "../formats/status.js";
import { CommandError, type Exec } from "./exec.js";

export const SUPPORTED_FILESYSTEMS = ["ntfs", "ext4", "ext3", "ext2", "exfat"] as const;

export class DriveError extends Error {
  constructor(
    readonly status: DriveLogStatus,
    message: string,
  ) {
    super(message);
    this.name = "DriveError";
  }
}

export type MountMode = "ro" | "rw";

/** True when something is mounted at `mountpoint` (per /proc/mounts). */
export async function isMounted(mountpoint: string): Promise<boolean> {
  const mounts = await readFile("/proc/mounts", "utf8").catch(() => "");
  return mounts.split("\n").some((l) => l.split(" ")[1] === mountpoint);
}

export async function mountVolume(
  exec: Exec,
  device: string,
  fsType: string | undefined,
  mountpoint: string,
  mode: MountMode,
): Promise<void> {
  if (!fsType)
    throw new DriveError(
      "DiskOperationFailed",
      `No filesystem found on ${device}: the drive is blank or unreadable.`,
    );
  if (!(SUPPORTED_FILESYSTEMS as readonly string[]).includes(fsType)) {
    throw new DriveError(
      "VolumeNotNtfs",
      `The data volume ${device} is ${fsType}; this station reads NTFS, ext4 and exFAT.`,
    );
  }
  await mkdir(mountpoint, { recursive: true });
  const safe = "nosuid,nodev,noexec";
  const run = async (cmd: string, args: string[]) => {
    try {
      await exec(cmd, args, { timeoutMs: 60_000 });
    } catch (e) {
      await rmdir(mountpoint).catch(() => undefined);
      throw new DriveError(
        "DiskOperationFailed",
        `Mounting ${device} (${fsType}) failed: ${(e as Error).message}`,
      );
    }
  };
  if (fsType === "ntfs")
    return run("ntfs-3g", [
      "-o",
      `${mode},${safe}${mode === "rw" ? ",windows_names" : ""}`,
      device,
      mountpoint,
    ]);
  if (fsType.startsWith("ext"))
    return run("mount", [
      "-t",
      fsType,
      "-o",
      `${mode},${safe}${mode === "ro" ? ",noload" : ""}`,
      device,
      mountpoint,
    ]);
  // exFAT: the kernel driver when the kernel has one, else FUSE.
  try {
    await exec("mount", ["-t", "exfat", "-o", `${mode},${safe}`, device, mountpoint], { timeoutMs: 60_000 });
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    await run("mount.exfat-fuse", ["-o", `${mode},${safe}`, device, mountpoint]);
  }
}

/** Unmounts and removes the mount point; `lazy` when the device is already gone. */
export async function unmountVolume(exec: Exec, mountpoint: string, lazy = false): Promise<void> {
  const r = await exec("umount", lazy ? ["-l", mountpoint] : [mountpoint], {
    allowFailure: true,
    timeoutMs: 60_000,
  });
  if (r.code !== 0 && !lazy) {
    // Still busy (a reader closing late): detach it from the tree now; the kernel finishes when the last user goes.
    await exec("umount", ["-l", mountpoint], { allowFailure: true, timeoutMs: 60_000 });
  }
  await rmdir(mountpoint).catch(() => undefined);
}
