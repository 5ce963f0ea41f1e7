/**
 * The store contract on both adapters: SQLite (a temp file; a peer is a second connection to
 * it) and a real PostgreSQL started for this file (a fresh database per test).
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgStore } from "../../src/jobs/pg-store.js";
import { SqliteStore } from "../../src/jobs/sqlite-store.js";
import { captureLog } from "../support/log.js";
import { PG_PASSWORD, postgresGate, startTestPostgres, type TestPostgres } from "../support/postgres.js";
import { type ContractStore, describeStoreContract } from "./store-contract.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describeStoreContract("SQLite", () => ({
  async open() {
    const dir = mkdtempSync(join(tmpdir(), "store-contract-"));
    dirs.push(dir);
    const file = join(dir, "jobs.db");
    return { store: new SqliteStore(file), peer: async () => new SqliteStore(file) };
  },
  async close(store: ContractStore) {
    (store as SqliteStore).close();
  },
}));

const PG = postgresGate("store contract: PostgreSQL");
let server: TestPostgres | undefined;
let databases = 0;
const pgLog = captureLog();

describe.skipIf(!PG)("PostgreSQL adapter", () => {
  beforeAll(async () => {
    server = await startTestPostgres();
  });
  afterAll(() => server?.destroy());

  describeStoreContract("PostgreSQL", () => ({
    async open() {
      const url = await server!.createDatabase(`contract_${++databases}`);
      const open = () => PgStore.open({ url, poolSize: 4, log: pgLog.log });
      return { store: await open(), peer: open };
    },
    async close(store: ContractStore) {
      await (store as PgStore).close();
    },
  }));

  it("stations starting together migrate once, and a restart migrates nothing", async () => {
    const url = await server!.createDatabase("migrate_race");
    const shipped = readdirSync(join(import.meta.dirname, "..", "..", "src", "jobs", "pg-migrations"))
      .filter((f) => f.endsWith(".sql"))
      .map((f) => f.replace(/\.sql$/, ""))
      .sort();
    expect(shipped.length).toBeGreaterThan(0);
    /** Opens a store with its own log; returns the migrations that start applied. */
    const start = async (poolSize?: number) => {
      const { log, lines } = captureLog();
      const store = await PgStore.open({ url, log, ...(poolSize ? { poolSize } : {}) });
      const line = lines().find((l) => Array.isArray(l.applied));
      expect(line, "the start logs what it applied").toBeDefined();
      return { store, applied: line!.applied as string[] };
    };
    const together = await Promise.all(Array.from({ length: 4 }, () => start(2)));
    // Every migration applied by exactly one of the four, in order.
    const applied = together.flatMap((s) => s.applied);
    expect(applied.sort()).toEqual(shipped);
    expect(together.filter((s) => s.applied.length > 0)).toHaveLength(1);
    await Promise.all(together.map((s) => s.store.close()));

    const again = await start();
    expect(again.applied).toEqual([]);
    await again.store.close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query<{ name: string }>("SELECT name FROM pgmigrations ORDER BY id");
    await client.end();
    expect(rows.map((r) => r.name)).toEqual(shipped);
  });

  it("the URL's password reaches no error message and no log line", async () => {
    const { log, text } = captureLog();
    const wrong = server!.url.replace(PG_PASSWORD, `${PG_PASSWORD}-wrong`);
    const refused = await PgStore.open({ url: wrong, log }).catch((e: Error) => e);
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error).message).not.toContain(PG_PASSWORD);
    // A port nobody listens on: the store is unreachable; the message names the database without the password.
    const nowhere = server!.url.replace(`:${server!.port}/`, ":9/");
    const down = await PgStore.open({ url: nowhere, connectTimeoutMs: 1000, log }).catch((e: Error) => e);
    expect(down).toMatchObject({ code: "StoreUnavailable" });
    expect((down as Error).message).toContain("postgres://station:[redacted]@127.0.0.1:9/postgres");
    expect((down as Error).message).not.toContain(PG_PASSWORD);
    const ok = await PgStore.open({ url: server!.url, log });
    expect(ok.where).not.toContain(PG_PASSWORD);
    await ok.close();
    expect(text()).not.toContain(PG_PASSWORD);
    expect(pgLog.text()).not.toContain(PG_PASSWORD);
  });
});
