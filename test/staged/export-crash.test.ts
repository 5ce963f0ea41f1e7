/**
 * Staged: the agent exports to a real drive as its own process, is killed with SIGKILL mid-way,
 * and restarted. The export must finish byte-identical, and the resumed run must write exactly the
 * chunks the killed run had not recorded as written (nothing written twice beyond those in flight).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, stationLocation } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, freePort, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { built } from "../support/built.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, makeDriveImage, stagedGate } from "./loop-images.js";

const RUN = stagedGate("export-crash");
const MiB = 1024 * 1024;
const SUB = "sub-xcrash";
const blobs: Record<string, Buffer> = {
  "one.bin": randomBytes(64 * MiB),
  "two.bin": randomBytes(64 * MiB),
  "three.bin": randomBytes(64 * MiB),
};
const total = Object.values(blobs).reduce((s, b) => s + b.length, 0);

let root: string;
let storage: TestAzurite;
let agent: ChildProcess | undefined;
let output = "";
let url = "";
let device = "";

function startAgent(config: string): void {
  output = "";
  agent = spawn(process.execPath, [built("agent/main.js"), "--config", config], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  agent.stdout!.on("data", (d: Buffer) => {
    output += d.toString();
  });
  agent.stderr!.on("data", (d: Buffer) => {
    output += d.toString();
  });
}

async function kill(): Promise<void> {
  const p = agent!;
  const exited = new Promise((r) => p.once("exit", r));
  p.kill("SIGKILL");
  await exited;
  agent = undefined;
}

async function api(method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 180_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}\n--- agent output ---\n${output.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const attached = async () => (await api("GET", "/station/v1/attached", OPERATOR_TOKEN)).json?.value?.[0];

describe.skipIf(!RUN)("staged: kill -9 mid-export, restart, resume", () => {
  let config = "";

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-xcrash-"));
    mkdirSync(join(root, "plugged"));
    storage = await startTestAzurite(join(root, "azurite"));
    const c = storage.client.getContainerClient("xcrash");
    await c.createIfNotExists();
    for (const [name, data] of Object.entries(blobs)) await c.getBlockBlobClient(name).uploadData(data);
    const image = join(root, "XCRASH-1.img");
    await makeDriveImage(image, "ext4", 280);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    config = join(root, "agent.json");
    writeFileSync(
      config,
      JSON.stringify({
        dataDir: join(root, "data"),
        api: {
          host: "127.0.0.1",
          port,
          tokens: [
            { name: "op", token: OPERATOR_TOKEN, role: "operator" },
            { name: "cust", token: CUSTOMER_TOKEN, role: "customer", scopes: [{ subscriptionId: SUB }] },
          ],
        },
        station: { location: stationLocation },
        storage: {
          mode: "azure",
          endpointTemplate: storage.template,
          accounts: [{ name: ACCOUNT, key: ACCOUNT_KEY }],
        },
        drives: {
          physical: false,
          pollIntervalMs: 200,
          loopImageDirs: [join(root, "plugged")],
          mountRoot: join(root, "mnt"),
        },
        transfer: { concurrency: 2, blobConcurrency: 1, retry: { attempts: 6, baseMs: 200, maxMs: 1000 } },
      }),
    );
    startAgent(config);
    await waitFor("the agent API", async () =>
      (await api("GET", "/station/v1/jobs", OPERATOR_TOKEN)).status === 200 ? true : undefined,
    );
    const jobPath = `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/xjob?api-version=2021-01-01`;
    const put = await api("PUT", jobPath, CUSTOMER_TOKEN, {
      location: "West US",
      properties: {
        storageAccountId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
        jobType: "Export",
        returnAddress,
        export: { blobList: { blobPathPrefix: ["/xcrash/"] } },
      },
    });
    expect(put.status, JSON.stringify(put.json)).toBe(201);
    await api("PATCH", jobPath, CUSTOMER_TOKEN, {
      properties: { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: "TX" } },
    });
    const checkIn = await api(
      "POST",
      `/station/v1/subscriptions/${SUB}/resourceGroups/rg/jobs/xjob/packages`,
      OPERATOR_TOKEN,
      {
        trackingNumber: "TX",
        driveIds: ["XCRASH-1"],
      },
    );
    expect(checkIn.status, JSON.stringify(checkIn.json)).toBe(200);
    const plugged = join(root, "plugged", "XCRASH-1.img");
    renameSync(image, plugged);
    writeFileSync(`${plugged}.serial`, "XCRASH-1");
    device = attach(plugged);
  }, 300_000);

  afterAll(async () => {
    if (agent) await kill();
    const mounts = readFileSync("/proc/mounts", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[1])
      .filter((m) => m?.startsWith(join(root ?? "/nonexistent", "mnt")));
    for (const m of mounts) spawn("umount", ["-l", m!]);
    if (device) detach(device);
    await storage?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("resumes, finishes byte-identical, and writes only what the killed run had not recorded", async () => {
    const point = 0.25 + Math.random() * 0.4;
    await waitFor(
      "export progress",
      async () => ((await attached())?.progress?.bytesSucceeded ?? 0) >= point * total || undefined,
    );
    await kill();
    // What the killed run had recorded as on the drive: finished blobs and written chunks (4 MiB each).
    const db = new Database(join(root, "data", "export.db"), { readonly: true });
    const doneBytes = (db.prepare("SELECT COALESCE(SUM(bytes), 0) AS n FROM done").get() as { n: number }).n;
    const chunks = (db.prepare("SELECT COUNT(*) AS n FROM blocks").get() as { n: number }).n;
    db.close();
    const recorded = doneBytes + chunks * 4 * MiB;
    expect(recorded).toBeGreaterThan(0);
    console.log(
      `killed at ${Math.round(point * 100)} %: ${recorded} of ${total} bytes recorded on the drive`,
    );

    startAgent(config);
    const finished = await waitFor("the resumed export to finish", async () => {
      const line = output.split("\n").find((l) => l.includes('"drive export finished"'));
      return line
        ? (JSON.parse(line) as { bytesWritten: number; status: string; chunksRewritten: number })
        : undefined;
    });
    expect(finished.status).toBe("Completed");
    expect(finished.chunksRewritten).toBe(0);
    expect(finished.bytesWritten).toBe(total - recorded);

    const d = await attached();
    for (const [name, data] of Object.entries(blobs)) {
      const got = readFileSync(join(d.mountpoint, "xcrash", name));
      expect(createHash("md5").update(got).digest("hex"), name).toBe(
        createHash("md5").update(data).digest("hex"),
      );
    }
    const manifest = readFileSync(join(d.mountpoint, "XCRASH-1.manifest"), "utf8");
    expect(manifest.match(/<Blob>/g)).toHaveLength(3);
    const job = await api(
      "GET",
      `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/xjob?api-version=2021-01-01`,
      CUSTOMER_TOKEN,
    );
    expect(job.json.properties.driveList[0]).toMatchObject({
      state: "Completed",
      bytesSucceeded: total,
      percentComplete: 100,
    });
    expect(output).not.toContain(ACCOUNT_KEY);
  });
});
