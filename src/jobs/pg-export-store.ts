/**
 * The export store (src/transfer/export/store.ts) on the fleet's PostgreSQL, beside the job store
 * on the same connection pool: an export drive resumes on whichever station it is plugged into.
 * Same contract as SqliteExportStore (test/jobs/export-store-contract.test.ts runs both).
 */
import type { DrivePlan, SelectedBlob } from "../transfer/export/planner.js";
import type {
  BlockRecord,
  Confirmation,
  DoneBlob,
  ExportStore,
  StoredSelection,
} from "../transfer/export/store.js";
import type { PgConnection } from "./pg-connection.js";
import { reviveSelectedBlob } from "./store-rows.js";

export class PgExportStore implements ExportStore {
  constructor(private readonly db: PgConnection) {}

  async selection(job: string): Promise<StoredSelection | undefined> {
    const meta = await this.db.query<{ meta: Omit<StoredSelection, "blobs"> }>(
      "SELECT meta FROM export_selections WHERE job = $1",
      [job],
    );
    if (!meta.rows[0]) return undefined;
    const blobs = await this.db.query<{ blob: SelectedBlob & { lastModified: string } }>(
      "SELECT blob FROM export_selected WHERE job = $1 ORDER BY idx",
      [job],
    );
    return { ...meta.rows[0].meta, blobs: blobs.rows.map((r) => reviveSelectedBlob(r.blob)) };
  }

  async saveSelection(job: string, s: StoredSelection): Promise<void> {
    const { blobs, ...meta } = s;
    await this.db.transaction(async (c) => {
      await c.query("DELETE FROM export_selected WHERE job = $1", [job]);
      await c.query(
        "INSERT INTO export_selections (job, meta) VALUES ($1, $2) ON CONFLICT (job) DO UPDATE SET meta = EXCLUDED.meta",
        [job, JSON.stringify(meta)],
      );
      await c.query(
        "INSERT INTO export_selected (job, idx, blob) SELECT $1, i, b::jsonb FROM unnest($2::int[], $3::text[]) AS u(i, b)",
        [job, blobs.map((b) => b.index), blobs.map((b) => JSON.stringify(b))],
      );
    });
  }

  async plans(job: string): Promise<DrivePlan[]> {
    const r = await this.db.query<{ plan: DrivePlan }>(
      "SELECT plan FROM export_plans WHERE job = $1 ORDER BY ordinal",
      [job],
    );
    return r.rows.map((x) => x.plan);
  }

  async savePlan(job: string, plan: DrivePlan): Promise<void> {
    // A drive's plan is fixed when first made (two stations planning at once keep the first).
    await this.db.query(
      "INSERT INTO export_plans (job, drive_id, ordinal, plan) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
      [job, plan.driveId, plan.ordinal, JSON.stringify(plan)],
    );
  }

  async blocks(job: string, driveId: string): Promise<Map<number, Map<number, string>>> {
    const r = await this.db.query<{ idx: number; chunk: number; md5: string }>(
      "SELECT idx, chunk, md5 FROM export_blocks WHERE job = $1 AND drive_id = $2",
      [job, driveId],
    );
    const out = new Map<number, Map<number, string>>();
    for (const x of r.rows) {
      const m = out.get(x.idx) ?? new Map<number, string>();
      m.set(x.chunk, x.md5);
      out.set(x.idx, m);
    }
    return out;
  }

  async saveBlocks(job: string, driveId: string, records: BlockRecord[]): Promise<void> {
    const last = [...new Map(records.map((r) => [`${r.index}/${r.chunk}`, r])).values()];
    if (!last.length) return;
    await this.db.query(
      `INSERT INTO export_blocks (job, drive_id, idx, chunk, md5)
       SELECT $1, $2, i, c, m FROM unnest($3::int[], $4::int[], $5::text[]) AS u(i, c, m)
       ON CONFLICT (job, drive_id, idx, chunk) DO UPDATE SET md5 = EXCLUDED.md5`,
      [job, driveId, last.map((r) => r.index), last.map((r) => r.chunk), last.map((r) => r.md5)],
    );
  }

  async done(job: string, driveId: string): Promise<Set<number>> {
    const r = await this.db.query<{ idx: number }>(
      "SELECT idx FROM export_done WHERE job = $1 AND drive_id = $2",
      [job, driveId],
    );
    return new Set(r.rows.map((x) => x.idx));
  }

  async *doneEntries(job: string, driveId: string): AsyncIterable<DoneBlob> {
    let after = Number.MIN_SAFE_INTEGER;
    for (;;) {
      const r = await this.db.query<{ idx: number; entry: DoneBlob }>(
        "SELECT idx, entry FROM export_done WHERE job = $1 AND drive_id = $2 AND idx > $3 ORDER BY idx LIMIT 1000",
        [job, driveId, Math.max(after, -2147483648)],
      );
      if (!r.rows.length) return;
      for (const x of r.rows) yield x.entry;
      after = r.rows.at(-1)!.idx;
    }
  }

  async saveDone(job: string, driveId: string, records: DoneBlob[]): Promise<void> {
    const last = [...new Map(records.map((r) => [r.index, r])).values()];
    if (!last.length) return;
    const idx = last.map((r) => r.index);
    await this.db.query(
      `WITH dropped AS (DELETE FROM export_blocks WHERE job = $1 AND drive_id = $2 AND idx = ANY($3::int[]))
       INSERT INTO export_done (job, drive_id, idx, bytes, entry)
       SELECT $1, $2, i, b, e::jsonb FROM unnest($3::int[], $4::bigint[], $5::text[]) AS u(i, b, e)
       ON CONFLICT (job, drive_id, idx) DO UPDATE SET bytes = EXCLUDED.bytes, entry = EXCLUDED.entry`,
      [job, driveId, idx, last.map((r) => r.bytes), last.map((r) => JSON.stringify(r))],
    );
  }

  async confirm(job: string, driveId: string, c: Confirmation): Promise<void> {
    await this.db.query(
      `INSERT INTO export_confirmations (job, drive_id, by_whom, at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (job, drive_id) DO UPDATE SET by_whom = EXCLUDED.by_whom, at = EXCLUDED.at`,
      [job, driveId, c.by, c.at],
    );
  }

  async confirmation(job: string, driveId: string): Promise<Confirmation | undefined> {
    const r = await this.db.query<{ by_whom: string; at: string }>(
      "SELECT by_whom, at FROM export_confirmations WHERE job = $1 AND drive_id = $2",
      [job, driveId],
    );
    return r.rows[0] ? { by: r.rows[0].by_whom, at: r.rows[0].at } : undefined;
  }

  async clearBlocks(job: string, driveId: string): Promise<void> {
    await this.db.query("DELETE FROM export_blocks WHERE job = $1 AND drive_id = $2", [job, driveId]);
  }
}
