#!/usr/bin/env node
/**
 * Entry point: `node dist/agent/main.js [--config FILE]`. Reads the config (default:
 * config/default.json next to the package), starts the agent, stops cleanly on SIGTERM/SIGINT,
 * tells systemd when it is ready (Type=notify) if NOTIFY_SOCKET is set.
 */
import { execFile } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isStationError } from "../src/errors.js";
import { startAgent } from "./agent.js";
import { parseAgentArgs } from "./args.js";
import { loadConfig } from "./config.js";

const EX_CONFIG = 78;
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

async function main(): Promise<void> {
  const parsed = parseAgentArgs(process.argv.slice(2), process.env, packageRoot);
  if (parsed.kind === "exit") {
    process.exitCode = parsed.code;
    return;
  }
  const file = parsed.args.configFile;
  const config = loadConfig(file);
  const agent = await startAgent(config, { baseDir: resolve(dirname(file), "..") });
  if (process.env.NOTIFY_SOCKET) execFile("systemd-notify", ["--ready"], () => undefined);
  process.stdout.write(
    `drive-station listening on ${agent.url}${agent.tokensFile ? ` (API tokens in ${agent.tokensFile})` : ""}\n`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    agent.log.info({ signal }, "stopping");
    void agent.stop().then(() => process.exit(0));
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((e: unknown) => {
  const message = isStationError(e) ? `${e.code}: ${e.message}` : String((e as Error)?.stack ?? e);
  process.stderr.write(`drive-station failed to start: ${message}\n`);
  process.exit(isStationError(e) && e.code === "ConfigInvalid" ? EX_CONFIG : 1);
});
