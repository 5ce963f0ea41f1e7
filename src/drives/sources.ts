/**
 * Scan adapters: each returns the drives it sees now. The watcher diffs successive scans.
 *  - physical disks via drivelist (the station's system disk excluded);
 *  - loop devices via sysfs, opt-in for staging (drivelist skips them), limited to images in
 *    the configured directories so the station never touches someone else's loop device
 *    (`<image>.serial`, when present, stands in for the hardware serial a real drive reports);
 *  - volumes someone else already mounted, via node-disk-info.
 */
import { readdir, readFile } from "node:fs/promises";
import { resolve, sep } from "node:path";
import type { AttachedDrive } from "./model.js";

export type Scan = () => Promise<AttachedDrive[]>;

export interface DrivelistDrive {
  device: string;
  size: number | null;
  description: string;
  isSystem: boolean;
  isVirtual: boolean | null;
  mountpoints: { path: string }[];
}

/** drivelist's `list` is injected, so the adapter is testable without hardware. */
export function physicalScan(list: () => Promise<DrivelistDrive[]>, excludeDevices: string[] = []): Scan {
  return async () =>
    (await list())
      .filter(
        (d) =>
          !d.isSystem &&
          !d.isVirtual &&
          !excludeDevices.includes(d.device) &&
          !d.mountpoints.some((m) => m.path === "/" || m.path.startsWith("/boot")),
      )
      .filter((d) => !/\/(loop|zram|ram|sr|md|dm-)\d*/.test(d.device))
      .map((d) => ({
        key: `disk:${d.device}:${d.size ?? 0}`,
        kind: "physical",
        device: d.device,
        size: d.size ?? 0,
        model: d.description,
      }));
}

const readText = async (path: string): Promise<string | undefined> => {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch {
    return undefined;
  }
};

/** Loop devices with a backing file inside one of `imageDirs`. */
export function loopScan(imageDirs: string[], sysBlock = "/sys/block"): Scan {
  const dirs = imageDirs.map((d) => resolve(d) + sep);
  return async () => {
    const out: AttachedDrive[] = [];
    for (const name of await readdir(sysBlock)) {
      if (!/^loop\d+$/.test(name)) continue;
      const backing = await readText(`${sysBlock}/${name}/loop/backing_file`);
      // An image deleted or moved out of the staging directories is a pulled drive.
      if (!backing || backing.endsWith(" (deleted)") || !dirs.some((d) => backing.startsWith(d))) continue;
      const sectors = Number((await readText(`${sysBlock}/${name}/size`)) ?? 0);
      const drive: AttachedDrive = {
        key: `loop:${name}:${backing}`,
        kind: "loop",
        device: `/dev/${name}`,
        size: sectors * 512,
        backingFile: backing,
      };
      // Staging stand-in for a hardware serial: `<image>.serial` next to the image.
      const serial = await readText(`${backing}.serial`);
      if (serial) drive.serial = serial;
      out.push(drive);
    }
    return out;
  };
}

export interface MountedVolume {
  filesystem: string;
  mounted: string;
  blocks: number;
}

/** Volumes already mounted under one of `roots` (by an operator or automounter). */
export function mountedScan(getDiskInfo: () => Promise<MountedVolume[]>, roots: string[]): Scan {
  const prefixes = roots.map((r) => resolve(r) + sep);
  return async () =>
    (await getDiskInfo())
      .filter((v) => prefixes.some((p) => `${v.mounted}${sep}`.startsWith(p) && `${v.mounted}${sep}` !== p))
      .map((v) => ({
        key: `mounted:${v.mounted}:${v.filesystem}`,
        kind: "mounted",
        device: v.filesystem,
        size: v.blocks * 1024,
        mountpoint: v.mounted,
      }));
}
