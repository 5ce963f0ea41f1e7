/**
 * Every read of a drive's data, bounded by a timeout. A read that does not complete in time ends
 * its blob `IOFailed`; its promise is abandoned (an fs read keeps its libuv thread until the
 * kernel answers), so a drive that has hung `hungLimit` reads gets no more reads: its remaining
 * blobs end `IOFailed` too and the drive ends `CompletedMoreInfo`, without wedging the station.
 */
import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { type ManifestItem, type ReadManifestOptions, readManifest } from "../../formats/manifest.js";
import { ManifestError } from "../../formats/status.js";
import { FileFailure, readAt } from "./drive-files.js";

/** Reads `length` bytes at `offset` of an open drive file (into `into` when given). */
export type FileReader = (
  fh: FileHandle,
  offset: number,
  length: number,
  into: Buffer | undefined,
  filePath: string,
) => Promise<Buffer>;

export interface ReadLimits {
  timeoutMs: number;
  /** Hung reads after which the drive gets no more reads. */
  hungLimit: number;
  /**
   * Hung reads the whole station can hold (each pins an I/O thread): once reached, a drive that has
   * hung a read gets no more, whatever its own count. Unset: no station-wide bound.
   */
  stationHungLimit?: number;
  /** Tests inject a reader; the default is a plain positional read. */
  reader?: FileReader;
}

export const DEFAULT_READ_LIMITS: ReadLimits = { timeoutMs: 60_000, hungLimit: 3 };

/**
 * Reads abandoned after their timeout and still blocked in the kernel, station-wide. Each holds
 * an I/O thread, and the process's normal exit waits for every I/O thread: while this is above
 * zero only a signal can end the process (agent/main.ts).
 */
const abandonedReads = new Map<string, number>();
export const hungReadsInKernel = (): number => [...abandonedReads.values()].reduce((n, c) => n + c, 0);
/** The drive roots with a read still hung: tearing such a file system down would wait for the read. */
export const rootsWithHungReads = (): string[] => [...abandonedReads.keys()];
const count = (root: string, by: number) => {
  const n = (abandonedReads.get(root) ?? 0) + by;
  if (n > 0) abandonedReads.set(root, n);
  else abandonedReads.delete(root);
};

/**
 * Counts a read hung in the kernel outside `DriveReads` (a hashing thread stuck reading a drive
 * file back, hash-pool.ts) in the same station-wide accounting; the returned function uncounts it,
 * once, when the read returned at last.
 */
export function holdHungRead(root: string): () => void {
  count(root, 1);
  let held = true;
  return () => {
    if (held) count(root, -1);
    held = false;
  };
}

/** A read that did not complete in time (its buffer may still be written later), or was refused after too many. */
export class ReadHung extends FileFailure {}

export class DriveReads {
  private hung = 0;
  private readonly hungHandles = new WeakSet<FileHandle>();
  private readonly reader: FileReader;

  constructor(
    private readonly limits: ReadLimits = DEFAULT_READ_LIMITS,
    /** Where the drive is mounted (the station keeps a mount with a hung read; see rootsWithHungReads). */
    private readonly root = "",
  ) {
    this.reader = limits.reader ?? ((fh, offset, length, into) => readAt(fh, offset, length, into));
  }

  /** The drive has hung too many reads: schedule none. */
  get wedged(): boolean {
    return this.hung >= this.limits.hungLimit || this.stationFull;
  }

  /** The station's I/O threads held by hung reads reached their bound, and this drive is one that hangs. */
  private get stationFull(): boolean {
    const limit = this.limits.stationHungLimit;
    return this.hung > 0 && limit !== undefined && hungReadsInKernel() >= limit;
  }

  get wedgedMessage(): string {
    const station = this.hung < this.limits.hungLimit && this.stationFull;
    return `not read: ${this.hung} read${this.hung === 1 ? "" : "s"} on this drive hung for over ${this.limits.timeoutMs} ms${station ? `, and the station already holds ${hungReadsInKernel()} hung reads (its bound)` : ""}; check the drive and plug it in again`;
  }

  /** True when a read of this handle hung: closing it would wait for that read, so close it unawaited. */
  hasHung(fh: FileHandle): boolean {
    return this.hungHandles.has(fh);
  }

  /**
   * Opens a drive file within the same bound: on a stalled drive the lookups of an open hang as
   * a read does (a disk serves its requests in turn). An open that answers after its timeout has
   * its handle closed.
   */
  async open(filePath: string, opening: Promise<FileHandle>): Promise<FileHandle> {
    if (this.wedged) {
      void opening.then(
        (fh) => fh.close().catch(() => undefined),
        () => undefined,
      );
      throw new ReadHung("IOFailed", `${filePath}: ${this.wedgedMessage}`);
    }
    let timer: NodeJS.Timeout | undefined;
    let late = false;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        late = true;
        this.hung++;
        count(this.root, 1);
        reject(
          new ReadHung(
            "IOFailed",
            `${filePath}: opening it did not complete within ${this.limits.timeoutMs} ms`,
          ),
        );
      }, this.limits.timeoutMs);
    });
    void opening.then(
      (fh) => {
        if (!late) return;
        count(this.root, -1);
        void fh.close().catch(() => undefined);
      },
      () => {
        if (late) count(this.root, -1);
      },
    );
    try {
      return await Promise.race([opening, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async read(
    fh: FileHandle,
    filePath: string,
    offset: number,
    length: number,
    into?: Buffer,
  ): Promise<Buffer> {
    if (this.wedged) throw new ReadHung("IOFailed", `${filePath}: ${this.wedgedMessage}`);
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    let abandoned = false;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.hung++;
        this.hungHandles.add(fh);
        if (!settled) {
          abandoned = true;
          count(this.root, 1);
        }
        reject(
          new ReadHung(
            "IOFailed",
            `${filePath}: a read at byte ${offset} did not complete within ${this.limits.timeoutMs} ms`,
          ),
        );
      }, this.limits.timeoutMs);
    });
    const reading = this.reader(fh, offset, length, into, filePath);
    // An abandoned read may still fail later; when it returns at last, its thread is free again.
    void reading
      .catch(() => undefined)
      .finally(() => {
        settled = true;
        if (abandoned) count(this.root, -1);
      });
    try {
      return await Promise.race([reading, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * A drive file as a stream of 64 KiB chunks (the manifest: a million blobs never sit in memory),
 * the open and every read bounded by the drive's read timeout: a file whose reads hang ends in
 * `ReadHung` instead of holding the drive (and the stop) for good.
 */
export async function* readFileStream(path: string, reads: DriveReads): AsyncIterable<Buffer> {
  const fh = await reads.open(path, open(path, constants.O_RDONLY | constants.O_NONBLOCK));
  try {
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (let at = 0; ; ) {
      const got = await reads.read(fh, path, at, buf.length, buf);
      if (got.length === 0) return;
      at += got.length;
      yield Buffer.from(got);
      if (got.length < buf.length) return;
    }
  } finally {
    // Closing a handle with a read still in the kernel would wait for that read.
    if (reads.hasHung(fh)) void fh.close().catch(() => undefined);
    else await fh.close();
  }
}

/** The drive's manifest read through its bounded reads: a read that hangs is `ReadManifestFailed`. */
export async function* readDriveManifest(
  path: string,
  reads: DriveReads,
  options: ReadManifestOptions,
  /** Whose manifest, for the message: "drive X of job Y". */
  whose: string,
): AsyncGenerator<ManifestItem> {
  try {
    yield* readManifest(readFileStream(path, reads), options);
  } catch (e) {
    if (!(e instanceof ReadHung)) throw e;
    throw new ManifestError("ReadManifestFailed", `${whose}: reading the manifest failed (${e.message}).`);
  }
}
