/**
 * Staged: `station demo` end to end against the agent on its embedded default (config/default.json
 * with its own ports and directories): demo drive image, job created and shipped over the ARM API
 * with the generated customer token, drive plugged in, live progress, Completed, blobs listed.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/azurite.js";
import { built, ROOT } from "../support/built.js";
import { UNTIL_HANG } from "../support/deadline.js";
import { stagedDeadlines, stagedGate } from "./loop-images.js";

const RUN = stagedGate("demo");
stagedDeadlines();
const run = promisify(execFile);

let root: string;
let agent: ChildProcess | undefined;
let output = "";
let url = "";
let blobPort = 0;

describe.skipIf(!RUN)("staged: station demo", () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-demo-"));
    const config = JSON.parse(readFileSync(join(ROOT, "config", "default.json"), "utf8"));
    const apiPort = await freePort();
    blobPort = await freePort();
    url = `http://127.0.0.1:${apiPort}`;
    config.dataDir = join(root, "data");
    config.api.port = apiPort;
    config.storage.port = blobPort;
    // the default watches ./data/demo-drives: here, this test's data directory
    config.drives = {
      ...config.drives,
      physical: false,
      pollIntervalMs: 200,
      loopImageDirs: [join(root, "data", "demo-drives")],
      mountRoot: join(root, "mnt"),
    };
    mkdirSync(join(root, "config"));
    writeFileSync(join(root, "config", "default.json"), JSON.stringify(config));
    agent = spawn(
      process.execPath,
      [built("agent/main.js"), "--config", join(root, "config", "default.json")],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    agent.stdout!.on("data", (d: Buffer) => {
      output += d.toString();
    });
    agent.stderr!.on("data", (d: Buffer) => {
      output += d.toString();
    });
    const until = Date.now() + UNTIL_HANG.timeout;
    while (!output.includes("drive-station listening on")) {
      if (Date.now() > until || agent.exitCode !== null)
        throw new Error(`the agent did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  afterAll(async () => {
    if (agent && agent.exitCode === null) {
      const exited = new Promise((r) => agent!.once("exit", r));
      agent.kill("SIGTERM");
      await exited;
    }
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("imports the demo drive to Completed and says where the blobs are", async () => {
    const started = Date.now();
    const r = await run(
      process.execPath,
      [
        built("src/cli/main.js"),
        "demo",
        "--data-dir",
        join(root, "data"),
        "--url",
        url,
        "--blob-endpoint",
        `http://127.0.0.1:${blobPort}/{account}`,
        "--data-mib",
        "24",
        "--timeout",
        "240",
      ],
      { timeout: 300_000 },
    ).catch((e) => e as { code: number; stdout: string; stderr: string });
    const text = `${r.stdout}\n${r.stderr}`;
    expect(r.stderr, text).toBe("");
    for (const step of ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]) expect(text).toContain(step);
    // live progress, then the final figures of the finished drive (no stale speed or ETA)
    expect(text).toMatch(/transferring|done/);
    const doneLine = text.split("\n").find((l) => / done /.test(l));
    expect(doneLine).toBeDefined();
    expect(doneLine).not.toContain("ETA");
    expect(text).toMatch(/Drive DEMO\d+: Completed \(Completed\), 24\.\d MiB/);
    // the Get Job view, as the customer sees it
    const json = text.slice(text.indexOf("{", text.indexOf("Get Job (GET")));
    const job = JSON.parse(json.slice(0, json.indexOf("\n}\n") + 2));
    expect(job.properties.driveList[0]).toMatchObject({ state: "Completed", copyStatus: "Completed" });
    expect(job.properties.state).toBe("Packaging");
    // where the blobs are: every sample file, listed from the storage itself
    expect(text).toContain(`at http://127.0.0.1:${blobPort}/devstoreaccount1/demo/${job.name}/`);
    for (const f of ["README.txt", "docs/report-2026.txt", "photos/beach-0008.jpg", "video/holiday.mp4"])
      expect(text).toContain(`${job.name}/${f}`);
    // unplugged and cleaned up afterwards
    expect(readdirSync(join(root, "data", "demo-drives"))).toEqual([]);
    console.log(`station demo: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});
