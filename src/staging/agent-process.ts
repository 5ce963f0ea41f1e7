/**
 * The agent as its own process, for the staged crash/service suites and the soak script: spawn
 * `dist/agent/main.js --config FILE`, wait for its API, keep its log, signal or kill -9 it and wait
 * for the exit with a deadline, start it again on the same data dir, and clean up the mounts and
 * loop devices it (or its killed predecessors) left. Needs root for the cleanup (umount, losetup).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { detach } from "./images.js";

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The compiled agent entry point; from a source checkout (vitest) it builds (npm run build) once if missing. */
export function agentEntry(): string {
  const root = basename(packageRoot) === "dist" ? resolve(packageRoot, "..") : packageRoot;
  const file = join(root, "dist", "agent", "main.js");
  if (!existsSync(file)) execFileSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
  return file;
}

/** The station's address in the staged configs (the tests' `stationLocation`). */
export const stationLocation = {
  id: "westus",
  name: "West US",
  recipientName: "Station dock",
  streetAddress1: "1 Dock Road",
  city: "Quincy",
  stateOrProvince: "WA",
  postalCode: "98848",
  countryOrRegion: "USA",
  phone: "5555550100",
  supportedCarriers: ["FedEx", "DHL"],
};

/** A staged agent config: loop images watched in `plugged`, mounts under `root/mnt`, quick retries. */
export function writeAgentConfig(o: {
  root: string;
  apiPort: number;
  tokens: unknown[];
  station: Record<string, unknown>;
  storage: Record<string, unknown>;
  transfer?: Record<string, unknown>;
}): string {
  const file = join(o.root, "config", "agent.json");
  mkdirSync(dirname(file), { recursive: true });
  mkdirSync(join(o.root, "plugged"), { recursive: true });
  writeFileSync(
    file,
    JSON.stringify({
      dataDir: join(o.root, "data"),
      api: { host: "127.0.0.1", port: o.apiPort, tokens: o.tokens },
      station: o.station,
      storage: o.storage,
      drives: {
        physical: false,
        pollIntervalMs: 200,
        loopImageDirs: [join(o.root, "plugged")],
        mountRoot: join(o.root, "mnt"),
      },
      transfer: o.transfer ?? {
        concurrency: 2,
        blobConcurrency: 1,
        retry: { attempts: 6, baseMs: 200, maxMs: 1000 },
      },
    }),
  );
  return file;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
}

export interface AgentProcessOptions {
  config: string;
  /** The agent's API base URL, e.g. http://127.0.0.1:PORT. */
  url: string;
  /** The token the ready check and `api` default to. */
  operatorToken: string;
  /** Where the agent mounts drives: cleanup unmounts what is left under it. */
  mountRoot: string;
  /** Strings that never reach an error message built from the log (keys, tokens). */
  secrets?: string[];
  /** Added to the agent's environment (e.g. the unit's UV_THREADPOOL_SIZE). */
  env?: Record<string, string>;
  /** Node flags before the entry point (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
  nodeArgs?: string[];
  /** The agent's main.js; default this checkout's dist/agent/main.js (an install's, for the install test). */
  entry?: string;
  /** The agent's working directory (the unit's WorkingDirectory); default the caller's. */
  cwd?: string;
}

export class AgentProcess {
  private child: ChildProcess | undefined;
  private out = "";
  /** Every run's exit, in order. */
  readonly exits: Exit[] = [];
  /** Loop devices to detach on cleanup (the caller's plugs). */
  readonly devices: string[] = [];

  constructor(readonly o: AgentProcessOptions) {}

  /** Starts a run on the same data dir; the log starts afresh. */
  start(): void {
    if (this.running) throw new Error(`the agent is already running (pid ${this.child?.pid})`);
    this.out = "";
    const child = spawn(
      process.execPath,
      [...(this.o.nodeArgs ?? []), this.o.entry ?? agentEntry(), "--config", this.o.config],
      {
        stdio: ["ignore", "pipe", "pipe"],
        ...(this.o.cwd ? { cwd: this.o.cwd } : {}),
        env: { ...process.env, ...this.o.env },
      },
    );
    const keep = (d: Buffer) => {
      this.out += d.toString();
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    this.child = child;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number {
    if (!this.child?.pid) throw new Error("the agent is not running");
    return this.child.pid;
  }

  /** This run's raw log (stdout + stderr), for assertions; may hold whatever the agent logged. */
  get output(): string {
    return this.out;
  }

  /** This run's JSON log lines. */
  lines(): Record<string, unknown>[] {
    const parsed: Record<string, unknown>[] = [];
    for (const l of this.out.split("\n"))
      if (l.startsWith("{"))
        try {
          parsed.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          // a line cut by a kill
        }
    return parsed;
  }

  /** The first log line of this run whose msg is `msg`. */
  line<T = Record<string, unknown>>(msg: string): T | undefined {
    return this.lines().find((l) => l.msg === msg) as T | undefined;
  }

  /** The end of this run's log, without API request lines and with every secret redacted. */
  tail(chars = 6000): string {
    let text = this.out
      .split("\n")
      .filter((l) => !l.includes('"api request"'))
      .join("\n");
    for (const s of this.o.secrets ?? []) if (s) text = text.split(s).join("[redacted]");
    return text.slice(-chars);
  }

  async api(method: string, path: string, token = this.o.operatorToken, body?: unknown) {
    const res = await fetch(`${this.o.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  }

  /** Polls `fn` until it returns something other than undefined; on timeout the error carries the log's tail. */
  async waitFor<T>(
    what: string,
    fn: () => Promise<T | undefined>,
    timeoutMs = 120_000,
    everyMs = 50,
  ): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await fn().catch(() => undefined);
      if (v !== undefined) return v;
      if (Date.now() > end)
        throw new Error(`timed out waiting for ${what}\n--- agent output ---\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  /** Waits until the API answers an operator request. */
  ready(timeoutMs = 60_000): Promise<true> {
    return this.waitFor(
      "the agent API",
      async () => ((await this.api("GET", "/station/v1/jobs")).status === 200 ? true : undefined),
      timeoutMs,
    );
  }

  /** Waits for this run to log `msg` and returns that line. */
  logged<T = Record<string, unknown>>(msg: string, timeoutMs = 180_000): Promise<T> {
    return this.waitFor(`the log line "${msg}"`, async () => this.line<T>(msg), timeoutMs, 100);
  }

  /** Sends `signal` and waits for the exit; throws (after a kill -9) if it is not gone within `deadlineMs`. */
  async signal(signal: NodeJS.Signals, deadlineMs = 30_000): Promise<Exit> {
    const p = this.child;
    if (!p || !this.running) throw new Error("the agent is not running");
    const t0 = Date.now();
    const exited = new Promise<Exit>((r) =>
      p.once("exit", (code, sig) => r({ code, signal: sig, ms: Date.now() - t0 })),
    );
    // After a kill -9 of a relaunch front, its agent dies by itself a moment later (agent/relaunch.ts);
    // kill it now and wait, as systemd's KillMode=mixed does, so no cleanup races its mounts.
    const relaunched = signal === "SIGKILL" && p.pid ? relaunchedAgentsOf(p.pid) : [];
    p.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((r) => {
      timer = setTimeout(() => r(undefined), deadlineMs);
    });
    const exit = await Promise.race([exited, late]);
    clearTimeout(timer);
    if (!exit) {
      p.kill("SIGKILL");
      await exited;
      throw new Error(
        `the agent did not exit within ${deadlineMs} ms of ${signal} (killed)\n--- agent output ---\n${this.tail()}`,
      );
    }
    await killAndReap(relaunched);
    this.exits.push(exit);
    return exit;
  }

  /** kill -9 and wait for the exit. */
  kill(): Promise<Exit> {
    return this.signal("SIGKILL", 10_000);
  }

  /** Starts the next run on the same data dir and waits for its API. */
  async restart(timeoutMs = 60_000): Promise<void> {
    if (this.running) await this.kill();
    this.start();
    await this.ready(timeoutMs);
  }

  /** The mounts left under the agent's mount root. */
  mounts(): string[] {
    return readFileSync("/proc/mounts", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[1] ?? "")
      .filter((m) => m.startsWith(this.o.mountRoot));
  }

  /** Always safe to call: kills a running agent, unmounts what is left, detaches the plugs. */
  async cleanup(): Promise<void> {
    if (this.running) await this.kill().catch(() => undefined);
    for (const m of this.mounts().reverse()) {
      try {
        execFileSync("umount", ["-l", m], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
    for (const d of this.devices) detach(d);
  }
}

/** The agent a relaunch front started: its child carrying DRIVE_STATION_RELAUNCHED=1. */
function relaunchedAgentsOf(front: number): number[] {
  return childrenOf(front).filter((c) => {
    try {
      return readFileSync(`/proc/${c}/environ`, "latin1").split("\0").includes("DRIVE_STATION_RELAUNCHED=1");
    } catch {
      return false;
    }
  });
}

/** Gone, or a zombie (its files and mounts already let go). */
function ended(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/** SIGKILLs `pids` and waits (at most 10 s: a read hung in the kernel may hold one) until they ended. */
async function killAndReap(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  const until = Date.now() + 10_000;
  while (pids.some((pid) => !ended(pid)) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
}

/** Child processes of `pid` (by /proc/PID/stat's parent field). */
export function childrenOf(pid: number): number[] {
  const kids: number[] = [];
  for (const p of readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) kids.push(p);
    } catch {
      // the process left meanwhile
    }
  }
  return kids;
}

/** The ARM path of a job (api-version included). */
export const jobPath = (sub: string, name: string, rg = "rg") =>
  `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.ImportExport/jobs/${name}?api-version=2021-01-01`;

/**
 * Creates a job as the customer (PUT) and marks it Shipping (PATCH), as a customer would before
 * the drive reaches the dock. Returns both answers for the caller to check.
 */
export async function shipJob(
  agent: AgentProcess,
  o: {
    customerToken: string;
    sub: string;
    name: string;
    account: string;
    properties: Record<string, unknown>;
    trackingNumber?: string;
  },
) {
  const path = jobPath(o.sub, o.name);
  const put = await agent.api("PUT", path, o.customerToken, {
    location: "West US",
    properties: {
      storageAccountId: `/subscriptions/${o.sub}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${o.account}`,
      ...o.properties,
    },
  });
  const patch = await agent.api("PATCH", path, o.customerToken, {
    properties: {
      state: "Shipping",
      deliveryPackage: { carrierName: "FedEx", trackingNumber: o.trackingNumber ?? `T-${o.name}` },
    },
  });
  return { put, patch };
}
