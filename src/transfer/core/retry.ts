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
 * One 'abort' listener on a drive's long-lived signal, fanned out to short-lived children: one per
 * SDK call or backoff sleep. The SDK hangs listeners on the signal it is given; on the drive's
 * signal they (and the 4 MiB bodies they reach) would live as long as the drive, and a listener per
 * request in flight on the drive's signal passes Node's limit of 10 on any busy import
 * (MaxListenersExceededWarning).
 */
export class SignalFanout {
  private readonly children = new Set<AbortController>();

  constructor(readonly parent: AbortSignal) {
    if (!parent.aborted)
      parent.addEventListener(
        "abort",
        () => {
          for (const c of this.children) c.abort(parent.reason);
          this.children.clear();
        },
        { once: true },
      );
  }

  /** Runs `call` with a child signal, aborted with the parent's reason; forgotten when it settles. */
  async run<T>(call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const child = new AbortController();
    if (this.parent.aborted) child.abort(this.parent.reason);
    else this.children.add(child);
    try {
      return await call(child.signal);
    } finally {
      this.children.delete(child);
    }
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
  const fanout = new SignalFanout(signal);
  return async (what, op) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fanout.run(op);
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
        await fanout.run((s) => sleep(delay, s));
      }
    }
  };
}
