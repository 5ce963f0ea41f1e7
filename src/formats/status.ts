/** The copy-log status vocabularies of the service (reference §3.5), exactly as written on the wire. */

export const DRIVE_LOG_STATUSES = [
  "Completed",
  "CompletedWithWarnings",
  "CompletedWithErrors",
  "DiskNotFound",
  "VolumeNotNtfs",
  "DiskOperationFailed",
  "BitLockerVolumeNotFound",
  "BitLockerNotActivated",
  "BitLockerProtectorNotFound",
  "BitLockerKeyInvalid",
  "BitLockerUnlockVolumeFailed",
  "BitLockerFailed",
  "ManifestNameInvalid",
  "ManifestNameTooLong",
  "ManifestNotFound",
  "ManifestAccessDenied",
  "ManifestCorrupted",
  "ManifestFormatInvalid",
  "ManifestDriveIdMismatch",
  "ReadManifestFailed",
  "BlobListFormatInvalid",
  "BlobRequestForbidden",
  "InternalError",
] as const;
export type DriveLogStatus = (typeof DRIVE_LOG_STATUSES)[number];

export const BLOB_STATUSES = [
  "Completed",
  "CompletedWithErrors",
  "FileNameInvalid",
  "FileNameTooLong",
  "FileNotFound",
  "FileAccessDenied",
  "BlobRequestFailed",
  "BlobRequestForbidden",
  "RenameFailed",
  "BlobUnexpectedChange",
  "LeasePresent",
  "IOFailed",
  "Failed",
] as const;
export type BlobStatus = (typeof BLOB_STATUSES)[number];

export const DISPOSITION_STATUSES = ["Created", "Renamed", "Skipped", "Overwritten", "Cancelled"] as const;
export type DispositionStatus = (typeof DISPOSITION_STATUSES)[number];

export const CHUNK_STATUSES = [
  "Completed",
  "Committed",
  "Uncommitted",
  "Corrupted",
  "FileUnexpectedEnd",
  "BlobUnexpectedEnd",
  "BlobRequestFailed",
  "IOFailed",
  "Failed",
  "Cancelled",
] as const;
export type ChunkStatus = (typeof CHUNK_STATUSES)[number];

export const FILE_INFO_STATUSES = [
  "Completed",
  "FileNameInvalid",
  "FileNameTooLong",
  "FileNotFound",
  "FileAccessDenied",
  "Corrupted",
  "XmlReadFailed",
  "XmlWriteFailed",
  "BlobRequestFailed",
  "IOFailed",
  "Failed",
  "Cancelled",
] as const;
/** Metadata/@Status and Properties/@Status share one list. */
export type FileInfoStatus = (typeof FILE_INFO_STATUSES)[number];

export const IMPORT_DISPOSITIONS = ["rename", "no-overwrite", "overwrite"] as const;
export type ImportDisposition = (typeof IMPORT_DISPOSITIONS)[number];

/** A drive-level failure while reading a drive's manifest or metadata: carries the log status code. */
export class ManifestError extends Error {
  constructor(
    readonly status: DriveLogStatus,
    message: string,
    readonly element?: string,
    readonly line?: number,
  ) {
    super(message);
    this.name = "ManifestError";
  }
}
