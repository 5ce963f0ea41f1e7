/** Drive and job percentComplete. */
import type { Job } from "./model.js";

export const percent = (done: number, total: number | undefined): number =>
  total === undefined || total <= 0 ? 0 : Math.min(100, Math.floor((done * 100) / total));

/** Job percentComplete: bytes over the drives whose totals are known, else the mean of drive percents. */
export function jobPercentComplete(job: Job): number {
  if (job.state === "Packaging" || job.state === "Completed" || job.state === "Closed") {
    return job.drives.some(
      (d) => d.state === "Completed" || d.state === "CompletedMoreInfo" || d.state === "ShippedBack",
    )
      ? 100
      : 0;
  }
  const known = job.drives.filter((d) => d.bytesTotal !== undefined);
  if (known.length > 0) {
    const total = known.reduce((s, d) => s + (d.bytesTotal ?? 0), 0);
    return percent(
      known.reduce((s, d) => s + d.bytesSucceeded, 0),
      total,
    );
  }
  return 0;
}
