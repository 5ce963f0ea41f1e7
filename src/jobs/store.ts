/**
 * Persistence ports. Async so that a shared PostgreSQL adapter can implement them for a fleet
 * of stations; the embedded SQLite adapter is in sqlite-store.ts.
 */
import type { Job, JobKey, Notice } from "../lifecycle/model.js";

export interface StoredJob {
  job: Job;
  /** Incremented on every write; `replace` is a compare-and-swap on it. */
  version: number;
}

export interface JobPage {
  jobs: Job[];
  /** Opaque; pass back to get the next page. Absent on the last page. */
  skipToken?: string;
}

export interface JobScope {
  subscriptionId?: string;
  resourceGroup?: string;
  /**
   * Only jobs in one of these resource groups (compared case-insensitively, as ARM names are):
   * a customer granted some resource groups of a subscription lists that subscription.
   * An empty array matches nothing.
   */
  resourceGroups?: readonly string[];
}

export interface JobStore {
  get(key: JobKey): Promise<StoredJob | undefined>;
  /**
   * Inserts (expectedVersion 0) or replaces the job if its stored version is still `expectedVersion`.
   * Throws StationError VersionConflict otherwise, so no concurrent write is ever lost.
   * `nextDeadline` is indexed for `due`.
   */
  put(job: Job, expectedVersion: number, nextDeadline: Date | undefined): Promise<StoredJob>;
  delete(key: JobKey, expectedVersion?: number): Promise<boolean>;
  list(scope: JobScope, top: number, skipToken?: string): Promise<JobPage>;
  /** Jobs whose next deadline is at or before `now`. */
  due(now: Date): Promise<JobKey[]>;
}

export interface NoticeLog {
  add(notices: Notice[]): Promise<void>;
  /** Newest first. */
  recent(options: { since?: string; limit: number }): Promise<(Notice & { id: number })[]>;
}

/** A drive of a job, as the fleet's claim table knows it. */
export interface DriveRef {
  job: JobKey;
  driveId: string;
}

/** Which station holds a drive, and until when (the lease; renewed by that station's heartbeat). */
export interface Lease {
  stationId: string;
  expiresAt: Date;
}

export type ClaimResult = { granted: true; lease: Lease } | { granted: false; holder: Lease };

/**
 * Drive claims: at most one station transfers a drive at a time. A claim is a row in the shared
 * store with an expiry, never an in-memory flag, so a station that dies loses its drives when
 * its leases run out. Times come from the caller (the station's injected clock).
 */
export interface DriveClaims {
  /** Takes the drive for `stationId` until now + ttl if it is free, expired or already ours; else names the holder. */
  claim(drive: DriveRef, stationId: string, now: Date, ttlMs: number): Promise<ClaimResult>;
  /** Extends our lease; false when the drive is no longer ours (it expired and another station took it). */
  renew(drive: DriveRef, stationId: string, now: Date, ttlMs: number): Promise<boolean>;
  /** Gives the drive up (pulled, finished, stopping); a no-op when it is not ours. */
  release(drive: DriveRef, stationId: string): Promise<void>;
}

/** Whether the store answers; readiness reports it and the transfer engine pauses on it. */
export interface StoreHealth {
  healthy(): boolean;
  /** Resolves once the store answers again (at once when healthy); rejects when `signal` aborts. */
  whenHealthy(signal?: AbortSignal): Promise<void>;
}
