/**
 * Retries for export requests: retryable storage failures (no response, 408, 429, 5xx) back off
 * exponentially with jitter; after the last attempt the drive pauses (StorageOutage) instead of
 * failing. Every call gets a short-lived child of the drive's abort signal (the SDK leaves
 * listeners on the signal it is given).
 */
import { setMaxListeners } from "node:events";
import type { Logger } from "pino";
import { classify } from "../../storage/blob-access.js";

export class StorageOutage extends Error {
  override name = "StorageOutage";
}

export interface RetryPolicy {
  attempts: number;
  baseMs: number;
  maxMs: number;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });

export type Retrying = <T>(what: string, op: (signal: AbortSignal) => Promise<T>) => Promise<T>;

export function retrier(signal: AbortSignal, policy: RetryPolicy, log: Logger): Retrying {
  setMaxListeners(0, signal); // one listener per request in flight, removed when it settles
  return async (what, op) => {
    for (let attempt = 1; ; attempt++) {
      const child = new AbortController();
      const onAbort = () => child.abort(signal.reason);
      if (signal.aborted) child.abort(signal.reason);
      else signal.addEventListener("abort", onAbort, { once: true });
      try {
        return await op(child.signal);
      } catch (e) {
        if (signal.aborted) throw signal.reason ?? e;
        if (classify(e) !== "retryable") throw e;
        if (attempt >= policy.attempts)
          throw new StorageOutage(
            `Storage unreachable while ${what} after ${attempt} attempts: ${(e as Error).message}`,
          );
        const delay = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
        log.warn({ what, attempt, delayMs: Math.round(delay) }, "storage request failed; retrying");
        await sleep(delay, signal);
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    }
  };
}
