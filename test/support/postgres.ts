/**
 * A real PostgreSQL for a test file: Debian's `postgresql` binaries, a cluster in a temp
 * directory owned by the unprivileged `postgres` user (postgres refuses to run as root), a unix
 * socket in that directory and a free TCP port on 127.0.0.1, password (SCRAM) auth over TCP.
 * One server per test file; `destroy()` in afterAll. In CI (CI=true) a server that cannot start
 * fails the suite; elsewhere the suite skips and says why.
 */
import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { freePort } from "./azurite.js";

export const PG_USER = "station";
/** Deliberately distinctive: tests assert it never shows up in a log line or an error. */
export const PG_PASSWORD = "pg-Secret-7f3a9c-never-logged";

export interface TestPostgres {
  port: number;
  /** postgres://station:<password>@127.0.0.1:<port>/postgres */
  url: string;
  /** A URL for a fresh, empty database (one per contract-suite store). */
  createDatabase(name: string): Promise<string>;
  stop(): void;
  start(): void;
  destroy(): void;
}

function binDir(): string | undefined {
  const debian = "/usr/lib/postgresql";
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => existsSync(join(debian, v, "bin", "pg_ctl")))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(debian, versions[0], "bin");
  }
  try {
    const pgCtl = execFileSync("sh", ["-c", "command -v pg_ctl"], { encoding: "utf8" }).trim();
    return pgCtl ? dirname(pgCtl) : undefined;
  } catch {
    return undefined;
  }
}

function uidOf(user: string): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

/** Why a PostgreSQL cannot be started here, or undefined when it can. */
export function postgresUnavailable(): string | undefined {
  if (!binDir()) return "PostgreSQL is not installed (Debian package: postgresql)";
  if (process.getuid?.() === 0) {
    if (!uidOf("postgres"))
      return "running as root and there is no unprivileged 'postgres' user to run the server";
    try {
      execFileSync("sh", ["-c", "command -v runuser"], { encoding: "utf8" });
    } catch {
      return "runuser (util-linux) is missing: cannot drop root to start postgres";
    }
  }
  return undefined;
}

/** Call at the top of a suite that needs PostgreSQL: fails loudly in CI, skips with the reason elsewhere. */
export function postgresGate(suite: string): boolean {
  const why = postgresUnavailable();
  if (!why) return true;
  if (process.env.CI) throw new Error(`Suite "${suite}" cannot run in CI: ${why}.`);
  console.warn(`SKIPPING suite "${suite}": ${why}.`);
  return false;
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = binDir();
  if (!bin) throw new Error("PostgreSQL is not installed (Debian package: postgresql)");
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? uidOf("postgres") : undefined;
  const dir = mkdtempSync(join(tmpdir(), "drive-station-pg-"));
  const data = join(dir, "data");
  const sockets = join(dir, "sockets");
  mkdirSync(sockets);
  const pwfile = join(dir, "pwfile");
  writeFileSync(pwfile, `${PG_PASSWORD}\n`, { mode: 0o600 });
  if (owner) for (const p of [dir, sockets, pwfile]) chownSync(p, owner.uid, owner.gid);
  const run = (tool: string, args: string[]) => {
    const cmd = asRoot ? "runuser" : join(bin, tool);
    const argv = asRoot ? ["-u", "postgres", "--", join(bin, tool), ...args] : args;
    try {
      return execFileSync(cmd, argv, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], cwd: dir });
    } catch (e) {
      const err = e as { stderr?: string; stdout?: string; message: string };
      throw new Error(`${tool} ${args[0] ?? ""} failed: ${err.stderr || err.stdout || err.message}`);
    }
  };
  run("initdb", [
    "-D",
    data,
    "-U",
    PG_USER,
    `--pwfile=${pwfile}`,
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "--no-sync",
    "-E",
    "UTF8",
    "--locale=C",
  ]);
  const port = await freePort();
  // Speed over durability: a test cluster lives for one file.
  const options = `-c listen_addresses=127.0.0.1 -p ${port} -k ${sockets} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
  const t: TestPostgres = {
    port,
    url: `postgres://${PG_USER}:${PG_PASSWORD}@127.0.0.1:${port}/postgres`,
    async createDatabase(name) {
      run("psql", [
        "-h",
        sockets,
        "-p",
        String(port),
        "-U",
        PG_USER,
        "-d",
        "postgres",
        "-qc",
        `CREATE DATABASE "${name}"`,
      ]);
      return `postgres://${PG_USER}:${PG_PASSWORD}@127.0.0.1:${port}/${name}`;
    },
    start() {
      run("pg_ctl", ["-D", data, "-o", options, "-l", join(dir, "server.log"), "-w", "-t", "60", "start"]);
    },
    stop() {
      run("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]);
    },
    destroy() {
      try {
        t.stop();
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  t.start();
  return t;
}
