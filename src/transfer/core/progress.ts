/**
 * The one progress meter of a drive transfer. The engine adds bytes as they land (verified); the
 * meter computes speed (over windows of at least a second) and ETA on the injected clock and
 * publishes snapshots to its subscribers, each at its own cadence: the manager's drive view a few
 * times a second, the persisted progress every couple of seconds. Nothing else throttles.
 */
import type { Clock } from "../../jobs/service.js";

export interface ProgressSnapshot {
  bytesSucceeded: number;
  bytesTotal: number;
  bytesPerSecond: number;
  etaSeconds?: number;
}

interface Subscriber {
  everyMs: number;
  last: number;
  fn: (s: ProgressSnapshot) => void;
}

const SPEED_WINDOW_MS = 1000;

export class ProgressMeter {
  private succeeded = 0;
  private total = 0;
  private rate = 0;
  private sample: { t: number; bytes: number } | undefined;
  private readonly subscribers: Subscriber[] = [];

  constructor(private readonly clock: Clock) {}

  /** Calls `fn` with a snapshot at most every `everyMs` (and on every `publish()`). */
  subscribe(everyMs: number, fn: (s: ProgressSnapshot) => void): void {
    this.subscribers.push({ everyMs, last: Number.NEGATIVE_INFINITY, fn });
  }

  /** The drive's size and what earlier runs already landed (a resume). Publishes. */
  start(bytesTotal: number, bytesSucceeded: number): void {
    this.total = bytesTotal;
    this.succeeded = bytesSucceeded;
    this.sample = { t: this.now(), bytes: bytesSucceeded };
    this.publish();
  }

  /** `bytes` more landed verified. Publishes to the subscribers that are due. */
  add(bytes: number): void {
    this.succeeded += bytes;
    this.notify(false);
  }

  /** Publishes to every subscriber now (the end of a run, a pause). */
  publish(): void {
    this.notify(true);
  }

  get bytesSucceeded(): number {
    return this.succeeded;
  }

  get bytesTotal(): number {
    return this.total;
  }

  snapshot(): ProgressSnapshot {
    const s: ProgressSnapshot = {
      bytesSucceeded: this.succeeded,
      bytesTotal: this.total,
      bytesPerSecond: Math.max(0, Math.round(this.rate)),
    };
    if (this.rate > 0) s.etaSeconds = Math.round(Math.max(0, this.total - this.succeeded) / this.rate);
    return s;
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  private notify(all: boolean): void {
    const now = this.now();
    const due = this.subscribers.filter((s) => all || now - s.last >= s.everyMs);
    if (!due.length) return;
    if (this.sample && now - this.sample.t >= SPEED_WINDOW_MS) {
      this.rate = ((this.succeeded - this.sample.bytes) * 1000) / (now - this.sample.t);
      this.sample = { t: now, bytes: this.succeeded };
    }
    const snap = this.snapshot();
    for (const s of due) {
      s.last = now;
      s.fn(snap);
    }
  }
}
