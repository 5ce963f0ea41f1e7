/**
 * One drive listed by two live jobs (a customer reused a drive while its first job still holds
 * it): which job it serves is the operator's call, never the station's guess. Pure: the dock and
 * the check-in both name the jobs and the next step with these.
 */
import { type Job, type JobKey, jobLabel } from "./model.js";

const ENDED = new Set(["Completed", "Closed"]);

/** The live jobs (not Completed or Closed) whose drive list names `driveId`, with that entry. */
export function liveJobsListing<J extends Job>(jobs: readonly J[], driveId: string) {
  return jobs
    .filter((j) => !ENDED.has(j.state))
    .flatMap((job) => job.drives.filter((d) => d.driveId === driveId).map((entry) => ({ job, entry })));
}

const keyOf = (j: Job): JobKey => ({
  subscriptionId: j.subscriptionId,
  resourceGroup: j.resourceGroup,
  name: j.name,
});

export function conflictMessage(driveId: string, listed: { job: Job; entry: { state: string } }[]): string {
  const named = listed.map((m) => `${jobLabel(keyOf(m.job))} (job ${m.job.state}, drive ${m.entry.state})`);
  return `Drive ${driveId} is listed by ${listed.length} live jobs: ${named.join(" and ")}. Not processed: a drive serves one job at a time. Next step: finish the job it is done for (ship its drives back) or remove the drive from the job it is not meant for, then plug it in again.`;
}
