/**
 * Health, readiness, metrics access and the console's static files and push stream, on the real
 * agent (no drives, no storage): who may call what, and that a job write is pushed, not polled.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { UNTIL_HANG } from "../support/deadline.js";
import { returnAddress } from "../support/jobs.js";
import { parseExposition, sampleValue } from "../support/prometheus.js";

let root: string;
let station: TestAgent;
const url = (p: string) => `${station.agent.url}${p}`;
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

/** Reads SSE events from a fetch() stream until `until` says stop (or the time runs out). */
async function readEvents(
  res: Response,
  until: (events: { type: string; data: unknown }[]) => boolean,
  timeoutMs = UNTIL_HANG.timeout,
) {
  const events: { type: string; data: unknown }[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  let buf = "";
  try {
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const type = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (type && data) events.push({ type, data: JSON.parse(data) });
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => undefined);
  }
  return events;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "console-api-"));
  station = await startTestAgent(join(root, "data"));
});

afterAll(async () => {
  await station?.agent.stop();
  rmSync(root, { recursive: true, force: true });
});

describe("health and readiness", () => {
  it("/healthz answers without a token", async () => {
    const res = await fetch(url("/healthz"));
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.status).toBe("ok");
    expect(body.eventLoopDelayP99Ms).toBeGreaterThanOrEqual(0);
  });

  it("/readyz reports each check; the store is reachable", async () => {
    const res = await fetch(url("/readyz"));
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.status).toBe("ready");
    expect(body.checks).toEqual([
      { name: "api", ok: true },
      { name: "store", ok: true },
    ]);
  });
});

describe("metrics access", () => {
  it("needs an operator token: none → 401, a customer token → 403", async () => {
    expect((await fetch(url("/metrics"))).status).toBe(401);
    expect((await fetch(url("/metrics"), { headers: bearer(CUSTOMER_TOKEN) })).status).toBe(403);
  });

  it("serves the exposition format with the station's families and the process metrics", async () => {
    const res = await fetch(url("/metrics"), { headers: bearer(OPERATOR_TOKEN) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const { types, samples } = parseExposition(await res.text());
    for (const [name, type] of [
      ["drive_station_transfer_bytes_total", "counter"],
      ["drive_station_transfer_blobs_total", "counter"],
      ["drive_station_transfer_errors_total", "counter"],
      ["drive_station_storage_retries_total", "counter"],
      ["drive_station_drive_transfer_duration_seconds", "histogram"],
      ["drive_station_transfer_queue_depth", "gauge"],
      ["drive_station_attached_drives", "gauge"],
      ["drive_station_drives", "gauge"],
      ["drive_station_jobs", "gauge"],
      ["process_cpu_seconds_total", "counter"],
      ["nodejs_eventloop_lag_seconds", "gauge"],
    ])
      expect(types.get(name!), name).toBe(type);
    expect(sampleValue(samples, "drive_station_transfer_queue_depth", { state: "queued" })).toBe(0);
  });
});

describe("console", () => {
  it("serves the page and its script without a token, with a strict CSP", async () => {
    const page = await fetch(url("/console"));
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(await page.text()).toContain('<script type="module" src="/console/app.js">');
    const js = await fetch(url("/console/app.js"));
    expect(js.headers.get("content-type")).toContain("text/javascript");
    expect(await js.text()).toContain("/station/v1/events");
  });

  it("the push stream needs an operator token", async () => {
    expect((await fetch(url("/station/v1/events"))).status).toBe(401);
    expect((await fetch(url("/station/v1/events"), { headers: bearer(CUSTOMER_TOKEN) })).status).toBe(403);
  });

  it("pushes the current view at once, then a job written afterwards, with jobs counted in the metrics", async () => {
    const res = await fetch(url("/station/v1/events"), { headers: bearer(OPERATOR_TOKEN) });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    let created = false;
    const events = await readEvents(res, (evs) => {
      if (!created && evs.some((e) => e.type === "jobs")) {
        created = true;
        void station.agent.service.create(
          { subscriptionId: "sub-c", resourceGroup: "rg", name: "pushed" },
          {
            location: "West US",
            type: "Import",
            storageAccountId:
              "/subscriptions/sub-c/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct",
            returnAddress,
            driveList: [
              { driveId: "PUSH-0001", manifestFile: "\\DriveManifest.xml", manifestHash: "A".repeat(32) },
            ],
          },
          { name: "test", type: "User" },
        );
      }
      return evs.some(
        (e) => e.type === "jobs" && (e.data as { name: string }[]).some((j) => j.name === "pushed"),
      );
    });
    expect(
      events
        .map((e) => e.type)
        .slice(0, 3)
        .sort(),
    ).toEqual(["drives", "jobs", "notices"]);
    const pushed = events.findLast((e) => e.type === "jobs")!.data as { name: string; state: string }[];
    expect(pushed.find((j) => j.name === "pushed")).toMatchObject({ state: "Creating" });

    const metrics = parseExposition(
      await (await fetch(url("/metrics"), { headers: bearer(OPERATOR_TOKEN) })).text(),
    );
    expect(sampleValue(metrics.samples, "drive_station_jobs", { state: "Creating" })).toBe(1);
    expect(sampleValue(metrics.samples, "drive_station_drives", { state: "Specified" })).toBe(1);
  });
});
