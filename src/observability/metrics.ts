/**
 * Prometheus metrics (prom-client). Most figures are read from snapshots the station already
 * keeps (the dock's drives with their progress, the jobs, the transfer queue), so the engine
 * needs no metric calls on its hot path; the few events a snapshot cannot show (a finished blob,
 * a storage retry, a drive's duration) come in through the `TransferObserver` port.
 *
 * Cardinality stays bounded: per-drive series are labelled by job name and drive ID only, and a
 * drive's series are dropped once it has been gone from the dock for `forgetAfterMs`.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { BlobStatus } from "../formats/status.js";

/** What a scrape reads: the station's current view. Every source is cheap and in memory. */
export interface MetricsSources {
  /** The drives at the dock; `progress` while (or after) transferring. */
  drives(): readonly {
    status: string;
    job?: { name: string };
    driveId?: string;
    progress?: { bytesSucceeded: number; bytesTotal: number };
  }[];
  /** Blocks queued and in flight across every drive (the shared request queue). */
  queue(): { queued: number; inFlight: number };
  /** Jobs and their drives' states, from the console feed's cache (no store read per scrape). */
  jobStates(): { jobs: Record<string, number>; drives: Record<string, number> };
}

/** The events a snapshot cannot show. The transfer engine calls these; all are cheap. */
export interface TransferObserver {
  blobFinished(job: string, driveId: string, status: BlobStatus): void;
  /** A storage request failed with a retryable error and is tried again. */
  storageRetry(reason: string): void;
  driveFinished(job: string, driveId: string, outcome: string, seconds: number): void;
}

export const noTransferObserver: TransferObserver = {
  blobFinished() {},
  storageRetry() {},
  driveFinished() {},
};

type DriveLabels = { job: string; drive: string };

export interface StationMetricsOptions {
  sources: MetricsSources;
  now(): number;
  /** Drop a drive's per-drive series this long after it left the dock (default 15 min). */
  forgetAfterMs?: number;
  /** Process and Node.js runtime metrics (default true; tests with many agents turn it off). */
  defaultMetrics?: boolean;
}

export class StationMetrics implements TransferObserver {
  readonly registry = new Registry();
  private readonly bytes: Counter<"job" | "drive">;
  private readonly blobs: Counter<"job" | "drive">;
  private readonly errors: Counter<"job" | "drive" | "kind">;
  private readonly retries: Counter<"reason">;
  private readonly driveSeconds: Histogram<"outcome">;
  /** Last bytesSucceeded seen per drive, to turn progress snapshots into counter increments. */
  private readonly seen = new Map<string, { labels: DriveLabels; bytes: number; lastSeen: number }>();
  private readonly failedDrives = new Set<string>();
  private readonly forgetAfterMs: number;

  constructor(private readonly opts: StationMetricsOptions) {
    this.forgetAfterMs = opts.forgetAfterMs ?? 15 * 60_000;
    const registers = [this.registry];
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.bytes = new Counter({
      name: "drive_station_transfer_bytes_total",
      help: "Bytes of a drive verified in storage (a resumed drive counts what earlier runs moved once).",
      labelNames: ["job", "drive"],
      registers,
    });
    this.blobs = new Counter({
      name: "drive_station_transfer_blobs_total",
      help: "Blobs of a drive finished, whatever their copy-log status.",
      labelNames: ["job", "drive"],
      registers,
    });
    this.errors = new Counter({
      name: "drive_station_transfer_errors_total",
      help: "Failures: kind=blob for a blob whose copy-log status is not Completed, kind=drive for a drive that failed or stopped.",
      labelNames: ["job", "drive", "kind"],
      registers,
    });
    this.retries = new Counter({
      name: "drive_station_storage_retries_total",
      help: "Storage requests retried after a retryable failure (reason: HTTP status or 'network').",
      labelNames: ["reason"],
      registers,
    });
    this.driveSeconds = new Histogram({
      name: "drive_station_drive_transfer_duration_seconds",
      help: "Wall time of one drive's transfer run, by outcome (Completed, CompletedMoreInfo).",
      labelNames: ["outcome"],
      buckets: [1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200],
      registers,
    });
    const { sources } = opts;
    new Gauge({
      name: "drive_station_transfer_queue_depth",
      help: "Storage requests of every drive: queued (waiting for a slot) and in_flight.",
      labelNames: ["state"],
      registers,
      collect() {
        const q = sources.queue();
        this.set({ state: "queued" }, q.queued);
        this.set({ state: "in_flight" }, q.inFlight);
      },
    });
    new Gauge({
      name: "drive_station_attached_drives",
      help: "Drives at the dock by dock status (ready, transferring, paused, done, held, extra, unknown, failed, ...).",
      labelNames: ["status"],
      registers,
      collect() {
        this.reset();
        for (const d of sources.drives()) this.inc({ status: d.status });
      },
    });
    new Gauge({
      name: "drive_station_drives",
      help: "Drives of the station's jobs by drive state (Specified, Received, Transferring, Completed, ...).",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        for (const [state, n] of Object.entries(sources.jobStates().drives)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: "drive_station_jobs",
      help: "Jobs by state.",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        for (const [state, n] of Object.entries(sources.jobStates().jobs)) this.set({ state }, n);
      },
    });
  }

  /**
   * Reads the dock's progress snapshots into the byte counters. Called on every scrape and on a
   * timer (so a drive pulled between scrapes still counts), and drops the series of drives gone
   * for a while.
   */
  sample(): void {
    const now = this.opts.now();
    const present = new Set<string>();
    for (const d of this.opts.sources.drives()) {
      if (!d.job || !d.driveId) continue;
      const labels = { job: d.job.name, drive: d.driveId };
      const id = `${labels.job}\u0000${labels.drive}`;
      present.add(id);
      const entry = this.track(id, labels, now);
      const bytes = d.progress?.bytesSucceeded ?? entry.bytes;
      if (bytes > entry.bytes) this.bytes.inc(labels, bytes - entry.bytes);
      entry.bytes = Math.max(entry.bytes, bytes);
      const failed = d.status === "failed" || d.status === "error";
      if (failed && !this.failedDrives.has(id)) this.errors.inc({ ...labels, kind: "drive" });
      if (failed) this.failedDrives.add(id);
      else this.failedDrives.delete(id);
    }
    for (const [id, entry] of this.seen) {
      if (present.has(id) || now - entry.lastSeen < this.forgetAfterMs) continue;
      this.seen.delete(id);
      this.failedDrives.delete(id);
      this.bytes.remove(entry.labels);
      this.blobs.remove(entry.labels);
      this.errors.remove({ ...entry.labels, kind: "blob" });
      this.errors.remove({ ...entry.labels, kind: "drive" });
    }
  }

  blobFinished(job: string, driveId: string, status: BlobStatus): void {
    const labels = { job, drive: driveId };
    this.track(`${job}\u0000${driveId}`, labels, this.opts.now());
    this.blobs.inc(labels);
    if (status !== "Completed") this.errors.inc({ ...labels, kind: "blob" });
  }

  storageRetry(reason: string): void {
    this.retries.inc({ reason });
  }

  driveFinished(job: string, driveId: string, outcome: string, seconds: number): void {
    this.track(`${job}\u0000${driveId}`, { job, drive: driveId }, this.opts.now());
    this.driveSeconds.observe({ outcome }, seconds);
  }

  /** The exposition text and its content type, for the /metrics route. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    this.sample(); // before the registry serialises the counters it feeds
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }

  private track(id: string, labels: DriveLabels, now: number) {
    let entry = this.seen.get(id);
    if (!entry) {
      entry = { labels, bytes: 0, lastSeen: now };
      this.seen.set(id, entry);
    }
    entry.lastSeen = now;
    return entry;
  }
}
