#!/usr/bin/env node
/**
 * Entry point: `node dist/agent/main.js [--config FILE]`. Reads the config (default:
 * config/default.json next to the package), sizes its I/O threads (relaunch.ts), starts the agent, and owns the process: signals,
 * the stop deadline, the unhandled-rejection net and systemd notification (Type=notify).
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isStationError } from "../src/errors.js";
import { scrubSecrets } from "../src/secrets.js";
import type { RunningAgent } from "./agent.js";
import { parseAgentArgs } from "./args.js";
import { loadConfig } from "./config.js";
import { installProcessNet } from "./process-net.js";
import { ensureIoThreads, servicePid } from "./relaunch.js";
import { type StopMeaning, StopSignals } from "./stop-signals.js";
import { systemdNotifier, watchdogIntervalMs } from "./systemd.js";
import { threadSizes } from "./threads.js";

const EX_CONFIG = 78;
/** Shorter than the unit's TimeoutStopSec (30 s), so systemd never has to SIGKILL a stopping agent. */
const STOP_DEADLINE_MS = 20_000;
/** How long a new agent waits for the one before it (a relaunched child outliving its killed front) to end. */
const INSTANCE_WAIT_MS = 15_000;
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Loaded with the agent, after the relaunch decision: the front process loads only this module's few imports. */
let hungReadsInKernel = (): number => 0;

/**
 * Ends the process. `process.exit` waits for every libuv I/O thread, and a read of a dying drive
 * can hold one in the kernel for good, so with such a read outstanding the process ends by a
 * signal instead: SIGTERM for a clean stop (systemd counts death by SIGTERM as a clean exit, like
 * 0), SIGKILL otherwise. The kernel ends the stuck thread with the process.
 */

function exitProcess(code: number, log?: RunningAgent["log"]): void {
  const hung = hungReadsInKernel();
  if (hung === 0) process.exit(code);
  const signal = code === 0 ? "SIGTERM" : "SIGKILL";
  log?.warn(
    { hungReads: hung, exitCode: code, signal },
    `${hung} drive read${hung === 1 ? " is" : "s are"} still hung in the kernel and would hold the exit: ending the process by ${signal} instead of exit code ${code}`,
  );
  process.removeAllListeners("SIGTERM");
  process.removeAllListeners("SIGINT");
  // Log lines are written asynchronously, and a signal runs no exit hook: let them out first.
  log?.flush();
  setTimeout(() => process.kill(process.pid, signal), 200);
}

async function main(): Promise<void> {
  const parsed = parseAgentArgs(process.argv.slice(2), process.env, packageRoot);
  if (parsed.kind === "exit") {
    process.exitCode = parsed.code;
    return;
  }
  const file = parsed.args.configFile;
  const config = loadConfig(file);
  // The agent sizes its own I/O threads, however it was started (relaunch.ts).
  const threads = threadSizes(config.transfer);
  if (ensureIoThreads(threads.io, (m) => process.stderr.write(`drive-station: ${m}\n`)) === "front") return;
  ({ hungReadsInKernel } = await import("../src/transfer/core/drive-reads.js"));
  const { startAgent } = await import("./agent.js");
  const baseDir = resolve(dirname(file), "..");
  // Before anything touches drives, storage or the database: one agent per data directory.
  const { holdInstanceLock } = await import("./instance-lock.js");
  await holdInstanceLock(resolve(baseDir, config.dataDir), {
    waitMs: INSTANCE_WAIT_MS,
    onWait: (f) =>
      process.stderr.write(
        `drive-station: waiting for the agent that holds ${f} to end (at most ${INSTANCE_WAIT_MS / 1000} s)\n`,
      ),
  });
  // Signals that arrive during the start still stop the agent once it is up.
  const signals = new StopSignals();
  const early = (signal: string) => {
    if (signals.see(signal) === "force") process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.on("SIGTERM", early);
  process.on("SIGINT", early);
  const a: RunningAgent = await startAgent(config, { baseDir });
  installProcessNet(
    process,
    a.log,
    () => a.forceStop(),
    (code) => exitProcess(code, a.log),
  );
  process.off("SIGTERM", early);
  process.off("SIGINT", early);

  const notifier = systemdNotifier(process.env, servicePid(), (e, fields) =>
    a.log.warn({ err: e, fields: Object.keys(fields) }, "systemd notification not sent"),
  );
  let lastStatus = "";
  const status = () => {
    const s = a.status();
    return `${s.attached} drive${s.attached === 1 ? "" : "s"} attached, ${s.transferring} transferring`;
  };
  // READY=1 only now: the API listens and drive detection has run its first scan.
  lastStatus = status();
  void notifier?.notify({ READY: "1", STATUS: lastStatus });
  const watchdogMs = watchdogIntervalMs(process.env, servicePid());
  const beat = setInterval(
    () => {
      const fields: Record<string, string> = {};
      if (watchdogMs) fields.WATCHDOG = "1"; // from the event loop: a wedged loop stops the beat
      const now = status();
      if (now !== lastStatus) {
        fields.STATUS = now;
        lastStatus = now;
      }
      if (Object.keys(fields).length) void notifier?.notify(fields);
    },
    Math.min(watchdogMs ?? 5000, 5000),
  );
  if (!notifier) clearInterval(beat);
  beat.unref();
  process.stdout.write(
    `drive-station listening on ${a.url}${a.tokensFile ? ` (API tokens in ${a.tokensFile})` : ""}\n`,
  );

  let stopping = false;
  const stop = (signal: string, meaning: StopMeaning) => {
    if (meaning === "again") {
      a.log.info(
        { signal },
        "the same signal again at once (sent to this process and its front together): still stopping gracefully; send it again to force the exit",
      );
      return;
    }
    if (meaning === "force") {
      // A second request: do not wait for the graceful stop.
      a.log.warn({ signal }, "second signal: forcing the exit");
      a.forceStop();
      exitProcess(signal === "SIGINT" ? 130 : 143, a.log);
    }
    if (stopping) return;
    stopping = true;
    clearInterval(beat);
    a.log.info({ signal, deadlineMs: STOP_DEADLINE_MS }, "stopping");
    const deadline = setTimeout(() => {
      a.log.error(
        { deadlineMs: STOP_DEADLINE_MS },
        "graceful stop did not finish in time: forcing the exit; checkpoints written so far are kept",
      );
      a.forceStop();
      exitProcess(1, a.log);
    }, STOP_DEADLINE_MS);
    void (notifier?.notify({ STOPPING: "1", STATUS: "stopping" }) ?? Promise.resolve())
      .then(() => a.stop())
      .then(
        () => {
          clearTimeout(deadline);
          exitProcess(0, a.log);
        },
        (e: unknown) => {
          a.log.error({ err: e }, "graceful stop failed");
          a.forceStop();
          exitProcess(1, a.log);
        },
      );
  };
  process.on("SIGTERM", () => stop("SIGTERM", signals.see("SIGTERM")));
  process.on("SIGINT", () => stop("SIGINT", signals.see("SIGINT")));
  if (signals.requested) stop(signals.requested, "stop");
}

main().catch((e: unknown) => {
  const message = isStationError(e) ? `${e.code}: ${e.message}` : String((e as Error)?.stack ?? e);
  process.stderr.write(`drive-station failed to start: ${scrubSecrets(message)}\n`);
  process.exit(isStationError(e) && e.code === "ConfigInvalid" ? EX_CONFIG : 1);
});
