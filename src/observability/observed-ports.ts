/**
 * Port decorators the composition root wraps around the stores: they tell the console feed that
 * jobs or notices changed (so it pushes without polling the store) and count finished blobs for
 * the metrics, and pass notices through the secret scrubber, without the service or the engine
 * knowing any of it exists.
 */
import type { JobStore, NoticeLog } from "../jobs/store.js";
import { scrubSecrets } from "../secrets.js";
import type { CheckpointStore } from "../transfer/checkpoints.js";
import type { TransferObserver } from "./metrics.js";

export function signallingJobStore(store: JobStore, changed: () => void): JobStore {
  return {
    get: (key) => store.get(key),
    list: (scope, top, skipToken) => store.list(scope, top, skipToken),
    due: (now) => store.due(now),
    async put(job, expectedVersion, nextDeadline) {
      const stored = await store.put(job, expectedVersion, nextDeadline);
      changed();
      return stored;
    },
    async delete(key, expectedVersion) {
      const deleted = await store.delete(key, expectedVersion);
      if (deleted) changed();
      return deleted;
    },
  };
}

export function signallingNoticeLog(log: NoticeLog, changed: () => void): NoticeLog {
  return {
    recent: (options) => log.recent(options),
    async add(notices) {
      await log.add(notices);
      if (notices.length) changed();
    },
  };
}

/**
 * Notices are output (console, API, CLI): their messages pass the secret scrubber when written,
 * and again when read (a notice stored by an older version).
 */
export function scrubbingNoticeLog(log: NoticeLog): NoticeLog {
  return {
    add: (notices) => log.add(notices.map((n) => ({ ...n, message: scrubSecrets(n.message) }))),
    recent: async (options) =>
      (await log.recent(options)).map((n) => ({ ...n, message: scrubSecrets(n.message) })),
  };
}

/** Counts each blob once, when its `done` checkpoint (its copy-log entry) is saved. */
export function observedCheckpoints(store: CheckpointStore, observer: TransferObserver): CheckpointStore {
  return {
    progress: (job, driveId) => store.progress(job, driveId),
    entries: (job, driveId) => store.entries(job, driveId),
    clear: (job, driveId) => store.clear(job, driveId),
    async save(job, driveId, records) {
      await store.save(job, driveId, records);
      for (const r of records)
        if (r.state === "done" && r.log) observer.blobFinished(job, driveId, r.log.status);
    },
  };
}
