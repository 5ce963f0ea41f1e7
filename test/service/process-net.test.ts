/**
 * Unhandled rejections: the agent's process-wide net logs one with its context and carries on;
 * the test suite itself fails on one (vitest's default, set explicitly in vitest.config.ts).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { built, ROOT } from "../support/built.js";

const run = promisify(execFile);

describe("unhandled rejections", () => {
  it("the agent's net logs an unhandled rejection with its stack and the process carries on", async () => {
    const script = `
      const { default: pino } = await import("pino");
      const { installProcessNet } = await import(${JSON.stringify(built("agent/process-net.js"))});
      installProcessNet(process, pino(), () => console.log("FORCED"));
      void Promise.reject(new Error("lost-rejection-4711"));
      setTimeout(() => { console.log("STILL RUNNING"); process.exit(0); }, 200);
    `;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: ROOT });
    const line = JSON.parse(stdout.split("\n").find((l) => l.includes("unhandled promise rejection"))!);
    expect(line.level).toBe(50);
    expect(line.err.message).toBe("lost-rejection-4711");
    // The stack is kept, inside the scrubbed err (no raw `stack` field beside it).
    expect(line.err.stack).toMatch(/lost-rejection-4711\n\s+at /);
    expect(line.stack).toBeUndefined();
    expect(stdout).toContain("STILL RUNNING");
    expect(stdout).not.toContain("FORCED");
  });

  it("an uncaught exception kills what the agent started and exits 1", async () => {
    const script = `
      const { default: pino } = await import("pino");
      const { installProcessNet } = await import(${JSON.stringify(built("agent/process-net.js"))});
      installProcessNet(process, pino(), () => console.log("FORCED"));
      setTimeout(() => { throw new Error("thrown-4712"); }, 10);
      setTimeout(() => console.log("STILL RUNNING"), 500);
    `;
    const e = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: ROOT }).catch(
      (x) => x,
    );
    expect(e.code).toBe(1);
    expect(e.stdout).toContain("FORCED");
    expect(e.stdout).toContain("thrown-4712");
    expect(e.stdout).not.toContain("STILL RUNNING");
  });

  it("the test suite fails on an unhandled rejection even when every assertion passes", async () => {
    const e = await run(
      process.execPath,
      [
        `${ROOT}/node_modules/vitest/vitest.mjs`,
        "run",
        "--config",
        "test/fixtures/vitest.unhandled.config.ts",
      ],
      { cwd: ROOT, env: { ...process.env, CI: "" } },
    ).catch((x) => x);
    expect(e.code).toBe(1);
    expect(`${e.stdout}${e.stderr}`).toMatch(/Unhandled Rejection/i);
    expect(`${e.stdout}${e.stderr}`).toContain("deliberately unhandled");
  }, 60_000);
});
