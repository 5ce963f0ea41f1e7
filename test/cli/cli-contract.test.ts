/**
 * The CLI's contract, over every command commander knows (never a hand-kept list): --help works,
 * a bad flag is one line on stderr with exit 2, --json output parses, and every `station <cmd>`
 * that src/ tells an operator to run exists.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACTION_COMMANDS } from "../../src/cli/commands/actions.js";
import { OFFLINE_JSON_COMMANDS } from "../../src/cli/commands/common.js";
import { READ_COMMANDS } from "../../src/cli/commands/read.js";
import { allCommands, buildProgram, commandPath } from "../../src/cli/program.js";
import { OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { built, ROOT } from "../support/built.js";
import { importSpec, key } from "../support/jobs.js";

const run = promisify(execFile);
const program = buildProgram();
const commands = allCommands(program).filter((c) => c !== program);
const argsOf = (path: string) => path.split(" ").slice(1);

async function cli(args: string[], extra: string[] = []) {
  try {
    const r = await run(process.execPath, [built("src/cli/main.js"), ...args, ...extra], { cwd: ROOT });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("every command", () => {
  it("the program has the commands the README and notices use", () => {
    const names = commands.map((c) => c.name());
    for (const n of [
      "jobs",
      "drives",
      "show",
      "attached",
      "notices",
      "check-in",
      "arrived",
      "prepare",
      "demo",
    ])
      expect(names).toContain(n);
  });

  it.each(["", ...commands.map((c) => commandPath(c).replace(/^station ?/, ""))])(
    "station %s --help prints its usage, exit 0",
    async (sub) => {
      const r = await cli([...(sub ? sub.split(" ") : []), "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: station${sub ? ` ${sub}` : ""}`);
      expect(r.stderr).toBe("");
    },
  );

  it.each(commands.map((c) => commandPath(c)))("%s --no-such-flag: one line, exit 2", async (path) => {
    // Everything the command requires is given, so the bad flag is the only thing wrong.
    const cmd = commands.find((c) => commandPath(c) === path)!;
    const required = [
      ...cmd.registeredArguments.filter((a) => a.required).map(() => "x"),
      ...cmd.options.filter((o) => o.mandatory).flatMap((o) => [o.long!, "x"]),
    ];
    const r = await cli([...argsOf(path), ...required, "--no-such-flag"]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("unknown option '--no-such-flag'");
    expect(lines[0]).toContain(`See '${path} --help'`);
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
  });

  it("an unknown command, a missing argument, a bad number: one line with the next step, exit 2", async () => {
    for (const [args, text] of [
      [["jbos"], "unknown command 'jbos' (Did you mean jobs?)"],
      [["show"], "missing required argument 'job'"],
      [["notices", "--limit", "many"], "--limit must be a whole number"],
      [["check-in", "job-1"], "required option '--tracking <number>' not specified"],
      [["prepare", "--drive", "/tmp"], "required option"],
    ] as const) {
      const r = await cli([...args]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr.trimEnd().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.stderr).toContain(text);
    }
  });

  it("every command with --json is a read command, an action or a customer tool's report", () => {
    const withJson = commands.filter((c) => c.options.some((o) => o.long === "--json")).map((c) => c.name());
    expect(withJson.sort()).toEqual([...READ_COMMANDS, ...ACTION_COMMANDS, ...OFFLINE_JSON_COMMANDS].sort());
  });
});

describe("against an agent", () => {
  let station: TestAgent;
  let dir: string;
  const conn = () => ["--url", station.agent.url, "--token", OPERATOR_TOKEN];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "ds-cli-contract-"));
    station = await startTestAgent(join(dir, "data"));
    const actor = { name: "t", type: "User" as const };
    await station.agent.service.create(key, importSpec(), actor);
  });
  afterAll(async () => {
    await station.agent.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(READ_COMMANDS)("station %s --json prints JSON that parses", async (name) => {
    const cmd = commands.find((c) => c.name() === name)!;
    const args = cmd.registeredArguments.filter((a) => a.required).map(() => key.name);
    const r = await cli([name, ...args, "--json"], conn());
    expect(r.code, r.stderr).toBe(0);
    const data = JSON.parse(r.stdout);
    expect(typeof data).toBe("object");
    if (name === "jobs") expect(data[0].name).toBe(key.name);
    if (name === "show") expect(data.properties.driveList.length).toBe(2);
  });

  it("an API refusal prints its code, message and next step, exit 1", async () => {
    const r = await cli(["close", key.name], conn());
    expect(r.code).toBe(1);
    const line = r.stderr.trimEnd();
    expect(line.split("\n")).toHaveLength(1);
    expect(line).toMatch(
      /^station: (InvalidJobState|NotYetAllowed): .+ Next: see the job's state and drives with 'station show JOB'\.$/,
    );
  });
});

/** Every string literal (and template part) in src/, from the TypeScript parser. */
function sourceStrings(): { file: string; text: string }[] {
  const out: { file: string; text: string }[] = [];
  const walk = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith(".ts") ? [join(d, e.name)] : [],
    );
  for (const file of [...walk(join(ROOT, "src")), ...walk(join(ROOT, "agent"))]) {
    const sf = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
    const visit = (n: ts.Node): void => {
      if (ts.isStringLiteralLike(n) || ts.isTemplateHead(n) || ts.isTemplateMiddle(n) || ts.isTemplateTail(n))
        out.push({ file, text: n.text });
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return out;
}

describe("notices and messages", () => {
  it("name only station commands that exist", () => {
    const names = new Set(commands.map((c) => c.name()));
    const mentions = sourceStrings().flatMap(({ file, text }) =>
      [...text.matchAll(/(?:^|[`'"(]|npm run )station(?: --)? ([a-z][a-z-]+)/g)].map((m) => ({
        file: file.slice(ROOT.length + 1),
        command: m[1]!,
      })),
    );
    expect(mentions.length).toBeGreaterThan(3);
    expect(mentions.filter((m) => !names.has(m.command))).toEqual([]);
    expect(mentions.map((m) => m.command)).toContain("check-in");
    expect(mentions.map((m) => m.command)).toContain("close");
  });
});
