/**
 * The installed layout is the tested layout: installs the build exactly as README.md's systemd
 * section says (`cp -r dist node_modules package.json config /opt/drive-station/`, the example
 * config copied and edited) into a temp directory with no src/ and no test/, then starts the
 * installed agent from there, as the unit does (WorkingDirectory, ExecStart), with SQLite and with
 * PostgreSQL, and waits for /readyz. A run-time file the build leaves out of dist/ (the PostgreSQL
 * migrations once were) stops the agent here. node_modules is the checkout's as it is (copied as
 * the symlink it may be): the claim under test is dist/, not the dependencies.
 */
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentProcess } from "../../src/staging/agent-process.js";
import { OPERATOR_TOKEN } from "../support/agent.js";
import { freePort } from "../support/azurite.js";
import { built, ROOT } from "../support/built.js";
import { postgresGate, startTestPostgres, type TestPostgres } from "../support/postgres.js";
import { stagedDeadlines } from "./loop-images.js";

const RUN_PG = postgresGate("install (PostgreSQL)");
stagedDeadlines();

let root: string;
let opt: string;
let postgres: TestPostgres | undefined;
const agents: AgentProcess[] = [];

/** README: `cp config/production.example.json /etc/drive-station/config.json   # then edit it`. */
async function editedConfig(name: string, store: Record<string, unknown>) {
  const example = JSON.parse(readFileSync(join(opt, "config", "production.example.json"), "utf8"));
  const dir = join(root, name);
  mkdirSync(join(dir, "plugged"), { recursive: true });
  const apiPort = await freePort();
  const config = {
    ...example,
    dataDir: join(dir, "var-lib"),
    log: { level: "info" },
    // No TLS here (the test's fetch would have to trust a self-signed certificate); the rest as shipped.
    api: {
      host: "127.0.0.1",
      port: apiPort,
      tokens: [{ name: "ops", role: "operator", token: OPERATOR_TOKEN }],
    },
    storage: { mode: "embedded", host: "127.0.0.1", port: await freePort() },
    drives: {
      physical: false,
      pollIntervalMs: 200,
      loopImageDirs: [join(dir, "plugged")],
      mountRoot: join(dir, "mnt"),
    },
    store,
  };
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  return { file, url: `http://127.0.0.1:${apiPort}`, mountRoot: join(dir, "mnt") };
}

/** Starts the installed agent as the unit does and waits for /readyz 200; returns its answer. */
async function startInstalled(name: string, store: Record<string, unknown>) {
  const c = await editedConfig(name, store);
  const agent = new AgentProcess({
    config: c.file,
    url: c.url,
    operatorToken: OPERATOR_TOKEN,
    mountRoot: c.mountRoot,
    entry: join(opt, "dist", "agent", "main.js"),
    cwd: opt,
    env: { UV_THREADPOOL_SIZE: "32" },
  });
  agents.push(agent);
  agent.start();
  // Generous: only a hang reaches it. An agent that stops fails at once, with its log.
  const ready = await agent.waitFor(
    "/readyz 200 from the installed agent",
    async () => {
      if (!agent.running) return { exited: agent.tail(3000) };
      const res = await fetch(`${c.url}/readyz`);
      return res.status === 200 ? ((await res.json()) as { status: string }) : undefined;
    },
    120_000,
    200,
  );
  if ("exited" in ready) throw new Error(`the installed agent stopped before it was ready:\n${ready.exited}`);
  return { agent, ready };
}

describe("installed as README.md says: no src/, the agent starts from /opt/drive-station", () => {
  beforeAll(async () => {
    built("agent/main.js");
    root = mkdtempSync(join(tmpdir(), "drive-station-install-"));
    opt = join(root, "opt", "drive-station");
    execFileSync("install", ["-d", opt]);
    execFileSync("cp", ["-r", "dist", "node_modules", "package.json", "config", `${opt}/`], { cwd: ROOT });
    if (RUN_PG) postgres = await startTestPostgres();
  });

  afterAll(async () => {
    for (const a of agents) await a.cleanup().catch(() => undefined);
    postgres?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("the install holds only what the README copies", () => {
    expect(readdirSync(opt).sort()).toEqual(["config", "dist", "node_modules", "package.json"]);
    expect(existsSync(join(opt, "src"))).toBe(false);
    expect(existsSync(join(opt, "dist", "agent", "main.js"))).toBe(true);
  });

  it("starts with SQLite (the default store) and is ready; SIGTERM stops it cleanly", async () => {
    const { agent, ready } = await startInstalled("sqlite", { kind: "sqlite" });
    expect(ready.status).toBe("ready");
    expect((await agent.api("GET", "/station/v1/jobs")).status).toBe(200);
    expect(existsSync(join(root, "sqlite", "var-lib", "jobs.db"))).toBe(true);
    expect(await agent.signal("SIGTERM")).toMatchObject({ code: 0 });
  });

  it.skipIf(!RUN_PG)(
    "starts with PostgreSQL, migrates the schema from dist/ and is ready; SIGTERM stops it cleanly",
    async () => {
      const url = await postgres!.createDatabase("installed");
      const { agent, ready } = await startInstalled("postgres", { kind: "postgres", url });
      expect(ready.status).toBe("ready");
      expect((await agent.api("GET", "/station/v1/jobs")).status).toBe(200);
      // Every migration the build shipped was applied, from the installed copy.
      const shipped = readdirSync(join(opt, "dist", "src", "jobs", "pg-migrations")).filter((f) =>
        f.endsWith(".sql"),
      );
      expect(shipped.length).toBeGreaterThan(0);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query<{ name: string }>(
          "SELECT name FROM pgmigrations ORDER BY run_on, id",
        );
        expect(rows.map((r) => `${r.name}.sql`)).toEqual(shipped.sort());
      } finally {
        await client.end();
      }
      expect(await agent.signal("SIGTERM")).toMatchObject({ code: 0 });
    },
  );
});
