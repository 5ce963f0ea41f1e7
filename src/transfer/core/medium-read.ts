/**
 * Reading a file on a mounted drive from the MEDIUM, past every cache between the station and the
 * disk: what an export's read-back and `station verify-drive` hash, so a drive that does not hold
 * its bytes is caught before it ships.
 *
 * What it takes, per file system (measured on loop drives, kernel 6.18; see ARCHITECTURE.md,
 * "Export: read back from the medium"):
 * - ext4 (and a kernel exFAT): O_DIRECT on the file. The kernel reads the disk into our buffer,
 *   never the file's page cache. Buffers, offsets and lengths must be aligned (the device's
 *   logical block; we align to 4096, which covers 512e and 4Kn disks).
 * - NTFS through ntfs-3g, exFAT through exfat-fuse (FUSE, `fuseblk`): O_DIRECT on the file skips
 *   the kernel's FUSE page cache, but the daemon reads the block device through the DEVICE's
 *   buffer cache, which still holds what it wrote. So the device's cache is flushed first
 *   (BLKFLSBUF, `blockdev --flushbufs`: writes back dirty pages, drops clean ones) and then the
 *   file is read with O_DIRECT. Measured: without the flush a damaged sector reads back as
 *   written; with it the damage shows.
 * - Not used: `/proc/sys/vm/drop_caches` (drops every cache of the machine, 16 bays at once, and a
 *   container refuses it: EACCES here); posix_fadvise(DONTNEED) (no Node API; `dd iflag=nocache`
 *   would be a process per range and does not reach a FUSE daemon's device cache).
 * A disk's own volatile cache is out of reach of any of these; the datasync before the read-back
 *   asks the disk to flush it.
 *
 * Use: `mediumVolumeOf(path)` once per drive (the mount, its device, FUSE or not), then
 * `MediumFile.open(path, volume)`, `prepare()` after the bytes are synced and before reading (the
 * device flush when FUSE needs it), `read(offset, length)` as often as needed, `close()`.
 * The hashing threads read the same way through `DIRECT_READ_JS` (file-hasher.ts).
 */
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { type FileHandle, open, readFile, realpath } from "node:fs/promises";
import { promisify } from "node:util";

/** What offsets, lengths and buffers of a direct read are aligned to. */
export const DIRECT_ALIGN = 4096;

/** The mounted volume a file lives on, as far as reading its medium is concerned. */
export interface MediumVolume {
  mountPoint: string;
  /** The block device the volume is mounted from (e.g. /dev/loop3p1); undefined for a non-device mount. */
  device?: string;
  /** fstype as mounted: ext4, exfat, fuseblk (ntfs-3g, exfat-fuse), ... */
  fsType: string;
  /** Served by a FUSE daemon: the device's buffer cache must be flushed before each read-back. */
  fuse: boolean;
}

const unescapeMount = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The volume `path` is on, from /proc/self/mountinfo (the longest mount point containing it). */
export async function mediumVolumeOf(path: string): Promise<MediumVolume> {
  const real = await realpath(path);
  const info = await readFile("/proc/self/mountinfo", "utf8");
  let best: MediumVolume | undefined;
  for (const line of info.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const mountPoint = unescapeMount(left.split(" ")[4] ?? "");
    const [fsType = "", source = ""] = right.split(" ");
    const inside = real === mountPoint || real.startsWith(mountPoint === "/" ? "/" : `${mountPoint}/`);
    if (!inside || (best && best.mountPoint.length > mountPoint.length)) continue;
    const device = unescapeMount(source);
    best = {
      mountPoint,
      ...(device.startsWith("/dev/") ? { device } : {}),
      fsType,
      fuse: fsType === "fuseblk" || fsType.startsWith("fuse"),
    };
  }
  if (!best) throw new Error(`${path}: no mount found for it in /proc/self/mountinfo`);
  return best;
}

/**
 * Writes back and drops the block device's buffer cache (BLKFLSBUF, via util-linux `blockdev`).
 * Only clean pages are dropped: nothing written is lost. Affects this device only.
 */
export async function flushDeviceCache(device: string): Promise<void> {
  try {
    await promisify(execFile)("blockdev", ["--flushbufs", device], { timeout: 60_000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    throw new Error(
      `flushing the buffer cache of ${device} failed (${String(err.stderr ?? err.code ?? err.message).trim()}): the read-back could not reach the drive's medium`,
    );
  }
}

// The WebAssembly global without the DOM typings this project does not load.
const Wasm = (
  globalThis as unknown as {
    WebAssembly: { Memory: new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer } };
  }
).WebAssembly;

/**
 * A buffer whose memory starts at a page boundary (a WebAssembly memory is page-aligned), as
 * O_DIRECT requires; `bytes` is rounded up to 64 KiB.
 */
export function alignedBuffer(bytes: number): Buffer {
  const pages = Math.max(1, Math.ceil(bytes / 65536));
  return Buffer.from(new Wasm.Memory({ initial: pages, maximum: pages }).buffer);
}

/** [start, end) of the aligned window covering [offset, offset + length). */
export function alignedWindow(offset: number, length: number): [number, number] {
  const start = Math.floor(offset / DIRECT_ALIGN) * DIRECT_ALIGN;
  const end = Math.ceil((offset + length) / DIRECT_ALIGN) * DIRECT_ALIGN;
  return [start, end];
}

/**
 * The direct reader as plain CommonJS source, for the hashing threads (file-hasher.ts evaluates
 * it there). `readDirect(readSync, fd, buf, offset, length, onPiece)` reads [offset, offset +
 * length) through the page-aligned `buf` in aligned steps, hands the wanted bytes to `onPiece` in
 * order, and returns how many it got (fewer: the file ended).
 */
export const DIRECT_READ_JS = `
function readDirect(readSync, fd, buf, offset, length, onPiece) {
  const A = ${DIRECT_ALIGN};
  const end = offset + length;
  let pos = Math.floor(offset / A) * A;
  let got = 0;
  while (pos < end) {
    const want = Math.min(buf.length, Math.ceil((end - pos) / A) * A);
    const n = readSync(fd, buf, 0, want, pos);
    const from = Math.max(offset, pos) - pos;
    const to = Math.min(end, pos + n) - pos;
    if (to > from) { onPiece(buf.subarray(from, to)); got += to - from; }
    if (n < want) break;
    pos += n;
  }
  return got;
}
`;

/** A file on a drive, read from its medium. */
export class MediumFile {
  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    readonly volume: MediumVolume,
    private readonly buf: Buffer,
  ) {}

  /** Opens `path` for direct reads. `bufferBytes`: the largest step of one read (default 4 MiB). */
  static async open(path: string, volume: MediumVolume, bufferBytes = 4 << 20): Promise<MediumFile> {
    const fh = await open(path, constants.O_RDONLY | constants.O_DIRECT | constants.O_NOFOLLOW);
    return new MediumFile(fh, path, volume, alignedBuffer(bufferBytes));
  }

  get fd(): number {
    return this.fh.fd;
  }

  /**
   * Call after the bytes to check were synced and before reading them: on a FUSE volume, drops
   * the device's buffer cache, which would otherwise answer the daemon's reads.
   */
  async prepare(): Promise<void> {
    await prepareMediumRead(this.volume);
  }

  /**
   * Reads [offset, offset + length) from the medium, handing the bytes to `onPiece` in order
   * (each piece valid only during the call). Returns the bytes read: fewer when the file ended.
   */
  async read(offset: number, length: number, onPiece: (piece: Buffer) => void): Promise<number> {
    const end = offset + length;
    let [pos] = alignedWindow(offset, length);
    let got = 0;
    while (pos < end) {
      const want = Math.min(this.buf.length, Math.ceil((end - pos) / DIRECT_ALIGN) * DIRECT_ALIGN);
      const { bytesRead: n } = await this.fh.read(this.buf, 0, want, pos);
      const from = Math.max(offset, pos) - pos;
      const to = Math.min(end, pos + n) - pos;
      if (to > from) {
        onPiece(this.buf.subarray(from, to));
        got += to - from;
      }
      if (n < want) break;
      pos += n;
    }
    return got;
  }

  /** Reads [offset, offset + length) into a new buffer (shorter when the file ended). */
  async readRange(offset: number, length: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    await this.read(offset, length, (p) => parts.push(Buffer.from(p)));
    return Buffer.concat(parts);
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** Before a read-back on `volume`: the device flush FUSE needs (nothing for a kernel file system). */
export async function prepareMediumRead(volume: MediumVolume): Promise<void> {
  if (!volume.fuse) return;
  if (!volume.device)
    throw new Error(
      `${volume.mountPoint} is a FUSE mount without a block device: its medium cannot be read past the daemon's caches`,
    );
  await flushDeviceCache(volume.device);
}

/** Opens `path` for direct reads as a raw descriptor (the hashing threads read through it). */
export async function openDirect(path: string): Promise<FileHandle> {
  return open(path, constants.O_RDONLY | constants.O_DIRECT | constants.O_NOFOLLOW);
}
