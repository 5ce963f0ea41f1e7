/** StationMetrics on hand-made snapshots: counters from progress, blob errors, forgetting, retries. */
import { describe, expect, it } from "vitest";
import { StationMetrics } from "../../src/observability/metrics.js";
import { parseExposition, sampleValue } from "../support/prometheus.js";

type Drive = {
  status: string;
  job?: { name: string };
  driveId?: string;
  progress?: { bytesSucceeded: number; bytesTotal: number };
};

function setup() {
  let now = 0;
  const drives: Drive[] = [];
  const metrics = new StationMetrics({
    sources: {
      drives: () => drives,
      queue: () => ({ queued: 7, inFlight: 3 }),
      jobStates: () => ({ jobs: { Transferring: 1 }, drives: { Transferring: 1, Received: 2 } }),
    },
    now: () => now,
    forgetAfterMs: 60_000,
    defaultMetrics: false,
  });
  const scrape = async () => parseExposition((await metrics.exposition()).text).samples;
  return { metrics, drives, scrape, advance: (ms: number) => (now += ms) };
}

const labels = { job: "j1", drive: "D1" };

describe("StationMetrics", () => {
  it("turns progress snapshots into a byte counter that never goes down and is not counted twice", async () => {
    const { metrics, drives, scrape } = setup();
    const d: Drive = {
      status: "transferring",
      job: { name: "j1" },
      driveId: "D1",
      progress: { bytesSucceeded: 100, bytesTotal: 1000 },
    };
    drives.push(d);
    expect(sampleValue(await scrape(), "drive_station_transfer_bytes_total", labels)).toBe(100);
    d.progress = { bytesSucceeded: 600, bytesTotal: 1000 };
    metrics.sample();
    metrics.sample();
    expect(sampleValue(await scrape(), "drive_station_transfer_bytes_total", labels)).toBe(600);
    // A re-plug resumes from the checkpoints: the new dock entry starts at what already landed.
    drives.splice(0, 1, {
      status: "transferring",
      job: { name: "j1" },
      driveId: "D1",
      progress: { bytesSucceeded: 600, bytesTotal: 1000 },
    });
    expect(sampleValue(await scrape(), "drive_station_transfer_bytes_total", labels)).toBe(600);
  });

  it("counts blobs, blob errors, drive failures, retries, durations, queue and states", async () => {
    const { metrics, drives, scrape } = setup();
    metrics.blobFinished("j1", "D1", "Completed");
    metrics.blobFinished("j1", "D1", "Completed");
    metrics.blobFinished("j1", "D1", "IOFailed");
    metrics.storageRetry("503");
    metrics.storageRetry("network");
    metrics.storageRetry("network");
    metrics.driveFinished("j1", "D1", "CompletedMoreInfo", 42);
    drives.push({ status: "failed", job: { name: "j1" }, driveId: "D1" });
    const s = await scrape();
    expect(sampleValue(s, "drive_station_transfer_blobs_total", labels)).toBe(3);
    expect(sampleValue(s, "drive_station_transfer_errors_total", { ...labels, kind: "blob" })).toBe(1);
    expect(sampleValue(s, "drive_station_transfer_errors_total", { ...labels, kind: "drive" })).toBe(1);
    expect(sampleValue(s, "drive_station_storage_retries_total", { reason: "network" })).toBe(2);
    expect(sampleValue(s, "drive_station_storage_retries_total", { reason: "503" })).toBe(1);
    expect(
      sampleValue(s, "drive_station_drive_transfer_duration_seconds_count", { outcome: "CompletedMoreInfo" }),
    ).toBe(1);
    expect(
      sampleValue(s, "drive_station_drive_transfer_duration_seconds_bucket", {
        outcome: "CompletedMoreInfo",
        le: "60",
      }),
    ).toBe(1);
    expect(
      sampleValue(s, "drive_station_drive_transfer_duration_seconds_bucket", {
        outcome: "CompletedMoreInfo",
        le: "10",
      }),
    ).toBe(0);
    expect(sampleValue(s, "drive_station_transfer_queue_depth", { state: "queued" })).toBe(7);
    expect(sampleValue(s, "drive_station_transfer_queue_depth", { state: "in_flight" })).toBe(3);
    expect(sampleValue(s, "drive_station_attached_drives", { status: "failed" })).toBe(1);
    expect(sampleValue(s, "drive_station_drives", { state: "Received" })).toBe(2);
    expect(sampleValue(s, "drive_station_jobs", { state: "Transferring" })).toBe(1);
    // A drive that stays failed is one failure, not one per scrape.
    expect(
      sampleValue(await scrape(), "drive_station_transfer_errors_total", { ...labels, kind: "drive" }),
    ).toBe(1);
  });

  it("drops a drive's series once it has been gone longer than forgetAfterMs, and only then", async () => {
    const { drives, scrape, advance } = setup();
    drives.push({
      status: "done",
      job: { name: "j1" },
      driveId: "D1",
      progress: { bytesSucceeded: 5, bytesTotal: 5 },
    });
    expect(sampleValue(await scrape(), "drive_station_transfer_bytes_total", labels)).toBe(5);
    drives.length = 0; // pulled
    advance(59_000);
    expect(sampleValue(await scrape(), "drive_station_transfer_bytes_total", labels)).toBe(5);
    advance(2_000);
    expect(sampleValue(await scrape(), "drive_station_transfer_bytes_total", labels)).toBeUndefined();
    expect(sampleValue(await scrape(), "drive_station_attached_drives", { status: "done" })).toBeUndefined();
  });
});
