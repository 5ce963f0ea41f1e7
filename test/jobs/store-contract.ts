/**
 * The store contract: one set of assertions every adapter of the store ports must pass
 * (JobStore, NoticeLog, CheckpointStore, DriveClaims, StoreHealth). Run against SQLite and a real
 * PostgreSQL by store-contract.test.ts. `open()` gives a fresh, empty store; `peer()` on it opens a
 * second connection to the same database, as another station of the fleet would.
 */
import { afterEach, describe, expect, it } from "vitest";
import { isStationError } from "../../src/errors.js";
import { type Clock, JobService } from "../../src/jobs/service.js";
import type { DriveClaims, DriveRef, JobStore, NoticeLog, StoreHealth } from "../../src/jobs/store.js";
import { nextDeadline } from "../../src/lifecycle/machine.js";
import type { Job, Notice } from "../../src/lifecycle/model.js";
import type { BlobCheckpoint, CheckpointStore } from "../../src/transfer/checkpoints.js";
import { actor, at, deliveryPackage, importJobIn, importSpec, key, T0 } from "../support/jobs.js";
import { captureLog } from "../support/log.js";

export type ContractStore = JobStore & NoticeLog & CheckpointStore & DriveClaims & StoreHealth;

export interface OpenedStore {
  store: ContractStore;
  /** Another connection to the same database (another station). */
  peer(): Promise<ContractStore>;
}

export interface StoreFactory {
  open(): Promise<OpenedStore>;
  close(store: ContractStore): Promise<void>;
}

const named = (name: string, created = T0): Job => {
  const job = importJobIn("Creating");
  return { ...job, name, timestamps: { ...job.timestamps, createdAt: created.toISOString() } };
};

const doneRecord = (i: number, bytes = 100): BlobCheckpoint => ({
  blobIndex: i,
  state: "done",
  target: `blob-${i}`,
  bytesSucceeded: bytes,
  log: {
    blobPath: `c/blob-${i}`,
    filePath: `\\f${i}`,
    length: bytes,
    status: "Completed",
  } as unknown as BlobCheckpoint["log"],
});

export function describeStoreContract(name: string, factory: () => StoreFactory | undefined): void {
  describe(`store contract: ${name}`, () => {
    const opened: ContractStore[] = [];
    const open = async (): Promise<OpenedStore> => {
      const o = await factory()!.open();
      opened.push(o.store);
      return {
        store: o.store,
        peer: async () => {
          const p = await o.peer();
          opened.push(p);
          return p;
        },
      };
    };
    afterEach(async () => {
      for (const s of opened.splice(0).reverse()) await factory()!.close(s);
    });

    it("JobStore.put inserts at version 0 and replaces only at the stored version", async () => {
      const { store } = await open();
      const job = importJobIn("Creating");
      expect(await store.get(key)).toBeUndefined();
      expect((await store.put(job, 0, undefined)).version).toBe(1);
      await expect(store.put(job, 0, undefined)).rejects.toMatchObject({ code: "VersionConflict" });
      expect((await store.put({ ...job, tags: { a: "1" } }, 1, undefined)).version).toBe(2);
      await expect(store.put({ ...job, tags: { a: "stale" } }, 1, undefined)).rejects.toMatchObject({
        code: "VersionConflict",
      });
      const got = await store.get(key);
      expect(got?.version).toBe(2);
      expect(got?.job).toEqual({ ...job, tags: { a: "1" } });
    });

    it("JobStore.put: of two stations writing the same version, exactly one wins", async () => {
      const { store, peer } = await open();
      const other = await peer();
      await store.put(importJobIn("Creating"), 0, undefined);
      for (let round = 1; round <= 5; round++) {
        const results = await Promise.allSettled([
          store.put({ ...importJobIn("Creating"), tags: { by: "a" } }, round, undefined),
          other.put({ ...importJobIn("Creating"), tags: { by: "b" } }, round, undefined),
        ]);
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
        expect(isStationError(lost.reason) && lost.reason.code).toBe("VersionConflict");
        expect((await other.get(key))?.version).toBe(round + 1);
      }
    });

    it("JobStore.delete honours the expected version", async () => {
      const { store } = await open();
      await store.put(importJobIn("Creating"), 0, undefined);
      expect(await store.delete(key, 7)).toBe(false);
      expect(await store.get(key)).toBeDefined();
      expect(await store.delete(key, 1)).toBe(true);
      expect(await store.get(key)).toBeUndefined();
      expect(await store.delete(key)).toBe(false);
      await store.put(importJobIn("Creating"), 0, undefined);
      expect(await store.delete(key)).toBe(true);
    });

    it("JobStore.list pages in creation order by scope, with a skip token; a forged token is refused", async () => {
      const { store } = await open();
      for (let i = 0; i < 7; i++) await store.put(named(`job-${i}`, at(i)), 0, undefined);
      await store.put({ ...named("elsewhere"), subscriptionId: "sub-2" }, 0, undefined);
      const names: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const page = await store.list({ subscriptionId: "sub-1", resourceGroup: "rg-1" }, 3, token);
        names.push(...page.jobs.map((j) => j.name));
        token = page.skipToken;
        pages++;
      } while (token);
      expect(pages).toBe(3);
      expect(names).toEqual(["job-0", "job-1", "job-2", "job-3", "job-4", "job-5", "job-6"]);
      expect((await store.list({}, 100)).jobs).toHaveLength(8); // before other-rg below
      expect((await store.list({ subscriptionId: "sub-2" }, 100)).jobs.map((j) => j.name)).toEqual([
        "elsewhere",
      ]);
      expect((await store.list({ subscriptionId: "nobody" }, 3)).jobs).toEqual([]);
      // A customer granted some resource groups (case-insensitive); none granted: nothing.
      await store.put({ ...named("other-rg"), resourceGroup: "RG-2" }, 0, undefined);
      const granted = await store.list({ subscriptionId: "sub-1", resourceGroups: ["rg-2", "RG-9"] }, 100);
      expect(granted.jobs.map((j) => j.name)).toEqual(["other-rg"]);
      expect((await store.list({ subscriptionId: "sub-1", resourceGroups: [] }, 100)).jobs).toEqual([]);
      await expect(store.list({}, 3, "garbage")).rejects.toMatchObject({ code: "InvalidRequestContent" });
    });

    it("JobStore.list narrowed to resource groups (case-insensitive) pages only through those groups", async () => {
      const { store } = await open();
      for (let i = 0; i < 4; i++) {
        for (const rg of ["rg-a", "RG-C", "rg-x"])
          await store.put({ ...named(`${rg}-${i}`, at(i)), resourceGroup: rg }, 0, undefined);
      }
      const names: string[] = [];
      let token: string | undefined;
      do {
        const page = await store.list(
          { subscriptionId: "sub-1", resourceGroups: ["rg-c", "RG-A"] },
          3,
          token,
        );
        names.push(...page.jobs.map((j) => j.name));
        token = page.skipToken;
        if (token) expect(Buffer.from(token, "base64url").toString()).not.toContain("rg-x");
      } while (token);
      expect(names.sort()).toEqual([
        "RG-C-0",
        "RG-C-1",
        "RG-C-2",
        "RG-C-3",
        "rg-a-0",
        "rg-a-1",
        "rg-a-2",
        "rg-a-3",
      ]);
      expect((await store.list({ subscriptionId: "sub-1", resourceGroups: [] }, 100)).jobs).toEqual([]);
      expect((await store.list({ subscriptionId: "sub-2", resourceGroups: ["rg-a"] }, 100)).jobs).toEqual([]);
    });

    it("JobStore.due lists jobs whose deadline is at or before now, earliest first", async () => {
      const { store } = await open();
      const a = named("a", at(0));
      const b = named("b", at(0));
      await store.put(a, 0, at(20));
      await store.put(b, 0, at(14));
      await store.put(named("never"), 0, undefined);
      expect(await store.due(at(13))).toEqual([]);
      expect((await store.due(at(14))).map((k) => k.name)).toEqual(["b"]);
      expect((await store.due(at(30))).map((k) => k.name)).toEqual(["b", "a"]);
      await store.put(b, 1, undefined); // deadline cleared
      expect((await store.due(at(30))).map((k) => k.name)).toEqual(["a"]);
    });

    it("NoticeLog keeps notices newest first, with job and drive, filtered by time and limited", async () => {
      const { store, peer } = await open();
      const notices: Notice[] = [
        { code: "PackageHeld", at: at(1).toISOString(), job: key, driveId: "DRIVE-A", message: "held" },
        { code: "UnknownDrive", at: at(2).toISOString(), message: "unknown drive" },
        { code: "JobExpired", at: at(3).toISOString(), job: key, message: "expired" },
      ];
      await store.add(notices.slice(0, 2));
      await store.add([]);
      const other = await peer(); // notices are shared by every station
      await other.add(notices.slice(2));
      const all = await store.recent({ limit: 10 });
      expect(all.map(({ id: _id, ...n }) => n)).toEqual([...notices].reverse());
      expect(new Set(all.map((n) => n.id)).size).toBe(3);
      expect((await other.recent({ limit: 1 })).map((n) => n.code)).toEqual(["JobExpired"]);
      expect((await other.recent({ since: at(2).toISOString(), limit: 10 })).map((n) => n.code)).toEqual([
        "JobExpired",
        "UnknownDrive",
      ]);
    });

    it("CheckpointStore: progress, streamed entries in order, replace, clear, per drive", async () => {
      const { store, peer } = await open();
      await store.save("job-1", "D1", [
        { blobIndex: 3, state: "started", target: "big (2).bin", bytesSucceeded: 0 },
        doneRecord(0, 10),
        doneRecord(1, 20),
      ]);
      await store.save("job-1", "D2", [doneRecord(0, 999)]);
      const other = await peer(); // a drive moved to another station resumes from here
      let p = await other.progress("job-1", "D1");
      expect([...p.done].sort()).toEqual([0, 1]);
      expect([...p.started]).toEqual([[3, "big (2).bin"]]);
      expect(p.bytesSucceeded).toBe(30);
      await other.save("job-1", "D1", [doneRecord(3, 5_000_000_000)]); // started -> done, > 2^32 bytes
      p = await store.progress("job-1", "D1");
      expect([...p.done].sort()).toEqual([0, 1, 3]);
      expect(p.started.size).toBe(0);
      expect(p.bytesSucceeded).toBe(5_000_000_030);
      const entries: BlobCheckpoint[] = [];
      for await (const e of store.entries("job-1", "D1")) entries.push(e);
      expect(entries).toEqual([doneRecord(0, 10), doneRecord(1, 20), doneRecord(3, 5_000_000_000)]);
      await store.clear("job-1", "D1");
      expect((await store.progress("job-1", "D1")).done.size).toBe(0);
      expect((await store.progress("job-1", "D2")).bytesSucceeded).toBe(999);
    });

    it("CheckpointStore.entries streams thousands of blobs in manifest order", async () => {
      const { store } = await open();
      const n = 2600;
      const records = Array.from({ length: n }, (_, i) => doneRecord(n - 1 - i, 1));
      for (let i = 0; i < n; i += 500) await store.save("job-1", "D1", records.slice(i, i + 500));
      let expected = 0;
      for await (const e of store.entries("job-1", "D1")) {
        expect(e.blobIndex).toBe(expected);
        expected++;
      }
      expect(expected).toBe(n);
    });

    it("DriveClaims: one holder at a time, renewed by the holder, free once released or expired", async () => {
      const { store, peer } = await open();
      const other = await peer();
      const drive: DriveRef = { job: key, driveId: "DRIVE-A" };
      const ttl = 30_000;
      const a = await store.claim(drive, "station-a", at(0), ttl);
      expect(a).toEqual({
        granted: true,
        lease: { stationId: "station-a", expiresAt: new Date(at(0).getTime() + ttl) },
      });
      const b = await other.claim(drive, "station-b", new Date(at(0).getTime() + 10_000), ttl);
      expect(b).toEqual({
        granted: false,
        holder: { stationId: "station-a", expiresAt: new Date(at(0).getTime() + ttl) },
      });
      // The holder's heartbeat pushes the expiry on; the other station cannot renew what it does not hold.
      expect(await store.renew(drive, "station-a", new Date(at(0).getTime() + 20_000), ttl)).toBe(true);
      expect(await other.renew(drive, "station-b", new Date(at(0).getTime() + 20_000), ttl)).toBe(false);
      expect((await other.claim(drive, "station-b", new Date(at(0).getTime() + 40_000), ttl)).granted).toBe(
        false,
      );
      // station-a dies: its lease runs out and station-b takes the drive.
      const taken = await other.claim(drive, "station-b", new Date(at(0).getTime() + 50_000), ttl);
      expect(taken.granted).toBe(true);
      expect(await store.renew(drive, "station-a", new Date(at(0).getTime() + 51_000), ttl)).toBe(false);
      await store.release(drive, "station-a"); // not its claim any more: a no-op
      expect((await store.claim(drive, "station-a", new Date(at(0).getTime() + 52_000), ttl)).granted).toBe(
        false,
      );
      await other.release(drive, "station-b");
      expect((await store.claim(drive, "station-a", new Date(at(0).getTime() + 53_000), ttl)).granted).toBe(
        true,
      );
      // Another drive of the same job is claimed independently.
      expect((await other.claim({ job: key, driveId: "DRIVE-B" }, "station-b", at(1), ttl)).granted).toBe(
        true,
      );
    });

    it("DriveClaims: of stations racing for a free drive, exactly one gets it", async () => {
      const { store, peer } = await open();
      const stations = [store, ...(await Promise.all(Array.from({ length: 5 }, () => peer())))];
      for (let round = 0; round < 5; round++) {
        const drive: DriveRef = { job: key, driveId: `RACE-${round}` };
        const results = await Promise.all(
          stations.map((s, i) => s.claim(drive, `station-${i}`, at(round), 30_000)),
        );
        const winners = results.filter((r) => r.granted);
        expect(winners).toHaveLength(1);
        const winner = winners[0]!.granted ? winners[0]!.lease.stationId : "";
        for (const r of results) if (!r.granted) expect(r.holder.stationId).toBe(winner);
      }
    });

    it("timers fire exactly once with two stations running them concurrently", async () => {
      const { store, peer } = await open();
      const other = await peer();
      const clock: Clock = { now: () => T0 };
      const service = (s: ContractStore) =>
        new JobService({
          store: s,
          notices: s,
          clock,
          log: captureLog().log,
          shippingInformation: { recipientName: "Dock" },
        });
      const a = service(store);
      const b = service(other);
      for (let i = 0; i < 8; i++) await a.create({ ...key, name: `expiring-${i}` }, importSpec(), actor);
      for (let i = 0; i < 4; i++) {
        const k = { ...key, name: `overdue-${i}` };
        await a.create(k, importSpec(), actor);
        await a.update(k, { deliveryPackage, state: "Shipping" }, actor);
      }
      const late: Clock = { now: () => at(15) };
      const a2 = new JobService({
        store,
        notices: store,
        clock: late,
        log: captureLog().log,
        shippingInformation: {},
      });
      const b2 = new JobService({
        store: other,
        notices: other,
        clock: late,
        log: captureLog().log,
        shippingInformation: {},
      });
      const fired = await Promise.all([a2.runTimers(), b2.runTimers(), a2.runTimers(), b2.runTimers()]);
      expect(fired.reduce((x, y) => x + y, 0)).toBe(12);
      const codes = (await store.recent({ limit: 100 })).map((n) => `${n.code} ${n.job?.name}`).sort();
      expect(codes).toEqual(
        [
          ...Array.from({ length: 8 }, (_, i) => `JobExpired expiring-${i}`),
          ...Array.from({ length: 4 }, (_, i) => `PackageOverdue overdue-${i}`),
        ].sort(),
      );
      expect(await Promise.all([a2.runTimers(), b2.runTimers()])).toEqual([0, 0]);
      expect((await b.get({ ...key, name: "overdue-0" })).drives.map((d) => d.state)).toEqual([
        "NeverReceived",
        "NeverReceived",
      ]);
      expect(nextDeadline(await b.get({ ...key, name: "overdue-0" }))).toBeDefined();
    });

    it("StoreHealth: a running store is healthy and whenHealthy resolves at once", async () => {
      const { store } = await open();
      expect(store.healthy()).toBe(true);
      await expect(store.whenHealthy()).resolves.toBeUndefined();
    });
  });
}
