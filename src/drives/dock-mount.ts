/**
 * Mounting a plugged drive's data volume for the dock: BitLocker unlocked with its job's key,
 * a stale mount of an earlier run cleared first. A drive fault comes back as a copy-log status.
 */
import { join } from "node:path";
import type { DriveLogStatus } from "../formats/status.js";
import type { Job } from "../lifecycle/model.js";
import { unlockBitLocker } from "./bitlocker.js";
import type { DockedDrive } from "./dock-model.js";
import type { Exec } from "./exec.js";
import { dataVolume } from "./identity.js";
import type { IdentifiedDrive } from "./model.js";
import { DriveError, isMounted, type MountMode, mountVolume, unmountVolume } from "./mount.js";

/** The drive's mount point under mountRoot, from its dock key. */
const safeName = (key: string) => key.replace(/[^A-Za-z0-9_.-]+/g, "_").slice(-80);

/** Mounts the data volume (mode "ro" unless an export job owns the drive); the dock records where. */
export async function mountDataVolume(
  exec: Exec,
  mountRoot: string,
  id: IdentifiedDrive,
  docked: DockedDrive,
  mode: MountMode,
  jobs: Job[],
): Promise<{ root?: string; failure?: { status: DriveLogStatus; message: string } }> {
  if (id.kind === "mounted") {
    docked.mountpoint = id.mountpoint!;
    return { root: id.mountpoint! };
  }
  const volume = dataVolume(id);
  if (!volume)
    return {
      failure: { status: "DiskOperationFailed", message: `${id.device} has no partition or filesystem.` },
    };
  if (volume.fsType) docked.fsType = volume.fsType;
  const mountpoint = join(mountRoot, safeName(id.key));
  try {
    let device = volume.device;
    let fsType = volume.fsType;
    if (fsType === "BitLocker") {
      const key = jobs.flatMap((j) => j.drives).find((x) => x.driveId === id.serial)?.bitLockerKey;
      if (!key)
        throw new DriveError(
          "BitLockerFailed",
          `${volume.device} is BitLocker-encrypted and no job lists a key for drive ${id.serial ?? "(no serial)"}.`,
        );
      device = await unlockBitLocker(exec, volume.device, key, `${mountpoint}.dislocker`, mode);
      fsType = "ntfs";
    }
    // A mount left at our own mount point by an agent that crashed: clear it first.
    if (await isMounted(mountpoint)) await unmountVolume(exec, mountpoint, true);
    await mountVolume(exec, device, fsType, mountpoint, mode);
    docked.mountpoint = mountpoint;
    docked.mode = mode;
    return { root: mountpoint };
  } catch (e) {
    if (e instanceof DriveError) {
      docked.code = e.status;
      return { failure: { status: e.status, message: e.message } };
    }
    throw e;
  }
}
