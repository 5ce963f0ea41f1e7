/**
 * The job and drive state machines: pure functions `(job, event, now) -> { job, notices }`.
 * They never do I/O; whoever calls them persists the job and publishes the notices.
 * An illegal event throws a StationError with a code (never a plain Error).
 */
export { createJob, type DriveSpec, type JobSpec, MAX_DRIVES_PER_JOB } from "./create.js";
export {
  applyTimers,
  CREATING_EXPIRY_DAYS,
  DAY_MS,
  HELD_RETURN_DAYS,
  nextDeadline,
  RETENTION_DAYS,
  SHIPPING_OVERDUE_DAYS,
  type TimerOutcome,
  UNRESPONSIVE_CLOSE_DAYS,
} from "./deadlines.js";
export { canMoveDrive, canMoveJob, type Outcome } from "./moves.js";
export { jobPercentComplete, percent } from "./progress.js";
export { applyStationEvent, type StationEvent } from "./station-events.js";
export { type JobPatch, updateJob } from "./update.js";
