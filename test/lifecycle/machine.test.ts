import { describe, expect, it } from "vitest";
import { isStationError } from "../../src/errors.js";
import {
  applyStationEvent,
  applyTimers,
  createJob,
  type JobPatch,
  jobPercentComplete,
  nextDeadline,
  type StationEvent,
  updateJob,
} from "../../src/lifecycle/machine.js";
import {
  DRIVE_STATES,
  DRIVE_TRANSITIONS,
  JOB_STATES,
  JOB_TRANSITIONS,
  type Job,
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

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isStationError(e)) return e.code;
    throw e;
  }
  return "no error";
}

const drives = (job: Job) => Object.fromEntries(job.drives.map((d) => [d.driveId, d.state]));

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
    {
      name: "cancel false refused",
      from: "Creating",
      patch: { cancelRequested: false },
      expect: { error: "InvalidRequestContent" },
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
      patch: { returnAddress },
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
      patch: { deliveryPackage },
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
