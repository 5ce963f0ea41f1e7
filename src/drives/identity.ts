/**
 * Identity of an attached drive: serial number, partitions and filesystem types. Works without
 * udev (these stations, and containers, may have none): partitions come from sysfs, filesystem
 * types from a direct `blkid -p` probe, serials from lsblk/udev or sysfs. drivelist reports no
 * serials, and loop devices have none.
 */
import { access, readdir, readFile } from "node:fs/promises";
import { basename } from "node:path";
import type { Exec } from "./exec.js";
import type { AttachedDrive, IdentifiedDrive, Partition } from "./model.js";

const readText = async (path: string): Promise<string | undefined> => {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch {
    return undefined;
  }
};

export function parseBlkidExport(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** SCSI VPD page 0x80 (unit serial number): 4 header bytes, then the serial. */
export function parseVpdPage80(buf: Buffer): string | undefined {
  if (buf.length < 4 || buf[1] !== 0x80) return undefined;
  const len = buf.readUInt16BE(2);
  const s = buf
    .subarray(4, 4 + len)
    .toString("latin1")
    .replace(/\0/g, "")
    .trim();
  return s || undefined;
}

export async function readSerial(
  device: string,
  exec: Exec,
  sysBlock = "/sys/block",
): Promise<string | undefined> {
  const name = basename(device);
  if (name.startsWith("loop")) return undefined;
  const viaLsblk = (
    await exec("lsblk", ["-dno", "SERIAL", device], { allowFailure: true }).catch(() => undefined)
  )?.stdout.trim();
  if (viaLsblk) return viaLsblk.replace(/\s+/g, "");
  const viaUdev = await exec("udevadm", ["info", "--query=property", `--name=${device}`], {
    allowFailure: true,
  }).catch(() => undefined);
  if (viaUdev?.code === 0) {
    const props = parseBlkidExport(viaUdev.stdout);
    const s = props.ID_SERIAL_SHORT ?? props.ID_SCSI_SERIAL;
    if (s) return s.replace(/\s+/g, "");
  }
  const nvme = await readText(`${sysBlock}/${name}/device/serial`);
  if (nvme) return nvme.replace(/\s+/g, "");
  try {
    return parseVpdPage80(await readFile(`${sysBlock}/${name}/device/vpd_pg80`))?.replace(/\s+/g, "");
  } catch {
    return undefined;
  }
}

async function listPartitions(
  name: string,
  sysBlock: string,
): Promise<{ name: string; number: number; size: number }[]> {
  const out = [];
  for (const entry of await readdir(`${sysBlock}/${name}`).catch(() => [] as string[])) {
    const number = await readText(`${sysBlock}/${name}/${entry}/partition`);
    if (number === undefined) continue;
    const sectors = Number((await readText(`${sysBlock}/${name}/${entry}/size`)) ?? 0);
    out.push({ name: entry, number: Number(number), size: sectors * 512 });
  }
  return out.sort((a, b) => a.number - b.number);
}

async function waitForNode(path: string, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      await access(path);
      return true;
    } catch {
      if (Date.now() > until) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export async function identify(
  drive: AttachedDrive,
  exec: Exec,
  sysBlock = "/sys/block",
): Promise<IdentifiedDrive> {
  if (drive.kind === "mounted") return { ...drive, partitions: [] };
  const name = basename(drive.device);
  const probe = async (dev: string) =>
    parseBlkidExport((await exec("blkid", ["-p", "-o", "export", dev], { allowFailure: true })).stdout);

  let parts = await listPartitions(name, sysBlock);
  const whole = await probe(drive.device);
  if (parts.length === 0 && whole.PTTYPE && drive.kind === "loop") {
    // A partitioned image whose partitions the kernel has not registered (no udev, a race with
    // losetup -P): ask for them, then wait for devtmpfs to create the nodes.
    await exec("partx", ["-a", drive.device], { allowFailure: true });
    parts = await listPartitions(name, sysBlock);
  }
  const partitions: Partition[] = [];
  for (const p of parts) {
    const device = `/dev/${p.name}`;
    await waitForNode(device, 2000);
    const info = await probe(device);
    const part: Partition = { device, number: p.number, size: p.size };
    if (info.TYPE) part.fsType = info.TYPE;
    if (info.LABEL) part.label = info.LABEL;
    if (info.UUID) part.uuid = info.UUID;
    partitions.push(part);
  }
  const out: IdentifiedDrive = { ...drive, partitions };
  const serial = drive.serial ?? (await readSerial(drive.device, exec, sysBlock));
  if (serial) out.serial = serial;
  if (partitions.length === 0 && whole.TYPE) out.fsType = whole.TYPE;
  return out;
}

/** The volume to read: the first partition with a filesystem (or BitLocker), else the whole disk. */
export function dataVolume(drive: IdentifiedDrive): { device: string; fsType?: string } | undefined {
  const withFs = drive.partitions.find((p) => p.fsType && p.fsType !== "swap");
  if (withFs)
    return withFs.fsType ? { device: withFs.device, fsType: withFs.fsType } : { device: withFs.device };
  if (drive.fsType) return { device: drive.device, fsType: drive.fsType };
  const first = drive.partitions[0];
  return first ? { device: first.device } : undefined;
}
