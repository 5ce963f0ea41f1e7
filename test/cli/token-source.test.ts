/** Where the `station` CLI takes the operator token from, so it never has to be on the command line. */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { built } from "../support/built.js";

const run = promisify(execFile);
let station: TestAgent;
let dir: string;

/** The CLI in an empty directory (no ./data/api-tokens.json) with only the given environment. */
async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [built("src/cli/main.js"), "--url", station.agent.url, ...args],
      {
        cwd: dir,
        env: { PATH: process.env.PATH ?? "", ...env },
      },
    );
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ds-token-"));
  station = await startTestAgent(join(dir, "agent"));
  writeFileSync(join(dir, "operator.token"), `${OPERATOR_TOKEN}\n`, { mode: 0o600 });
  writeFileSync(join(dir, "customer.token"), `${CUSTOMER_TOKEN}\n`, { mode: 0o600 });
  writeFileSync(join(dir, "empty.token"), "\n");
});
afterAll(async () => {
  await station?.agent.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the operator token", () => {
  it("--token-file FILE: the token from the file's first line", async () => {
    const r = await cli(["--token-file", join(dir, "operator.token"), "jobs", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
  });

  it("DRIVE_STATION_TOKEN_FILE and DRIVE_STATION_TOKEN: nothing on the command line", async () => {
    expect(
      (await cli(["jobs", "--json"], { DRIVE_STATION_TOKEN_FILE: join(dir, "operator.token") })).code,
    ).toBe(0);
    expect((await cli(["jobs", "--json"], { DRIVE_STATION_TOKEN: OPERATOR_TOKEN })).code).toBe(0);
  });

  it("--token-file wins over the environment (the customer token there is refused for operator routes)", async () => {
    const env = {
      DRIVE_STATION_TOKEN: CUSTOMER_TOKEN,
      DRIVE_STATION_TOKEN_FILE: join(dir, "customer.token"),
    };
    expect((await cli(["jobs", "--json"], env)).code).toBe(1);
    expect((await cli(["--token-file", join(dir, "operator.token"), "jobs", "--json"], env)).code).toBe(0);
  });

  it("a missing or empty token file: one line naming the file and the next step, not a token", async () => {
    const missing = await cli(["--token-file", join(dir, "nope.token"), "jobs"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^station: Cannot read the token file .*nope\.token: ENOENT\. Next: /);
    const empty = await cli(["jobs"], { DRIVE_STATION_TOKEN_FILE: join(dir, "empty.token") });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(
      /The token file .*empty\.token is empty\. Next: put the operator token on its first line/,
    );
  });

  it("no token anywhere: says where a token may come from, --token-file first", async () => {
    const r = await cli(["jobs"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /No operator token: pass --token-file FILE, set DRIVE_STATION_TOKEN_FILE or DRIVE_STATION_TOKEN/,
    );
  });

  it("--help steers away from --token", async () => {
    const r = await cli(["--help"]);
    expect(r.stdout).toMatch(/--token-file <file>\s+read the operator token from this file/);
    expect(r.stdout).toMatch(
      /--token <token>\s+operator token on the command line: avoid it, ps and shell\s+history show it/,
    );
  });
});
