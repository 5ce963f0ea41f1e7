/**
 * The composition root: builds the logger, store, service, API and embedded storage from the
 * parsed config, and owns their lifetimes. Nothing in src/ reads config or the environment.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import type { DestinationStream, Logger } from "pino";
import { z } from "zod";
import { type ApiToken, type RoleAssignment, TokenAuthenticator } from "../src/api/auth.js";
import { registerConsole } from "../src/api/console.js";
import { ConsoleFeed } from "../src/api/console-feed.js";
import { exportRoutes } from "../src/api/export-routes.js";
import { type DeclaredRoute, declaredRoutes } from "../src/api/gate.js";
import { type ReadinessCheck, registerHealth } from "../src/api/health.js";
import { JwtVerifier } from "../src/api/jwt.js";
import { accountName, checkAccountOwner } from "../src/api/scope.js";
import { buildApi } from "../src/api/server.js";
import { Dock } from "../src/drives/door.js";
import { exec } from "../src/drives/exec.js";
import { loopScan, mountedScan, physicalScan, type Scan } from "../src/drives/sources.js";
import { DriveWatcher } from "../src/drives/watcher.js";
import { StationError } from "../src/errors.js";
import { KeyedLock } from "../src/jobs/keyed-lock.js";
import { PgStore } from "../src/jobs/pg-store.js";
import { type Clock, JobService, systemClock } from "../src/jobs/service.js";
import { SqliteExportStore } from "../src/jobs/sqlite-export-store.js";
import { SqliteStore } from "../src/jobs/sqlite-store.js";
import type { JobStore, StoreHealth } from "../src/jobs/store.js";
import { type Job, jobLabel } from "../src/lifecycle/model.js";
import { StationMetrics } from "../src/observability/metrics.js";
import {
  observedCheckpoints,
  signallingJobStore,
  signallingNoticeLog,
} from "../src/observability/observed-ports.js";
import { AzureExportSource } from "../src/storage/azure-export-source.js";
import { accountFromResourceId } from "../src/storage/blob-access.js";
import {
  DEV_ACCOUNT,
  DEV_ACCOUNT_KEY,
  type RunningAzurite,
  startAzurite,
} from "../src/storage/embedded-azurite.js";
import { rootsWithHungReads } from "../src/transfer/core/drive-reads.js";
import { previewJob } from "../src/transfer/export/preview.js";
import { TransferManager } from "../src/transfer/manager.js";
import { type AgentConfig, readLimitsOf, tokenSchema } from "./config.js";
import { createLogger, detectLogFormat } from "./logging.js";
import { reconsiderAfterChanges } from "./operator-fixes.js";

export interface AgentOptions {
  /** Directory that relative paths in the config are resolved against. */
  baseDir: string;
  clock?: Clock;
  logDestination?: DestinationStream;
  /** More API routes (tests, extensions); each must declare its access or the agent refuses to start. */
  apiRoutes?: ((app: FastifyInstance) => void)[];
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

/** The subscription the generated customer token is granted (edit the token file to change it). */
export const DEMO_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000";

/**
 * Tokens from config; with neither tokens nor JWT configured, a generated operator+customer pair
 * kept in dataDir (mode 0600), the customer granted DEMO_SUBSCRIPTION only.
 */
function loadTokens(
  config: AgentConfig,
  dataDir: string,
  log: Logger,
): { tokens: ApiToken[]; file: string | undefined } {
  if (config.api.tokens.length > 0 || config.api.jwt) return { tokens: config.api.tokens, file: undefined };
  const file = join(dataDir, "api-tokens.json");
  if (!existsSync(file)) {
    const tokens: ApiToken[] = [
      { name: "operator", role: "operator", token: randomBytes(24).toString("base64url") },
      {
        name: "customer",
        role: "customer",
        token: randomBytes(24).toString("base64url"),
        scopes: [{ subscriptionId: DEMO_SUBSCRIPTION }],
      },
    ];
    writeFileSync(file, `${JSON.stringify({ tokens }, null, 2)}\n`, { mode: 0o600 });
    log.info({ file }, "no API tokens configured: generated an operator and a customer token");
  }
  chmodSync(file, 0o600);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new StationError(
      "ConfigInvalid",
      `Token file ${file} is not valid JSON; delete it to regenerate.`,
      {
        cause: e,
      },
    );
  }
  const parsed = z.object({ tokens: z.array(tokenSchema).min(1) }).safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new StationError(
      "ConfigInvalid",
      `Token file ${file}: ${issue.path.map(String).join(".") || "(root)"}: ${issue.message}. Fix it, or delete it to regenerate.`,
    );
  }
  return { tokens: parsed.data.tokens, file };
}

/** The JWT verifier, its key read here (the composition root is the only reader of files). */
function jwtVerifier(config: AgentConfig, abs: (p: string) => string, clock: Clock): JwtVerifier | undefined {
  const j = config.api.jwt;
  if (!j) return undefined;
  const read = (f: string, key: string) => {
    try {
      return readFileSync(abs(f), "utf8");
    } catch (e) {
      throw new StationError(
        "ConfigInvalid",
        `Config api.jwt.${key}: cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? e}.`,
        { cause: e },
      );
    }
  };
  let key: ConstructorParameters<typeof JwtVerifier>[0]["key"];
  if (j.jwksUrl) key = { jwksUrl: j.jwksUrl };
  else if (j.jwksFile) {
    try {
      key = { jwks: JSON.parse(read(j.jwksFile, "jwksFile")) };
    } catch (e) {
      if (e instanceof StationError) throw e;
      throw new StationError("ConfigInvalid", `Config api.jwt.jwksFile: ${j.jwksFile} is not valid JSON.`);
    }
  } else key = { publicKeyPem: read(j.publicKeyFile!, "publicKeyFile") };
  return new JwtVerifier({
    key,
    issuer: j.issuer,
    audience: j.audience,
    algorithms: j.algorithms,
    clockToleranceSeconds: j.clockToleranceSeconds,
    claims: j.claims,
    operatorRole: j.operatorRole,
    customerRole: j.customerRole,
    now: () => clock.now(),
  });
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

/** /readyz: the job store answers, the embedded storage answers HTTP, drive detection polls. */
function readinessChecks(
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
      notices: (limit) => store.recent({ limit }),
    },
    { onError: (e) => log.warn({ err: e }, "console feed: reading jobs failed; retrying") },
  );
  const jobStore = signallingJobStore(store, () => feed.changed());
  const notices = signallingNoticeLog(store, () => feed.changed());
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

  let azurite: RunningAzurite | undefined;
  let storageEndpoint = "";
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
    if (config.storage.mode === "embedded") {
      const accounts = config.storage.accounts.length
        ? config.storage.accounts
        : [{ name: DEV_ACCOUNT, key: DEV_ACCOUNT_KEY }];
      azurite = await startAzurite({
        location: join(dataDir, "azurite"),
        host: config.storage.host,
        port: config.storage.port,
        accounts,
        onOrphan: (h) =>
          log.warn(
            { pid: h.pid, command: h.command },
            "an embedded Azurite left by an earlier agent still held the storage port: stopping it (not reusing it)",
          ),
      });
      // Azurite serves accounts path-style: http://host:port/<account>/<container>/<blob>
      storageEndpoint = `http://${config.storage.host}:${config.storage.port}/{account}`;
      cleanup.unshift(() => azurite?.stop());
      log.info({ endpoint: storageEndpoint }, "embedded Azurite started");
    } else {
      storageEndpoint = config.storage.endpointTemplate;
    }
    // Export reads the job's account with the station's own key for it (never logged).
    const accountKeys = new Map<string, string>(
      (config.storage.mode === "embedded" && !config.storage.accounts.length
        ? [{ name: DEV_ACCOUNT, key: DEV_ACCOUNT_KEY }]
        : config.storage.accounts
      ).map((a) => [a.name, a.key]),
    );
    const owners = new Map<string, RoleAssignment>();
    for (const a of config.storage.accounts) {
      if (a.subscriptionId) {
        owners.set(a.name, {
          subscriptionId: a.subscriptionId,
          ...(a.resourceGroup ? { resourceGroup: a.resourceGroup } : {}),
        });
      } else if (config.storage.mode === "azure") {
        log.warn(
          { account: a.name },
          "storage account key without an owning subscriptionId: any customer job naming this account can export from it; set storage.accounts[].subscriptionId",
        );
      }
    }
    const accountOwner = (account: string) => owners.get(account.toLowerCase());
    const exportSourceFor = (storageAccountId: string) => {
      // Defence in depth: the API refused such a job already (checkAccountOwner at PUT).
      checkAccountOwner(storageAccountId, accountOwner(accountName(storageAccountId)));
      const account = accountFromResourceId(storageAccountId);
      const accountKey = accountKeys.get(account);
      if (!accountKey)
        throw new StationError(
          "StorageUnavailable",
          `This station holds no key for storage account '${account}': add it to storage.accounts in the config to export from it.`,
          { target: account },
        );
      return new AzureExportSource({ endpoint: { template: storageEndpoint }, storageAccountId, accountKey });
    };

    let watcher: DriveWatcher | undefined;
    if (config.drives.enabled) {
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
      watcher = new DriveWatcher(scans, config.drives.pollIntervalMs);
      const t = config.transfer;
      transfers = new TransferManager({
        service,
        checkpoints: observedCheckpoints(store, metrics),
        notices,
        log,
        clock,
        observer: metrics,
        endpoint: { template: storageEndpoint },
        settings: {
          concurrency: t.concurrency,
          blobConcurrency: t.blobConcurrency,
          retry: t.retry,
          outageRetryMs: t.outageRetrySeconds * 1000,
          readLimits: readLimitsOf(t),
        },
        exports: { store: exportStore, lock: exportLock, sourceFor: exportSourceFor },
        fleet: { claims: store, health: store, stationId, leaseMs: config.station.leaseSeconds * 1000 },
      });
      dock = new Dock({
        watcher,
        exec,
        service,
        notices,
        log,
        clock,
        mountRoot: abs(config.drives.mountRoot),
        ...(t.enabled ? { hooks: transfers.hooks() } : {}),
        readsHungUnder: (mountpoint) =>
          rootsWithHungReads().some((r) => r === mountpoint || r.startsWith(`${mountpoint}/`)),
      });
      // Stop order: claim no new drive, cancel the transfers (they read from mounted drives), then unmount.
      cleanup.unshift(() => dock?.stop());
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
        exportRoutes({
          service,
          preview: async (key, driveSize) => {
            const job = await service.get(key);
            const docked = (dock?.list() ?? []).filter(
              (d) => d.job && d.driveId && d.mountpoint && jobLabel(d.job) === jobLabel(key),
            );
            return previewJob(
              {
                store: exportStore,
                lock: exportLock,
                sourceFor: exportSourceFor,
                log,
                retry: config.transfer.retry,
              },
              job,
              docked.map((d) => ({
                driveId: d.driveId!,
                mountpoint: d.mountpoint!,
                ...(d.fsType ? { fsType: d.fsType } : {}),
              })),
              driveSize,
              AbortSignal.timeout(10 * 60_000),
            );
          },
          confirm: async (key, driveId, by) => {
            if (!transfers)
              throw new StationError(
                "NotYetAllowed",
                "Drives are disabled on this station: no export drive can be written.",
              );
            return transfers.confirmExportDrive(key, driveId, by);
          },
        }),
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
