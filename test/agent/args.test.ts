/** The agent's own command line: --help, --version, --config; a bad flag is one line, exit 2. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parseAgentArgs } from "../../agent/args.js";
import { built, ROOT } from "../support/built.js";

const run = promisify(execFile);
async function agent(args: string[]) {
  try {
    const r = await run(process.execPath, [built("agent/main.js"), ...args]);
    return { code: 0, ...r };
  } catch (e) {
    return e as { code: number; stdout: string; stderr: string };
  }
}

describe("agent arguments", () => {
  it("--help and --version answer without starting anything", async () => {
    const help = await agent(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: drive-station [options]");
    expect(help.stdout).toContain("--config <file>");
    expect(help.stdout).toContain("78 bad config");
    const version = await agent(["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("a bad flag: one line naming it, exit 2", async () => {
    const r = await agent(["--confg", "x.json"]);
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("unknown option '--confg'");
    expect(r.stderr).toContain("--config");
  });

  it("--config, DRIVE_STATION_CONFIG, then config/default.json", () => {
    const quiet = { out: () => undefined, err: () => undefined };
    expect(parseAgentArgs(["--config", "/etc/ds.json"], {}, ROOT, quiet)).toEqual({
      kind: "run",
      args: { configFile: "/etc/ds.json" },
    });
    expect(parseAgentArgs([], { DRIVE_STATION_CONFIG: "/srv/c.json" }, ROOT, quiet)).toEqual({
      kind: "run",
      args: { configFile: "/srv/c.json" },
    });
    expect(parseAgentArgs([], {}, ROOT, quiet)).toEqual({
      kind: "run",
      args: { configFile: `${ROOT}/config/default.json` },
    });
  });
});
