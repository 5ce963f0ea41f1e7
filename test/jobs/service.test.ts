import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isStationError } from "../../src/errors.js";
import { type Clock, JobService } from "../../src/jobs/service.js";
import { SqliteStore } from "../../src/jobs/sqlite-store.js";
import { nextDeadline } from "../../src/lifecycle/machine.js";
import { actor, at, deliveryPackage, importJobIn, importSpec, key, T0 } from "../support/jobs.js";
import { captureLog } from "../support/log.js";
import { useTempDir } from "../support/tmp.js";

const tempDir = useTempDir();

class FakeClock implements Clock {
  constructor(public t: Date) {}
  now(): Date {
    return this.t;
  }
}

function service(file: string, clock: Clock) {
  const store = new SqliteStore(file);
  const { log, lines } = captureLog();
  const svc = new JobService({
    store,
    notices: store,
    clock,
    log,
    shippingInformation: { recipientName: "Dock 1", city: "Dublin" },
  });
  return { store, svc, lines };
}

describe("SqliteStore", () => {
  it("migrates a new file to the latest schema and reopens it unchanged", () => {
    const file = join(tempDir(), "jobs.db");
    const a = new SqliteStore(file);
    expect(a.schemaVersion()).toBe(3);
    a.close();
    const b = new SqliteStore(file);
    expect(b.schemaVersion()).toBe(3);
    b.close();
  });

  it("put is a compare-and-swap on the version", async () => {
    const store = new SqliteStore(join(tempDir(), "jobs.db"));
    const job = importJobIn("Creating");
    await store.put(job, 0, undefined);
    await expect(store.put(job, 0, undefined)).rejects.toMatchObject({ code: "VersionConflict" });
    const v2 = await store.put({ ...job, tags: { a: "1" } }, 1, undefined);
    expect(v2.version).toBe(2);
    await expect(store.put({ ...job, tags: { a: "stale" } }, 1, undefined)).rejects.toMatchObject({
      code: "VersionConflict",
    });
    expect((await store.get(key))!.job.tags).toEqual({ a: "1" });
    store.close();
  });

  it("pages in a stable order with a skip token, and rejects a forged token", async () => {
    const store = new SqliteStore(join(tempDir(), "jobs.db"));
    for (let i = 0; i < 7; i++)
      await store.put({ ...importJobIn("Creating"), name: `job-${i}` }, 0, undefined);
    const names: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await store.list({ subscriptionId: "sub-1" }, 3, token);
      names.push(...page.jobs.map((j) => j.name));
      token = page.skipToken;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(names.sort()).toEqual(["job-0", "job-1", "job-2", "job-3", "job-4", "job-5", "job-6"]);
    expect((await store.list({ subscriptionId: "other" }, 3)).jobs).toEqual([]);
    await expect(store.list({}, 3, "garbage")).rejects.toMatchObject({ code: "InvalidRequestContent" });
    store.close();
  });

  it("finds due jobs by their indexed deadline", async () => {
    const store = new SqliteStore(join(tempDir(), "jobs.db"));
    const job = importJobIn("Creating");
    await store.put(job, 0, nextDeadline(job));
    expect(await store.due(at(13))).toEqual([]);
    expect(await store.due(at(14))).toEqual([key]);
    store.close();
  });
});

describe("JobService", () => {
  it("concurrent updates through two stores on one file never lose a write", async () => {
    const file = join(tempDir(), "jobs.db");
    const clock = new FakeClock(T0);
    const a = service(file, clock);
    const b = service(file, clock);
    await a.svc.create(key, importSpec(), actor);
    // 40 mutations racing through two stores (two "stations") on one database file.
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a.svc : b.svc).station(key, {
          type: "CheckInPackage",
          trackingNumber: `P${i}`,
          driveIds: [],
        }),
      ),
    );
    const job = await a.svc.get(key);
    expect(job.heldPackages.map((h) => h.trackingNumber).sort()).toEqual(
      Array.from({ length: 40 }, (_, i) => `P${i}`).sort(),
    );
    a.store.close();
    b.store.close();
  });

  it("logs one line per transition naming job and drive", async () => {
    const s = service(join(tempDir(), "jobs.db"), new FakeClock(T0));
    await s.svc.create(key, importSpec(), actor);
    await s.svc.update(key, { deliveryPackage, state: "Shipping" }, actor);
    await s.svc.station(key, { type: "CheckInPackage", trackingNumber: "T", driveIds: ["DRIVE-A"] });
    const transitions = s.lines().filter((l) => l.msg === "job state" || l.msg === "drive state");
    expect(transitions.map((l) => [l.job, l.driveId ?? null, l.from, l.to])).toEqual([
      ["sub-1/rg-1/job-1", null, "Creating", "Shipping"],
      ["sub-1/rg-1/job-1", null, "Shipping", "Received"],
      ["sub-1/rg-1/job-1", "DRIVE-A", "Specified", "Received"],
      ["sub-1/rg-1/job-1", "DRIVE-B", "Specified", "NeverReceived"],
    ]);
    s.store.close();
  });

  it("delete only Creating or Completed", async () => {
    const s = service(join(tempDir(), "jobs.db"), new FakeClock(T0));
    await s.svc.create(key, importSpec(), actor);
    await s.svc.update(key, { deliveryPackage, state: "Shipping" }, actor);
    await expect(s.svc.delete(key)).rejects.toMatchObject({ code: "InvalidJobState" });
    await s.svc.update(key, { cancelRequested: true }, actor);
    await s.svc.station(key, {
      type: "CheckInPackage",
      trackingNumber: "T",
      driveIds: ["DRIVE-A", "DRIVE-B"],
    });
    await s.svc.station(key, {
      type: "ShipBack",
      returnPackage: { carrierName: "F", trackingNumber: "R", driveCount: 2, shipDate: "d" },
    });
    await s.svc.delete(key);
    await expect(s.svc.get(key)).rejects.toMatchObject({ code: "JobNotFound" });
    s.store.close();
  });

  it("timers survive a restart: nothing reset, nothing skipped", async () => {
    const file = join(tempDir(), "jobs.db");
    const clock = new FakeClock(T0);
    let s = service(file, clock);
    await s.svc.create(key, importSpec(), actor);
    clock.t = at(10);
    await s.svc.update(key, { tags: { touched: "yes" } }, actor); // expiry now day 24
    s.store.close();

    // Restart on day 20: not yet due, and the restart did not reset the clock to day 34.
    clock.t = at(20);
    s = service(file, clock);
    expect(await s.svc.runTimers()).toBe(0);
    expect((await s.svc.get(key)).state).toBe("Creating");
    s.store.close();

    // Agent down across the deadline; restart on day 30: the missed expiry fires at once.
    clock.t = at(30);
    s = service(file, clock);
    expect(await s.svc.runTimers()).toBe(1);
    await expect(s.svc.get(key)).rejects.toSatisfy((e) => isStationError(e) && e.code === "JobNotFound");
    const notices = await s.store.recent({ limit: 10 });
    expect(notices.map((n) => n.code)).toEqual(["JobExpired"]);
    s.store.close();
  });

  it("an overdue package fires once across restarts", async () => {
    const file = join(tempDir(), "jobs.db");
    const clock = new FakeClock(T0);
    let s = service(file, clock);
    await s.svc.create(key, importSpec(), actor);
    await s.svc.update(key, { deliveryPackage, state: "Shipping" }, actor);
    s.store.close();
    clock.t = at(15);
    s = service(file, clock);
    expect(await s.svc.runTimers()).toBe(1);
    s.store.close();
    clock.t = at(16);
    s = service(file, clock);
    expect(await s.svc.runTimers()).toBe(0);
    const job = await s.svc.get(key);
    expect(job.drives.map((d) => d.state)).toEqual(["NeverReceived", "NeverReceived"]);
    expect((await s.store.recent({ limit: 10 })).map((n) => n.code)).toEqual(["PackageOverdue"]);
    s.store.close();
  });
});
