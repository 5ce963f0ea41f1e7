/**
 * The staged suites' station with the agent as its own process (src/staging/agent-process.ts):
 * a temp root, a config with the test tokens scoped to one subscription, the agent started and
 * ready, a way to ship a job and plug a drive image, and a cleanup that always runs.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { AgentProcess, jobPath, shipJob, writeAgentConfig } from "../../src/staging/agent-process.js";
import type { CountingProxy } from "../../src/staging/counting-proxy.js";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, stationLocation } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, freePort } from "../support/azurite.js";
import { returnAddress } from "../support/jobs.js";
import { attach } from "./loop-images.js";

export { childrenOf } from "../../src/staging/agent-process.js";

export interface ChildStation {
  root: string;
  agent: AgentProcess;
  sub: string;
  path(job: string): string;
  /** PUT + PATCH Shipping as the customer, both checked. */
  ship(job: string, properties: Record<string, unknown>, trackingNumber?: string): Promise<void>;
  /** Moves `image` into the watched directory as `<name>.img` (with its serial, if given) and attaches it; returns the plugged path. */
  plug(image: string, name: string, serial?: string): string;
  customer(method: string, path: string, body?: unknown): ReturnType<AgentProcess["api"]>;
  /** Kills a running agent, unmounts, detaches, removes the root. Never throws. */
  cleanup(): Promise<void>;
}

export async function childStation(o: {
  prefix: string;
  sub: string;
  storage: (root: string) => Promise<Record<string, unknown>> | Record<string, unknown>;
}): Promise<ChildStation> {
  const root = mkdtempSync(join(tmpdir(), o.prefix));
  const apiPort = await freePort();
  const config = writeAgentConfig({
    root,
    apiPort,
    tokens: [
      { name: "op", token: OPERATOR_TOKEN, role: "operator" },
      { name: "cust", token: CUSTOMER_TOKEN, role: "customer", scopes: [{ subscriptionId: o.sub }] },
    ],
    station: { location: stationLocation },
    storage: await o.storage(root),
  });
  const agent = new AgentProcess({
    config,
    url: `http://127.0.0.1:${apiPort}`,
    operatorToken: OPERATOR_TOKEN,
    mountRoot: join(root, "mnt"),
    secrets: [OPERATOR_TOKEN, CUSTOMER_TOKEN, ACCOUNT_KEY],
  });
  const station: ChildStation = {
    root,
    agent,
    sub: o.sub,
    path: (job) => jobPath(o.sub, job),
    customer: (method, path, body) => agent.api(method, path, CUSTOMER_TOKEN, body),
    async ship(job, properties, trackingNumber) {
      const { put, patch } = await shipJob(agent, {
        customerToken: CUSTOMER_TOKEN,
        sub: o.sub,
        name: job,
        account: ACCOUNT,
        properties: { returnAddress, ...properties },
        ...(trackingNumber ? { trackingNumber } : {}),
      });
      expect(put.status, JSON.stringify(put.json)).toBe(201);
      expect(patch.status, JSON.stringify(patch.json)).toBe(200);
    },
    plug(image, name, serial) {
      const plugged = join(root, "plugged", `${name}.img`);
      renameSync(image, plugged);
      if (serial) writeFileSync(`${plugged}.serial`, serial);
      agent.devices.push(attach(plugged));
      return plugged;
    },
    async cleanup() {
      await agent.cleanup().catch((e) => console.warn(`cleanup: ${e}`));
      rmSync(root, { recursive: true, force: true });
    },
  };
  return station;
}

/**
 * kill -9 at each progress point (fractions of `total`) and start again; after each kill what
 * landed (`landed`, which also checks every committed blob) may only have grown. Then the last run
 * must finish `Completed` having sent, as counted at storage by `proxy` (the agent's storage
 * endpoint), at most what had not landed. Returns what had landed.
 */
export async function killAtPointsAndResume(
  station: ChildStation,
  o: { points: number[]; total: number; landed: () => Promise<number>; proxy: CountingProxy },
): Promise<number> {
  const agent = station.agent;
  const progress = async (): Promise<number> =>
    (await agent.api("GET", "/station/v1/attached")).json?.value?.[0]?.progress?.bytesSucceeded ?? 0;
  console.log(
    `kill points: ${o.points.map((p) => `${Math.round(p * 100)} %`).join(", ")} of ${o.total} bytes`,
  );
  let landedBefore = 0;
  let sentBefore = 0;
  for (const point of o.points) {
    await agent.waitFor(
      `progress past ${Math.round(point * 100)} %`,
      async () => (await progress()) >= point * o.total || undefined,
    );
    expect((await agent.kill()).signal).toBe("SIGKILL");
    // The killed run's requests end at the proxy once storage has answered or dropped them.
    await agent.waitFor(
      "the killed run's storage requests to end",
      async () => o.proxy.open() === 0 || undefined,
    );
    const now = await o.landed();
    expect(now).toBeGreaterThanOrEqual(landedBefore);
    landedBefore = now;
    sentBefore = o.proxy.sent();
    agent.start();
  }
  const finished = await agent.logged<{ bytesUploaded: number; status: string }>("drive import finished");
  expect(finished.status).toBe("Completed");
  await agent.waitFor(
    "the last run's storage requests to end",
    async () => o.proxy.open() === 0 || undefined,
  );
  const sentByLastRun = o.proxy.sent() - sentBefore;
  // The proxy saw every byte: all that is stored passed through it.
  expect(o.proxy.sent()).toBeGreaterThanOrEqual(o.total);
  // What had not landed went through the proxy in the last run (zero when the killed run's last
  // requests had already carried every byte: progress trails the requests)...
  expect(sentByLastRun).toBeGreaterThanOrEqual(o.total - landedBefore);
  // ...and everything that had landed stayed landed: the last run sent at most the rest.
  expect(sentByLastRun).toBeLessThanOrEqual(o.total - landedBefore);
  console.log(
    `landed before the last restart: ${landedBefore} bytes; the last run sent ${sentByLastRun} at storage (the agent counted ${finished.bytesUploaded}); all runs sent ${o.proxy.sent()} for ${o.total}`,
  );
  return landedBefore;
}
