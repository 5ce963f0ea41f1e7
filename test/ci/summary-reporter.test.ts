/**
 * The summary line CI reads counts what happened: runs vitest with test/support/summary-reporter.ts
 * on fixtures holding one of each outcome (test/fixtures/summary*.fixture.ts). Tests that never ran
 * because a beforeAll failed (of a suite, a nested suite's parent, or the file) are failures; only
 * tests skipped on purpose (it.skip, a gate's describe.skipIf) are skipped.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/built.js";

const run = promisify(execFile);

describe("the CI summary line", () => {
  it("counts tests whose beforeAll failed as failed, and a file that failed to load as one failure", async () => {
    const e = await run(
      process.execPath,
      [`${ROOT}/node_modules/vitest/vitest.mjs`, "run", "--config", "test/fixtures/vitest.summary.config.ts"],
      { cwd: ROOT, env: { ...process.env, CI: "" } },
    ).catch((x: { code: number; stdout: string; stderr: string }) => x);
    expect("code" in e ? e.code : 0, "the run fails").toBe(1);
    const lines = e.stdout.split("\n").filter((l) => /^\d+ passed, \d+ failed, \d+ skipped$/.test(l));
    // 1 passed; failed: 1 assertion + 3 under a failed suite setup + 2 under a failed file setup + 1 file that did not load; skipped: it.skip + a skipped suite of 2.
    expect(lines).toEqual(["2 passed, 8 failed, 3 skipped"]);
  }, 60_000);
});
