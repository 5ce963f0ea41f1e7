/** The composition root: config failures, and deadlines across a restart of the whole agent. */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../agent/config.js";
import type { Clock } from "../../src/jobs/service.js";
import { scrubSecrets } from "../../src/secrets.js";
import { CUSTOMER_TOKEN, startTestAgent, stationLocation } from "../support/agent.js";
import { built } from "../support/built.js";
import { at, importSpec, T0 } from "../support/jobs.js";

const run = promisify(execFile);
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), "ds-agent-"));
  dirs.push(d);
  return d;
};

describe("config", () => {
  it("names the key and the value that are wrong", () => {
    expect(() =>
      parseConfig({ station: { location: stationLocation }, api: { port: 70000 } }, "x.json"),
    ).toThrow(/Config x\.json: api\.port = 70000: .*65535/);
    expect(() => parseConfig({}, "x.json")).toThrow(/station = \(missing\)/);
    expect(() =>
      parseConfig({ station: { location: stationLocation }, storage: { mode: "s3" } }, "x.json"),
    ).toThrow(/storage\.mode/);
  });

  it("never prints a token it rejects", () => {
    const bad = {
      station: { location: stationLocation },
      api: { tokens: [{ name: "a", token: "short-secret", role: "operator" }] },
    };
    expect(() => parseConfig(bad, "x.json")).toThrow(
      /api\.tokens\.0\.token = \(hidden: a string of 12 characters\): must be at least 16 characters\. api\.tokens holds secrets/,
    );
    expect(() => parseConfig(bad, "x.json")).not.toThrow(/short-secret/);
  });

  it("the agent exits 78 (EX_CONFIG) with the reason on a bad config", async () => {
    const d = temp();
    const file = join(d, "bad.json");
    writeFileSync(file, JSON.stringify({ station: { location: { ...stationLocation, id: "West US" } } }));
    const err = (await run(process.execPath, [built("agent/main.js"), "--config", file]).catch((e) => e)) as {
      code: number;
      stderr: string;
    };
    expect(err.code).toBe(78);
    expect(err.stderr).toContain('station.location.id = "West US"');
  });
});

describe("secrets", () => {
  it("scrubs SAS signatures, account keys, bearer tokens and BitLocker passwords from text", () => {
    const text = scrubSecrets(
      "PUT https://a.blob.core.windows.net/c/b?sv=2021&sig=abc%2Bdef&se=x AccountKey=Zm9vYmFy; Bearer eyJ0eXAi.xyz 238810-662376-448998-450120-652806-203390-606320-483076 <StorageAccountKey>k==</StorageAccountKey>",
    );
    for (const secret of ["abc%2Bdef", "Zm9vYmFy", "eyJ0eXAi.xyz", "238810-662376", "k=="])
      expect(text).not.toContain(secret);
    expect(text).toContain("sv=2021");
  });
});

describe("deadlines across a restart of the agent", () => {
  it("fires the expiry that fell due while the agent was down, and only then", async () => {
    const dataDir = join(temp(), "data");
    const clock: Clock & { t: Date } = { t: T0, now: () => clock.t };
    const actor = { name: "t", type: "User" as const };
    const key = { subscriptionId: "sub-1", resourceGroup: "rg-1", name: "job-1" };
    const get = (url: string) =>
      fetch(
        `${url}/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.ImportExport/jobs/job-1?api-version=2021-01-01`,
        {
          headers: { authorization: `Bearer ${CUSTOMER_TOKEN}` },
        },
      );

    let s = await startTestAgent(dataDir, { clock });
    await s.agent.service.create(key, importSpec(), actor);
    clock.t = at(10);
    await s.agent.service.update(key, { tags: { touched: "day10" } }, actor); // expiry now day 24
    await s.agent.stop();

    clock.t = at(23); // restart before the deadline: still there, not reset either
    s = await startTestAgent(dataDir, { clock });
    expect((await get(s.agent.url)).status).toBe(200);
    await s.agent.stop();

    // Down across the deadline (day 24). Had the day-23 restart reset it, it would now be day 37.
    clock.t = at(25);
    s = await startTestAgent(dataDir, { clock });
    const res = await get(s.agent.url);
    expect(res.status).toBe(404);
    expect(s.logText()).toContain("JobExpired");
    await s.agent.stop();
  });
});
