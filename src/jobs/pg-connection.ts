/**
 * The PostgreSQL side of the shared store: the connection pool, schema migrations (node-pg-migrate,
 * SQL files in ./pg-migrations), the store's health, and the one place that turns driver errors
 * into StationErrors. The URL's password never leaves this module: messages name the database
 * by `redactUrl(url)`.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { runner } from "node-pg-migrate";
import pg from "pg";
import type { Logger } from "pino";
import { StationError } from "../errors.js";
import type { StoreHealth } from "./store.js";

export interface PgOptions {
  url: string;
  poolSize?: number;
  connectTimeoutMs?: number;
  log: Logger;
}

/** `postgres://user:secret@host/db` -> `postgres://user:[redacted]@host/db`; also scrubs `password=` parameters. */
export function redactUrl(url: string): string {
  return url
    .replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*:)[^@/?#]*@/i, "$1[redacted]@")
    .replace(/([?&]password=)[^&]*/gi, "$1[redacted]");
}

// SQLSTATE classes that mean "the server is not there for us" rather than "this query is wrong".
const UNAVAILABLE_SQLSTATE = /^(08|57P|53)/;

/** True when the error says the database cannot be reached (not that a statement failed). */
export function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return UNAVAILABLE_SQLSTATE.test(code);
  return true; // no SQLSTATE: a socket error, a timeout, "Connection terminated"
}

// Next to this module: src/jobs from the source tree, dist/src/jobs once built (the build copies
// the SQL files there, so an install without src/ migrates too).
const MIGRATIONS_DIR = join(import.meta.dirname, "pg-migrations");
// Serialises migrations of stations starting together (node-pg-migrate's own lock fails instead of waiting).
const MIGRATION_LOCK = 4_815_162_342;

export class PgConnection implements StoreHealth {
  readonly pool: pg.Pool;
  /** The database as messages may name it. */
  readonly where: string;
  private up = true;
  private probe: NodeJS.Timeout | undefined;
  private waiters = new Set<() => void>();
  private closed = false;

  constructor(private readonly options: PgOptions) {
    this.where = redactUrl(options.url);
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 30_000,
      application_name: "drive-station",
    });
    // An idle client whose server went away: the pool drops it; without a listener Node would crash.
    this.pool.on("error", (e) => this.failed(e));
  }

  /**
   * Connects and brings the schema up to date; several stations may start at once. Returns (and
   * logs) the names of the migrations this call applied: none when another station already had.
   */
  async migrate(): Promise<string[]> {
    const dir = MIGRATIONS_DIR;
    if (!existsSync(dir))
      throw new StationError(
        "InternalError",
        `PostgreSQL migrations not found in ${dir}: the install is incomplete; rebuild with \`npm run build\` and copy dist/ again.`,
      );
    const client = await this.connect();
    try {
      await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
      const log = this.options.log;
      const applied = await runner({
        dbClient: client,
        dir,
        direction: "up",
        migrationsTable: "pgmigrations",
        noLock: true,
        checkOrder: true,
        logger: {
          debug: () => undefined,
          info: (m: string) => log.debug(m),
          warn: (m: string) => log.warn(m),
          error: (m: string) => log.error(m),
        },
      });
      const names = applied.map((m) => m.name);
      log.info({ applied: names }, `PostgreSQL schema up to date (${names.length} migrations applied now)`);
      return names;
    } catch (e) {
      throw this.translate(e, "migrating the schema");
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
      client.release();
    }
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (e) {
      throw this.translate(e, "connecting");
    }
  }

  async query<R extends pg.QueryResultRow>(sql: string, args: unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, args);
    } catch (e) {
      throw this.translate(e, "querying");
    }
  }

  /** Runs `work` in one transaction on one client. */
  async transaction<T>(work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.connect();
    try {
      await client.query("BEGIN");
      const out = await work(client);
      await client.query("COMMIT");
      return out;
    } catch (e) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw this.translate(e, "writing");
    } finally {
      client.release();
    }
  }

  healthy(): boolean {
    return this.up && !this.closed;
  }

  whenHealthy(signal?: AbortSignal): Promise<void> {
    if (this.healthy()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        signal?.removeEventListener("abort", abort);
        this.waiters.delete(done);
        resolve();
      };
      const abort = () => {
        this.waiters.delete(done);
        reject(signal?.reason ?? new Error("aborted"));
      };
      if (signal?.aborted) return abort();
      signal?.addEventListener("abort", abort, { once: true });
      this.waiters.add(done);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probe) clearTimeout(this.probe);
    for (const w of [...this.waiters]) w();
    await this.pool.end();
  }

  /** StationErrors pass through; connection failures become StoreUnavailable and start the probe. */
  translate(e: unknown, doing: string): unknown {
    if (e instanceof StationError) return e;
    if (!isConnectionError(e)) return e;
    this.failed(e);
    const reason = redactUrl(String((e as Error)?.message ?? e)).replaceAll(this.options.url, this.where);
    const code = (e as { code?: string })?.code;
    return new StationError(
      "StoreUnavailable",
      `The job database ${this.where} is unreachable while ${doing} (${code ? `${code}: ` : ""}${reason}). The station pauses claims and checkpoint writes and retries with backoff.`,
      { retryable: true },
    );
  }

  private failed(e: unknown): void {
    if (this.closed) return;
    if (this.up) {
      this.up = false;
      this.options.log.error(
        { database: this.where, code: (e as { code?: string })?.code },
        "job database unreachable: pausing claims and checkpoint writes until it answers",
      );
      this.schedule(250);
    }
  }

  private schedule(delayMs: number): void {
    this.probe = setTimeout(async () => {
      try {
        await this.pool.query("SELECT 1");
        this.up = true;
        this.options.log.info({ database: this.where }, "job database reachable again: resuming");
        for (const w of [...this.waiters]) w();
      } catch {
        if (!this.closed) this.schedule(Math.min(5000, delayMs * 2));
      }
    }, delayMs);
    this.probe.unref();
  }
}
