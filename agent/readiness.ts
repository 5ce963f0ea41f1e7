/** What /readyz checks: the job store answers, the embedded storage answers HTTP, drive detection polls. */
import type { ReadinessCheck } from "../src/api/health.js";
import type { DriveWatcher } from "../src/drives/watcher.js";
import type { JobStore, StoreHealth } from "../src/jobs/store.js";

export function readinessChecks(
  store: JobStore & StoreHealth,
  embeddedStorage: string | undefined,
  watcher: DriveWatcher | undefined,
): ReadinessCheck[] {
  const checks: ReadinessCheck[] = [
    {
      name: "store",
      check: async () => {
        if (!store.healthy()) throw new Error("the job store does not answer");
        await store.list({}, 1);
      },
    },
  ];
  if (embeddedStorage) {
    const url = embeddedStorage.replace("{account}", "");
    checks.push({
      name: "storage",
      // Any HTTP answer (an anonymous request gets 4xx) proves Azurite listens and serves.
      check: async (signal) => {
        await fetch(url, { signal }).then((r) => r.body?.cancel());
      },
    });
  }
  if (watcher) {
    const w = watcher;
    checks.push({
      name: "drive-detection",
      check: async () => {
        if (!w.isRunning) throw new Error("drive detection is not running");
        const age = Date.now() - (w.lastScanAt ?? 0);
        if (age > 120_000) throw new Error(`the last drive scan finished ${Math.round(age / 1000)} s ago`);
      },
    });
  }
  return checks;
}
