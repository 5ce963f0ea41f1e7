/**
 * A drive two live jobs list: the check-in that names it warns the operator (a notice naming
 * both jobs and the next step), and matching at the dock returns a conflict, never "processed".
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { matchDrive } from "../../src/drives/match.js";
import { JobService } from "../../src/jobs/service.js";
import { SqliteStore } from "../../src/jobs/sqlite-store.js";
import { liveJobsListing } from "../../src/lifecycle/drive-conflict.js";
import { actor, deliveryPackage, importJobIn, importSpec, key, T0 } from "../support/jobs.js";
import { captureLog } from "../support/log.js";
import { useTempDir } from "../support/tmp.js";

const tempDir = useTempDir();
const second = { ...key, name: "job-2" };

async function twoJobs() {
  const store = new SqliteStore(join(tempDir(), "jobs.db"));
  const svc = new JobService({
    store,
    notices: store,
    clock: { now: () => T0 },
    log: captureLog().log,
    shippingInformation: {},
  });
  // The first job: DRIVE-A imported, the job Packaging (its drives not shipped back yet).
  await store.put({ ...importJobIn("Packaging"), ...key }, 0, undefined);
  await svc.create(second, importSpec(), actor);
  await svc.update(second, { state: "Shipping", deliveryPackage }, actor);
  return { store, svc };
}

describe("a drive two live jobs list", () => {
  it("its check-in is accepted with a notice naming both jobs and the next step", async () => {
    const { store, svc } = await twoJobs();
    await svc.station(second, { type: "CheckInPackage", trackingNumber: "T2", driveIds: ["DRIVE-A"] });
    const notices = (await store.recent({ limit: 50 })).filter((n) => n.code === "DriveInTwoJobs");
    expect(notices).toHaveLength(1);
    expect(notices[0]!.driveId).toBe("DRIVE-A");
    expect(notices[0]!.message).toContain("sub-1/rg-1/job-1 (job Packaging");
    expect(notices[0]!.message).toContain("sub-1/rg-1/job-2 (job Received, drive Received)");
    expect(notices[0]!.message).toContain("Next step:");
    store.close();
  });

  it("a check-in of drives only one live job lists says nothing more", async () => {
    const { store, svc } = await twoJobs();
    await store.put({ ...(await svc.get(key)), state: "Completed" }, 1, undefined);
    await svc.station(second, { type: "CheckInPackage", trackingNumber: "T2", driveIds: ["DRIVE-A"] });
    expect((await store.recent({ limit: 50 })).filter((n) => n.code === "DriveInTwoJobs")).toEqual([]);
    store.close();
  });

  it("matched by serial at the dock it is a conflict with both jobs, not 'processed'", async () => {
    const { store, svc } = await twoJobs();
    const jobs = [await svc.get(key), await svc.get(second)];
    expect(liveJobsListing(jobs, "DRIVE-A")).toHaveLength(2);
    const match = await matchDrive("DRIVE-A", undefined, jobs);
    expect(match.kind).toBe("conflict");
    if (match.kind === "conflict")
      expect(match.jobs.map((m) => m.job.name).sort()).toEqual(["job-1", "job-2"]);
    store.close();
  });
});
