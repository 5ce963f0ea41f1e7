/**
 * The store contract on both adapters: SQLite (a temp file; a peer is a second connection to
 * it) and a real PostgreSQL started for this file (a fresh database per test).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => PgStore.open({ url, poolSize: 2, log: pgLog.log })),
    );
    await Promise.all(stores.map((s) => s.close()));
    const again = await PgStore.open({ url, log: pgLog.log });
    await again.close();
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
