/** Helpers shared by the state machine's tests. */
import { isStationError } from "../../src/errors.js";
import type { Job } from "../../src/lifecycle/model.js";

/** The StationError code a call throws, or "no error". */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (isStationError(e)) return e.code;
    throw e;
  }
  return "no error";
}

/** Each drive's state by drive id. */
export const drives = (job: Job) => Object.fromEntries(job.drives.map((d) => [d.driveId, d.state]));
