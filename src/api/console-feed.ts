/**
 * The console's push feed. Four streams, each sent only when it changed: `drives` (the dock,
 * with live progress and each drive's throughput samples; diffed every tick, so at most
 * 1000/tickMs updates a second), `station` (the station's throughput: its drives' samples summed), `jobs` and
 * `notices` (re-read from the store when a write signals a change, and every `refreshMs` for
 * writes the signal cannot see, such as another station on a shared store).
 */
import type { DockedDrive } from "../drives/door.js";
import type { Job, Notice } from "../lifecycle/model.js";
import { stationThroughput } from "../transfer/core/throughput.js";
import { consoleDrive, consoleJobs, consoleNotice, stateCounts } from "./console-view.js";

export interface FeedSources {
  drives(): readonly DockedDrive[];
  jobs(): Promise<Job[]>;
  notices(limit: number): Promise<(Notice & { id: number })[]>;
}

export type FeedEvent = { type: "drives" | "station" | "jobs" | "notices"; data: unknown };
type Listener = (event: FeedEvent) => void;

export interface FeedOptions {
  tickMs?: number;
  refreshMs?: number;
  noticeLimit?: number;
  onError?(e: unknown): void;
}

export class ConsoleFeed {
  private readonly listeners = new Set<Listener>();
  private readonly last: Record<FeedEvent["type"], string> = {
    drives: "",
    station: "",
    jobs: "",
    notices: "",
  };
  private readonly timer: NodeJS.Timeout;
  private dirty = true;
  private loading: Promise<void> | undefined;
  private loadedAt = 0;
  private counts: ReturnType<typeof stateCounts> = { jobs: {}, drives: {} };

  constructor(
    private readonly sources: FeedSources,
    private readonly opts: FeedOptions = {},
  ) {
    this.timer = setInterval(() => void this.tick(), opts.tickMs ?? 250);
    this.timer.unref();
  }

  /** A job or notice was written: re-read them on the next tick. */
  changed(): void {
    this.dirty = true;
  }

  /** Jobs and drives by state, from the last read (for the metrics; no store read per scrape). */
  stateCounts(): ReturnType<typeof stateCounts> {
    return this.counts;
  }

  /** Sends the current view at once, then every change. Returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    let cancelled = false;
    // The listener joins only after its first full view, so nothing reaches it out of order;
    // whatever changed meanwhile is in that view (it is read from the latest state).
    void this.ensureLoaded().then(() => {
      if (cancelled) return;
      for (const type of ["jobs", "notices"] as const)
        if (this.last[type]) listener({ type, data: JSON.parse(this.last[type]) });
      listener({ type: "drives", data: this.drivesView() });
      listener({ type: "station", data: this.stationView() });
      this.listeners.add(listener);
    });
    return () => {
      cancelled = true;
      this.listeners.delete(listener);
    };
  }

  stop(): void {
    clearInterval(this.timer);
    this.listeners.clear();
  }

  private drivesView() {
    return this.sources.drives().map(consoleDrive);
  }

  private stationView() {
    return { throughput: stationThroughput(this.sources.drives().map((d) => d.throughput)) ?? null };
  }

  private ensureLoaded(): Promise<void> {
    if (this.last.jobs && !this.dirty) return Promise.resolve();
    return this.load();
  }

  private load(): Promise<void> {
    this.loading ??= (async () => {
      this.dirty = false;
      this.loadedAt = Date.now();
      try {
        const [jobs, notices] = await Promise.all([
          this.sources.jobs(),
          this.sources.notices(this.opts.noticeLimit ?? 50),
        ]);
        this.counts = stateCounts(jobs);
        this.publish("jobs", consoleJobs(jobs));
        this.publish("notices", notices.map(consoleNotice));
      } catch (e) {
        this.dirty = true; // try again next tick
        this.opts.onError?.(e);
      }
    })().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async tick(): Promise<void> {
    if (this.dirty || Date.now() - this.loadedAt >= (this.opts.refreshMs ?? 5000)) await this.load();
    if (!this.listeners.size) return;
    this.publish("drives", this.drivesView());
    this.publish("station", this.stationView());
  }

  private publish(type: FeedEvent["type"], data: unknown): void {
    const text = JSON.stringify(data);
    if (text === this.last[type]) return;
    this.last[type] = text;
    for (const l of this.listeners) l({ type, data });
  }
}
