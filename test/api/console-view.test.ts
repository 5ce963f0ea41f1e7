import { describe, expect, it } from "vitest";
import { consoleJob } from "../../src/api/console-view.js";
import { importJobIn, step } from "../support/jobs.js";

describe("the console's job view", () => {
  it("a CompletedMoreInfo drive carries the customer's repair command with its error log; a Completed one none", () => {
    let job = importJobIn("Transferring");
    const log = "https://acct.blob.core.windows.net/waimportexport/DRIVE-A_error.xml";
    job = step(
      job,
      {
        type: "TransferFinished",
        driveId: "DRIVE-A",
        outcome: "CompletedMoreInfo",
        copyStatus: "CompletedWithErrors",
        bytesSucceeded: 10,
        errorLogUri: log,
      },
      4,
    );
    const view = consoleJob(job);
    const a = view.drives.find((d) => d.driveId === "DRIVE-A");
    expect(a?.repairHint).toContain(`station repair-import --log-url ${log} --source`);
    expect(JSON.stringify(view.drives.find((d) => d.driveId === "DRIVE-B"))).not.toContain("repair");
  });
});
