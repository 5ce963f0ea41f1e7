/**
 * Stations on one PostgreSQL, without drives: config, the shared API view, shared notices,
 * timers fired once, the URL's password kept out of logs and errors, the store going away and
 * coming back, and a drive claim waiting out another station's lease.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../agent/config.js";
import { DriveLease } from "../../src/fleet/drive-lease.js";
import { durableCheckpoints } from "../../src/fleet/durable-checkpoints.js";
import type { Clock } from "../../src/jobs/service.js";
import type { DriveClaims, Lease } from "../../src/jobs/store.js";
import { OPERATOR_TOKEN, startTestAgent, stationLocation, type TestAgent } from "../support/agent.js";
import { UNTIL_HANG } from "../support/deadline.js";
import { actor, at, deliveryPackage, importSpec } from "../support/jobs.js";
import { captureLog } from "../support/log.js";
import { PG_PASSWORD, postgresGate, startTestPostgres, type TestPostgres } from "../support/postgres.js";

const RUN = postgresGate("fleet store");
const SUB = "sub-1";
const RG = "rg-1";
const jobPath = (name: string) =>
  `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.ImportExport/jobs/${name}?api-version=2021-01-01`;

async function api(station: TestAgent, method: string, path: string, body?: unknown) {
  const res = await fetch(`${station.agent.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${OPERATOR_TOKEN}`,
      ...(body ? { "content-type": "application/json" } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = UNTIL_HANG.timeout,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("config: the store", () => {
  it("defaults to SQLite, takes a PostgreSQL URL, and never prints the URL's password", () => {
    const base = { station: { location: stationLocation } };
    expect(parseConfig(base, "x.json").store).toEqual({ kind: "sqlite" });
    const pg = parseConfig({ ...base, store: { kind: "postgres", url: "postgres://u:pw@db/x" } }, "x.json");
    expect(pg.store).toEqual({
      kind: "postgres",
      url: "postgres://u:pw@db/x",
      poolSize: 10,
      connectTimeoutSeconds: 5,
    });
    let message = "";
    try {
      parseConfig(
        { ...base, store: { kind: "postgres", url: `mysql://station:${PG_PASSWORD}@db/x` } },
        "x.json",
      );
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(
      /store\.url = mysql:\/\/station:\[redacted\]@db\/x \(credentials hidden\): must be a postgres:\/\/ URL/,
    );
    expect(message).not.toContain(PG_PASSWORD);
    expect(() => parseConfig({ ...base, station: { ...base.station, id: "bad id!" } }, "x.json")).toThrow(
      /station\.id/,
    );
  });
});

describe.skipIf(!RUN)("fleet: stations on one PostgreSQL", () => {
  let pg: TestPostgres;
  let root: string;
  let url: string;
  const stations: TestAgent[] = [];

  beforeAll(async () => {
    pg = await startTestPostgres();
    root = mkdtempSync(join(tmpdir(), "fleet-store-"));
    url = await pg.createDatabase("fleet");
    for (const id of ["station-a", "station-b"])
      stations.push(
        await startTestAgent(join(root, id), {
          store: { kind: "postgres", url, poolSize: 4, connectTimeoutSeconds: 2 },
          station: { id },
        }),
      );
  });
  afterAll(async () => {
    for (const s of stations) await s.agent.stop();
    pg?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("any station answers for any job, and notices are shared", async () => {
    const [a, b] = stations as [TestAgent, TestAgent];
    expect(a.agent.stationId).toBe("station-a");
    const created = await api(a, "PUT", jobPath("shared-1"), {
      location: "West US",
      properties: {
        jobType: "Import",
        storageAccountId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/acct`,
        returnAddress: importSpec().returnAddress,
        driveList: importSpec().driveList,
      },
    });
    expect(created.status).toBe(201);
    const seen = await api(b, "GET", jobPath("shared-1"));
    expect(seen.status).toBe(200);
    expect(seen.json.properties.state).toBe("Creating");
    const patched = await api(b, "PATCH", jobPath("shared-1"), {
      properties: { state: "Shipping", deliveryPackage },
    });
    expect(patched.status).toBe(200);
    expect((await api(a, "GET", jobPath("shared-1"))).json.properties.state).toBe("Shipping");
    // A check-in on station B raises a notice station A lists.
    await b.agent.service.station(
      { subscriptionId: SUB, resourceGroup: RG, name: "shared-1" },
      { type: "CheckInPackage", trackingNumber: "OTHER-PKG", driveIds: [] },
    );
    const notices = await api(a, "GET", "/station/v1/notices");
    expect(notices.status).toBe(200);
    expect(JSON.stringify(notices.json)).toContain("OTHER-PKG");
  });

  it("the URL's password is in no log line of any station", () => {
    for (const s of stations) {
      expect(s.logText()).toContain("postgres://station:[redacted]@127.0.0.1");
      expect(s.logText()).not.toContain(PG_PASSWORD);
    }
  });

  it("the store stops: not ready, API 503 without the password; it starts: ready again", async () => {
    const [a, b] = stations as [TestAgent, TestAgent];
    expect(a.agent.storeHealthy()).toBe(true);
    pg.stop();
    try {
      const res = await api(b, "GET", jobPath("shared-1"));
      expect(res.status).toBe(503);
      expect(res.json.error.code).toBe("StoreUnavailable");
      expect(JSON.stringify(res.json)).not.toContain(PG_PASSWORD);
      await api(a, "GET", jobPath("shared-1"));
      await until(
        "both stations report the store unhealthy",
        () => !a.agent.storeHealthy() && !b.agent.storeHealthy(),
      );
    } finally {
      pg.start();
    }
    await until("both stations recover", () => a.agent.storeHealthy() && b.agent.storeHealthy());
    expect((await api(b, "GET", jobPath("shared-1"))).status).toBe(200);
    for (const s of stations) {
      expect(s.logText()).toContain("job database unreachable");
      expect(s.logText()).toContain("job database reachable again");
      expect(s.logText()).not.toContain(PG_PASSWORD);
    }
  });

  it("a checkpoint written during an outage is recorded once the store answers", async () => {
    const { log } = captureLog();
    const { PgStore } = await import("../../src/jobs/pg-store.js");
    const store = await PgStore.open({ url, connectTimeoutMs: 1000, log });
    const stopping = new AbortController();
    const checkpoints = durableCheckpoints(store, store, stopping.signal, log);
    try {
      pg.stop();
      let saved = false;
      const saving = checkpoints
        .save("outage-job", "D1", [{ blobIndex: 0, state: "started", target: "t", bytesSucceeded: 0 }])
        .then(() => {
          saved = true;
        });
      await until("the store is seen down", () => !store.healthy());
      await new Promise((r) => setTimeout(r, 1500));
      expect(saved).toBe(false);
      pg.start();
      await saving;
      expect((await store.progress("outage-job", "D1")).started.get(0)).toBe("t");
    } finally {
      stopping.abort();
      await store.close();
    }
  });

  it("timers fire once although every station runs them", async () => {
    const [a, b] = stations as [TestAgent, TestAgent];
    const k = { subscriptionId: SUB, resourceGroup: RG, name: "expiring" };
    await a.agent.service.create(k, importSpec(), actor);
    const { PgStore } = await import("../../src/jobs/pg-store.js");
    const late: Clock = { now: () => at(400) };
    const { JobService } = await import("../../src/jobs/service.js");
    // Both stations' services against the shared store, at a time the deadline has passed.
    const stores = await Promise.all([0, 1].map(() => PgStore.open({ url, log: captureLog().log })));
    try {
      const services = stores.map(
        (s) =>
          new JobService({
            store: s,
            notices: s,
            clock: late,
            log: captureLog().log,
            shippingInformation: {},
          }),
      );
      const fired = await Promise.all(services.flatMap((s) => [s.runTimers(), s.runTimers()]));
      expect(fired.reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(1);
      const expired = (await stores[0]!.recent({ limit: 100 })).filter(
        (n) => n.code === "JobExpired" && n.job?.name === "expiring",
      );
      expect(expired).toHaveLength(1);
      expect((await api(b, "GET", jobPath("expiring"))).status).toBe(404);
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it("a drive claimed by a live station waits here, told once, and is taken when that lease runs out", async () => {
    const { PgStore } = await import("../../src/jobs/pg-store.js");
    const store = await PgStore.open({ url, log: captureLog().log });
    const clock: Clock = { now: () => new Date() };
    const drive = { job: { subscriptionId: SUB, resourceGroup: RG, name: "moving" }, driveId: "MOVE-1" };
    try {
      // station-a holds the drive and then dies (no heartbeat, no release): its lease ends at
      // claimedAt + 1500 ms, however long the claim's round trip took.
      const claimedAt = new Date();
      expect((await store.claim(drive, "station-a", claimedAt, 1500)).granted).toBe(true);
      const held: Lease[] = [];
      // station-b's renewals, counted: its heartbeat is what keeps the drive.
      let renewed = 0;
      const claims: DriveClaims = {
        claim: (...a) => store.claim(...a),
        release: (...a) => store.release(...a),
        renew: async (...a) => {
          const ok = await store.renew(...a);
          if (ok) renewed++;
          return ok;
        },
      };
      const b = new DriveLease({ claims, stationId: "station-b", leaseMs: 3000, clock }, drive);
      await b.acquire(AbortSignal.timeout(UNTIL_HANG.timeout), (h) => {
        held.push(h);
      });
      const acquiredAt = Date.now();
      expect(held.map((h) => h.stationId)).toEqual(["station-a"]);
      expect(acquiredAt).toBeGreaterThanOrEqual(claimedAt.getTime() + 1500);
      // Now station-b's: its heartbeat keeps it past its first lease, station-a cannot take it back.
      let lost = false;
      b.keepAlive(
        () => {
          lost = true;
        },
        () => undefined,
      );
      await vi.waitFor(() => {
        expect(renewed).toBeGreaterThanOrEqual(2);
        expect(Date.now()).toBeGreaterThan(acquiredAt + 3000);
      }, UNTIL_HANG);
      expect(lost).toBe(false);
      expect((await store.claim(drive, "station-a", new Date(), 1500)).granted).toBe(false);
      await b.release();
      expect((await store.claim(drive, "station-a", new Date(), 1500)).granted).toBe(true);
    } finally {
      await store.close();
    }
  });
});
