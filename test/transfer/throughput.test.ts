import { describe, expect, it } from "vitest";
import { sparklinePoints } from "../../src/api/console/sparkline.js";
import { attachedWatchLines, sparkline } from "../../src/cli/render.js";
import { stationThroughput, ThroughputSamples } from "../../src/transfer/core/throughput.js";

describe("throughput samples", () => {
  it("one value per clock-aligned second: bytes landed in it; the first record is only the baseline", () => {
    const s = new ThroughputSamples(1, 300);
    s.record(10_200, 0);
    expect(s.view()).toBeUndefined();
    s.record(11_100, 1000);
    s.record(11_900, 1500); // same bucket: waits for it to close
    s.record(12_000, 3000);
    expect(s.view()).toEqual({ sampleSeconds: 1, lastBucket: 12, values: [1000, 2000] });
  });

  it("a stall spreads over the buckets it spans; a resume's earlier bytes are no burst", () => {
    const s = new ThroughputSamples(1, 300);
    s.record(0, 0);
    s.record(1000, 500);
    s.record(4000, 3500); // three seconds: 1000/s each
    expect(s.view()!.values).toEqual([500, 1000, 1000, 1000]);
    s.restart(); // paused, then resumed 3 s later with 10 000 bytes already landed
    s.record(7000, 10_000);
    s.record(8000, 10_400);
    expect(s.view()).toEqual({
      sampleSeconds: 1,
      lastBucket: 8,
      values: [500, 1000, 1000, 1000, 0, 0, 0, 400],
    });
  });

  it("keeps only the newest values", () => {
    const s = new ThroughputSamples(1, 5);
    s.record(0, 0);
    for (let t = 1; t <= 9; t++) s.record(t * 1000, t * t);
    expect(s.view()!.values).toEqual([9, 11, 13, 15, 17]);
  });

  it("the station's throughput sums its drives bucket by bucket", () => {
    const a = { sampleSeconds: 1, lastBucket: 10, values: [1, 2, 3] }; // buckets 8..10
    const b = { sampleSeconds: 1, lastBucket: 9, values: [10, 20] }; // buckets 8..9
    const t = stationThroughput([a, undefined, b], 6)!;
    expect(t.lastBucket).toBe(10);
    expect(t.values.slice(-3)).toEqual([11, 22, 3]);
    expect(stationThroughput([undefined])).toBeUndefined();
  });
});

describe("sparkline rendering", () => {
  it("terminal: block characters scaled to the peak, newest last, at most `width` of them", () => {
    expect(sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8)).toBe("▁▂▃▄▅▆▇█");
    expect(sparkline([100, 0, 50], 2)).toBe("▁█");
    expect(sparkline([0, 0])).toBe("▁▁");
  });

  it("attached --watch draws a drive's sparkline under its progress", () => {
    const lines = attachedWatchLines(
      [
        {
          device: "/dev/loop3",
          status: "transferring",
          message: "Importing",
          job: { name: "j" },
          driveId: "D1",
          progress: { bytesSucceeded: 50, bytesTotal: 100, bytesPerSecond: 7, etaSeconds: 5 },
          throughput: { sampleSeconds: 1, lastBucket: 9, values: [0, 7, 14] },
        },
      ],
      120,
    );
    expect(lines[2]).toMatch(/^ {2}▁▅█ {2}last 3s, peak 14 B\/s$/);
  });

  it("console: polyline points newest at the right edge, the peak at the top", () => {
    expect(sparklinePoints([0, 5, 10], 100, 22, 3)).toBe("0.0,21.0 50.0,11.0 100.0,1.0");
    // Fewer values than slots: the line ends at the right edge (now), not the left.
    expect(sparklinePoints([10], 100, 22, 3)).toBe("100.0,1.0");
    expect(sparklinePoints([], 100, 22)).toBe("");
  });
});
