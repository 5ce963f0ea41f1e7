import { describe, expect, it } from "vitest";
import {
  applyStationEvent,
  applyTimers,
  createJob,
  type JobPatch,
  nextDeadline,
  updateJob,
} from "../../src/lifecycle/machine.js";
import {
  DRIVE_STATES,
  DRIVE_TRANSITIONS,
  JOB_STATES,
  JOB_TRANSITIONS,
  type JobState,
} from "../../src/lifecycle/model.js";
import {
  actor,
  at,
  deliveryPackage,
  exportSpec,
  importJobIn,
  importSpec,
  key,
  returnAddress,
  step,
  T0,
} from "../support/jobs.js";
import { codeOf, drives } from "./machine-fixtures.js";

describe("transition tables", () => {
  it("cover every state and end in terminal states", () => {
    expect(Object.keys(JOB_TRANSITIONS).sort()).toEqual([...JOB_STATES].sort());
    expect(Object.keys(DRIVE_TRANSITIONS).sort()).toEqual([...DRIVE_STATES].sort());
    expect(JOB_TRANSITIONS.Completed).toEqual([]);
    expect(JOB_TRANSITIONS.Closed).toEqual([]);
    expect(DRIVE_TRANSITIONS.ShippedBack).toEqual([]);
  });

  it("every job state is reachable through real events", () => {
    for (const s of JOB_STATES) {
      expect(importJobIn(s).state).toBe(s);
    }
  });
});

describe("customer updates (PATCH), legal and illegal", () => {
  type Case = { name: string; from: JobState; patch: JobPatch; expect: JobState | { error: string } };
  const cases: Case[] = [
    {
      name: "Shipping needs deliveryPackage",
      from: "Creating",
      patch: { state: "Shipping" },
      expect: { error: "ShippingInfoMissing" },
    },
    {
      name: "Shipping with deliveryPackage",
      from: "Creating",
      patch: { state: "Shipping", deliveryPackage },
      expect: "Shipping",
    },
    {
      name: "Shipping twice",
      from: "Shipping",
      patch: { state: "Shipping" },
      expect: { error: "InvalidJobState" },
    },
    {
      name: "only Shipping may be requested",
      from: "Creating",
      patch: { state: "Received" },
      expect: { error: "InvalidRequestContent" },
    },
    {
      name: "empty state is no change",
      from: "Creating",
      patch: { state: "", tags: { a: "b" } },
      expect: "Creating",
    },
    {
      name: "cancel while Creating ends the job",
      from: "Creating",
      patch: { cancelRequested: true },
      expect: "Completed",
    },
    { name: "cancel while Shipping", from: "Shipping", patch: { cancelRequested: true }, expect: "Shipping" },
    {
      name: "cancel while Received refused",
      from: "Received",
      patch: { cancelRequested: true },
      expect: { error: "InvalidJobState" },
    },
    {
      name: "cancel while Transferring",
      from: "Transferring",
      patch: { cancelRequested: true },
      expect: "Transferring",
    },
    {
      name: "cancel while Packaging refused",
      from: "Packaging",
      patch: { cancelRequested: true },
      expect: { error: "InvalidJobState" },
    },
    // The spec's defaults, sent by SDKs on every update (issue 21): they ask for nothing.
    {
      name: "cancel false asks nothing",
      from: "Creating",
      patch: { cancelRequested: false },
      expect: "Creating",
    },
    {
      name: "cancel false after Packaging",
      from: "Packaging",
      patch: { cancelRequested: false },
      expect: "Packaging",
    },
    {
      name: "SDK defaults with tags in Completed",
      from: "Completed",
      patch: { tags: { x: "y" }, cancelRequested: false, backupDriveManifest: false, logLevel: "Error" },
      expect: "Completed",
    },
    {
      name: "returnAddress sent back unchanged in Packaging",
      from: "Packaging",
      patch: { returnAddress: { ...returnAddress } },
      expect: "Packaging",
    },
    {
      name: "backupDriveManifest changed in Packaging refused",
      from: "Packaging",
      patch: { backupDriveManifest: true },
      expect: { error: "InvalidJobState" },
    },
    {
      name: "returnAddress until Packaging",
      from: "Transferring",
      patch: { returnAddress },
      expect: "Transferring",
    },
    {
      name: "returnAddress in Packaging refused",
      from: "Packaging",
      patch: { returnAddress: { ...returnAddress, city: "Seattle" } },
      expect: { error: "InvalidJobState" },
    },
    {
      name: "logLevel in Completed refused",
      from: "Completed",
      patch: { logLevel: "Verbose" },
      expect: { error: "InvalidJobState" },
    },
    {
      name: "deliveryPackage after arrival refused",
      from: "Received",
      patch: { deliveryPackage: { ...deliveryPackage, trackingNumber: "TRK-2" } },
      expect: { error: "InvalidJobState" },
    },
    {
      name: "driveList after Creating refused",
      from: "Shipping",
      patch: { driveList: importSpec().driveList! },
      expect: { error: "InvalidJobState" },
    },
    { name: "tags any time", from: "Closed", patch: { tags: { x: "y" } }, expect: "Closed" },
    {
      name: "backupDriveManifest while faulted from Transferring",
      from: "Faulted",
      patch: { backupDriveManifest: true },
      expect: "Faulted",
    },
  ];
  for (const c of cases) {
    it(`${c.from}: ${c.name}`, () => {
      const job = importJobIn(c.from);
      if (typeof c.expect === "string") {
        const out = updateJob(job, c.patch, at(3), actor).job;
        expect(out.state).toBe(c.expect);
      } else {
        expect(codeOf(() => updateJob(job, c.patch, at(3), actor))).toBe(c.expect.error);
      }
    });
  }

  it("never mutates its input", () => {
    const job = importJobIn("Creating");
    const copy = structuredClone(job);
    updateJob(job, { deliveryPackage, state: "Shipping" }, at(1), actor);
    expect(job).toEqual(copy);
  });
});

describe("create rules", () => {
  it.each([
    ["import without drives", { ...importSpec(), driveList: [] }],
    ["import with export selection", { ...importSpec(), export: { blobListBlobPath: "c/list.xml" } }],
    [
      "import drive without manifestHash",
      { ...importSpec(), driveList: [{ driveId: "A", manifestFile: "\\m.xml" }] },
    ],
    [
      "duplicate drive",
      { ...importSpec(), driveList: [importSpec().driveList![0]!, importSpec().driveList![0]!] },
    ],
    [
      "eleven drives",
      {
        ...importSpec(),
        driveList: Array.from({ length: 11 }, (_, i) => ({
          driveId: `D${i}`,
          manifestFile: "\\m",
          manifestHash: "00",
        })),
      },
    ],
    ["export with drives", { ...exportSpec(), driveList: importSpec().driveList! }],
    ["export without selection", { ...exportSpec(), export: {} }],
    [
      "export with both selections",
      { ...exportSpec(), export: { blobList: { blobPath: ["c/b"] }, blobListBlobPath: "c/l.xml" } },
    ],
  ])("%s is refused", (_name, spec) => {
    expect(codeOf(() => createJob(key, spec, undefined, T0, actor))).toBe("InvalidRequestContent");
  });

  it("PUT over a job past Creating is refused; over a Creating job it replaces", () => {
    expect(codeOf(() => createJob(key, importSpec(), importJobIn("Shipping"), at(2), actor))).toBe(
      "InvalidJobState",
    );
    const replaced = createJob(key, importSpec(), importJobIn("Creating"), at(2), actor);
    expect(replaced.timestamps.createdAt).toBe(T0.toISOString());
    expect(replaced.timestamps.creatingRefreshedAt).toBe(at(2).toISOString());
  });
});

describe("timers", () => {
  it("a Creating job expires 14 days after its last update, and an update resets that", () => {
    const job = importJobIn("Creating");
    expect(applyTimers(job, new Date(at(14).getTime() - 1)).job).not.toBeNull();
    expect(applyTimers(job, at(14)).job).toBeNull();
    const touched = updateJob(job, { tags: { a: "b" } }, at(10), actor).job;
    expect(applyTimers(touched, at(14)).job).not.toBeNull();
    expect(nextDeadline(touched)).toEqual(at(24));
    expect(applyTimers(touched, at(24)).notices.map((n) => n.code)).toEqual(["JobExpired"]);
  });

  it("an overdue Shipping job notifies, marks drives NeverReceived, then becomes closable", () => {
    const job = importJobIn("Shipping"); // shipping since day 1
    expect(nextDeadline(job)).toEqual(at(15));
    const overdue = applyTimers(job, at(15));
    expect(overdue.notices.map((n) => n.code)).toEqual(["PackageOverdue"]);
    expect(drives(overdue.job!)).toEqual({ "DRIVE-A": "NeverReceived", "DRIVE-B": "NeverReceived" });
    expect(applyTimers(overdue.job!, at(16)).notices).toEqual([]);
    expect(nextDeadline(overdue.job!)).toEqual(at(45));
    expect(codeOf(() => applyStationEvent(overdue.job!, { type: "CloseUnresponsive" }, at(44)))).toBe(
      "NotYetAllowed",
    );
    const closable = applyTimers(overdue.job!, at(45));
    expect(closable.notices.map((n) => n.code)).toEqual(["JobClosable"]);
    expect(applyStationEvent(closable.job!, { type: "CloseUnresponsive" }, at(45)).job.state).toBe("Closed");
  });

  it("the package arriving after the overdue notice still checks in", () => {
    const overdue = applyTimers(importJobIn("Shipping"), at(15)).job!;
    const job = step(
      overdue,
      { type: "CheckInPackage", trackingNumber: "TRK-1", driveIds: ["DRIVE-A", "DRIVE-B"] },
      16,
    );
    expect(job.state).toBe("Received");
    expect(drives(job)).toEqual({ "DRIVE-A": "Received", "DRIVE-B": "Received" });
  });

  it("Completed and Closed jobs are deleted 90 days after they end", () => {
    for (const s of ["Completed", "Closed"] as const) {
      const job = importJobIn(s); // ended day 6
      expect(nextDeadline(job)).toEqual(at(96));
      expect(applyTimers(job, at(95)).job).not.toBeNull();
      expect(applyTimers(job, at(96)).job).toBeNull();
    }
  });

  it("held drives are to be returned after 14 days without an answer", () => {
    const held = step(
      importJobIn("Packaging"),
      { type: "CheckInPackage", trackingNumber: "T", driveIds: ["DRIVE-C"] },
      6,
    );
    expect(held.state).toBe("Packaging");
    expect(nextDeadline(held)).toEqual(at(20));
    const out = applyTimers(held, at(20));
    expect(out.notices.map((n) => n.code)).toEqual(["ReturnHeldDrives"]);
    expect(applyTimers(out.job!, at(21)).notices).toEqual([]);
  });

  it("a Creating job that expires still names the drives held for it", () => {
    const held = step(
      importJobIn("Creating"),
      { type: "CheckInPackage", trackingNumber: "T7", driveIds: ["DRIVE-A"] },
      1,
    );
    const out = applyTimers(held, at(14));
    expect(out.job).toBeNull();
    expect(out.notices[0]!.message).toContain("Return its held drives: DRIVE-A (package T7)");
  });

  it("an unresolved fault warns after 90 days", () => {
    const faulted = importJobIn("Faulted"); // day 3
    expect(applyTimers(faulted, at(92)).notices).toEqual([]);
    expect(applyTimers(faulted, at(93)).notices.map((n) => n.code)).toEqual(["FaultUnresolved"]);
  });

  it("jobs with nothing pending have no deadline", () => {
    expect(nextDeadline(importJobIn("Transferring"))).toBeUndefined();
  });
});
