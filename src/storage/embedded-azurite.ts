/**
 * The embedded blob store: Azurite (the official emulator) as a child process with its data in
 * the agent's data directory. Used when no real storage account is configured, and by the tests.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { connect } from "node:net";
import { dirname, join } from "node:path";
import { StationError } from "../errors.js";

/** Azurite's documented well-known development account (public, not a secret). */
export const DEV_ACCOUNT = "devstoreaccount1";
export const DEV_ACCOUNT_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface AzuriteOptions {
  location: string;
  host: string;
  port: number;
  /** Extra accounts as `name:base64key` pairs; Azurite then serves these instead of the dev account. */
  accounts?: { name: string; key: string }[];
  inMemory?: boolean;
}

export interface RunningAzurite {
  endpointFor(account: string): string;
  stop(): Promise<void>;
  readonly process: ChildProcess;
}

function azuriteBlobBin(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("azurite/package.json")), "dist", "src", "blob", "main.js");
}

function waitForPort(host: string, port: number, deadlineMs: number, child: ChildProcess): Promise<void> {
  const until = Date.now() + deadlineMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) {
        reject(
          new StationError(
            "StorageUnavailable",
            `Embedded Azurite exited with code ${child.exitCode} before listening on ${host}:${port}. Is the port in use?`,
          ),
        );
        return;
      }
      const sock = connect({ host, port }, () => {
        sock.end();
        resolve();
      });
      sock.on("error", () => {
        sock.destroy();
        if (Date.now() > until) {
          reject(
            new StationError(
              "StorageUnavailable",
              `Embedded Azurite did not listen on ${host}:${port} within ${deadlineMs} ms.`,
            ),
          );
        } else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

export async function startAzurite(opts: AzuriteOptions): Promise<RunningAzurite> {
  mkdirSync(opts.location, { recursive: true });
  const args = [
    azuriteBlobBin(),
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
  const child = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  try {
    await waitForPort(opts.host, opts.port, 30_000, child);
  } catch (e) {
    child.kill("SIGKILL");
    throw new StationError(
      "StorageUnavailable",
      `${(e as Error).message}${stderr ? ` Azurite said: ${stderr.trim()}` : ""}`,
      { cause: e },
    );
  }
  return {
    process: child,
    endpointFor: (account) => `http://${opts.host}:${opts.port}/${account}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 5000).unref();
      }),
  };
}
