/**
 * The embedded blob store: Azurite (the official emulator) with its data in the agent's data
 * directory. Used when no real storage account is configured, and by the tests.
 *
 * It runs as a child process, not in the agent's event loop: Azurite hashes and writes every
 * block it receives, and on a two-core station sharing one loop with the agent's reads and MD5s
 * would cost the import its throughput. The child cannot outlive the agent or be mistaken:
 * - it is forked with an IPC channel and leaves (gracefully, flushing its database) when the
 *   channel closes, which the kernel does when the agent dies, even by SIGKILL; it also watches
 *   its parent pid;
 * - it has its own process group, killed whole on every exit path of the agent;
 * - a start refuses when something else holds the port, naming the port and the process (an
 *   orphan of an earlier agent on the same data directory is stopped, loudly, not reused);
 * - it is ready only when an authenticated request with the configured account gets an answer
 *   whose Server header says Azurite, from a socket the child itself holds.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { StationError } from "../errors.js";
import { describeHolders, type PortHolder, portHolders } from "./port-holder.js";

/** Azurite's documented well-known development account (public, not a secret). */
export const DEV_ACCOUNT = "devstoreaccount1";
export const DEV_ACCOUNT_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/** First argument of every embedded Azurite: how an orphan of ours is told from a stranger. */
export const AZURITE_MARKER = "drive-station-embedded-azurite";

export interface AzuriteOptions {
  location: string;
  host: string;
  port: number;
  /** Extra accounts as `name:base64key` pairs; Azurite then serves these instead of the dev account. */
  accounts?: { name: string; key: string }[];
  inMemory?: boolean;
  readyTimeoutMs?: number;
  /** Told when an orphan of an earlier agent on the same data directory is stopped. */
  onOrphan?(holder: PortHolder): void;
}

export interface RunningAzurite {
  endpointFor(account: string): string;
  /** Graceful: the child flushes its database and exits; its process group is killed after 10 s. */
  stop(): Promise<void>;
  /** Synchronous last resort (exit handlers): SIGKILL to the child's process group. */
  kill(): void;
  readonly process: ChildProcess;
}

function azuriteBlobMain(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("azurite/package.json")), "dist", "src", "blob", "main.js");
}

/**
 * Runs inside the child (node -e): leaves when the agent goes, then hands over to Azurite's main.
 * Leaving is Azurite's own SIGTERM shutdown (closes the server and its database); our no-op
 * SIGTERM listener keeps a second signal from killing it half-way.
 */
const CHILD_SOURCE = `
const [, , main, ...rest] = process.argv;
const parent = process.ppid;
let leaving = false;
const leave = () => {
  if (leaving) return;
  leaving = true;
  setTimeout(() => process.exit(0), 10000).unref();
  process.kill(process.pid, "SIGTERM");
};
process.on("SIGTERM", () => undefined);
process.on("disconnect", leave);
setInterval(() => { if (process.ppid !== parent) leave(); }, 500).unref();
process.argv = [process.argv[0], main, ...rest];
require(main);
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** Refuses a taken port, naming who holds it; stops an orphan of ours (same data directory). */
async function claimPort(opts: AzuriteOptions): Promise<void> {
  for (let waited = 0; ; waited += 200) {
    const held = portHolders(opts.port);
    if (!held.listening) return;
    const orphans = held.holders.filter(
      (h) =>
        h.command.includes(AZURITE_MARKER) && h.command.includes(opts.location) && h.ppid !== process.pid,
    );
    if (!orphans.length || orphans.length !== held.holders.length)
      throw new StationError(
        "StoragePortTaken",
        `The embedded storage port ${opts.host}:${opts.port} is already held by ${describeHolders(held)}. ` +
          "Stop that process, or set storage.port in the agent config to a free port.",
      );
    // Ours, left by an agent that died before its orphan noticed: it leaves by itself within a
    // second; past that it is stopped, and the start says so.
    if (waited === 2000)
      for (const o of orphans) {
        opts.onOrphan?.(o);
        process.kill(o.pid, "SIGTERM");
      }
    if (waited === 12_000) for (const o of orphans) process.kill(-o.pid, "SIGKILL");
    if (waited > 15_000)
      throw new StationError(
        "StoragePortTaken",
        `An orphaned embedded Azurite (${describeHolders(held)}) still holds ${opts.host}:${opts.port}.`,
      );
    await sleep(200);
  }
}

/** Ready = an authenticated answer from Azurite, for our account, on a socket our child holds. */
async function waitUntilReady(
  opts: AzuriteOptions,
  child: ChildProcess,
  stderr: () => string,
): Promise<void> {
  const account = opts.accounts?.[0] ?? { name: DEV_ACCOUNT, key: DEV_ACCOUNT_KEY };
  const client = new BlobServiceClient(
    `http://${opts.host}:${opts.port}/${account.name}`,
    new StorageSharedKeyCredential(account.name, account.key),
    { retryOptions: { maxTries: 1 } },
  );
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  let last = "no answer yet";
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new StationError(
        "StorageUnavailable",
        `Embedded Azurite exited (${child.exitCode ?? child.signalCode}) before it served ${opts.host}:${opts.port}.${stderr() ? ` It said: ${stderr()}` : ""}`,
      );
    try {
      const props = await client.getProperties({ abortSignal: AbortSignal.timeout(2000) });
      const server = props._response.headers.get("server") ?? "";
      const held = portHolders(opts.port);
      const ours = held.holders.some((h) => h.pid === child.pid);
      if (server.startsWith("Azurite") && ours) return;
      last = ours
        ? `the answer came from "${server}", not Azurite`
        : `the port is held by ${describeHolders(held)}, not by the Azurite this agent started (pid ${child.pid})`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline)
      throw new StationError(
        "StorageUnavailable",
        `Embedded Azurite did not become ready on ${opts.host}:${opts.port} within ${opts.readyTimeoutMs ?? 30_000} ms: ${last}.`,
      );
    await sleep(100);
  }
}

export async function startAzurite(opts: AzuriteOptions): Promise<RunningAzurite> {
  mkdirSync(opts.location, { recursive: true });
  await claimPort(opts);
  const args = [
    "-e",
    CHILD_SOURCE,
    AZURITE_MARKER,
    azuriteBlobMain(),
    "--blobHost",
    opts.host,
    "--blobPort",
    String(opts.port),
    "--location",
    opts.location,
    "--silent",
    "--skipApiVersionCheck",
    "--disableTelemetry",
    "--loose",
  ];
  if (opts.inMemory) args.push("--inMemoryPersistence");
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (opts.accounts?.length) env.AZURITE_ACCOUNTS = opts.accounts.map((a) => `${a.name}:${a.key}`).join(";");
  // detached: its own session and process group, so the group can be killed whole.
  const child = spawn(process.execPath, args, {
    env,
    detached: true,
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  child.on("error", () => undefined); // a failed spawn shows as an exit in waitUntilReady
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    await waitUntilReady(opts, child, () => stderr.trim());
  } catch (e) {
    killGroup(child, "SIGKILL");
    throw e;
  }
  // The IPC channel is a lifeline, not a reason to keep the agent's event loop alive.
  child.unref();
  (child.channel as { unref?: () => void } | undefined)?.unref?.();
  (child.stderr as { unref?: () => void } | null)?.unref?.();
  return {
    process: child,
    endpointFor: (account) => `http://${opts.host}:${opts.port}/${account}`,
    kill: () => killGroup(child, "SIGKILL"),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.disconnect();
      else killGroup(child, "SIGTERM");
      const timer = setTimeout(() => killGroup(child, "SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
      killGroup(child, "SIGKILL"); // anything the child left in its group
    },
  };
}
