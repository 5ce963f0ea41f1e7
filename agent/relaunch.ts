/**
 * libuv's I/O thread count (UV_THREADPOOL_SIZE) is read once, when its pool first runs, and an ES
 * module entry point has run it before its first line (the loader reads the module files through
 * it). So when the environment does not carry the size the config and the cores ask for, the agent
 * starts itself again with it and stands in front of that child: signals are passed on, the
 * child's exit is the front's exit, and the child dies with the front even by kill -9 (an IPC
 * channel is its lifeline). However it is started, the agent runs with its own thread count.
 */
import { spawn } from "node:child_process";

const RELAUNCHED = "DRIVE_STATION_RELAUNCHED";
const FORWARDED = ["SIGTERM", "SIGINT", "SIGHUP"] as const;

/** True in the child a front process started: systemd knows the front's pid as the service's. */
export const relaunched = (env: NodeJS.ProcessEnv = process.env): boolean =>
  env[RELAUNCHED] === "1" && typeof process.send === "function";

/** The pid systemd and the operator know the agent by: the front's, when there is one. */
export const servicePid = (): number => (relaunched() ? process.ppid : process.pid);

/**
 * Returns "run" when this process has the I/O threads it wants (or was already relaunched: never
 * twice), else starts the child and returns "front": the caller then does nothing more.
 */
export function ensureIoThreads(io: number, warn: (message: string) => void): "run" | "front" {
  if (relaunched()) {
    // The front died (even by SIGKILL): this agent goes with it, as one process would.
    process.on("disconnect", () => process.kill(process.pid, "SIGKILL"));
    process.channel?.unref();
    if (process.env.UV_THREADPOOL_SIZE !== String(io))
      warn(`running with UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE} instead of ${io}`);
    return "run";
  }
  if (process.env.UV_THREADPOOL_SIZE === String(io)) return "run";
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ["inherit", "inherit", "inherit", "ipc"],
    env: { ...process.env, UV_THREADPOOL_SIZE: String(io), [RELAUNCHED]: "1" },
  });
  for (const signal of FORWARDED) process.on(signal, () => child.kill(signal));
  child.on("error", (e) => {
    process.stderr.write(`drive-station failed to start: ${e.message}\n`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => {
    if (signal) {
      // Die the way the child died (systemd tells a clean SIGTERM stop from a SIGKILL).
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
  return "front";
}
