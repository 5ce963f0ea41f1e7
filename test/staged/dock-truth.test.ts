/**
 * Staged, every dock status true (issue 21): two stations on one real PostgreSQL and Azurite,
 * real loop-image drives.
 *  - A drive one station waited for while another held its claim, then finished by that other
 *    station: done on both, no instruction to re-plug, no error-level line.
 *  - The database stopped mid-import and started again: the pause names its cause while it lasts
 *    and is never logged once the database is back.
 *  - A drive two live jobs list (the first job still Packaging): a conflict naming both jobs and
 *    the next step, never "processed".
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACCOUNT_KEY } from "../support/azurite.js";
import { postgresGate } from "../support/postgres.js";
import { type Fleet, type Station, startFleet } from "./fleet-support.js";
import { preparedDrive, stagedGate } from "./loop-images.js";

const RUN = stagedGate("dock truth") && postgresGate("staged dock truth");
const MiB = 1024 * 1024;

let fleet: Fleet;
let A: Station;
let B: Station;

type Entry = { driveId: string; manifestFile: string; manifestHash: string };

async function makeDrive(name: string, fileMiB: number[]): Promise<{ image: string; entry: Entry }> {
  const image = join(fleet.shelf, `${name}.img`);
  const files = Object.fromEntries(fileMiB.map((m, i) => [`part-${i}.bin`, randomBytes(m * MiB + i)]));
  const entry = await preparedDrive({
    image,
    fs: "ext4",
    sizeMiB: fileMiB.reduce((a, b) => a + b, 0) + 40,
    driveId: name.toUpperCase(),
    accountKey: ACCOUNT_KEY,
    workDir: fleet.root,
    sessions: [{ files, dest: `truth-${name}/`, disposition: "rename" }],
  });
  return { image, entry };
}

/** The station's log lines (JSON) about a drive. */
const linesAbout = (s: Station, driveId: string) =>
  s
    .logText()
    .split("\n")
    .filter((l) => l.includes(`"driveId":"${driveId}"`))
    .map((l) => JSON.parse(l) as { level: number; time: number; msg: string });

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 180_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!RUN)("staged: every dock status tells the truth", () => {
  beforeAll(async () => {
    // Station A moves one request at a time, so B is still waiting for the claim while A copies.
    fleet = await startFleet(["truth-a", "truth-b"], (id) => ({
      concurrency: id === "truth-a" ? 1 : 4,
      blobConcurrency: id === "truth-a" ? 1 : 4,
      retry: { attempts: 12, baseMs: 250, maxMs: 2000 },
      outageRetrySeconds: 2,
    }));
    [A, B] = fleet.stations as [Station, Station];
  }, 300_000);

  afterAll(async () => {
    await fleet?.stop();
  });

  it("a drive B lost to A's claim, then finished by A, shows done on B: no re-plug instruction, no error line", async () => {
    const d = await makeDrive("race", [24, 24, 24]);
    await fleet.createJob("race", [d.entry]);
    fleet.plug(A, d.image);
    await fleet.until(A, d.image, ["transferring"], 60_000);
    fleet.plug(B, d.image); // the same drive, seen by B while A holds its claim
    const held = await fleet.until(B, d.image, ["held"], 60_000);
    expect(held.message).toContain("is being transferred by station truth-a");
    const onA = await fleet.until(A, d.image, ["done", "failed", "error"], 180_000);
    expect(onA.status, onA.message).toBe("done");
    // B gets the claim once A releases it, and finds the drive finished.
    const onB = await fleet.until(B, d.image, ["done", "failed", "error"], 60_000);
    expect(onB.status, onB.message).toBe("done");
    expect(onB.message).toContain("finished by another station");
    expect(onB.message).not.toMatch(/unplug|plug it in/i);
    const errors = linesAbout(B, d.entry.driveId).filter((l) => l.level >= 50);
    expect(errors.map((l) => l.msg)).toEqual([]);
    const view = await fleet.getJob(B, "race");
    expect(view.properties.driveList[0]!.state).toBe("Completed");
  }, 300_000);

  it("a store outage that ends: the pause names its cause while it lasts and is not logged after", async () => {
    const d = await makeDrive("outage", [16, 16, 16, 16, 16, 16, 16, 16]);
    await fleet.createJob("outage", [d.entry]);
    fleet.plug(B, d.image);
    await fleet.until(B, d.image, ["transferring"], 60_000);
    const size = 16 * 8 * MiB + 28;
    await waitFor("a quarter imported", () =>
      (fleet.docked(B, d.image)?.progress?.bytesSucceeded ?? 0) > 0.25 * size ? true : undefined,
    );
    fleet.pg.stop();
    let restartedAt = 0;
    try {
      const paused = await waitFor(
        "the pause shown",
        () => {
          const v = fleet.docked(B, d.image);
          return v?.status === "paused" ? v : undefined;
        },
        60_000,
      );
      expect(paused.message).toContain("the job database is unreachable");
      // Logged while the cause lasts (then the database comes back).
      await waitFor("the pause logged", () =>
        linesAbout(B, d.entry.driveId).some((l) => l.msg.includes("job database is unreachable"))
          ? true
          : undefined,
      );
      await waitFor("the store seen down", () => (B.agent.storeHealthy() ? undefined : true), 60_000);
    } finally {
      restartedAt = Date.now();
      fleet.pg.start();
    }
    const done = await fleet.until(B, d.image, ["done", "failed", "error"], 240_000);
    expect(done.status, done.message).toBe("done");
    expect(done.message).toContain("Completed (Completed)");
    const pauses = linesAbout(B, d.entry.driveId).filter((l) =>
      l.msg.includes("job database is unreachable"),
    );
    expect(pauses.length).toBeGreaterThan(0);
    const late = pauses.filter((l) => l.time >= restartedAt);
    expect(
      late.map((l) => `${new Date(l.time).toISOString()} ${l.msg}`),
      `restarted at ${new Date(restartedAt).toISOString()}`,
    ).toEqual([]);
  }, 400_000);

  it("a drive two live jobs list is a conflict naming both jobs and the next step, never 'processed'", async () => {
    const d = await makeDrive("twice", [2]);
    // A hardware serial (the staging sidecar next to the image in the station's bays).
    writeFileSync(join(A.bays, `${basename(d.image)}.serial`), d.entry.driveId);
    await fleet.createJob("first", [d.entry]);
    const device = fleet.plug(A, d.image);
    const first = await fleet.until(A, d.image, ["done", "failed", "error"], 120_000);
    expect(first.status, first.message).toBe("done");
    expect((await fleet.getJob(A, "first")).properties.state).toBe("Packaging");
    // The customer lists the same drive in a second job while the first still holds it.
    await fleet.createJob("second", [d.entry]);
    fleet.pull(device);
    await waitFor("the pull seen", () => (fleet.docked(A, d.image) ? undefined : true), 60_000);
    fleet.plug(A, d.image);
    const again = await fleet.until(
      A,
      d.image,
      ["conflict", "processed", "ready", "transferring", "done"],
      60_000,
    );
    expect(again.status, again.message).toBe("conflict");
    expect(again.message).toContain("sub-fleet/rg/first (job Packaging, drive Completed)");
    expect(again.message).toContain("sub-fleet/rg/second (job Shipping, drive Specified)");
    expect(again.message).toContain("Next step:");
    // Nothing happened to the second job: the drive was not silently taken as processed or imported.
    const second = await fleet.getJob(A, "second");
    expect(second.properties.driveList[0]!.state).toBe("Specified");
  }, 300_000);
});
