/**
 * Copy logs at the end of a drive (import and export), built from the drive's recorded blobs (so
 * they include the work of runs before a restart) and streamed to storage: the error log when anything failed or warned, the
 * verbose log when the job's `logLevel` is `Verbose`, the manifest backup when asked. Their URIs
 * (never a SAS token) go to Get Job.
 */
import { StationError } from "../../errors.js";
import { DriveLogWriter, DriveOutcome, type LogBlob, logBlobLocation } from "../../formats/drive-log.js";
import type { DriveLogStatus } from "../../formats/status.js";
import type { BlobPort } from "../../storage/blob-port.js";
import type { Retrying } from "./retry.js";

export interface CopyLogs {
  status: DriveLogStatus;
  errorLogUri?: string;
  verboseLogUri?: string;
  manifestUri?: string;
  /** Why a log could not be written (the account refused the credential, or an unusable name). */
  logsNotWritten?: string;
}

export interface CopyLogOptions {
  /** Where the logs go: the import drive's credential, or the station's own key (export). */
  port: Pick<BlobPort, "uploadStream" | "publicUrl"> & { sasContainer?: string | undefined };
  retrying: Retrying;
  ensureContainer(name: string): Promise<void>;
  /** The drive's blobs as recorded (import checkpoints, export done blobs), in log order. */
  entries(): AsyncIterable<{ log?: LogBlob | undefined }>;
  jobName: string;
  driveId: string;
  diagnosticsPath: string;
  logLevel: "Error" | "Verbose";
  /** The drive manifest to back up (`backupDriveManifest`), read when it is written. */
  manifestBackup?: () => AsyncIterable<Buffer | string>;
  /** The time stamp in the log blobs' names. */
  at: Date;
  /** The drive status when the engine decided it (a refused credential); else from the checkpoints. */
  status?: DriveLogStatus;
  /** The cause when `e` is the account refusing the credential: the log is skipped, not an error. */
  refusedBy?: (e: unknown) => string | undefined;
}

/** The drive's status from its checkpoints, and the logs written for it. */
export async function writeCopyLogs(o: CopyLogOptions): Promise<CopyLogs> {
  const outcome = new DriveOutcome();
  for await (const c of o.entries()) outcome.add(c.log!);
  const status = o.status ?? outcome.status();
  const result: CopyLogs = { status };
  const upload = async (
    type: "error" | "verbose" | "manifest",
    body: () => AsyncIterable<Buffer | string>,
  ) => {
    const loc = logBlobLocation({
      jobName: o.jobName,
      driveId: o.driveId,
      type,
      at: o.at,
      diagnosticsPath: o.diagnosticsPath,
      ...(o.port.sasContainer ? { sasContainer: o.port.sasContainer } : {}),
    });
    await o.ensureContainer(loc.container);
    const blob = { container: loc.container, name: loc.blobName };
    // The whole log is regenerated from the checkpoints if this fails, so one retry loop around the upload is enough.
    await o.retrying(`writing the ${type} log`, (s) =>
      o.port.uploadStream(blob, body(), "application/xml", s),
    );
    return o.port.publicUrl(blob);
  };
  const render = (kind: "error" | "verbose") =>
    async function* () {
      const chunks: string[] = [];
      const w = new DriveLogWriter((c) => chunks.push(c), kind, o.driveId);
      for await (const c of o.entries()) {
        w.add(c.log!);
        if (chunks.length > 256) yield chunks.splice(0).join("");
      }
      w.end(status);
      yield chunks.join("");
    };
  // A log the account refuses (the same bad credential) does not fail the drive: Get Job still
  // shows its copyStatus, and the manager raises a notice with the cause.
  const tryUpload = async (...a: Parameters<typeof upload>): Promise<string | undefined> => {
    if (result.logsNotWritten) return undefined;
    try {
      return await upload(...a);
    } catch (e) {
      const cause = o.refusedBy?.(e) ?? (e instanceof StationError ? e.message : undefined);
      if (!cause) throw e;
      result.logsNotWritten = cause;
      return undefined;
    }
  };
  const set = (k: "errorLogUri" | "verboseLogUri" | "manifestUri", uri: string | undefined) => {
    if (uri) result[k] = uri;
  };
  if (status !== "Completed") set("errorLogUri", await tryUpload("error", render("error")));
  if (o.logLevel === "Verbose") set("verboseLogUri", await tryUpload("verbose", render("verbose")));
  if (o.manifestBackup) set("manifestUri", await tryUpload("manifest", o.manifestBackup));
  return result;
}
