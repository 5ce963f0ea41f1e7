/**
 * BitLocker unlock through dislocker (Debian package). The recovery password goes to dislocker
 * on stdin (`-p` with no value makes it prompt), never on the command line, where any process
 * could read it from /proc. dislocker exposes the decrypted volume as a file, which is then
 * mounted like any NTFS volume. No BitLocker volume can be created on these machines
 * (no device-mapper, no Windows), so this is tested through the command it builds and the
 * error mapping, not against a real encrypted volume.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { DriveLogStatus } from "../formats/status.js";
import { CommandError, type Exec } from "./exec.js";
import { DriveError } from "./mount.js";

export const BITLOCKER_PASSWORD = /^\d{6}(-\d{6}){7}$/;

export function dislockerArgs(device: string, dislockerDir: string, mode: "ro" | "rw"): string[] {
  return ["-V", device, "-p", ...(mode === "ro" ? ["-r"] : []), "--", dislockerDir];
}

/** dislocker's CRITICAL messages → the copy log's BitLocker drive statuses (reference §3.5.1). */
const MESSAGES: [RegExp, DriveLogStatus, string][] = [
  [/Cannot parse volume header/i, "BitLockerNotActivated", "the volume is not BitLocker-encrypted"],
  [
    /None of the provided decryption mean|Can't decrypt correctly the VMK|invalid recovery password/i,
    "BitLockerKeyInvalid",
    "the job's BitLocker key does not unlock this volume",
  ],
  [
    /can't find a valid and matching VMK datum/i,
    "BitLockerProtectorNotFound",
    "the volume has no recovery-password protector",
  ],
  [
    /Failed to open|No such file or directory/i,
    "BitLockerVolumeNotFound",
    "the BitLocker volume could not be opened",
  ],
  [/Permission denied|fuse/i, "BitLockerUnlockVolumeFailed", "the unlocked volume could not be exposed"],
];

export function bitlockerFailure(output: string): { status: DriveLogStatus; reason: string } {
  for (const [re, status, reason] of MESSAGES) if (re.test(output)) return { status, reason };
  return { status: "BitLockerFailed", reason: "dislocker failed" };
}

/** Unlocks `device` into `dislockerDir`; returns the path of the decrypted volume file. */
export async function unlockBitLocker(
  exec: Exec,
  device: string,
  recoveryPassword: string,
  dislockerDir: string,
  mode: "ro" | "rw",
): Promise<string> {
  if (!BITLOCKER_PASSWORD.test(recoveryPassword)) {
    throw new DriveError(
      "BitLockerKeyInvalid",
      `The job's BitLocker key for ${device} is not a 48-digit recovery password.`,
    );
  }
  await mkdir(dislockerDir, { recursive: true });
  try {
    await exec("dislocker", dislockerArgs(device, dislockerDir, mode), {
      input: `${recoveryPassword}\n`,
      timeoutMs: 120_000,
    });
  } catch (e) {
    const out =
      e instanceof CommandError
        ? `${e.result?.stdout ?? ""}\n${e.result?.stderr ?? ""}\n${e.message}`
        : String(e);
    const { status, reason } = bitlockerFailure(out);
    throw new DriveError(status, `Unlocking BitLocker volume ${device} failed: ${reason}.`);
  }
  return join(dislockerDir, "dislocker-file");
}
