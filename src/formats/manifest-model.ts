/** The drive manifest model (reference §1): limits, header, blob, chunk, and what the reader yields. */
import type { BlobStatus, ImportDisposition } from "./status.js";

export const MANIFEST_VERSIONS = ["2014-11-01", "2011-10-01"] as const;
export const MAX_CHUNK = 4 * 1024 * 1024;
export const MAX_BLOCKS = 50_000;
export const MAX_BLOCK_BLOB = MAX_BLOCKS * MAX_CHUNK;
export const MAX_PAGE_BLOB = 1024 ** 4;
/** Page ranges one blob may list: one per 4 MiB of the largest page blob. Bounds a blob's memory. */
export const MAX_PAGE_RANGES = MAX_PAGE_BLOB / MAX_CHUNK;
export const PAGE = 512;

export type Credential =
  | { kind: "accountKey"; key: string }
  | { kind: "containerSas"; container: string; token: string };

export interface HashedPath {
  path: string;
  /** Upper-case hex MD5 of the file. */
  hash: string;
}

export interface ManifestHeader {
  version: string;
  driveId: string;
  credential?: Credential;
  clientCreator?: string;
}

export interface BlobListDefaults {
  /** 0-based position of the BlobList in the manifest. */
  index: number;
  id?: string;
  metadata?: HashedPath;
  properties?: HashedPath;
}

export interface Chunk {
  offset: number;
  length: number;
  /** Upper-case hex MD5. */
  hash: string;
  id?: string;
}

export interface ManifestBlob {
  blobPath: string;
  filePath: string;
  clientData?: string;
  snapshot?: string;
  length: number;
  disposition: ImportDisposition;
  /** `block` with BlockList, `page` with PageRangeList. */
  kind: "block" | "page";
  chunks: Chunk[];
  metadata?: HashedPath;
  properties?: HashedPath;
  list: BlobListDefaults;
}

export interface BlobProblem {
  status: BlobStatus;
  /** Names the element and the reason. */
  message: string;
}

export type ManifestItem =
  | { type: "header"; header: ManifestHeader }
  | { type: "blob"; blob: ManifestBlob; problem?: BlobProblem; line: number }
  | { type: "end"; blobCount: number; blobLists: number };

export interface ReadManifestOptions {
  kind: "import" | "export";
  /** The serial read from the drive; a different DriveId is ManifestDriveIdMismatch. */
  expectedDriveId?: string;
}
