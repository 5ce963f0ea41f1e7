/**
 * The real agent as a child process for the benchmarks: its config written from the bench's
 * options (storage endpoint, loop image directory, transfer keys such as `transfer.hashThreads`
 * when the bench is given them), its log lines timestamped by the bench's clock as they arrive.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { threadSizes } from "../agent/threads.js";

export const BENCH_ACCOUNT = "benchacct";
export const BENCH_KEY = Buffer.from("drive-station-benchmark-account-key-000000").toString("base64");
const BENCH_TOKEN = "bench-operator-token-0123456789";

export function freePort(): number {
  const out = execFileSync(
    process.execPath,
    [
      "-e",
      "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})",
    ],
    { encoding: "utf8" },
  );
  return Number(out.trim());
}

export interface BenchAgent {
  pid: number;
  api(method: string, path: string, body?: unknown): Promise<Response>;
  /** Everything the agent logged so far. */
  output(): string;
  /** Waits for the `count`-th log line containing `msg`, parsed. */
  logLine<T>(msg: string, count?: number): Promise<T>;
  /** Like logLine, with the bench's clock (process.hrtime, seconds) when the line arrived. */
  logLineAt<T>(msg: string, count?: number): Promise<{ line: T; at: number }>;
  stop(): Promise<void>;
}

/** Whether the built agent's config knows `transfer.hashThreads` (the hashing pool's size). */
export const agentKnowsHashThreads = (agentMain: string): boolean =>
  readFileSync(join(dirname(agentMain), "config.js"), "utf8").includes("hashThreads");

/** The bench's clock: seconds, monotonic. */
export const now = (): number => Number(process.hrtime.bigint()) / 1e9;

/**
 * The real agent as a child process against `azPort` (an Azurite or the bench's storage sink),
 * loop images taken from `<root>/plugged`. `BENCH_AGENT_NODE_ARGS` (e.g. "--cpu-prof
 * --cpu-prof-dir=/tmp/prof") adds node flags; `transfer` adds keys to the config's `transfer`
 * object and `export` sets its `export` object (an agent that does not know a key refuses to
 * start, naming it).
 */
export async function startBenchAgent(o: {
  agentMain: string;
  root: string;
  azPort: number;
  concurrency: number;
  /** Give the station the bench account's key (export reads with the station's own key). */
  withAccountKey?: boolean;
  transfer?: Record<string, unknown>;
  /** The config's `export` object (e.g. `{ verify: "written" }`); the agent's default when absent. */
  export?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
}): Promise<BenchAgent> {
  const apiPort = freePort();
  const config = join(o.root, "agent.json");
  mkdirSync(join(o.root, "plugged"), { recursive: true });
  writeFileSync(
    config,
    JSON.stringify({
      dataDir: join(o.root, "data"),
      log: { level: "info" },
      api: {
        host: "127.0.0.1",
        port: apiPort,
        tokens: [{ name: "op", token: BENCH_TOKEN, role: "operator" }],
      },
      station: {
        location: {
          id: "bench",
          name: "Bench",
          recipientName: "b",
          streetAddress1: "b",
          city: "b",
          postalCode: "1",
          countryOrRegion: "US",
          phone: "1",
          supportedCarriers: ["FedEx"],
        },
      },
      storage: {
        mode: "azure",
        endpointTemplate: `http://127.0.0.1:${o.azPort}/{account}`,
        ...(o.withAccountKey ? { accounts: [{ name: BENCH_ACCOUNT, key: BENCH_KEY }] } : {}),
      },
      drives: {
        physical: false,
        pollIntervalMs: 200,
        loopImageDirs: [join(o.root, "plugged")],
        mountRoot: join(o.root, "mnt"),
      },
      transfer: { concurrency: o.concurrency, blobConcurrency: 32, ...o.transfer },
      ...(o.export ? { export: o.export } : {}),
    }),
  );
  const nodeArgs = (process.env.BENCH_AGENT_NODE_ARGS ?? "").split(" ").filter(Boolean);
  let output = "";
  const lines: { text: string; at: number }[] = [];
  let partial = "";
  // The I/O thread count the agent wants, in its environment: it then runs as this one process
  // (it would otherwise relaunch itself, agent/relaunch.ts, and the pid measured here would be the
  // idle front process, not the agent).
  const io = threadSizes({
    ioThreads: o.transfer?.ioThreads as number | undefined,
    hashThreads: undefined,
  }).io;
  const agent: ChildProcess = spawn(process.execPath, [...nodeArgs, o.agentMain, "--config", config], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, UV_THREADPOOL_SIZE: String(io), ...o.env },
  });
  const take = (d: Buffer) => {
    const at = now();
    const text = d.toString();
    output += text;
    const parts = (partial + text).split("\n");
    partial = parts.pop()!;
    for (const p of parts) lines.push({ text: p, at });
  };
  agent.stdout!.on("data", take);
  agent.stderr!.on("data", take);
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`http://127.0.0.1:${apiPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${BENCH_TOKEN}`, "content-type": "application/json" },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  for (let i = 0; ; i++) {
    if ((await api("GET", "/station/v1/jobs").catch(() => undefined))?.ok) break;
    if (i > 300 || agent.exitCode !== null) {
      agent.kill("SIGKILL");
      throw new Error(`agent did not start:\n${output.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const logLineAt = async <T>(msg: string, count = 1): Promise<{ line: T; at: number }> => {
    for (;;) {
      const found = lines.filter((l) => l.text.includes(`"${msg}"`));
      if (found.length >= count)
        return { line: JSON.parse(found[count - 1]!.text) as T, at: found[count - 1]!.at };
      if (agent.exitCode !== null) throw new Error(`agent exited:\n${output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return {
    pid: agent.pid!,
    api,
    output: () => output,
    logLineAt,
    logLine: async <T>(msg: string, count = 1) => (await logLineAt<T>(msg, count)).line,
    async stop() {
      if (agent.exitCode !== null) return;
      agent.kill("SIGTERM");
      await new Promise((r) => agent.once("exit", r));
    },
  };
}

/** Creates an import job for `drives` and ships it (the agent then waits for the drives). */
export async function shipImportJob(
  agent: BenchAgent,
  name: string,
  drives: { driveId: string; manifestFile: string; manifestHash: string }[],
  extra: { logLevel?: "Error" | "Verbose" } = {},
): Promise<void> {
  await shipJob(agent, name, {
    jobType: "Import",
    driveList: drives.map(({ driveId, manifestFile, manifestHash }) => ({
      driveId,
      manifestFile,
      manifestHash,
    })),
    ...extra,
  });
}

/**
 * Creates an export job for every blob of `container`, ships it and checks in its empty drive
 * `driveId` (the agent then exports onto the drive once it is plugged).
 */
export async function shipExportJob(
  agent: BenchAgent,
  name: string,
  container: string,
  driveId: string,
): Promise<void> {
  await shipJob(agent, name, {
    jobType: "Export",
    export: { blobList: { blobPathPrefix: [`/${container}/`] } },
  });
  const checkIn = await agent.api(
    "POST",
    `/station/v1/subscriptions/bench/resourceGroups/rg/jobs/${name}/packages`,
    {
      trackingNumber: name,
      driveIds: [driveId],
    },
  );
  if (!checkIn.ok)
    throw new Error(`checking in drive ${driveId} of job ${name}: ${checkIn.status} ${await checkIn.text()}`);
}

async function shipJob(agent: BenchAgent, name: string, properties: Record<string, unknown>): Promise<void> {
  const path = `/subscriptions/bench/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/${name}?api-version=2021-01-01`;
  const put = await agent.api("PUT", path, {
    properties: {
      storageAccountId: `/subscriptions/bench/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${BENCH_ACCOUNT}`,
      returnAddress: {
        recipientName: "R",
        streetAddress1: "S",
        city: "C",
        postalCode: "1",
        countryOrRegion: "US",
        phone: "1",
        email: "a@b.c",
      },
      ...properties,
    },
  });
  if (!put.ok) throw new Error(`creating job ${name}: ${put.status} ${await put.text()}`);
  const patch = await agent.api("PATCH", path, {
    properties: { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: name } },
  });
  if (!patch.ok) throw new Error(`shipping job ${name}: ${patch.status} ${await patch.text()}`);
}
