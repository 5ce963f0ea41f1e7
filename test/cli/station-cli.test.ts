/** The `station` CLI as an operator runs it: a real process against a real agent. */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { built } from "../support/built.js";
import { importSpec, key } from "../support/jobs.js";

const run = promisify(execFile);
let station: TestAgent;
let dir: string;
let cli: string;

async function stationCli(
  args: string[],
  token = OPERATOR_TOKEN,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [
      cli,
      "--url",
      station.agent.url,
      "--token",
      token,
      ...args,
    ]);
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

beforeAll(async () => {
  cli = built("src/cli/main.js");
  dir = mkdtempSync(join(tmpdir(), "ds-cli-"));
  station = await startTestAgent(join(dir, "data"));
  const actor = { name: "t", type: "User" as const };
  await station.agent.service.create(key, importSpec(), actor);
  await station.agent.service.update(
    key,
    { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: "TRK" } },
    actor,
  );
});
afterAll(async () => {
  await station.agent.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("station CLI", () => {
  it("lists jobs with state and a progress bar", async () => {
    const r = await stationCli(["jobs"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/job-1\s+Import\s+Shipping\s+\[\.{20}\]\s+0%\s+2\s+sub-1\/rg-1/);
  });

  it("checks in a package, flags the extra drive, then shows the job", async () => {
    const r = await stationCli([
      "check-in",
      "job-1",
      "--tracking",
      "TRK",
      "--drive",
      "DRIVE-A",
      "--drive",
      "STRAY-9",
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("state Received");
    expect(r.stdout).toMatch(/DRIVE-A\s+Received/);
    expect(r.stdout).toMatch(/DRIVE-B\s+NeverReceived/);
    expect(r.stdout).toContain("extra drive STRAY-9 (package TRK), to return with the job");
    const later = await stationCli(["arrived", "job-1", "DRIVE-B"]);
    expect(later.stdout).toMatch(/DRIVE-B\s+Received/);
  });

  it("faults and resolves a drive, lists drives and notices", async () => {
    expect(
      (await stationCli(["fault", "job-1", "--drive", "DRIVE-A", "--reason", "cracked casing"])).stdout,
    ).toMatch(/DRIVE-A\s+Faulted \(cracked casing\)/);
    expect((await stationCli(["resolve", "job-1", "--drive", "DRIVE-A"])).stdout).toMatch(
      /DRIVE-A\s+Received/,
    );
    expect((await stationCli(["drives"])).stdout).toMatch(/DRIVE-B\s+job-1\s+Received/);
    const notices = await stationCli(["notices"]);
    expect(notices.stdout).toContain("ExtraDrive");
    expect(notices.stdout).toContain("DriveNeverReceived");
  });

  it("says what is wrong, with a non-zero exit", async () => {
    const early = await stationCli(["ship-back", "job-1", "--carrier", "FedEx", "--tracking", "R1"]);
    expect(early.code).toBe(1);
    expect(early.stderr).toContain("InvalidJobState");
    expect(early.stderr).toContain("ship back once it is Packaging");
    expect((await stationCli(["show", "no-such-job"])).stderr).toContain("No job named no-such-job");
    const customer = await stationCli(["jobs"], CUSTOMER_TOKEN);
    expect(customer.code).toBe(1);
    expect(customer.stderr).toContain("AuthorizationFailed");
    expect(customer.stderr).not.toContain(CUSTOMER_TOKEN);
    const down = await run(process.execPath, [
      cli,
      "--url",
      "http://127.0.0.1:1",
      "--token",
      OPERATOR_TOKEN,
      "jobs",
    ]).catch((e) => e as { stderr: string });
    expect(down.stderr).toContain("Cannot reach the agent at http://127.0.0.1:1");
  });
});
