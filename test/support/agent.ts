/** Starts the real agent (composition root) in-process on a temp data dir, port 0. */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { Writable } from "node:stream";
import { type AgentOptions, type RunningAgent, startAgent } from "../../agent/agent.js";
import { parseConfig } from "../../agent/config.js";
import type { Clock } from "../../src/jobs/service.js";
import { stationLocation } from "../../src/staging/agent-process.js";

export const OPERATOR_TOKEN = "operator-token-0123456789abcdef";
export const CUSTOMER_TOKEN = "customer-token-0123456789abcdef";
/** The subscriptions the default customer token (cust-bob) is granted; tests use these. */
export const CUSTOMER_SUBSCRIPTIONS = [
  "sub-1",
  "3fa85f64-5717-4562-b3fc-2c963f66afa6",
  "sub-import",
  "sub-crash",
  "sub-staged",
];

export const defaultTokens = () => [
  { name: "op-alice", token: OPERATOR_TOKEN, role: "operator" },
  {
    name: "cust-bob",
    token: CUSTOMER_TOKEN,
    role: "customer",
    scopes: CUSTOMER_SUBSCRIPTIONS.map((subscriptionId) => ({ subscriptionId })),
  },
];

export { stationLocation };

/** A self-signed certificate for 127.0.0.1, made with openssl (Debian's, always on these machines). */
export function makeCert(dir: string): { certFile: string; keyFile: string } {
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "2",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ],
    { stdio: "ignore" },
  );
  return { certFile, keyFile };
}

export interface TestAgent {
  agent: RunningAgent;
  logText(): string;
}

export async function startTestAgent(
  dataDir: string,
  opts: {
    tls?: { certFile: string; keyFile: string };
    clock?: Clock;
    bodyLimitBytes?: number;
    drives?: Record<string, unknown>;
    transfer?: Record<string, unknown>;
    /** Blob endpoint template; tests never reach a public endpoint. */
    storageEndpoint?: string;
    /** Account keys the station holds (export reads with them). */
    storageAccounts?: { name: string; key: string; subscriptionId?: string; resourceGroup?: string }[];
    /** `{ kind: "postgres", url }` for a fleet test; default SQLite in dataDir. */
    store?: Record<string, unknown>;
    /** Fleet identity: station id, lease length. */
    station?: { id?: string; leaseSeconds?: number };
    timers?: { intervalSeconds: number };
    /** Replaces defaultTokens(). */
    tokens?: unknown[];
    jwt?: Record<string, unknown>;
    apiRoutes?: AgentOptions["apiRoutes"];
    /** config export.verify */
    exportVerify?: "medium" | "written";
    beforeExportReadBack?: AgentOptions["beforeExportReadBack"];
  } = {},
): Promise<TestAgent> {
  const config = parseConfig(
    {
      dataDir,
      log: { level: "debug" },
      api: {
        host: "127.0.0.1",
        port: 0,
        bodyLimitBytes: opts.bodyLimitBytes ?? 64 * 1024,
        tokens: opts.tokens ?? defaultTokens(),
        ...(opts.jwt ? { jwt: opts.jwt } : {}),
        ...(opts.tls ? { tls: opts.tls } : {}),
      },
      station: { location: stationLocation, ...opts.station },
      ...(opts.store ? { store: opts.store } : {}),
      ...(opts.timers ? { timers: opts.timers } : {}),
      storage: {
        mode: "azure",
        endpointTemplate: opts.storageEndpoint ?? "http://127.0.0.1:9/{account}",
        ...(opts.storageAccounts ? { accounts: opts.storageAccounts } : {}),
      },
      ...(opts.transfer ? { transfer: opts.transfer } : {}),
      ...(opts.exportVerify ? { export: { verify: opts.exportVerify } } : {}),
      drives: opts.drives ?? { enabled: false },
    },
    "test",
  );
  const chunks: string[] = [];
  const logDestination = new Writable({
    write(c, _e, done) {
      chunks.push(String(c));
      done();
    },
  });
  const agent = await startAgent(config, {
    baseDir: dataDir,
    logDestination,
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.apiRoutes ? { apiRoutes: opts.apiRoutes } : {}),
    ...(opts.beforeExportReadBack ? { beforeExportReadBack: opts.beforeExportReadBack } : {}),
  });
  return { agent, logText: () => chunks.join("") };
}
