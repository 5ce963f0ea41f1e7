/**
 * Embedded job store: one SQLite file in the data directory, WAL mode, versioned schema.
 * Jobs are stored as JSON documents with their key, state and next deadline as columns.
 */
import Database from "better-sqlite3";
import { StationError } from "../errors.js";
import type { Job, JobKey, Notice } from "../lifecycle/model.js";
import type { BlobCheckpoint, CheckpointStore } from "../transfer/checkpoints.js";
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

/** Append-only: each entry moves the schema from user_version i to i+1. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE jobs (
     subscription_id TEXT NOT NULL,
     resource_group  TEXT NOT NULL,
     name            TEXT NOT NULL,
     state           TEXT NOT NULL,
     created_at      TEXT NOT NULL,
     version         INTEGER NOT NULL,
     next_deadline   TEXT,
     doc             TEXT NOT NULL,
     PRIMARY KEY (subscription_id, resource_group, name)
   );
   CREATE INDEX jobs_next_deadline ON jobs (next_deadline) WHERE next_deadline IS NOT NULL;
   CREATE INDEX jobs_listing ON jobs (subscription_id, resource_group, created_at, name);
   CREATE TABLE notices (
     id              INTEGER PRIMARY KEY AUTOINCREMENT,
     at              TEXT NOT NULL,
     code            TEXT NOT NULL,
     subscription_id TEXT,
     resource_group  TEXT,
     job_name        TEXT,
     drive_id        TEXT,
     message         TEXT NOT NULL
   );`,
  `CREATE TABLE blob_checkpoints (
     job        TEXT NOT NULL,
     drive_id   TEXT NOT NULL,
     blob_index INTEGER NOT NULL,
     state      TEXT NOT NULL,
     target     TEXT NOT NULL,
     bytes      INTEGER NOT NULL,
     log        TEXT,
     PRIMARY KEY (job, drive_id, blob_index)
   );`,
  `CREATE TABLE drive_claims (
     subscription_id TEXT NOT NULL,
     resource_group  TEXT NOT NULL,
     job_name        TEXT NOT NULL,
     drive_id        TEXT NOT NULL,
     station_id      TEXT NOT NULL,
     expires_at      TEXT NOT NULL,
     PRIMARY KEY (subscription_id, resource_group, job_name, drive_id)
   );`,
];

interface JobRow {
  version: number;
  doc: string;
}

export class SqliteStore implements JobStore, NoticeLog, CheckpointStore, DriveClaims, StoreHealth {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("foreign_keys = ON");
    this.migrate();
  }

  private migrate(): void {
    const current = this.db.pragma("user_version", { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new StationError(
        "ConfigInvalid",
        `The job database is at schema ${current}, newer than this agent knows (${MIGRATIONS.length}). Run the newer agent or restore a backup.`,
      );
    }
    for (let v = current; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  schemaVersion(): number {
    return this.db.pragma("user_version", { simple: true }) as number;
  }

  close(): void {
    this.db.close();
  }

  /** A local file: it answers while the agent runs. */
  healthy(): boolean {
    return this.db.open;
  }

  async whenHealthy(): Promise<void> {}

  async get(key: JobKey): Promise<StoredJob | undefined> {
    const row = this.db
      .prepare<[string, string, string], JobRow>(
        "SELECT version, doc FROM jobs WHERE subscription_id = ? AND resource_group = ? AND name = ?",
      )
      .get(key.subscriptionId, key.resourceGroup, key.name);
    return row ? { job: JSON.parse(row.doc) as Job, version: row.version } : undefined;
  }

  async put(job: Job, expectedVersion: number, nextDeadline: Date | undefined): Promise<StoredJob> {
    const doc = JSON.stringify(job);
    const deadline = nextDeadline?.toISOString() ?? null;
    const version = expectedVersion + 1;
    const write = this.db.transaction(() => {
      if (expectedVersion === 0) {
        const r = this.db
          .prepare(
            `INSERT INTO jobs (subscription_id, resource_group, name, state, created_at, version, next_deadline, doc)
             VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT DO NOTHING`,
          )
          .run(
            job.subscriptionId,
            job.resourceGroup,
            job.name,
            job.state,
            job.timestamps.createdAt,
            deadline,
            doc,
          );
        return r.changes;
      }
      return this.db
        .prepare(
          `UPDATE jobs SET state = ?, version = ?, next_deadline = ?, doc = ?
           WHERE subscription_id = ? AND resource_group = ? AND name = ? AND version = ?`,
        )
        .run(
          job.state,
          version,
          deadline,
          doc,
          job.subscriptionId,
          job.resourceGroup,
          job.name,
          expectedVersion,
        ).changes;
    });
    if (write() !== 1) throw versionConflict(job.name);
    return { job, version };
  }

  async delete(key: JobKey, expectedVersion?: number): Promise<boolean> {
    const sql = `DELETE FROM jobs WHERE subscription_id = ? AND resource_group = ? AND name = ?${expectedVersion === undefined ? "" : " AND version = ?"}`;
    const args: (string | number)[] = [key.subscriptionId, key.resourceGroup, key.name];
    if (expectedVersion !== undefined) args.push(expectedVersion);
    return this.db.prepare(sql).run(...args).changes === 1;
  }

  async list(scope: JobScope, top: number, skipToken?: string): Promise<JobPage> {
    const args: (string | number)[] = [];
    const where = listFilter(scope, skipToken, (v) => {
      args.push(v);
      return "?";
    });
    if (!where) return { jobs: [] };
    const sql = `SELECT version, doc FROM jobs ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ${LIST_ORDER} LIMIT ?`;
    const rows = this.db.prepare<(string | number)[], JobRow>(sql).all(...args, top + 1);
    return jobPage(
      rows.map((r) => JSON.parse(r.doc) as Job),
      top,
    );
  }

  async due(now: Date): Promise<JobKey[]> {
    return this.db
      .prepare<[string], { subscription_id: string; resource_group: string; name: string }>(
        "SELECT subscription_id, resource_group, name FROM jobs WHERE next_deadline IS NOT NULL AND next_deadline <= ? ORDER BY next_deadline",
      )
      .all(now.toISOString())
      .map(jobKeyOf);
  }

  async progress(
    job: string,
    driveId: string,
  ): Promise<{ done: Set<number>; started: Map<number, string>; bytesSucceeded: number }> {
    const rows = this.db
      .prepare<[string, string], { blob_index: number; state: string; target: string; bytes: number }>(
        "SELECT blob_index, state, target, bytes FROM blob_checkpoints WHERE job = ? AND drive_id = ?",
      )
      .all(job, driveId);
    return checkpointProgress(rows);
  }

  async *entries(job: string, driveId: string): AsyncIterable<BlobCheckpoint> {
    // Pages of rows, so the statement is not held open across the caller's awaits.
    let after = -1;
    for (;;) {
      const rows = this.db
        .prepare<
          [string, string, number],
          { blob_index: number; target: string; bytes: number; log: string | null }
        >(
          "SELECT blob_index, target, bytes, log FROM blob_checkpoints WHERE job = ? AND drive_id = ? AND state = 'done' AND blob_index > ? ORDER BY blob_index LIMIT 1000",
        )
        .all(job, driveId, after);
      if (rows.length === 0) return;
      for (const r of rows) yield doneCheckpoint(r, r.log ? JSON.parse(r.log) : null);
      after = rows[rows.length - 1]!.blob_index;
    }
  }

  async save(job: string, driveId: string, records: BlobCheckpoint[]): Promise<void> {
    const insert = this.db.prepare(
      "INSERT OR REPLACE INTO blob_checkpoints (job, drive_id, blob_index, state, target, bytes, log) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.db.transaction(() => {
      for (const r of records)
        insert.run(
          job,
          driveId,
          r.blobIndex,
          r.state,
          r.target,
          r.bytesSucceeded,
          r.log ? JSON.stringify(r.log) : null,
        );
    })();
  }

  async clear(job: string, driveId: string): Promise<void> {
    this.db.prepare("DELETE FROM blob_checkpoints WHERE job = ? AND drive_id = ?").run(job, driveId);
  }

  async add(notices: Notice[]): Promise<void> {
    const insert = this.db.prepare(
      "INSERT INTO notices (at, code, subscription_id, resource_group, job_name, drive_id, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.db.transaction(() => {
      for (const n of notices) insert.run(...noticeValues(n));
    })();
  }

  async recent(options: { since?: string; limit: number }): Promise<(Notice & { id: number })[]> {
    const rows = this.db
      .prepare<[string, number], NoticeRow>("SELECT * FROM notices WHERE at >= ? ORDER BY id DESC LIMIT ?")
      .all(options.since ?? "", options.limit);
    return rows.map(noticeFromRow);
  }

  // Drive claims: a single station always wins its own claims, but the code path is the fleet's.
  async claim(drive: DriveRef, stationId: string, now: Date, ttlMs: number): Promise<ClaimResult> {
    const k = drive.job;
    const expires = new Date(now.getTime() + ttlMs).toISOString();
    const row = this.db
      .prepare<
        [string, string, string, string, string, string, string],
        { station_id: string; expires_at: string }
      >(
        `INSERT INTO drive_claims (subscription_id, resource_group, job_name, drive_id, station_id, expires_at)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (subscription_id, resource_group, job_name, drive_id) DO UPDATE
           SET station_id = excluded.station_id, expires_at = excluded.expires_at
           WHERE drive_claims.station_id = excluded.station_id OR drive_claims.expires_at <= ?
         RETURNING station_id, expires_at`,
      )
      .get(k.subscriptionId, k.resourceGroup, k.name, drive.driveId, stationId, expires, now.toISOString());
    if (row) return { granted: true, lease: { stationId, expiresAt: new Date(row.expires_at) } };
    const holder = this.db
      .prepare<[string, string, string, string], { station_id: string; expires_at: string }>(
        "SELECT station_id, expires_at FROM drive_claims WHERE subscription_id = ? AND resource_group = ? AND job_name = ? AND drive_id = ?",
      )
      .get(k.subscriptionId, k.resourceGroup, k.name, drive.driveId);
    if (!holder) return this.claim(drive, stationId, now, ttlMs); // released in between
    return {
      granted: false,
      holder: { stationId: holder.station_id, expiresAt: new Date(holder.expires_at) },
    };
  }

  async renew(drive: DriveRef, stationId: string, now: Date, ttlMs: number): Promise<boolean> {
    const k = drive.job;
    const expires = new Date(now.getTime() + ttlMs).toISOString();
    return (
      this.db
        .prepare(
          "UPDATE drive_claims SET expires_at = ? WHERE subscription_id = ? AND resource_group = ? AND job_name = ? AND drive_id = ? AND station_id = ?",
        )
        .run(expires, k.subscriptionId, k.resourceGroup, k.name, drive.driveId, stationId).changes === 1
    );
  }

  async release(drive: DriveRef, stationId: string): Promise<void> {
    const k = drive.job;
    this.db
      .prepare(
        "DELETE FROM drive_claims WHERE subscription_id = ? AND resource_group = ? AND job_name = ? AND drive_id = ? AND station_id = ?",
      )
      .run(k.subscriptionId, k.resourceGroup, k.name, drive.driveId, stationId);
  }
}
