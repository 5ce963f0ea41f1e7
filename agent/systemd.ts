/**
 * sd_notify for Type=notify units. Node has no unix datagram sockets, so each message goes out
 * through systemd's own `systemd-notify` (in the systemd package, so wherever a unit runs it),
 * with `--pid=` naming the agent: systemd then attributes the message to the main process even
 * when the short-lived helper has exited before it is read (the race NotifyAccess=all alone has).
 * Messages are sent one at a time in order, so STOPPING=1 never overtakes READY=1.
 */
import { execFile } from "node:child_process";

export type NotifyFields = Record<string, string>;

export interface Notifier {
  notify(fields: NotifyFields): Promise<void>;
}

export interface SystemdEnv {
  NOTIFY_SOCKET?: string | undefined;
  WATCHDOG_USEC?: string | undefined;
  WATCHDOG_PID?: string | undefined;
}

/** A notifier when the agent runs under a Type=notify unit (NOTIFY_SOCKET set), else undefined. */
export function systemdNotifier(
  env: SystemdEnv,
  pid: number,
  onError: (e: Error, fields: NotifyFields) => void,
  command = "systemd-notify",
): Notifier | undefined {
  if (!env.NOTIFY_SOCKET) return undefined;
  const socket = env.NOTIFY_SOCKET;
  let chain: Promise<void> = Promise.resolve();
  return {
    notify(fields) {
      const args = [
        `--pid=${pid}`,
        ...Object.entries(fields).map(([k, v]) => `${k}=${v.replace(/\n/g, " ")}`),
      ];
      chain = chain.then(
        () =>
          new Promise<void>((resolve) => {
            execFile(
              command,
              args,
              { env: { ...process.env, NOTIFY_SOCKET: socket }, timeout: 5000 },
              (e) => {
                if (e) onError(e, fields);
                resolve();
              },
            );
          }),
      );
      return chain;
    },
  };
}

/**
 * How often to send WATCHDOG=1: half of WatchdogSec (systemd passes it as WATCHDOG_USEC), or
 * undefined when no watchdog is asked for, or it is meant for another process (WATCHDOG_PID).
 */
export function watchdogIntervalMs(env: SystemdEnv, pid: number): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(100, Math.floor(usec / 1000 / 2));
}
