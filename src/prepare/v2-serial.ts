/** The serial number of the disk holding a mounted directory (findmnt, then lsblk), if it has one. */
import { exec } from "../drives/exec.js";

export async function driveSerial(mountPoint: string): Promise<string | undefined> {
  return serialOf(mountPoint).catch(() => undefined); // no findmnt or lsblk: the caller asks for DriveId
}

async function serialOf(mountPoint: string): Promise<string | undefined> {
  const opts = { allowFailure: true, timeoutMs: 10_000 };
  const source = (await exec("findmnt", ["-no", "SOURCE", "--target", mountPoint], opts)).stdout.trim();
  if (!source.startsWith("/dev/")) return undefined;
  const parent = (await exec("lsblk", ["-no", "PKNAME", source], opts)).stdout.trim().split("\n")[0];
  const disk = parent ? `/dev/${parent}` : source;
  const serial = (await exec("lsblk", ["-dno", "SERIAL", disk], opts)).stdout.trim();
  return /^[A-Za-z0-9._-]{1,64}$/.test(serial) ? serial : undefined;
}
