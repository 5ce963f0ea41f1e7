/**
 * Damage on the medium, under the file system: the bytes of a file are found in the loop image's
 * backing file by their content (random test data is unique in the image) and overwritten there.
 * The loop device reads its backing file, so the drive now returns the damage; the file's page
 * cache (and a FUSE daemon's device cache) still hold what was written.
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";

/** Offset in `image` where `needle` is; throws unless it occurs exactly once. */
export function findOnMedium(image: string, needle: Buffer): number {
  const fd = openSync(image, "r");
  try {
    const step = 16 << 20;
    const buf = Buffer.allocUnsafe(step + needle.length);
    const found: number[] = [];
    for (let pos = 0; ; pos += step) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      for (let at = buf.subarray(0, n).indexOf(needle); at >= 0 && at < n; ) {
        if (at < step || n < buf.length) found.push(pos + at);
        at = buf.subarray(0, n).indexOf(needle, at + 1);
      }
      if (n < buf.length) break;
    }
    const unique = [...new Set(found)];
    if (unique.length !== 1)
      throw new Error(
        `${image}: the file's bytes were found ${unique.length} times on the medium, expected once`,
      );
    return unique[0]!;
  } finally {
    closeSync(fd);
  }
}

/**
 * Overwrites `length` bytes at `offset` of `image` with `bytes` (default: the complement of what
 * is there); returns what was there.
 */
export function damageOnMedium(image: string, offset: number, length = 4096, bytes?: Buffer): Buffer {
  const fd = openSync(image, "r+");
  try {
    const was = Buffer.alloc(length);
    readSync(fd, was, 0, length, offset);
    const bad = bytes ?? Buffer.from(was.map((b) => b ^ 0xff));
    writeSync(fd, bad, 0, length, offset);
    return was;
  } finally {
    closeSync(fd);
  }
}
