/**
 * The process-wide net: a rejection nobody handled is logged with its full context and the agent
 * carries on (every transfer promise has an owner; this catches what a future bug lets slip, it
 * is not how failures are handled). An uncaught exception leaves the process in an unknown state:
 * it is logged, what the agent started is killed, and the process exits 1 (systemd restarts it).
 */
import type { Logger } from "pino";

export function installProcessNet(
  proc: NodeJS.Process,
  log: Logger,
  forceStop: () => void,
  /** How the process ends (main.ts: by a signal when a hung drive read would hold the exit). */
  exit: (code: number) => void = (code) => proc.exit(code),
): void {
  proc.on("unhandledRejection", (reason, promise) => {
    log.error(
      {
        // The logger scrubs err (message, stack, cause, own fields): no raw `stack` field beside it.
        err: reason instanceof Error ? reason : new Error(String(reason)),
        promise: String(promise),
      },
      "unhandled promise rejection (a bug: the agent carries on, please report this log line)",
    );
  });
  proc.on("uncaughtException", (e, origin) => {
    log.fatal({ err: e, origin }, "uncaught exception: stopping what the agent started, exiting 1");
    try {
      forceStop();
    } finally {
      exit(1);
    }
  });
}
