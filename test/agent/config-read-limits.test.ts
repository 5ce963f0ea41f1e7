/** The read bounds of drive files are config keys: defaults, limits, typos, and what the transfer core gets. */
import { describe, expect, it } from "vitest";
import { ioThreadsOf, parseConfig, readLimitsOf } from "../../agent/config.js";
import { DEFAULT_READ_LIMITS } from "../../src/transfer/core/drive-reads.js";
import { stationLocation } from "../support/agent.js";

const withTransfer = (transfer: Record<string, unknown>) => ({
  station: { location: { ...stationLocation } },
  transfer,
});

describe("transfer.readTimeoutSeconds and transfer.hungReadsPerDrive", () => {
  it("default to the core's own bounds (60 s, 3 hung reads)", () => {
    const c = parseConfig(withTransfer({}), "x.json");
    expect(c.transfer.readTimeoutSeconds).toBe(60);
    expect(c.transfer.hungReadsPerDrive).toBe(3);
    expect(readLimitsOf(c.transfer)).toMatchObject({
      timeoutMs: DEFAULT_READ_LIMITS.timeoutMs,
      hungLimit: DEFAULT_READ_LIMITS.hungLimit,
    });
    // No transfer object at all: the same defaults.
    const bare = parseConfig({ station: { location: { ...stationLocation } } }, "x.json");
    expect(readLimitsOf(bare.transfer)).toEqual({ timeoutMs: 60_000, hungLimit: 3, stationHungLimit: 2 });
  });

  it("are carried in milliseconds and counts", () => {
    const c = parseConfig(withTransfer({ readTimeoutSeconds: 2.5, hungReadsPerDrive: 5 }), "x.json");
    expect(readLimitsOf(c.transfer)).toEqual({ timeoutMs: 2500, hungLimit: 5, stationHungLimit: 2 });
  });

  it("let hung reads hold at most half of the I/O threads station-wide", () => {
    const t = parseConfig(withTransfer({}), "x.json").transfer;
    expect(ioThreadsOf({})).toBe(4); // libuv's default
    expect(ioThreadsOf({ UV_THREADPOOL_SIZE: "32" })).toBe(32);
    expect(ioThreadsOf({ UV_THREADPOOL_SIZE: "zero" })).toBe(4);
    expect(readLimitsOf(t, ioThreadsOf({ UV_THREADPOOL_SIZE: "32" })).stationHungLimit).toBe(16);
    expect(readLimitsOf(t, 1).stationHungLimit).toBe(1);
  });

  it("refuse out-of-range values, naming the key and the value", () => {
    expect(() => parseConfig(withTransfer({ readTimeoutSeconds: 0 }), "x.json")).toThrow(
      /transfer\.readTimeoutSeconds = 0: .*1/,
    );
    expect(() => parseConfig(withTransfer({ readTimeoutSeconds: 7200 }), "x.json")).toThrow(
      /transfer\.readTimeoutSeconds = 7200/,
    );
    expect(() => parseConfig(withTransfer({ hungReadsPerDrive: 0 }), "x.json")).toThrow(
      /transfer\.hungReadsPerDrive = 0/,
    );
    expect(() => parseConfig(withTransfer({ hungReadsPerDrive: 1.5 }), "x.json")).toThrow(
      /transfer\.hungReadsPerDrive = 1\.5/,
    );
    expect(() => parseConfig(withTransfer({ readTimeoutSeconds: "60" }), "x.json")).toThrow(
      /transfer\.readTimeoutSeconds = "60"/,
    );
  });

  it("stop the agent on a misspelt key, naming the nearest one", () => {
    expect(() => parseConfig(withTransfer({ readTimeoutSecond: 5 }), "x.json")).toThrow(
      /unknown key transfer\.readTimeoutSecond; did you mean transfer\.readTimeoutSeconds\?/,
    );
    expect(() => parseConfig(withTransfer({ hungReadPerDrive: 2 }), "x.json")).toThrow(
      /unknown key transfer\.hungReadPerDrive; did you mean transfer\.hungReadsPerDrive\?/,
    );
  });
});
