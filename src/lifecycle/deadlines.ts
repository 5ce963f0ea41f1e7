/** The timers: deadlines hang on timestamps stored in the job, never on in-memory timeouts. */
import { type Job, jobLabel, type Notice } from "./model.js";
import { moveDrive, notice } from "./moves.js";

export const DAY_MS = 24 * 60 * 60 * 1000;
export const CREATING_EXPIRY_DAYS = 14;
export const SHIPPING_OVERDUE_DAYS = 14;
export const UNRESPONSIVE_CLOSE_DAYS = 30;
export const RETENTION_DAYS = 90;
export const HELD_RETURN_DAYS = 14;

export const plus = (iso: string, days: number): Date => new Date(Date.parse(iso) + days * DAY_MS);

export type TimerOutcome = { job: Job | null; notices: Notice[] };

/**
 * Deadlines hang on timestamps stored in the job, so a restart neither resets nor skips them:
 * whatever fell due while the agent was down fires on the first tick after it starts.
 */
export function applyTimers(current: Job, now: Date): TimerOutcome {
  const job = structuredClone(current);
  const notices: Notice[] = [];
  const ts = job.timestamps;

  if (
    job.state === "Creating" &&
    ts.creatingRefreshedAt &&
    now >= plus(ts.creatingRefreshedAt, CREATING_EXPIRY_DAYS)
  ) {
    // The job record goes, but drives held at the dock for it must still go home.
    const held = job.heldPackages.filter((h) => !h.returnNoticeSent);
    const heldNote = held.length
      ? ` Return its held drives: ${held.map((h) => `${h.driveIds.join(", ")} (package ${h.trackingNumber})`).join("; ")}.`
      : "";
    const message = `Job ${jobLabel(job)} stayed Creating for ${CREATING_EXPIRY_DAYS} days without an update: deleted.${heldNote}`;
    notices.push(notice(job, "JobExpired", now, message));
    return { job: null, notices };
  }
  if (
    (job.state === "Completed" || job.state === "Closed") &&
    ts.finishedAt &&
    now >= plus(ts.finishedAt, RETENTION_DAYS)
  ) {
    notices.push(
      notice(job, "JobPurged", now, `Job ${jobLabel(job)} ended ${RETENTION_DAYS} days ago: deleted.`),
    );
    return { job: null, notices };
  }
  if (job.state === "Shipping" && ts.shippingAt) {
    if (!ts.overdueNoticeSent && now >= plus(ts.shippingAt, SHIPPING_OVERDUE_DAYS)) {
      ts.overdueNoticeSent = true;
      for (const d of job.drives) if (d.state === "Specified") moveDrive(job, d, "NeverReceived");
      notices.push(
        notice(
          job,
          "PackageOverdue",
          now,
          `The package of job ${jobLabel(job)} has not arrived ${SHIPPING_OVERDUE_DAYS} days after shipping: its drives are NeverReceived. Notify the customer.`,
        ),
      );
    }
    if (
      !ts.closableNoticeSent &&
      now >= plus(ts.shippingAt, SHIPPING_OVERDUE_DAYS + UNRESPONSIVE_CLOSE_DAYS)
    ) {
      ts.closableNoticeSent = true;
      notices.push(
        notice(
          job,
          "JobClosable",
          now,
          `Job ${jobLabel(job)}: package overdue and no answer for ${UNRESPONSIVE_CLOSE_DAYS} days. The operator may close it: 'station close ${job.name}'.`,
        ),
      );
    }
  }
  for (const held of job.heldPackages) {
    if (!held.returnNoticeSent && now >= plus(held.heldAt, HELD_RETURN_DAYS)) {
      held.returnNoticeSent = true;
      notices.push(
        notice(
          job,
          "ReturnHeldDrives",
          now,
          `Package ${held.trackingNumber} of job ${jobLabel(job)} has been held ${HELD_RETURN_DAYS} days: return its drives to the customer.`,
        ),
      );
    }
  }
  if (
    job.state === "Faulted" &&
    job.faulted &&
    ts.faultNoticeSent === false &&
    now >= plus(job.faulted.at, RETENTION_DAYS)
  ) {
    ts.faultNoticeSent = true;
    notices.push(
      notice(
        job,
        "FaultUnresolved",
        now,
        `Job ${jobLabel(job)} has been Faulted (${job.faulted.reason}) for ${RETENTION_DAYS} days: its drives may be destroyed.`,
      ),
    );
  }
  return { job, notices };
}

/** The earliest moment `applyTimers` could change this job; the store indexes it. */
export function nextDeadline(job: Job): Date | undefined {
  const ts = job.timestamps;
  const candidates: (Date | undefined)[] = [];
  if (job.state === "Creating" && ts.creatingRefreshedAt)
    candidates.push(plus(ts.creatingRefreshedAt, CREATING_EXPIRY_DAYS));
  if ((job.state === "Completed" || job.state === "Closed") && ts.finishedAt)
    candidates.push(plus(ts.finishedAt, RETENTION_DAYS));
  if (job.state === "Shipping" && ts.shippingAt) {
    if (!ts.overdueNoticeSent) candidates.push(plus(ts.shippingAt, SHIPPING_OVERDUE_DAYS));
    else if (!ts.closableNoticeSent)
      candidates.push(plus(ts.shippingAt, SHIPPING_OVERDUE_DAYS + UNRESPONSIVE_CLOSE_DAYS));
  }
  for (const h of job.heldPackages)
    if (!h.returnNoticeSent) candidates.push(plus(h.heldAt, HELD_RETURN_DAYS));
  if (job.state === "Faulted" && job.faulted && ts.faultNoticeSent === false)
    candidates.push(plus(job.faulted.at, RETENTION_DAYS));
  const times = candidates.filter((d): d is Date => d !== undefined).map((d) => d.getTime());
  return times.length ? new Date(Math.min(...times)) : undefined;
}
