/** The station's events on jobs and drives (check-in, transfer, faults, shipping back), legal and illegal. */
import { describe, expect, it } from "vitest";
import {
  applyStationEvent,
  createJob,
  jobPercentComplete,
  type StationEvent,
  updateJob,
} from "../../src/lifecycle/machine.js";
import type { JobState } from "../../src/lifecycle/model.js";
import { actor, at, deliveryPackage, exportSpec, importJobIn, key, step, T0 } from "../support/jobs.js";
import { codeOf, drives } from "./machine-fixtures.js";

describe("station events, legal and illegal", () => {
  type Case = {
    name: string;
    from: JobState;
    event: StationEvent;
    expect: { job: JobState; drives?: Record<string, string> } | { error: string };
  };
  const cases: Case[] = [
    {
      name: "package for a Creating job is held",
      from: "Creating",
      event: { type: "CheckInPackage", trackingNumber: "T", driveIds: ["DRIVE-A"] },
      expect: { job: "Creating", drives: { "DRIVE-A": "Specified", "DRIVE-B": "Specified" } },
    },
    {
      name: "package missing a drive: NeverReceived, extra drive flagged",
      from: "Shipping",
      event: { type: "CheckInPackage", trackingNumber: "T", driveIds: ["DRIVE-A", "STRANGER"] },
      expect: { job: "Received", drives: { "DRIVE-A": "Received", "DRIVE-B": "NeverReceived" } },
    },
    {
      name: "a drive plugged in checks in a Shipping job",
      from: "Shipping",
      event: { type: "DriveArrived", driveId: "DRIVE-B" },
      expect: { job: "Received", drives: { "DRIVE-A": "Specified", "DRIVE-B": "Received" } },
    },
    {
      name: "transfer starts",
      from: "Received",
      event: { type: "TransferStarted", driveId: "DRIVE-B" },
      expect: { job: "Transferring", drives: { "DRIVE-A": "Received", "DRIVE-B": "Transferring" } },
    },
    {
      name: "transfer of an unknown drive",
      from: "Received",
      event: { type: "TransferStarted", driveId: "NOPE" },
      expect: { error: "DriveNotFound" },
    },
    {
      name: "transfer before arrival",
      from: "Shipping",
      event: { type: "TransferStarted", driveId: "DRIVE-A" },
      expect: { error: "InvalidJobState" },
    },
    {
      name: "transfer twice",
      from: "Transferring",
      event: { type: "TransferStarted", driveId: "DRIVE-A" },
      expect: { error: "InvalidTransition" },
    },
    {
      name: "progress on a drive not transferring",
      from: "Transferring",
      event: { type: "TransferProgress", driveId: "DRIVE-B", bytesSucceeded: 1 },
      expect: { error: "InvalidJobState" },
    },
    {
      name: "finish with problems",
      from: "Transferring",
      event: {
        type: "TransferFinished",
        driveId: "DRIVE-A",
        outcome: "CompletedMoreInfo",
        copyStatus: "CompletedWithErrors",
        bytesSucceeded: 10,
      },
      expect: { job: "Transferring", drives: { "DRIVE-A": "CompletedMoreInfo", "DRIVE-B": "Received" } },
    },
    {
      name: "ship back before Packaging",
      from: "Transferring",
      event: {
        type: "ShipBack",
        returnPackage: { carrierName: "F", trackingNumber: "R", driveCount: 2, shipDate: "d" },
      },
      expect: { error: "InvalidJobState" },
    },
    {
      name: "ship back",
      from: "Packaging",
      event: {
        type: "ShipBack",
        returnPackage: { carrierName: "F", trackingNumber: "R", driveCount: 2, shipDate: "d" },
      },
      expect: { job: "Completed", drives: { "DRIVE-A": "ShippedBack", "DRIVE-B": "ShippedBack" } },
    },
    {
      name: "fault a transferring job",
      from: "Transferring",
      event: { type: "Fault", reason: "ReturnAddressInvalid" },
      expect: { job: "Faulted" },
    },
    {
      name: "fault a completed job",
      from: "Completed",
      event: { type: "Fault", reason: "x" },
      expect: { error: "InvalidTransition" },
    },
    {
      name: "fault a Creating job",
      from: "Creating",
      event: { type: "Fault", reason: "x" },
      expect: { error: "InvalidTransition" },
    },
    {
      name: "resolve returns to the state left",
      from: "Faulted",
      event: { type: "Resolve" },
      expect: { job: "Transferring" },
    },
    {
      name: "resolve a healthy job",
      from: "Received",
      event: { type: "Resolve" },
      expect: { error: "InvalidTransition" },
    },
    {
      name: "fault a drive",
      from: "Transferring",
      event: { type: "Fault", driveId: "DRIVE-A", reason: "DriveDamaged" },
      expect: { job: "Transferring", drives: { "DRIVE-A": "Faulted", "DRIVE-B": "Received" } },
    },
    {
      name: "resolve a healthy drive",
      from: "Transferring",
      event: { type: "Resolve", driveId: "DRIVE-A" },
      expect: { error: "InvalidTransition" },
    },
    {
      name: "close an unresponsive job too early",
      from: "Shipping",
      event: { type: "CloseUnresponsive" },
      expect: { error: "NotYetAllowed" },
    },
    {
      name: "transfer on a faulted job",
      from: "Faulted",
      event: { type: "TransferStarted", driveId: "DRIVE-B" },
      expect: { error: "InvalidJobState" },
    },
  ];
  for (const c of cases) {
    it(`${c.from}: ${c.name}`, () => {
      const job = importJobIn(c.from);
      if ("error" in c.expect) {
        expect(codeOf(() => applyStationEvent(job, c.event, at(10)))).toBe(c.expect.error);
        return;
      }
      const out = applyStationEvent(job, c.event, at(10)).job;
      expect(out.state).toBe(c.expect.job);
      if (c.expect.drives) expect(drives(out)).toEqual(c.expect.drives);
    });
  }

  it("a held package raises an operator notice and is recorded", () => {
    const { job, notices } = applyStationEvent(
      importJobIn("Creating"),
      { type: "CheckInPackage", trackingNumber: "T9", driveIds: ["DRIVE-A"] },
      at(1),
    );
    expect(job.heldPackages).toMatchObject([{ trackingNumber: "T9", driveIds: ["DRIVE-A"] }]);
    expect(notices.map((n) => n.code)).toEqual(["PackageHeld"]);
    expect(notices[0]!.message).toContain("not Shipping");
  });

  it("extra drives are tied to the package and shipped back with the job", () => {
    let job = step(importJobIn("Shipping"), {
      type: "CheckInPackage",
      trackingNumber: "T",
      driveIds: ["DRIVE-A", "DRIVE-B", "X1"],
    });
    expect(job.extraDrives).toMatchObject([{ driveId: "X1", trackingNumber: "T", shippedBack: false }]);
    for (const id of ["DRIVE-A", "DRIVE-B"]) {
      job = step(job, { type: "TransferStarted", driveId: id });
      job = step(job, {
        type: "TransferFinished",
        driveId: id,
        outcome: "Completed",
        copyStatus: "Completed",
        bytesSucceeded: 0,
      });
    }
    job = step(job, {
      type: "ShipBack",
      returnPackage: { carrierName: "F", trackingNumber: "R", driveCount: 3, shipDate: "d" },
    });
    expect(job.extraDrives[0]!.shippedBack).toBe(true);
  });

  it("a NeverReceived drive that turns up later moves to Received", () => {
    let job = step(importJobIn("Shipping"), {
      type: "CheckInPackage",
      trackingNumber: "T",
      driveIds: ["DRIVE-A"],
    });
    expect(drives(job)["DRIVE-B"]).toBe("NeverReceived");
    const out = applyStationEvent(
      job,
      { type: "DriveArrived", driveId: "DRIVE-B", trackingNumber: "T2" },
      at(5),
    );
    job = out.job;
    expect(drives(job)["DRIVE-B"]).toBe("Received");
    expect(out.notices.map((n) => n.code)).toContain("DriveNeverReceived");
  });

  it("errors decide Completed vs Closed", () => {
    expect(importJobIn("Completed").state).toBe("Completed");
    expect(importJobIn("Closed").state).toBe("Closed");
  });

  it("a cancelled job skips the copy but walks the same states", () => {
    let job = updateJob(importJobIn("Shipping"), { cancelRequested: true }, at(2), actor).job;
    job = step(job, { type: "CheckInPackage", trackingNumber: "T", driveIds: ["DRIVE-A", "DRIVE-B"] });
    expect(job.state).toBe("Packaging");
    expect(codeOf(() => step(job, { type: "TransferStarted", driveId: "DRIVE-A" }))).toBe("InvalidJobState");
    job = step(job, {
      type: "ShipBack",
      returnPackage: { carrierName: "F", trackingNumber: "R", driveCount: 2, shipDate: "d" },
    });
    expect(job.state).toBe("Completed");
    expect(drives(job)).toEqual({ "DRIVE-A": "ShippedBack", "DRIVE-B": "ShippedBack" });
  });

  it("cancel while Transferring lets the running drive finish, skips the rest", () => {
    let job = updateJob(importJobIn("Transferring"), { cancelRequested: true }, at(3), actor).job;
    expect(job.state).toBe("Transferring");
    job = step(job, {
      type: "TransferFinished",
      driveId: "DRIVE-A",
      outcome: "Completed",
      copyStatus: "Completed",
      bytesSucceeded: 1000,
    });
    expect(job.state).toBe("Packaging");
    expect(drives(job)["DRIVE-B"]).toBe("Received");
  });

  it("export drives start Received when checked in", () => {
    let job = createJob(key, exportSpec(), undefined, T0, actor);
    expect(job.drives).toEqual([]);
    job = updateJob(job, { deliveryPackage, state: "Shipping" }, at(1), actor).job;
    job = step(job, { type: "CheckInPackage", trackingNumber: "T", driveIds: ["E1", "E2"] });
    expect(job.state).toBe("Received");
    expect(drives(job)).toEqual({ E1: "Received", E2: "Received" });
  });

  it("progress and percent complete follow the bytes", () => {
    let job = step(importJobIn("Transferring"), {
      type: "TransferProgress",
      driveId: "DRIVE-A",
      bytesSucceeded: 250,
      copyStatus: "InProgress",
    });
    expect(job.drives[0]!.percentComplete).toBe(25);
    job = step(job, { type: "TransferStarted", driveId: "DRIVE-B", bytesTotal: 1000 });
    job = step(job, { type: "TransferProgress", driveId: "DRIVE-B", bytesSucceeded: 750 });
    expect(jobPercentComplete(job)).toBe(50);
  });
});
