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
