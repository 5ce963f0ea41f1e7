/**
 * What an export keeps across restarts, per job: the selection (listed once, so every drive of
 * the job plans from the same list), each drive's plan (fixed when the drive is first planned),
 * the blocks written to a drive (so a restart downloads and writes only the rest), the finished
 * blobs with their copy-log and manifest entries, and the operator's confirmations for drives
 * that held data. `MemoryExportStore` serves unit tests; src/jobs/sqlite-export-store.ts the agent.
 */
import type { LogBlob } from "../../formats/drive-log.js";
import type { ManifestBlobOut } from "../../formats/manifest-writer.js";
import type { DrivePlan, SelectedBlob } from "./planner.js";
import type { Missing } from "./selection.js";

export interface StoredSelection {
  selectors: number;
  duplicates: number;
  /** Selectors that selected nothing, and selected blobs that cannot be read (Archive). */
  missing: Missing[];
  blobs: SelectedBlob[];
}

export interface DoneBlob {
  index: number;
  /** Blob bytes now verified on the drive. */
  bytes: number;
  log: LogBlob;
  /** Present when the blob's data is on the drive (the manifest lists it). */
  manifest?: ManifestBlobOut;
}

export interface BlockRecord {
  index: number;
  chunk: number;
  /** Upper-case hex MD5 of the chunk as written. */
  md5: string;
}

export interface Confirmation {
  by: string;
  at: string;
}

export interface ExportStore {
  selection(job: string): Promise<StoredSelection | undefined>;
  saveSelection(job: string, s: StoredSelection): Promise<void>;
  /** Every drive plan of the job, by ordinal. */
  plans(job: string): Promise<DrivePlan[]>;
  savePlan(job: string, plan: DrivePlan): Promise<void>;
  /** Written chunks of unfinished blobs: blob index -> chunk index -> MD5. */
  blocks(job: string, driveId: string): Promise<Map<number, Map<number, string>>>;
  saveBlocks(job: string, driveId: string, records: BlockRecord[]): Promise<void>;
  done(job: string, driveId: string): Promise<Set<number>>;
  /** Finished blobs in plan order, streamed. */
  doneEntries(job: string, driveId: string): AsyncIterable<DoneBlob>;
  /** Records finished blobs (and drops their block records). */
  saveDone(job: string, driveId: string, records: DoneBlob[]): Promise<void>;
  confirm(job: string, driveId: string, c: Confirmation): Promise<void>;
  confirmation(job: string, driveId: string): Promise<Confirmation | undefined>;
  /** After the drive finished: its block records go (the plan and finished blobs stay for the preview). */
  clearBlocks(job: string, driveId: string): Promise<void>;
}

export class MemoryExportStore implements ExportStore {
  private readonly selections = new Map<string, StoredSelection>();
  private readonly drivePlans = new Map<string, DrivePlan[]>();
  private readonly blockMap = new Map<string, Map<number, Map<number, string>>>();
  private readonly doneMap = new Map<string, Map<number, DoneBlob>>();
  private readonly confirmations = new Map<string, Confirmation>();
  private readonly k = (job: string, driveId: string) => `${job}\0${driveId}`;

  async selection(job: string) {
    return structuredClone(this.selections.get(job));
  }
  async saveSelection(job: string, s: StoredSelection) {
    this.selections.set(job, structuredClone(s));
  }
  async plans(job: string) {
    return structuredClone(this.drivePlans.get(job) ?? []);
  }
  async savePlan(job: string, plan: DrivePlan) {
    const list = this.drivePlans.get(job) ?? [];
    if (!list.some((p) => p.driveId === plan.driveId)) list.push(structuredClone(plan));
    this.drivePlans.set(job, list);
  }
  async blocks(job: string, driveId: string) {
    return structuredClone(this.blockMap.get(this.k(job, driveId)) ?? new Map());
  }
  async saveBlocks(job: string, driveId: string, records: BlockRecord[]) {
    const m = this.blockMap.get(this.k(job, driveId)) ?? new Map<number, Map<number, string>>();
    for (const r of records) {
      const b = m.get(r.index) ?? new Map<number, string>();
      b.set(r.chunk, r.md5);
      m.set(r.index, b);
    }
    this.blockMap.set(this.k(job, driveId), m);
  }
  async done(job: string, driveId: string) {
    return new Set(this.doneMap.get(this.k(job, driveId))?.keys() ?? []);
  }
  async *doneEntries(job: string, driveId: string) {
    const m = this.doneMap.get(this.k(job, driveId)) ?? new Map<number, DoneBlob>();
    for (const i of [...m.keys()].sort((a, b) => a - b)) yield structuredClone(m.get(i)!);
  }
  async saveDone(job: string, driveId: string, records: DoneBlob[]) {
    const m = this.doneMap.get(this.k(job, driveId)) ?? new Map<number, DoneBlob>();
    for (const r of records) {
      m.set(r.index, structuredClone(r));
      this.blockMap.get(this.k(job, driveId))?.delete(r.index);
    }
    this.doneMap.set(this.k(job, driveId), m);
  }
  async confirm(job: string, driveId: string, c: Confirmation) {
    this.confirmations.set(this.k(job, driveId), c);
  }
  async confirmation(job: string, driveId: string) {
    return this.confirmations.get(this.k(job, driveId));
  }
  async clearBlocks(job: string, driveId: string) {
    this.blockMap.delete(this.k(job, driveId));
  }
}
