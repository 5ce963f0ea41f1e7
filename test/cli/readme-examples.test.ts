/**
 * Every `station` example in README.md is run: read from the README's sh blocks, executed by bash
 * (quotes, `$(...)`, `~` as written) against a test agent holding the README's job `myjob`.
 * `demo` is run end to end by test/staged/demo.test.ts (root, loop devices); here its flags parse.
 */
import { execFile } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { built, ROOT } from "../support/built.js";
import { importSpec } from "../support/jobs.js";

const run = promisify(execFile);

/** `npm run station -- …` lines of the README's sh blocks, continuation lines joined, comments dropped. */
function readmeExamples(): string[] {
  const text = readFileSync(join(ROOT, "README.md"), "utf8");
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.replace(/\\\n\s*/g, ""));
  return blocks
    .flatMap((b) => b.split("\n"))
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter((l) => l.startsWith("npm run station -- "));
}

const examples = readmeExamples();
let station: TestAgent;
let dir: string;

/** Runs one README line with bash; `npm run station --` is the built CLI against the test agent. */
async function runExample(line: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = `station() { exec "${process.execPath}" "${built("src/cli/main.js")}" "$@"; }\n${line.replace(/^npm run station -- /, "station ")}`;
  try {
    const r = await run("bash", ["-c", script], {
      cwd: dir,
      timeout: 30_000,
      env: {
        ...process.env,
        HOME: join(dir, "home"),
        PATH: `${join(dir, "bin")}:${process.env.PATH}`,
        DRIVE_STATION_URL: station.agent.url,
        DRIVE_STATION_TOKEN: OPERATOR_TOKEN,
      },
    });
    return { code: 0, ...r };
  } catch (e) {
    return e as { code: number; stdout: string; stderr: string };
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ds-readme-"));
  station = await startTestAgent(join(dir, "data"));
  const spec = importSpec();
  spec.driveList = [
    {
      driveId: "9CA995BB",
      manifestFile: "\\DriveManifest.xml",
      manifestHash: "109B21108597EF36D5785F08303F3638",
    },
    {
      driveId: "9CA995BC",
      manifestFile: "\\DriveManifest.xml",
      manifestHash: "B306C4B34DAA0E99957A4B9C779D2FA2",
    },
  ];
  const key = { subscriptionId: "sub-1", resourceGroup: "rg-1", name: "myjob" };
  const actor = { name: "readme", type: "User" as const };
  await station.agent.service.create(key, spec, actor);
  await station.agent.service.update(
    key,
    { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: "1Z999" } },
    actor,
  );
  // What the prepare example needs: ~/photos, a key file, a drive at /mnt/usb (mapped below), lsblk.
  mkdirSync(join(dir, "home", "photos"), { recursive: true });
  writeFileSync(join(dir, "home", "photos", "beach.jpg"), Buffer.alloc(300_000, 3));
  writeFileSync(
    join(dir, "key.txt"),
    Buffer.from("readme-example-account-key-0123456789").toString("base64"),
  );
  mkdirSync(join(dir, "bin"));
  writeFileSync(join(dir, "bin", "lsblk"), "#!/bin/sh\necho 9CA995BD\n");
  chmodSync(join(dir, "bin", "lsblk"), 0o755);
  mkdirSync(join(dir, "usb"));
}, 60_000);
afterAll(async () => {
  await station?.agent.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("README examples", () => {
  it("are there", () => {
    expect(examples.length).toBeGreaterThan(12);
    expect(examples.some((e) => e.includes(" prepare "))).toBe(true);
    expect(examples).toContain("npm run station -- demo");
  });

  it("run in order, each as documented", async () => {
    const seen: string[] = [];
    for (const example of examples) {
      const sub = example.split(" ")[4]!;
      if (sub === "demo") {
        const r = await runExample(`${example} --help`);
        expect(r.code, example).toBe(0);
        continue;
      }
      // attached --watch runs until Ctrl-C: give it one refresh, then stop it (bash ignores SIGINT in a background job, so SIGTERM, handled the same).
      const line = example.includes("--watch")
        ? `${example} > watch.out 2>&1 & pid=$!; for i in $(seq 150); do [ -s watch.out ] && break; sleep 0.1; done; kill -TERM $pid; wait $pid; rc=$?; cat watch.out; exit $rc`
        : example.replace("/mnt/usb", join(dir, "usb"));
      const r = await runExample(line);
      seen.push(sub);
      expect(r.stderr, example).not.toMatch(/\n\s+at /); // never a stack trace
      if (sub === "ship-back" || sub === "close") {
        // The job is not Packaging / overdue yet: the station refuses, and says what to do.
        expect(r.code, example).toBe(1);
        expect(r.stderr, example).toMatch(
          /^station: (InvalidJobState|NotYetAllowed|InvalidTransition): .* Next: /,
        );
        continue;
      }
      expect({ example, code: r.code, stderr: r.stderr }).toMatchObject({ code: 0, stderr: "" });
      if (sub === "show") expect(r.stdout).toContain("job myjob");
      if (example.includes("check-in")) expect(r.stdout).toMatch(/9CA995BC\s+NeverReceived/);
      if (sub === "arrived") expect(r.stdout).toMatch(/9CA995BC\s+Received/);
      if (sub === "fault") expect(r.stdout).toMatch(/9CA995BB\s+Faulted \(casing cracked\)/);
      if (sub === "resolve") expect(r.stdout).toMatch(/9CA995BB\s+Received/);
      if (example.includes("--watch")) expect(r.stdout).toContain("no drives attached");
      if (example.includes("--json")) expect(JSON.parse(r.stdout)[0].name).toBe("myjob");
      if (sub === "prepare") {
        expect(r.stdout).toContain("prepared on drive 9CA995BD");
        expect(JSON.parse(readFileSync(join(dir, "entry.json"), "utf8")).driveId).toBe("9CA995BD");
      }
    }
    expect(new Set(seen)).toEqual(
      new Set([
        "jobs",
        "drives",
        "show",
        "check-in",
        "arrived",
        "fault",
        "resolve",
        "ship-back",
        "close",
        "notices",
        "attached",
        "prepare",
      ]),
    );
  }, 120_000);
});
