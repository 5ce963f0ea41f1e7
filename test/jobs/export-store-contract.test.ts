/**
 * The export store contract on both adapters: SQLite (export.db) and the fleet's PostgreSQL
 * (a fresh database per test, a peer connection as another station).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { LogBlob } from "../../src/formats/drive-log.js";
import { PgStore } from "../../src/jobs/pg-store.js";
import { SqliteExportStore } from "../../src/jobs/sqlite-export-store.js";
import type { DrivePlan, SelectedBlob } from "../../src/transfer/export/planner.js";
import type { DoneBlob, ExportStore, StoredSelection } from "../../src/transfer/export/store.js";
import { captureLog } from "../support/log.js";
import { postgresGate, startTestPostgres, type TestPostgres } from "../support/postgres.js";

interface Opened {
  store: ExportStore;
  peer(): Promise<ExportStore>;
}

const blob = (index: number): SelectedBlob => ({
  index,
  container: "c",
  name: `dir/blob-${index}.bin`,
  kind: "block",
  length: 1000 + index,
  etag: `"0x${index}"`,
  lastModified: new Date(Date.UTC(2026, 0, 1, 0, 0, index)),
  leased: false,
  archived: false,
  metadata: { owner: "bob" },
});

const selection = (n: number): StoredSelection => ({
  selectors: 2,
  duplicates: 1,
  missing: [{ selector: "/nothing/", reason: "selected nothing" }],
  blobs: Array.from({ length: n }, (_, i) => blob(i)),
});

const plan = (driveId: string, ordinal: number): DrivePlan => ({
  driveId,
  ordinal,
  geometry: { freeBytes: 1e9, cluster: 4096, sparseUnit: 65536 },
  blobs: [{ index: 0, filePath: "\\c\\dir\\blob-0.bin", cost: 4096 }],
  usedBytes: 4096,
  dataBytes: 1000,
});

const done = (index: number): DoneBlob => ({
  index,
  bytes: 1000 + index,
  log: { blobPath: `c/dir/blob-${index}.bin`, status: "Completed" } as unknown as LogBlob,
});

function describeExportStoreContract(
  name: string,
  open: () => Promise<Opened>,
  close: (s: ExportStore) => Promise<void>,
) {
  describe(`export store contract: ${name}`, () => {
    const opened: ExportStore[] = [];
    const openTracked = async (): Promise<Opened> => {
      const o = await open();
      opened.push(o.store);
      return {
        store: o.store,
        peer: async () => {
          const p = await o.peer();
          opened.push(p);
          return p;
        },
      };
    };
    afterEach(async () => {
      for (const s of opened.splice(0).reverse()) await close(s);
    });

    it("a selection is stored whole and replaced whole; another station reads it", async () => {
      const { store, peer } = await openTracked();
      expect(await store.selection("job")).toBeUndefined();
      await store.saveSelection("job", selection(5));
      const other = await peer();
      expect(await other.selection("job")).toEqual(selection(5));
      await other.saveSelection("job", selection(2));
      expect(await store.selection("job")).toEqual(selection(2));
      expect(await store.selection("other-job")).toBeUndefined();
    });

    it("a drive's plan is fixed when first saved; plans come back by ordinal", async () => {
      const { store } = await openTracked();
      await store.savePlan("job", plan("D2", 2));
      await store.savePlan("job", plan("D1", 1));
      await store.savePlan("job", { ...plan("D1", 1), usedBytes: 999 });
      expect(await store.plans("job")).toEqual([plan("D1", 1), plan("D2", 2)]);
      expect(await store.plans("nope")).toEqual([]);
    });

    it("blocks, finished blobs (which drop their blocks), streamed entries, clearBlocks", async () => {
      const { store, peer } = await openTracked();
      await store.saveBlocks("job", "D1", [
        { index: 0, chunk: 0, md5: "AA" },
        { index: 0, chunk: 1, md5: "BB" },
        { index: 1, chunk: 0, md5: "CC" },
      ]);
      await store.saveBlocks("job", "D2", [{ index: 0, chunk: 0, md5: "DD" }]);
      const other = await peer();
      expect(await other.blocks("job", "D1")).toEqual(
        new Map([
          [
            0,
            new Map([
              [0, "AA"],
              [1, "BB"],
            ]),
          ],
          [1, new Map([[0, "CC"]])],
        ]),
      );
      await other.saveDone("job", "D1", [done(0)]);
      expect(await store.blocks("job", "D1")).toEqual(new Map([[1, new Map([[0, "CC"]])]]));
      expect(await store.done("job", "D1")).toEqual(new Set([0]));
      await store.saveDone("job", "D1", [done(3), done(1)]);
      const entries: DoneBlob[] = [];
      for await (const e of store.doneEntries("job", "D1")) entries.push(e);
      expect(entries).toEqual([done(0), done(1), done(3)]);
      await store.clearBlocks("job", "D2");
      expect((await store.blocks("job", "D2")).size).toBe(0);
      expect(await store.done("job", "D1")).toEqual(new Set([0, 1, 3]));
    });

    it("doneEntries streams thousands in order", async () => {
      const { store } = await openTracked();
      const n = 2300;
      for (let i = 0; i < n; i += 500)
        await store.saveDone(
          "job",
          "D1",
          Array.from({ length: Math.min(500, n - i) }, (_, k) => done(n - 1 - i - k)),
        );
      let expected = 0;
      for await (const e of store.doneEntries("job", "D1")) expect(e.index).toBe(expected++);
      expect(expected).toBe(n);
    });

    it("confirmations per drive, replaced by the latest", async () => {
      const { store, peer } = await openTracked();
      expect(await store.confirmation("job", "D1")).toBeUndefined();
      await store.confirm("job", "D1", { by: "alice", at: "2026-01-01T00:00:00.000Z" });
      const other = await peer();
      await other.confirm("job", "D1", { by: "bob", at: "2026-01-02T00:00:00.000Z" });
      expect(await store.confirmation("job", "D1")).toEqual({ by: "bob", at: "2026-01-02T00:00:00.000Z" });
      expect(await store.confirmation("job", "D2")).toBeUndefined();
    });
  });
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describeExportStoreContract(
  "SQLite",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "export-contract-"));
    dirs.push(dir);
    const file = join(dir, "export.db");
    return { store: new SqliteExportStore(file), peer: async () => new SqliteExportStore(file) };
  },
  async (s) => (s as SqliteExportStore).close(),
);

const PG = postgresGate("export store contract: PostgreSQL");
let server: TestPostgres | undefined;
let databases = 0;
const owners = new Map<ExportStore, PgStore>();

describe.skipIf(!PG)("PostgreSQL export store", () => {
  beforeAll(async () => {
    server = await startTestPostgres();
  });
  afterAll(() => server?.destroy());

  describeExportStoreContract(
    "PostgreSQL",
    async () => {
      const url = await server!.createDatabase(`export_${++databases}`);
      const open = async () => {
        const pg = await PgStore.open({ url, poolSize: 3, log: captureLog().log });
        const store = pg.exportStore();
        owners.set(store, pg);
        return store;
      };
      return { store: await open(), peer: open };
    },
    async (s) => {
      await owners.get(s)?.close();
      owners.delete(s);
    },
  );
});
