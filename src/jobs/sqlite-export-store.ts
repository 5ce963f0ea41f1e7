/**
 * The export store (src/transfer/export/store.ts) on SQLite: its own file beside jobs.db
 * (export.db, WAL), so its schema versions independently of the job store's.
 */
import Database from "better-sqlite3";
import type { DrivePlan } from "../transfer/export/planner.js";
import type {
  BlockRecord,
  Confirmation,
  DoneBlob,
  ExportStore,
  StoredSelection,
} from "../transfer/export/store.js";
import { reviveSelectedBlob } from "./store-rows.js";

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE selections (job TEXT PRIMARY KEY, meta TEXT NOT NULL);
   CREATE TABLE selected (job TEXT NOT NULL, idx INTEGER NOT NULL, blob TEXT NOT NULL, PRIMARY KEY (job, idx));
   CREATE TABLE plans (job TEXT NOT NULL, drive_id TEXT NOT NULL, ordinal INTEGER NOT NULL, plan TEXT NOT NULL,
                       PRIMARY KEY (job, drive_id));
   CREATE TABLE blocks (job TEXT NOT NULL, drive_id TEXT NOT NULL, idx INTEGER NOT NULL, chunk INTEGER NOT NULL,
                        md5 TEXT NOT NULL, PRIMARY KEY (job, drive_id, idx, chunk));
   CREATE TABLE done (job TEXT NOT NULL, drive_id TEXT NOT NULL, idx INTEGER NOT NULL, bytes INTEGER NOT NULL,
                      entry TEXT NOT NULL, PRIMARY KEY (job, drive_id, idx));
   CREATE TABLE confirmations (job TEXT NOT NULL, drive_id TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL,
                               PRIMARY KEY (job, drive_id));`,
];

export class SqliteExportStore implements ExportStore {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("busy_timeout = 5000");
    // One commit per written chunk: NORMAL survives a process crash (kill -9); a power cut may lose
    // the last records, and those chunks are then simply written again (read-back verifies them).
    this.db.pragma("synchronous = NORMAL");
    const version = this.db.pragma("user_version", { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  close(): void {
    this.db.close();
  }

  async selection(job: string): Promise<StoredSelection | undefined> {
    const row = this.db
      .prepare<[string], { meta: string }>("SELECT meta FROM selections WHERE job = ?")
      .get(job);
    if (!row) return undefined;
    const meta = JSON.parse(row.meta) as Omit<StoredSelection, "blobs">;
    const blobs = this.db
      .prepare<[string], { blob: string }>("SELECT blob FROM selected WHERE job = ? ORDER BY idx")
      .all(job)
      .map((r) => reviveSelectedBlob(JSON.parse(r.blob)));
    return { ...meta, blobs };
  }

  async saveSelection(job: string, s: StoredSelection): Promise<void> {
    const { blobs, ...meta } = s;
    const insert = this.db.prepare("INSERT OR REPLACE INTO selected (job, idx, blob) VALUES (?, ?, ?)");
    this.db.transaction(() => {
      this.db.prepare("DELETE FROM selected WHERE job = ?").run(job);
      this.db
        .prepare("INSERT OR REPLACE INTO selections (job, meta) VALUES (?, ?)")
        .run(job, JSON.stringify(meta));
      for (const b of blobs) insert.run(job, b.index, JSON.stringify(b));
    })();
  }

  async plans(job: string): Promise<DrivePlan[]> {
    return this.db
      .prepare<[string], { plan: string }>("SELECT plan FROM plans WHERE job = ? ORDER BY ordinal")
      .all(job)
      .map((r) => JSON.parse(r.plan) as DrivePlan);
  }

  async savePlan(job: string, plan: DrivePlan): Promise<void> {
    this.db
      .prepare("INSERT OR IGNORE INTO plans (job, drive_id, ordinal, plan) VALUES (?, ?, ?, ?)")
      .run(job, plan.driveId, plan.ordinal, JSON.stringify(plan));
  }

  async blocks(job: string, driveId: string): Promise<Map<number, Map<number, string>>> {
    const out = new Map<number, Map<number, string>>();
    const rows = this.db
      .prepare<[string, string], { idx: number; chunk: number; md5: string }>(
        "SELECT idx, chunk, md5 FROM blocks WHERE job = ? AND drive_id = ?",
      )
      .all(job, driveId);
    for (const r of rows) {
      const m = out.get(r.idx) ?? new Map<number, string>();
      m.set(r.chunk, r.md5);
      out.set(r.idx, m);
    }
    return out;
  }

  async saveBlocks(job: string, driveId: string, records: BlockRecord[]): Promise<void> {
    const insert = this.db.prepare(
      "INSERT OR REPLACE INTO blocks (job, drive_id, idx, chunk, md5) VALUES (?, ?, ?, ?, ?)",
    );
    this.db.transaction(() => {
      for (const r of records) insert.run(job, driveId, r.index, r.chunk, r.md5);
    })();
  }

  async done(job: string, driveId: string): Promise<Set<number>> {
    return new Set(
      this.db
        .prepare<[string, string], { idx: number }>("SELECT idx FROM done WHERE job = ? AND drive_id = ?")
        .all(job, driveId)
        .map((r) => r.idx),
    );
  }

  async *doneEntries(job: string, driveId: string): AsyncIterable<DoneBlob> {
    let after = Number.MIN_SAFE_INTEGER;
    for (;;) {
      const rows = this.db
        .prepare<[string, string, number], { entry: string; idx: number }>(
          "SELECT idx, entry FROM done WHERE job = ? AND drive_id = ? AND idx > ? ORDER BY idx LIMIT 1000",
        )
        .all(job, driveId, after);
      if (!rows.length) return;
      for (const r of rows) yield JSON.parse(r.entry) as DoneBlob;
      after = rows.at(-1)!.idx;
    }
  }

  async saveDone(job: string, driveId: string, records: DoneBlob[]): Promise<void> {
    const insert = this.db.prepare(
      "INSERT OR REPLACE INTO done (job, drive_id, idx, bytes, entry) VALUES (?, ?, ?, ?, ?)",
    );
    const drop = this.db.prepare("DELETE FROM blocks WHERE job = ? AND drive_id = ? AND idx = ?");
    this.db.transaction(() => {
      for (const r of records) {
        insert.run(job, driveId, r.index, r.bytes, JSON.stringify(r));
        drop.run(job, driveId, r.index);
      }
    })();
  }

  async confirm(job: string, driveId: string, c: Confirmation): Promise<void> {
    this.db
      .prepare("INSERT OR REPLACE INTO confirmations (job, drive_id, by, at) VALUES (?, ?, ?, ?)")
      .run(job, driveId, c.by, c.at);
  }

  async confirmation(job: string, driveId: string): Promise<Confirmation | undefined> {
    return this.db
      .prepare<[string, string], Confirmation>(
        "SELECT by, at FROM confirmations WHERE job = ? AND drive_id = ?",
      )
      .get(job, driveId);
  }

  async clearBlocks(job: string, driveId: string): Promise<void> {
    this.db.prepare("DELETE FROM blocks WHERE job = ? AND drive_id = ?").run(job, driveId);
  }
}
