/**
 * Files on a mounted drive: a manifest path opened only inside the drive (no `..`, no symlink
 * leading out), read errors mapped to copy-log statuses, exact reads at an offset.
 */
import { constants, type Stats } from "node:fs";
import { type FileHandle, lstat, open, realpath, stat } from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import { checkFilePath } from "../../formats/names.js";
import type { BlobStatus } from "../../formats/status.js";

/** A file of the drive cannot be used: the blob ends with `status` in the copy log. */
export class FileFailure extends Error {
  constructor(
    readonly status: BlobStatus,
    message: string,
  ) {
    super(message);
  }
}

const nonRegular = (k: Stats) =>
  k.isFIFO()
    ? "a FIFO"
    : k.isSocket()
      ? "a socket"
      : k.isBlockDevice() || k.isCharacterDevice()
        ? "a device node"
        : "not a regular file";

/**
 * The drive went away under a transfer: its mount root is no longer a mount point (the dock
 * unmounted it) or is gone. A read failing then is a cancellation, never the blob's fault.
 */
export async function driveGone(root: string): Promise<boolean> {
  try {
    const [r, parent] = await Promise.all([stat(root), stat(dirname(root))]);
    return r.dev === parent.dev;
  } catch {
    return true;
  }
}

export async function openInside(root: string, filePath: string): Promise<FileHandle> {
  const check = checkFilePath(filePath);
  if (!check.ok) throw new FileFailure(check.status, check.reason);
  const path = join(root, ...check.segments);
  try {
    // The path must stay on the drive even through symlinks (ext4 drives can carry them).
    const real = await realpath(path);
    const realRoot = await realpath(root);
    if (!real.startsWith(realRoot + sep))
      throw new FileFailure("FileNameInvalid", `${filePath} leads outside the drive`);
    // Only regular files are opened: a FIFO, socket or device node would block a read (and a
    // libuv thread, and even process.exit) for good. lstat first; O_NONBLOCK + fstat guard a swap.
    const kind = await lstat(real);
    if (!kind.isFile())
      throw new FileFailure("FileAccessDenied", `${filePath} is ${nonRegular(kind)}: not read`);
    const fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    if (!(await fh.stat()).isFile()) {
      await fh.close();
      throw new FileFailure("FileAccessDenied", `${filePath} changed into a non-regular file: not read`);
    }
    return fh;
  } catch (e) {
    if (e instanceof FileFailure) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR")
      throw new FileFailure("FileNotFound", `${filePath} is not on the drive`);
    if (code === "EACCES" || code === "EPERM")
      throw new FileFailure("FileAccessDenied", `${filePath} cannot be read (${code})`);
    if (code === "ENAMETOOLONG")
      throw new FileFailure("FileNameTooLong", `${filePath} is too long for this filesystem`);
    throw new FileFailure("IOFailed", `${filePath}: ${code ?? (e as Error).message}`);
  }
}

/** Reads exactly `length` bytes at `offset` (into `into` when given), fewer only at end of file. */
export async function readAt(fh: FileHandle, offset: number, length: number, into?: Buffer): Promise<Buffer> {
  const buf = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}
