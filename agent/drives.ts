/** Drive detection wiring: the scan adapters the config enables, the transfer manager, and the Dock. */
import type { Logger } from "pino";
import { Dock } from "../src/drives/door.js";
import { exec } from "../src/drives/exec.js";
import { loopScan, mountedScan, physicalScan, type Scan } from "../src/drives/sources.js";
import { DriveWatcher } from "../src/drives/watcher.js";
import type { PgStore } from "../src/jobs/pg-store.js";
import type { Clock, JobService } from "../src/jobs/service.js";
import type { SqliteStore } from "../src/jobs/sqlite-store.js";
import type { NoticeLog } from "../src/jobs/store.js";
import type { StationMetrics } from "../src/observability/metrics.js";
import { observedCheckpoints } from "../src/observability/observed-ports.js";
import { UploadThreads } from "../src/storage/upload-threads.js";
import { rootsWithHungReads } from "../src/transfer/core/drive-reads.js";
import type { FileHasher } from "../src/transfer/core/file-hasher.js";
import { type BlockHashes, HashPool, InlineHashes } from "../src/transfer/core/hash-pool.js";
import { TransferManager, type TransferManagerDeps } from "../src/transfer/manager.js";
import { type AgentConfig, ioThreadsOf, readLimitsOf } from "./config.js";
import { threadSizes } from "./threads.js";

export interface DriveWiringDeps {
  config: AgentConfig;
  /** Resolves a config path against the config's directory. */
  abs(path: string): string;
  service: JobService;
  store: SqliteStore | PgStore;
  notices: NoticeLog;
  log: Logger;
  clock: Clock;
  metrics: StationMetrics;
  storageEndpoint: string;
  /** The export engine's deps but its hashing threads (this wiring owns them). */
  exports: Omit<NonNullable<TransferManagerDeps["exports"]>, "hasher">;
  stationId: string;
}

export interface DriveWiring {
  watcher: DriveWatcher;
  transfers: TransferManager;
  dock: Dock;
  /** The hashing threads (import and export) and the upload threads: closed after the transfers stopped. */
  threads: { close(): Promise<void> };
}

export async function wireDrives(deps: DriveWiringDeps): Promise<DriveWiring> {
  const { config, abs, service, store, notices, log, clock, metrics } = deps;
  const scans: Record<string, Scan> = {};
  if (config.drives.physical) {
    const drivelist = await import("drivelist");
    scans.physical = physicalScan(() => drivelist.list(), config.drives.excludeDevices);
  }
  if (config.drives.loopImageDirs.length) scans.loop = loopScan(config.drives.loopImageDirs.map(abs));
  if (config.drives.mountedRoots.length) {
    const diskInfo = await import("node-disk-info");
    scans.mounted = mountedScan(
      async () =>
        (await diskInfo.getDiskInfo()).map((v) => ({
          filesystem: v.filesystem,
          mounted: v.mounted,
          blocks: v.blocks,
        })),
      config.drives.mountedRoots.map(abs),
    );
  }
  const watcher = new DriveWatcher(scans, config.drives.pollIntervalMs);
  const t = config.transfer;
  const { hash: hashThreads, upload: uploadThreads } = threadSizes(t);
  const readLimits = readLimitsOf(t, ioThreadsOf(process.env));
  // One pool for both directions: import's block and blob MD5s, export's range MD5s and read-backs
  // (each read-back bounded by the drive read timeout, as import's reads).
  const hashes: BlockHashes & FileHasher & { close(): Promise<void> } =
    hashThreads > 0
      ? new HashPool({
          threads: hashThreads,
          onFault: (message) => log.error(message),
          readTimeoutMs: readLimits.timeoutMs,
          hungLimit: readLimits.hungLimit,
        })
      : new InlineHashes();
  const uploads =
    uploadThreads > 0
      ? new UploadThreads({ threads: uploadThreads, onFault: (message) => log.error(message) })
      : undefined;
  const transfers = new TransferManager({
    hashes,
    ...(uploads ? { uploads } : {}),
    service,
    checkpoints: observedCheckpoints(store, metrics),
    notices,
    log,
    clock,
    observer: metrics,
    endpoint: { template: deps.storageEndpoint },
    settings: {
      concurrency: t.concurrency,
      blobConcurrency: t.blobConcurrency,
      retry: t.retry,
      outageRetryMs: t.outageRetrySeconds * 1000,
      readLimits,
    },
    exports: { ...deps.exports, hasher: hashes },
    fleet: {
      claims: store,
      health: store,
      stationId: deps.stationId,
      leaseMs: config.station.leaseSeconds * 1000,
    },
  });
  const dock = new Dock({
    watcher,
    exec,
    service,
    notices,
    log,
    clock,
    mountRoot: abs(config.drives.mountRoot),
    ...(t.enabled ? { hooks: transfers.hooks() } : {}),
    readLimits,
    readsHungUnder: (mountpoint) =>
      rootsWithHungReads().some((r) => r === mountpoint || r.startsWith(`${mountpoint}/`)),
  });
  const threads = {
    close: async () => {
      await Promise.all([hashes.close(), uploads?.close()]);
    },
  };
  return { watcher, transfers, dock, threads };
}
