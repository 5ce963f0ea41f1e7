/** The CLI's text views: durations in h/m/s, and finished drives without a stale speed or ETA. */
import { describe, expect, it } from "vitest";
import { attachedWatchLines, bar, duration, progress } from "../../src/cli/render.js";

describe("render", () => {
  it("ETA and durations in hours, minutes and seconds", () => {
    expect(duration(9)).toBe("9s");
    expect(duration(125)).toBe("2m05s");
    expect(duration(3723)).toBe("1h02m03s");
    expect(duration(26 * 3600 + 1)).toBe("26h00m01s");
  });

  it("a transferring drive: bar, bytes, speed, ETA", () => {
    const line = progress("transferring", {
      bytesSucceeded: 512 * 1024 * 1024,
      bytesTotal: 2048 * 1024 * 1024,
      bytesPerSecond: 85_300_000,
      etaSeconds: 3723,
    });
    expect(line).toBe(`${bar(25)} 512.0 MiB / 2.0 GiB 85.3 MB/s ETA 1h02m03s`);
  });

  it("a finished drive shows its final figures, not the last speed and ETA", () => {
    const line = progress("done", {
      bytesSucceeded: 100_000_000,
      bytesTotal: 100_000_000,
      bytesPerSecond: 123_456_789,
      etaSeconds: 42,
      seconds: 125,
    });
    expect(line).toBe(`${bar(100)} 95.4 MiB in 2m05s, avg 0.8 MB/s`);
    expect(line).not.toContain("ETA");
    expect(line).not.toContain("123.5 MB/s");
    // paused: where it stopped, no speed
    expect(
      progress("paused", { bytesSucceeded: 50, bytesTotal: 100, bytesPerSecond: 9_000_000, etaSeconds: 5 }),
    ).toBe(`${bar(50)} 50 B / 100 B`);
  });

  it("the watch view: two lines per drive, what it waits for when nothing moves", () => {
    const lines = attachedWatchLines([
      {
        device: "/dev/sdb",
        serial: "S1",
        status: "transferring",
        job: { name: "job1" },
        driveId: "S1",
        message: "Importing",
        progress: { bytesSucceeded: 1, bytesTotal: 4, bytesPerSecond: 1e6, etaSeconds: 61 },
      },
      { device: "/dev/sdc", status: "unknown", message: "No serial; check-in with 'station check-in'." },
    ]);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe("/dev/sdb  job1/S1  transferring");
    expect(lines[1]).toContain("ETA 1m01s");
    expect(lines[3]).toContain("check-in");
  });
});
