/**
 * Retry and abort for storage requests. A retryable failure (no response, 408, 429, 5xx) is
 * retried with exponential backoff and jitter; when storage stays down through every attempt the
 * operation ends in `StorageOutage` (the drive pauses, nothing is marked failed). An abort (the
 * drive was pulled, the agent stops) is a cancellation, not an error: it is rethrown as the
 * signal's reason, never retried and never logged as a storage failure.
 */
import type { Logger } from "pino";
import { classify } from "../../storage/blob-access.js";

/** Storage stayed unreachable through every retry: the drive pauses, nothing is marked failed. */
export class StorageOutage extends Error {
  override name = "StorageOutage";
}

export interface RetryPolicy {
  attempts: number;
  baseMs: number;
  maxMs: number;
}

/** Runs `op` with retries; `what` names the operation in log lines and the outage message. */
export type Retrying = <T>(what: string, op: (signal: AbortSignal) => Promise<T>) => Promise<T>;

/** Throws the signal's reason when it is aborted. */
export function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason ?? new Error("aborted");
}

export const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
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

/**
 * Runs one SDK call with a short-lived child of the drive's signal. The SDK hangs listeners on the
 * signal it is given; on the drive's long-lived signal they (and the 4 MiB bodies they reach)
 * would live as long as the drive.
 */
export async function withChildSignal<T>(
  parent: AbortSignal,
  call: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const child = new AbortController();
  const onAbort = () => child.abort(parent.reason);
  if (parent.aborted) child.abort(parent.reason);
  else parent.addEventListener("abort", onAbort, { once: true });
  try {
    return await call(child.signal);
  } finally {
    parent.removeEventListener("abort", onAbort);
  }
}

/** The delay before attempt `attempt + 1`: exponential, capped, with jitter in [50 %, 100 %]. */
export function backoffMs(policy: RetryPolicy, attempt: number, random = Math.random): number {
  return Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1)) * (0.5 + random() / 2);
}

/** A retrying runner bound to one drive's signal, policy and logger. */
export function retrier(o: {
  signal: AbortSignal;
  policy: RetryPolicy;
  log: Logger;
  random?: () => number;
  /** Told of every retry (reason: HTTP status or "network"): the storage-retry metric. */
  onRetry?(reason: string): void;
}): Retrying {
  const { signal, policy, log } = o;
  return async (what, op) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await withChildSignal(signal, op);
      } catch (e) {
        if (signal.aborted) throw signal.reason ?? e;
        if (classify(e) !== "retryable") throw e;
        if (attempt >= policy.attempts)
          throw new StorageOutage(
            `Storage unreachable while ${what} after ${attempt} attempts: ${(e as Error).message}`,
          );
        const delay = backoffMs(policy, attempt, o.random);
        o.onRetry?.(String((e as { statusCode?: number }).statusCode ?? "network"));
        log.warn(
          { what, attempt, delayMs: Math.round(delay), status: (e as { statusCode?: number }).statusCode },
          "storage request failed; retrying",
        );
        await sleep(delay, signal);
      }
    }
  };
}
