/**
 * The composition root: builds the logger, store, service, API and embedded storage from the
 * parsed config, and owns their lifetimes (cleanup runs in reverse start order). Its parts:
 * storage.ts (Azurite or Azure, account keys and owners), drives.ts (scans, transfers, Dock),
 * api-access.ts (tokens, JWT), export-api.ts, readiness.ts. Nothing in src/ reads config or the environment.
 */
import { mkdirSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import type { DestinationStream, Logger } from "pino";
import { TokenAuthenticator } from "../src/api/auth.js";
import { registerConsole } from "../src/api/console.js";
import { ConsoleFeed } from "../src/api/console-feed.js";
import { type DeclaredRoute, declaredRoutes } from "../src/api/gate.js";
import { registerHealth } from "../src/api/health.js";
import { buildApi } from "../src/api/server.js";
import type { Dock } from "../src/drives/door.js";
import type { DriveWatcher } from "../src/drives/watcher.js";
import { KeyedLock } from "../src/jobs/keyed-lock.js";
import { PgStore } from "../src/jobs/pg-store.js";
import { type Clock, JobService, systemClock } from "../src/jobs/service.js";
import { SqliteExportStore } from "../src/jobs/sqlite-export-store.js";
import { SqliteStore } from "../src/jobs/sqlite-store.js";
import type { JobStore } from "../src/jobs/store.js";
import type { Job } from "../src/lifecycle/model.js";
import { StationMetrics } from "../src/observability/metrics.js";
import {
  scrubbingNoticeLog,
  signallingJobStore,
  signallingNoticeLog,
} from "../src/observability/observed-ports.js";
import type { ReadBackHook } from "../src/transfer/export/export-blob.js";
import type { TransferManager } from "../src/transfer/manager.js";
import { jwtVerifier, loadTokens } from "./api-access.js";
import type { AgentConfig } from "./config.js";
import { type DriveWiring, wireDrives } from "./drives.js";
import { exportApi } from "./export-api.js";
import { createLogger, detectLogFormat } from "./logging.js";
import { reconsiderAfterChanges } from "./operator-fixes.js";
import { readinessChecks } from "./readiness.js";
import { startStorage } from "./storage.js";

export { DEMO_SUBSCRIPTION } from "./api-access.js";

export interface AgentOptions {
  /** Directory that relative paths in the config are resolved against. */
  baseDir: string;
  clock?: Clock;
  logDestination?: DestinationStream;
  /** More API routes (tests, extensions); each must declare its access or the agent refuses to start. */
  apiRoutes?: ((app: FastifyInstance) => void)[];
  /** Tests: told when an export's chunks are synced and about to be read back (they damage the drive there). */
  beforeExportReadBack?: ReadBackHook;
}

export interface RunningAgent {
  url: string;
  dock: Dock | undefined;
  transfers: TransferManager | undefined;
  tokensFile: string | undefined;
  /** Every API route with the access it declares (the gate tests walk this). */
  routes: readonly DeclaredRoute[];
  service: JobService;
  log: Logger;
  /** This station's id in the fleet (drive claims). */
  stationId: string;
  /** False while the job store does not answer: readiness reports not-ready. */
  storeHealthy(): boolean;
  /** Blob endpoint template, `{account}` replaced per job. */
  storageEndpoint: string;
  metrics: StationMetrics;
  runTimers(): Promise<number>;
  /** Drives on the dock and drives being transferred (systemd STATUS=). */
  status(): { attached: number; transferring: number };
  /** Graceful stop: stop claiming drives, cancel transfers, flush, unmount, stop Azurite, close. */
  stop(): Promise<void>;
  /** Last resort (second signal, stop deadline passed): kill what the agent started, lazily unmount. Synchronous. */
  forceStop(): void;
}

async function allJobs(store: JobStore): Promise<Job[]> {
  const jobs: Job[] = [];
  let token: string | undefined;
  do {
    const page = await store.list({}, 100, token);
    jobs.push(...page.jobs);
    token = page.skipToken;
  } while (token);
  return jobs;
}

export async function startAgent(config: AgentConfig, options: AgentOptions): Promise<RunningAgent> {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(options.baseDir, p));
  const dataDir = abs(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const log = createLogger({
    level: config.log.level,
    // Tests hand in a destination and read JSON lines; a real run picks pretty/journal/json.
    format: options.logDestination ? "json" : detectLogFormat(),
    ...(options.logDestination ? { sink: options.logDestination } : {}),
  });
  const clock = options.clock ?? systemClock;

  const stationId = config.station.id ?? hostname();
  const store =
    config.store.kind === "postgres"
      ? await PgStore.open({
          url: config.store.url,
          poolSize: config.store.poolSize,
          connectTimeoutMs: config.store.connectTimeoutSeconds * 1000,
          log,
        })
      : new SqliteStore(join(dataDir, "jobs.db"));
  // The console is pushed every job and notice write; the store ports tell it, nobody else has to.
  const feed = new ConsoleFeed(
    {
      drives: () => dock?.list() ?? [],
      jobs: () => allJobs(store),
      notices: (limit) => notices.recent({ limit }),
    },
    { onError: (e) => log.warn({ err: e }, "console feed: reading jobs failed; retrying") },
  );
  const jobStore = signallingJobStore(store, () => feed.changed());
  const notices = signallingNoticeLog(scrubbingNoticeLog(store), () => feed.changed());
  let dock: Dock | undefined;
  let transfers: TransferManager | undefined;
  const metrics = new StationMetrics({
    sources: {
      drives: () => dock?.list() ?? [],
      queue: () => transfers?.queueDepth() ?? { queued: 0, inFlight: 0 },
      jobStates: () => feed.stateCounts(),
    },
    now: () => Date.now(),
  });
  // Sample progress between scrapes too, so a drive pulled before the next scrape still counts.
  const sampler = setInterval(() => metrics.sample(), 1000);
  sampler.unref();

  const { location } = config.station;
  const { id: _id, name: _name, supportedCarriers: _c, additionalShippingInformation, ...address } = location;
  const service = new JobService({
    store: jobStore,
    notices,
    clock,
    log,
    shippingInformation: {
      ...address,
      ...(additionalShippingInformation ? { additionalInformation: additionalShippingInformation } : {}),
    },
  });

  // A fleet keeps export state beside its jobs, so an export drive also resumes on any station.
  const exportStore =
    store instanceof PgStore ? store.exportStore() : new SqliteExportStore(join(dataDir, "export.db"));
  const exportLock = new KeyedLock();
  const cleanup: (() => Promise<void> | void)[] = [
    () => (exportStore instanceof SqliteExportStore ? exportStore.close() : undefined),
    () => store.close(),
    () => clearInterval(sampler),
    () => feed.stop(),
  ];
  try {
    const storage = await startStorage(config, dataDir, log);
    const { azurite, endpoint: storageEndpoint, accountOwner } = storage;
    if (azurite) cleanup.unshift(() => azurite.stop());
    const exports = {
      store: exportStore,
      lock: exportLock,
      sourceFor: storage.exportSourceFor,
      verify: config.export.verify,
      ...(options.beforeExportReadBack ? { beforeReadBack: options.beforeExportReadBack } : {}),
    };

    let watcher: DriveWatcher | undefined;
    if (config.drives.enabled) {
      let threads: DriveWiring["threads"];
      ({ watcher, transfers, dock, threads } = await wireDrives({
        config,
        abs,
        service,
        store,
        notices,
        log,
        clock,
        metrics,
        storageEndpoint,
        exports,
        stationId,
      }));
      // Stop order: claim no new drive, cancel the transfers (they read from mounted drives), then unmount.
      cleanup.unshift(() => dock?.stop());
      cleanup.unshift(() => threads.close());
      cleanup.unshift(() => transfers?.stop());
      cleanup.unshift(() => dock?.stopWatching());
    }

    const { tokens, file: tokensFile } = loadTokens(config, dataDir, log);
    const tls = config.api.tls
      ? { cert: readFileSync(abs(config.api.tls.certFile)), key: readFileSync(abs(config.api.tls.keyFile)) }
      : undefined;
    const app = buildApi({
      // An operator's fix takes effect on drives already plugged in.
      service: dock ? reconsiderAfterChanges(service, dock) : service,
      notices,
      auth: new TokenAuthenticator(tokens, jwtVerifier(config, abs, clock)),
      location,
      log,
      bodyLimitBytes: config.api.bodyLimitBytes,
      ...(tls ? { tls } : {}),
      ...(dock ? { dock } : {}),
      accountOwner,
      routes: [
        (a) =>
          registerHealth(a, {
            readiness: readinessChecks(store, azurite ? storageEndpoint : undefined, watcher),
            metrics,
          }),
        (a) => registerConsole(a, feed),
        exportApi({ service, exports, dock, transfers, retry: config.transfer.retry, log }),
        ...(options.apiRoutes ?? []),
      ],
    });
    await app.listen({ host: config.api.host, port: config.api.port });
    cleanup.unshift(() => app.close());
    const addr = app.server.address() as AddressInfo;
    const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    const url = `${tls ? "https" : "http"}://${host}:${addr.port}`;

    // Deadlines: fire what fell due while the agent was down, then keep checking.
    const runTimers = async () => {
      try {
        return await service.runTimers();
      } catch (e) {
        log.error({ err: e }, "timer run failed; will retry at the next interval");
        return 0;
      }
    };
    await runTimers();
    const interval = setInterval(() => void runTimers(), config.timers.intervalSeconds * 1000);
    cleanup.unshift(() => clearInterval(interval));

    // Start watching drives once the API answers, so the operator can see them as they come.
    if (dock) await (dock as Dock).start();
    log.info(
      {
        url,
        dataDir,
        stationId,
        store: store instanceof PgStore ? store.where : "sqlite",
        tls: Boolean(tls),
        storage: config.storage.mode,
        drives: Boolean(dock),
      },
      "drive-station agent ready",
    );
    let stopped = false;
    return {
      url,
      dock,
      transfers,
      tokensFile,
      routes: declaredRoutes(app),
      service,
      log,
      stationId,
      storeHealthy: () => store.healthy(),
      storageEndpoint,
      metrics,
      runTimers,
      status: () => ({
        attached: dock?.list().filter((d) => d.status !== "pulled").length ?? 0,
        transferring: transfers?.active ?? 0,
      }),
      forceStop() {
        azurite?.kill();
        dock?.forceUnmount();
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        for (const step of cleanup) await step();
        log.info("drive-station agent stopped");
      },
    };
  } catch (e) {
    for (const step of cleanup) await step();
    throw e;
  }
}
