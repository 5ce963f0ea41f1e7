/**
 * Shared job store for a fleet of stations: the JobStore, NoticeLog, CheckpointStore and
 * DriveClaims ports on PostgreSQL, with the same contract as the SQLite adapter (the contract
 * suite in test/jobs/store-contract.ts runs against both). Every job write is a compare-and-swap
 * on the version column.
 */
import type { Logger } from "pino";
import type { Job, JobKey, Notice } from "../lifecycle/model.js";
import type { BlobCheckpoint, CheckpointStore } from "../transfer/checkpoints.js";
import { PgConnection } from "./pg-connection.js";
import { PgExportStore } from "./pg-export-store.js";
import type {
  ClaimResult,
  DriveClaims,
  DriveRef,
  JobPage,
  JobScope,
  JobStore,
  NoticeLog,
  StoredJob,
  StoreHealth,
} from "./store.js";
import {
  checkpointProgress,
  doneCheckpoint,
  jobKeyOf,
  jobPage,
  LIST_ORDER,
  listFilter,
  type NoticeRow,
  noticeFromRow,
  noticeValues,
  versionConflict,
} from "./store-rows.js";

export interface PgStoreOptions {
  url: string;
  poolSize?: number;
  connectTimeoutMs?: number;
  log: Logger;
}

export class PgStore implements JobStore, NoticeLog, CheckpointStore, DriveClaims, StoreHealth {
  private constructor(private readonly db: PgConnection) {}

  /** Connects and migrates; fails with a StationError naming the database (never its password). */
  static async open(options: PgStoreOptions): Promise<PgStore> {
    const db = new PgConnection(options);
    try {
      await db.migrate();
    } catch (e) {
      await db.close().catch(() => undefined);
      throw e;
    }
    return new PgStore(db);
  }

  /** The export engine's store on the same pool (closed with this store). */
  exportStore(): PgExportStore {
    return new PgExportStore(this.db);
  }

  get where(): string {
    return this.db.where;
  }

  healthy(): boolean {
    return this.db.healthy();
  }

  whenHealthy(signal?: AbortSignal): Promise<void> {
    return this.db.whenHealthy(signal);
  }

  close(): Promise<void> {
    return this.db.close();
  }

  async get(key: JobKey): Promise<StoredJob | undefined> {
    const r = await this.db.query<{ version: number; doc: Job }>(
      "SELECT version, doc FROM jobs WHERE subscription_id = $1 AND resource_group = $2 AND name = $3",
      [key.subscriptionId, key.resourceGroup, key.name],
    );
    const row = r.rows[0];
    return row ? { job: row.doc, version: row.version } : undefined;
  }

  async put(job: Job, expectedVersion: number, nextDeadline: Date | undefined): Promise<StoredJob> {
    const doc = JSON.stringify(job);
    const deadline = nextDeadline ?? null;
    const r =
      expectedVersion === 0
        ? await this.db.query(
            `INSERT INTO jobs (subscription_id, resource_group, name, state, created_at, version, next_deadline, doc)
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7) ON CONFLICT DO NOTHING`,
            [
              job.subscriptionId,
              job.resourceGroup,
              job.name,
              job.state,
              job.timestamps.createdAt,
              deadline,
              doc,
            ],
          )
        : await this.db.query(
            `UPDATE jobs SET state = $1, version = version + 1, next_deadline = $2, doc = $3
             WHERE subscription_id = $4 AND resource_group = $5 AND name = $6 AND version = $7`,
            [job.state, deadline, doc, job.subscriptionId, job.resourceGroup, job.name, expectedVersion],
          );
    if (r.rowCount !== 1) throw versionConflict(job.name);
    return { job, version: expectedVersion + 1 };
  }

  async delete(key: JobKey, expectedVersion?: number): Promise<boolean> {
    const args: unknown[] = [key.subscriptionId, key.resourceGroup, key.name];
    if (expectedVersion !== undefined) args.push(expectedVersion);
    const r = await this.db.query(
      `DELETE FROM jobs WHERE subscription_id = $1 AND resource_group = $2 AND name = $3${expectedVersion === undefined ? "" : " AND version = $4"}`,
      args,
    );
    return r.rowCount === 1;
  }

  async list(scope: JobScope, top: number, skipToken?: string): Promise<JobPage> {
    const args: unknown[] = [];
    const arg = (v: unknown) => {
      args.push(v);
      return `$${args.length}`;
    };
    const where = listFilter(scope, skipToken, arg);
    if (!where) return { jobs: [] };
    const r = await this.db.query<{ doc: Job }>(
      `SELECT doc FROM jobs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ${LIST_ORDER} LIMIT ${arg(top + 1)}`,
      args,
    );
    return jobPage(
      r.rows.map((row) => row.doc),
      top,
    );
  }

  async due(now: Date): Promise<JobKey[]> {
    const r = await this.db.query<{ subscription_id: string; resource_group: string; name: string }>(
      "SELECT subscription_id, resource_group, name FROM jobs WHERE next_deadline <= $1 ORDER BY next_deadline",
      [now],
    );
    return r.rows.map(jobKeyOf);
  }

  async add(notices: Notice[]): Promise<void> {
    if (!notices.length) return;
    const rows = notices.map(noticeValues);
    const column = (i: number) => rows.map((values) => values[i]);
    await this.db.query(
      `INSERT INTO notices (at, code, subscription_id, resource_group, job_name, drive_id, message)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])`,
      [0, 1, 2, 3, 4, 5, 6].map(column),
    );
  }

  async recent(options: { since?: string; limit: number }): Promise<(Notice & { id: number })[]> {
    const r = await this.db.query<NoticeRow>(
      "SELECT * FROM notices WHERE at >= $1 ORDER BY id DESC LIMIT $2",
      [options.since ?? "", options.limit],
    );
    return r.rows.map(noticeFromRow);
  }

  async progress(
    job: string,
    driveId: string,
  ): Promise<{ done: Set<number>; started: Map<number, string>; bytesSucceeded: number }> {
    const r = await this.db.query<{ blob_index: number; state: string; target: string; bytes: string }>(
      "SELECT blob_index, state, target, bytes FROM blob_checkpoints WHERE job = $1 AND drive_id = $2",
      [job, driveId],
    );
    return checkpointProgress(r.rows);
  }

  async *entries(job: string, driveId: string): AsyncIterable<BlobCheckpoint> {
    let after = -1;
    for (;;) {
      const r = await this.db.query<{
        blob_index: number;
        target: string;
        bytes: string;
        log: BlobCheckpoint["log"];
      }>(
        `SELECT blob_index, target, bytes, log FROM blob_checkpoints
         WHERE job = $1 AND drive_id = $2 AND state = 'done' AND blob_index > $3 ORDER BY blob_index LIMIT 1000`,
        [job, driveId, after],
      );
      if (r.rows.length === 0) return;
      for (const row of r.rows) yield doneCheckpoint(row, row.log);
      after = r.rows[r.rows.length - 1]!.blob_index;
    }
  }

  async save(job: string, driveId: string, records: BlobCheckpoint[]): Promise<void> {
    // One statement per batch; the last record of a blob wins (as with sequential upserts).
    const last = [...new Map(records.map((r) => [r.blobIndex, r])).values()];
    if (!last.length) return;
    await this.db.query(
      `INSERT INTO blob_checkpoints (job, drive_id, blob_index, state, target, bytes, log)
       SELECT $1, $2, i, s, t, b, l::jsonb FROM unnest($3::int[], $4::text[], $5::text[], $6::bigint[], $7::text[]) AS u(i, s, t, b, l)
       ON CONFLICT (job, drive_id, blob_index) DO UPDATE
         SET state = EXCLUDED.state, target = EXCLUDED.target, bytes = EXCLUDED.bytes, log = EXCLUDED.log`,
      [
        job,
        driveId,
        last.map((r) => r.blobIndex),
        last.map((r) => r.state),
        last.map((r) => r.target),
        last.map((r) => r.bytesSucceeded),
        last.map((r) => (r.log ? JSON.stringify(r.log) : null)),
      ],
    );
  }

  async clear(job: string, driveId: string): Promise<void> {
    await this.db.query("DELETE FROM blob_checkpoints WHERE job = $1 AND drive_id = $2", [job, driveId]);
  }

  async claim(drive: DriveRef, stationId: string, now: Date, ttlMs: number): Promise<ClaimResult> {
    const k = drive.job;
    const key = [k.subscriptionId, k.resourceGroup, k.name, drive.driveId];
    // The conflict arm takes the row lock: of stations racing for a free drive exactly one updates it.
    const r = await this.db.query<{ expires_at: Date }>(
      `INSERT INTO drive_claims AS c (subscription_id, resource_group, job_name, drive_id, station_id, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (subscription_id, resource_group, job_name, drive_id) DO UPDATE
         SET station_id = EXCLUDED.station_id, expires_at = EXCLUDED.expires_at
         WHERE c.station_id = EXCLUDED.station_id OR c.expires_at <= $7
       RETURNING expires_at`,
      [...key, stationId, new Date(now.getTime() + ttlMs), now],
    );
    if (r.rows[0]) return { granted: true, lease: { stationId, expiresAt: r.rows[0].expires_at } };
    const h = await this.db.query<{ station_id: string; expires_at: Date }>(
      "SELECT station_id, expires_at FROM drive_claims WHERE subscription_id = $1 AND resource_group = $2 AND job_name = $3 AND drive_id = $4",
      key,
    );
    if (!h.rows[0]) return this.claim(drive, stationId, now, ttlMs); // released in between
    return { granted: false, holder: { stationId: h.rows[0].station_id, expiresAt: h.rows[0].expires_at } };
  }

  async renew(drive: DriveRef, stationId: string, now: Date, ttlMs: number): Promise<boolean> {
    const k = drive.job;
    const r = await this.db.query(
      `UPDATE drive_claims SET expires_at = $6
       WHERE subscription_id = $1 AND resource_group = $2 AND job_name = $3 AND drive_id = $4 AND station_id = $5`,
      [k.subscriptionId, k.resourceGroup, k.name, drive.driveId, stationId, new Date(now.getTime() + ttlMs)],
    );
    return r.rowCount === 1;
  }

  async release(drive: DriveRef, stationId: string): Promise<void> {
    const k = drive.job;
    await this.db.query(
      "DELETE FROM drive_claims WHERE subscription_id = $1 AND resource_group = $2 AND job_name = $3 AND drive_id = $4 AND station_id = $5",
      [k.subscriptionId, k.resourceGroup, k.name, drive.driveId, stationId],
    );
  }
}
