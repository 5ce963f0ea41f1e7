/**
 * Staged fleet: three agents (own data dirs, API ports and bays), one real PostgreSQL, one real
 * Azurite, real loop-image drives. Two jobs with six drives spread over the stations; timers run
 * by every station; a drive moved from one station to another mid-transfer; the database
 * stopped for 10 s mid-import.
 */
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { PgStore } from "../../src/jobs/pg-store.js";
import { type Clock, JobService } from "../../src/jobs/service.js";
import { OPERATOR_TOKEN } from "../support/agent.js";
import { ACCOUNT_KEY } from "../support/azurite.js";
import { UNTIL_HANG } from "../support/deadline.js";
import { actor, at, deliveryPackage, importSpec } from "../support/jobs.js";
import { captureLog } from "../support/log.js";
import { postgresGate } from "../support/postgres.js";
import { type Fleet, jobKey, landedBytes, type Station, startFleet } from "./fleet-support.js";
import { preparedDrive, stagedDeadlines, stagedGate } from "./loop-images.js";

const RUN = stagedGate("fleet") && postgresGate("staged fleet");
stagedDeadlines();
const MiB = 1024 * 1024;
const md5b64 = (b: Buffer) => createHash("md5").update(b).digest("base64");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Entry = { driveId: string; manifestFile: string; manifestHash: string };
interface Drive {
  image: string;
  entry: Entry;
  container: string;
  files: Record<string, Buffer>;
}

let fleet: Fleet;
let A: Station;
let B: Station;
let C: Station;

async function makeDrive(
  name: string,
  container: string,
  files: Record<string, Buffer>,
  sizeMiB: number,
): Promise<Drive> {
  const image = join(fleet.shelf, `${name}.img`);
  const entry = await preparedDrive({
    image,
    fs: "ext4",
    sizeMiB,
    driveId: name.toUpperCase(),
    accountKey: ACCOUNT_KEY,
    workDir: fleet.root,
    sessions: [{ files, dest: `${container}/`, disposition: "rename" }],
  });
  return { image, entry, container, files };
}

async function expectBlobs(d: Drive): Promise<void> {
  const c = fleet.storage.client.getContainerClient(d.container);
  const names: string[] = [];
  for await (const b of c.listBlobsFlat()) names.push(b.name);
  // Nothing committed twice: a second commit under the rename disposition would add "x (2).bin".
  expect(names.sort(), d.container).toEqual(Object.keys(d.files).sort());
  for (const [name, data] of Object.entries(d.files)) {
    const blob = c.getBlobClient(name);
    const props = await blob.getProperties();
    expect(Buffer.from(props.contentMD5!).toString("base64"), name).toBe(md5b64(data));
    expect((await blob.downloadToBuffer()).equals(data), name).toBe(true);
  }
}

const total = (d: Drive) => Object.values(d.files).reduce((s, b) => s + b.length, 0);

/** The "drive import finished" line a station logged for a drive. */
function finished(s: Station, driveId: string): { bytesUploaded: number; bytesTotal: number } | undefined {
  const line = s
    .logText()
    .split("\n")
    .filter((l) => l.includes('"drive import finished"') && l.includes(`"driveId":"${driveId}"`))
    .pop();
  return line ? JSON.parse(line) : undefined;
}

describe.skipIf(!RUN)("staged: a fleet of three stations on one PostgreSQL", () => {
  const six: Drive[] = [];
  let move: Drive;
  let outage: Drive;

  beforeAll(async () => {
    // Station A moves slowly (one request at a time), so a pull at ~40 % can be aimed.
    fleet = await startFleet(["station-a", "station-b", "station-c"], (id) => ({
      concurrency: id === "station-a" ? 1 : 4,
      blobConcurrency: id === "station-a" ? 1 : 4,
      retry: { attempts: 12, baseMs: 250, maxMs: 2000 },
      outageRetrySeconds: 2,
    }));
    [A, B, C] = fleet.stations as [Station, Station, Station];
    for (const job of ["one", "two"])
      for (let i = 0; i < 3; i++)
        six.push(
          await makeDrive(
            `${job}${i}`,
            `fleet-${job}-${i}`,
            {
              "a.bin": randomBytes(5 * MiB + 17),
              "b.txt": Buffer.from(`drive ${job}${i}\n`),
              "c.bin": randomBytes(2 * MiB),
            },
            24,
          ),
        );
    move = await makeDrive(
      "move",
      "fleet-move",
      Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`part-${i}.bin`, randomBytes(16 * MiB)])),
      200,
    );
    outage = await makeDrive(
      "outage",
      "fleet-outage",
      Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`part-${i}.bin`, randomBytes(12 * MiB + i)])),
      160,
    );
  });

  afterAll(async () => {
    await fleet?.stop();
  });

  it("two jobs, six drives over three stations: every drive byte-exact, one view from every station", async () => {
    await fleet.createJob(
      "one",
      six.slice(0, 3).map((d) => d.entry),
    );
    await fleet.createJob(
      "two",
      six.slice(3).map((d) => d.entry),
    );
    const placed: [Station, Drive][] = six.map((d, i) => [fleet.stations[i % 3]!, d]);
    for (const [s, d] of placed) fleet.plug(s, d.image);
    for (const [s, d] of placed) {
      const docked = await fleet.until(s, d.image, ["done", "failed", "error"]);
      expect(docked.status, docked.message).toBe("done");
      expect(docked.message).toContain("Completed (Completed)");
      expect(finished(s, d.entry.driveId)?.bytesTotal).toBe(total(d));
    }
    for (const d of six) await expectBlobs(d);
    for (const name of ["one", "two"]) {
      const views = await Promise.all(fleet.stations.map((s) => fleet.getJob(s, name)));
      for (const v of views) expect(v.properties).toEqual(views[0]!.properties);
      expect(views[0]!.properties.percentComplete).toBe(100);
      expect(views[0]!.properties.driveList.map((d) => d.state)).toEqual([
        "Completed",
        "Completed",
        "Completed",
      ]);
    }
  });

  it("every station runs the timers; each deadline fires once", async () => {
    const store = await PgStore.open({ url: fleet.url, log: captureLog().log });
    try {
      // Jobs made "long ago" (the builders' clock), so their deadlines are due for the stations now.
      const past: Clock = { now: () => at(0) };
      const service = new JobService({
        store,
        notices: store,
        clock: past,
        log: captureLog().log,
        shippingInformation: {},
      });
      await service.create(jobKey("stale"), importSpec(), actor);
      await service.create(jobKey("overdue"), importSpec(), actor);
      await service.update(jobKey("overdue"), { state: "Shipping", deliveryPackage }, actor);
      const counts = async () => {
        const notices = (await store.recent({ limit: 1000 })).filter((n) =>
          ["stale", "overdue"].includes(n.job?.name ?? ""),
        );
        const c: Record<string, number> = {};
        for (const n of notices) c[`${n.code} ${n.job!.name}`] = (c[`${n.code} ${n.job!.name}`] ?? 0) + 1;
        return c;
      };
      const deletions = () =>
        fleet.stations
          .map(
            (s) =>
              s
                .logText()
                .split("\n")
                .filter((l) => l.includes('"job deleted by timer"') && l.includes("/stale")).length,
          )
          .reduce((x, y) => x + y, 0);
      // Each station's timer loop runs every second. Wait until every deadline of these jobs has
      // fired and none is due any more (then no station can fire one again), however slow the
      // stations are; a deadline fired twice never reaches the expected counts.
      const ours = async () =>
        (await store.due(new Date())).filter((k) => ["stale", "overdue"].includes(k.name)).length;
      await vi.waitFor(async () => {
        expect(await counts()).toEqual({
          "JobExpired stale": 1,
          "PackageOverdue overdue": 1,
          "JobClosable overdue": 1,
        });
        expect(deletions()).toBe(1);
        expect(await ours()).toBe(0);
      }, UNTIL_HANG);
      // Once more, after every station's next timer pass has had the chance to fire a duplicate.
      await Promise.all(fleet.stations.map((s) => s.agent.runTimers()));
      expect(await counts()).toEqual({
        "JobExpired stale": 1,
        "PackageOverdue overdue": 1,
        "JobClosable overdue": 1,
      });
      expect(deletions()).toBe(1);
    } finally {
      await store.close();
    }
  });

  it("a drive pulled from A at ~40 % and plugged into B resumes on B without resending what landed", async () => {
    await fleet.createJob("moving", [move.entry]);
    const size = total(move);
    const onA = fleet.plug(A, move.image);
    await fleet.until(A, move.image, ["transferring"], 60_000);
    // Plugged into B while A holds it: B waits, says why, and tells the operator.
    const early = fleet.plug(B, move.image);
    const held = await fleet.until(B, move.image, ["held"], 60_000);
    expect(held.message).toContain("is being transferred by station station-a");
    // The notice is in the shared store: any station lists it.
    const res = await fetch(`${C.agent.url}/station/v1/notices`, {
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
    });
    expect(JSON.stringify(await res.json())).toContain("DriveClaimedElsewhere");
    fleet.pull(early);
    const t0 = Date.now();
    const stage = (what: string) => console.log(`move +${Date.now() - t0} ms: ${what}`);
    // Progress from A reaches C through the shared store (watched alongside, so the pull is on
    // time); the lag is reported, not budgeted: a loaded machine stretches it.
    let lag = -1;
    const watching = (async () => {
      while ((fleet.docked(A, move.image)?.progress?.bytesSucceeded ?? 0) < 0.15 * size) await sleep(20);
      const shown = fleet.docked(A, move.image)!.progress!.bytesSucceeded;
      const t = Date.now();
      await vi.waitFor(async () => {
        const onC = (await fleet.getJob(C, "moving")).properties.driveList[0]!.bytesSucceeded ?? 0;
        expect(onC, "A's progress as station C shows it").toBeGreaterThanOrEqual(shown);
      }, UNTIL_HANG);
      lag = Date.now() - t;
    })();
    while ((fleet.docked(A, move.image)?.progress?.bytesSucceeded ?? 0) < 0.4 * size) await sleep(10);
    stage("40 % on A");
    const pulledAt = fleet.docked(A, move.image)!.progress!.bytesSucceeded / size;
    fleet.pull(onA);
    while (fleet.docked(A, move.image)) await sleep(20); // A noticed the pull
    await A.agent.transfers!.idle();
    stage("A stopped");
    const landed = await landedBytes(fleet.storage, move.container, Object.keys(move.files));
    fleet.plug(B, move.image);
    await watching;
    stage("progress seen on C");
    const done = await fleet.until(B, move.image, ["done", "failed", "error"], 180_000);
    expect(done.status, done.message).toBe("done");
    expect(done.message).toContain("Completed (Completed)");
    await expectBlobs(move);
    const sentByB = finished(B, move.entry.driveId)!.bytesUploaded;
    const inFlightAtPull = 1 * 4 * MiB; // station A: one request in flight, 4 MiB blocks
    console.log(
      `move: ${size} bytes; pulled from A at ${(pulledAt * 100).toFixed(0)} %; landed before the pull ${landed}; B sent ${sentByB} (needed ${size - landed}); progress from A seen on C after ${lag} ms`,
    );
    expect(landed).toBeGreaterThan(0.3 * size);
    expect(sentByB).toBeLessThanOrEqual(size - landed);
    expect(sentByB).toBeGreaterThanOrEqual(size - landed - inFlightAtPull);
    expect(lag, "A's progress was seen on C").toBeGreaterThanOrEqual(0);
    const views = await Promise.all(fleet.stations.map((s) => fleet.getJob(s, "moving")));
    for (const v of views)
      expect(v.properties.driveList[0]).toMatchObject({ state: "Completed", bytesSucceeded: size });
  });

  it("the database stopped for 10 s mid-import: not ready meanwhile, then the import completes, nothing lost or twice", async () => {
    await fleet.createJob("outage", [outage.entry]);
    const size = total(outage);
    fleet.plug(C, outage.image);
    await fleet.until(C, outage.image, ["transferring"], 60_000);
    while ((fleet.docked(C, outage.image)?.progress?.bytesSucceeded ?? 0) < 0.25 * size) await sleep(20);
    fleet.pg.stop();
    const stoppedAt = Date.now();
    try {
      await vi.waitFor(() => {
        for (const s of fleet.stations) expect(s.agent.storeHealthy(), s.id).toBe(false);
        expect(fleet.docked(C, outage.image)?.status).toBe("paused");
      }, UNTIL_HANG);
      // The outage lasts 10 s (the scenario, not a budget): the rest of it, if any is left.
      await sleep(10_000 - (Date.now() - stoppedAt));
    } finally {
      fleet.pg.start();
    }
    const done = await fleet.until(C, outage.image, ["done", "failed", "error"], 180_000);
    expect(done.status, done.message).toBe("done");
    expect(done.message).toContain("Completed (Completed)");
    for (const s of fleet.stations) expect(s.agent.storeHealthy(), s.id).toBe(true);
    await expectBlobs(outage);
    const view = await fleet.getJob(A, "outage");
    expect(view.properties.driveList[0]).toMatchObject({ state: "Completed", bytesSucceeded: size });
    const resumed = finished(C, outage.entry.driveId)!;
    console.log(
      `outage: ${size} bytes; database down 10 s; the resumed run sent ${resumed.bytesUploaded} bytes`,
    );
    expect(resumed.bytesUploaded).toBeLessThan(0.8 * size);
    expect(C.logText()).toContain("job database unreachable");
  });
});
