/**
 * Matching a plugged-in drive to a job's drive entry (reference §1.1, §1.10):
 *  1. by serial number: the entry whose driveId is the drive's serial;
 *  2. with no serial (loop images, some USB bridges), or a serial no job lists: by the manifest
 *     on the volume — an entry whose manifestFile exists there, whose MD5 is its manifestHash,
 *     and whose DriveId is the entry's driveId.
 * Then the manifest is verified: present, hash, DriveId, well-formed header. Each failure is a
 * drive status of the copy log (ManifestNotFound, ManifestCorrupted, ManifestDriveIdMismatch …).
 */
import { createHash } from "node:crypto";
import { realpath, stat } from "node:fs/promises";
import { join, sep } from "node:path";
import type { ManifestHeader } from "../formats/manifest.js";
import { checkFilePath } from "../formats/names.js";
import { type DriveLogStatus, ManifestError } from "../formats/status.js";
import { liveJobsListing } from "../lifecycle/drive-conflict.js";
import type { Drive, Job } from "../lifecycle/model.js";
import {
  DEFAULT_READ_LIMITS,
  DriveReads,
  type ReadLimits,
  readDriveManifest,
  readFileStream,
} from "../transfer/core/drive-reads.js";

export type MatchResult =
  | {
      kind: "import";
      job: Job;
      entry: Drive;
      manifestPath: string;
      header: ManifestHeader;
      by: "serial" | "manifest";
    }
  | { kind: "import-failed"; job: Job; entry: Drive; status: DriveLogStatus; message: string }
  | { kind: "export"; job: Job; entry: Drive }
  | { kind: "processed"; job: Job; entry: Drive }
  /** Two live jobs list this drive: which one it serves is the operator's call, never a guess. */
  | { kind: "conflict"; jobs: { job: Job; entry: Drive }[] }
  | { kind: "extra"; job: Job; driveId: string; trackingNumber?: string }
  | { kind: "unknown"; message: string };

export class ManifestAccess {
  private readonly hashes = new Map<string, string>();
  /** Every manifest read is bounded: a drive whose reads hang ends ReadManifestFailed, not stuck. */
  private readonly reads: DriveReads;

  constructor(
    private readonly root: string,
    limits: ReadLimits = DEFAULT_READ_LIMITS,
  ) {
    this.reads = new DriveReads(limits, root);
  }

  /** Resolves a manifestFile (`\DriveManifest.xml`) inside the volume; symlinks may not leave it. */
  async resolve(
    manifestFile: string,
  ): Promise<{ path: string } | { status: DriveLogStatus; message: string }> {
    const check = checkFilePath(manifestFile);
    if (!check.ok)
      return {
        status: check.status === "FileNameTooLong" ? "ManifestNameTooLong" : "ManifestNameInvalid",
        message: `manifestFile '${manifestFile}': ${check.reason}`,
      };
    const candidate = join(this.root, ...check.segments);
    let real: string;
    try {
      real = await realpath(candidate);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR")
        return { status: "ManifestNotFound", message: `No manifest at ${manifestFile} on the drive.` };
      if (code === "EACCES" || code === "EPERM")
        return {
          status: "ManifestAccessDenied",
          message: `The manifest ${manifestFile} cannot be read (${code}).`,
        };
      return { status: "ReadManifestFailed", message: `Reading ${manifestFile} failed: ${code}.` };
    }
    const rootReal = await realpath(this.root);
    if (!real.startsWith(rootReal + sep))
      return {
        status: "ManifestNameInvalid",
        message: `manifestFile '${manifestFile}' points outside the drive.`,
      };
    if (!(await stat(real)).isFile())
      return { status: "ManifestNotFound", message: `${manifestFile} on the drive is not a file.` };
    return { path: real };
  }

  /** MD5 (or SHA-256 for a 64-hex manifestHash, the 2021-01-01 examples' form) of a file, cached. */
  async digest(path: string, algorithm: "md5" | "sha256"): Promise<string> {
    const key = `${algorithm}:${path}`;
    const cached = this.hashes.get(key);
    if (cached) return cached;
    const h = createHash(algorithm);
    for await (const chunk of readFileStream(path, this.reads)) h.update(chunk);
    const hex = h.digest("hex").toUpperCase();
    this.hashes.set(key, hex);
    return hex;
  }

  async header(path: string): Promise<ManifestHeader> {
    for await (const item of readDriveManifest(path, this.reads, { kind: "import" }, "The drive")) {
      if (item.type === "header") return item.header;
    }
    throw new ManifestError("ManifestFormatInvalid", "The manifest has no BlobList.");
  }
}

const ACTIVE_FIRST = (a: Job, b: Job) =>
  Number(a.state === "Completed" || a.state === "Closed") -
  Number(b.state === "Completed" || b.state === "Closed");
// Transferring: a drive plugged in again after a crash or a pull resumes.
const UNPROCESSED = new Set(["Specified", "Received", "NeverReceived", "Transferring"]);

async function verify(
  access: ManifestAccess,
  job: Job,
  entry: Drive,
  serial: string | undefined,
  by: "serial" | "manifest",
): Promise<MatchResult> {
  const fail = (status: DriveLogStatus, message: string): MatchResult => ({
    kind: "import-failed",
    job,
    entry,
    status,
    message,
  });
  const where = await access.resolve(entry.manifestFile ?? "");
  if (!("path" in where)) return fail(where.status, where.message);
  const expected = (entry.manifestHash ?? "").toUpperCase();
  let actual: string;
  try {
    actual = await access.digest(where.path, expected.length === 64 ? "sha256" : "md5");
  } catch (e) {
    return fail(
      "ReadManifestFailed",
      `Reading the manifest failed: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`,
    );
  }
  if (actual !== expected)
    return fail(
      "ManifestCorrupted",
      `The manifest's hash is ${actual}, but job ${job.name} lists ${expected} for drive ${entry.driveId}. The manifest was changed after the job was created, or the job has the wrong hash.`,
    );
  try {
    const header = await access.header(where.path);
    const expectedId = serial ?? entry.driveId;
    if (header.driveId !== expectedId) {
      return fail(
        "ManifestDriveIdMismatch",
        `The manifest is for drive ${header.driveId}, but this is drive ${expectedId}.`,
      );
    }
    return { kind: "import", job, entry, manifestPath: where.path, header, by };
  } catch (e) {
    if (e instanceof ManifestError) return fail(e.status, e.message);
    throw e;
  }
}

/**
 * `root` is where the data volume is mounted (undefined when it could not be mounted, in which
 * case `mountFailure` says why).
 */
export async function matchDrive(
  serial: string | undefined,
  root: string | undefined,
  jobs: Job[],
  mountFailure?: { status: DriveLogStatus; message: string },
  readLimits?: ReadLimits,
): Promise<MatchResult> {
  const sorted = [...jobs].sort(ACTIVE_FIRST);
  const access = root ? new ManifestAccess(root, readLimits) : undefined;

  if (serial) {
    const live = liveJobsListing(sorted, serial);
    if (live.length > 1) return { kind: "conflict", jobs: live };
    for (const job of sorted) {
      const entry = job.drives.find((d) => d.driveId === serial);
      if (!entry) continue;
      if (job.type === "Export") return { kind: "export", job, entry };
      if (!UNPROCESSED.has(entry.state)) return { kind: "processed", job, entry };
      if (!access)
        return {
          kind: "import-failed",
          job,
          entry,
          status: mountFailure?.status ?? "DiskOperationFailed",
          message: mountFailure?.message ?? "The drive's volume could not be read.",
        };
      return verify(access, job, entry, serial, "serial");
    }
    for (const job of sorted) {
      const extra = job.extraDrives.find((e) => e.driveId === serial);
      if (extra)
        return {
          kind: "extra",
          job,
          driveId: serial,
          ...(extra.trackingNumber ? { trackingNumber: extra.trackingNumber } : {}),
        };
    }
  }

  if (!access)
    return {
      kind: "unknown",
      message: `${serial ? `Serial ${serial} is in no job, and the` : "No serial number, and the"} volume could not be read: ${mountFailure?.message ?? "no volume"}.`,
    };

  // By manifest: an entry whose manifest is on this volume with the listed hash.
  let namedButCorrupted: MatchResult | undefined;
  for (const job of sorted) {
    if (job.type !== "Import") continue;
    for (const entry of job.drives) {
      if (!UNPROCESSED.has(entry.state) || !entry.manifestFile) continue;
      const where = await access.resolve(entry.manifestFile);
      if (!("path" in where)) continue;
      const result = await verify(access, job, entry, undefined, "manifest");
      if (result.kind === "import") return result;
      if (result.kind === "import-failed" && result.status === "ManifestCorrupted" && !namedButCorrupted) {
        // Only blame this entry if the manifest on the drive names it.
        try {
          if ((await access.header(where.path)).driveId === entry.driveId) namedButCorrupted = result;
        } catch {
          // an unreadable manifest names nobody
        }
      }
    }
  }
  // A drive already imported (after a restart, or plugged in again) is recognised by its manifest
  // too: it is that job's processed drive, not an unknown one.
  for (const job of sorted) {
    if (job.type !== "Import") continue;
    for (const entry of job.drives) {
      if (UNPROCESSED.has(entry.state) || !entry.manifestFile) continue;
      const where = await access.resolve(entry.manifestFile);
      if (!("path" in where)) continue;
      if ((await verify(access, job, entry, undefined, "manifest")).kind === "import")
        return { kind: "processed", job, entry };
    }
  }
  if (namedButCorrupted) return namedButCorrupted;
  return {
    kind: "unknown",
    message: serial
      ? `Drive ${serial} is in no job's drive list and holds no manifest that matches one.`
      : "The drive has no serial number and holds no manifest matching any job's manifestFile and manifestHash.",
  };
}
