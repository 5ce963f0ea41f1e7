/**
 * Staged page-blob crash test: the agent imports page blobs and is killed with SIGKILL mid-blob,
 * twice, then restarted. A resumed page blob must not send again the ranges its partial blob
 * already holds, nothing partial may appear under a final name, and every final blob must carry
 * the right whole-blob Content-MD5.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, stationLocation } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, freePort, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { built } from "../support/built.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, preparedDrive, stagedGate } from "./loop-images.js";

const RUN = stagedGate("page-crash");
const MiB = 1024 * 1024;
const SUB = "sub-page-crash";
const PARTIAL = ".drive-station-partial";

let root: string;
let storage: TestAzurite;
let agent: ChildProcess | undefined;
let output = "";
let url = "";
let device = "";
// Random bytes: every 4 MiB range is listed (no zero ranges to leave out).
const files: Record<string, Buffer> = {
  "disk-a.vhd": randomBytes(64 * MiB),
  "disk-b.vhd": randomBytes(64 * MiB + 512 * 7),
};
const total = Object.values(files).reduce((s, b) => s + b.length, 0);

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

async function api(method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}\n--- agent output ---\n${output.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const progress = async (): Promise<number | undefined> => {
  const r = await api("GET", "/station/v1/attached", OPERATOR_TOKEN);
  return r.json?.value?.[0]?.progress?.bytesSucceeded;
};

/**
 * Bytes that reached storage: a final blob whole (its bytes and Content-MD5 must be right), else
 * the ranges its partial blob holds.
 */
async function landed(): Promise<number> {
  const c = storage.client.getContainerClient("pages");
  let bytes = 0;
  for (const [name, data] of Object.entries(files)) {
    const final = c.getPageBlobClient(name);
    const props = await final.getProperties().catch((e) => {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined;
      throw e;
    });
    if (props) {
      expect((await final.downloadToBuffer()).equals(data), `${name} in place with the wrong bytes`).toBe(
        true,
      );
      expect(Buffer.from(props.contentMD5 ?? []).toString("base64"), `${name} Content-MD5`).toBe(
        createHash("md5").update(data).digest("base64"),
      );
      bytes += data.length;
      continue;
    }
    const partial = c.getPageBlobClient(`${name}${PARTIAL}`);
    try {
      for await (const page of partial.listPageRanges().byPage())
        for (const r of page.pageRange ?? []) bytes += r.end - r.start + 1;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 404) throw e;
    }
  }
  return bytes;
}

async function kill(): Promise<void> {
  const p = agent!;
  const exited = new Promise((r) => p.once("exit", r));
  p.kill("SIGKILL");
  await exited;
  agent = undefined;
}

describe.skipIf(!RUN)("staged: kill -9 mid page-blob import, restart, resume range by range", () => {
  let config = "";

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-page-crash-"));
    mkdirSync(join(root, "plugged"));
    storage = await startTestAzurite(join(root, "azurite"));
    const image = join(root, "pages.img");
    const entry = await preparedDrive({
      image,
      fs: "ext4",
      sizeMiB: 200,
      driveId: "PAGES-0001",
      accountKey: ACCOUNT_KEY,
      workDir: root,
      sessions: [{ files, dest: "pages/", blobType: "PageBlob" }],
    });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    config = join(root, "config", "agent.json");
    mkdirSync(join(root, "config"));
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
        storage: { mode: "azure", endpointTemplate: storage.template },
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
    await waitFor(
      "the agent API",
      async () => ((await api("GET", "/station/v1/jobs", OPERATOR_TOKEN)).status === 200 ? true : undefined),
      30_000,
    );
    const jobPath = `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/pagejob?api-version=2021-01-01`;
    const put = await api("PUT", jobPath, CUSTOMER_TOKEN, {
      location: "West US",
      properties: {
        storageAccountId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
        jobType: "Import",
        returnAddress,
        driveList: [entry],
      },
    });
    expect(put.status).toBe(201);
    expect(
      (
        await api("PATCH", jobPath, CUSTOMER_TOKEN, {
          properties: { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: "T1" } },
        })
      ).status,
    ).toBe(200);
    const plugged = join(root, "plugged", "pages.img");
    renameSync(image, plugged);
    device = attach(plugged);
  }, 300_000);

  afterAll(async () => {
    if (agent) await kill();
    // The killed agents' mount, if any, and the loop device.
    const mounts = readFileSync("/proc/mounts", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[1])
      .filter((m) => m?.startsWith(join(root ?? "/nonexistent", "mnt")));
    for (const m of mounts) spawn("umount", ["-l", m!]);
    if (device) detach(device);
    await storage?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("resends no range that had landed; the final blobs carry their Content-MD5; no partial blob is left", async () => {
    // Mid-way through the first blob, then mid-way through the second.
    const killPoints = [0.15 + Math.random() * 0.25, 0.6 + Math.random() * 0.25];
    console.log(
      `kill points: ${killPoints.map((p) => `${Math.round(p * 100)} %`).join(", ")} of ${total} bytes`,
    );
    let landedBefore = 0;
    for (const point of killPoints) {
      await waitFor(
        `progress past ${Math.round(point * 100)} %`,
        async () => ((await progress()) ?? 0) >= point * total || undefined,
      );
      await kill();
      await new Promise((r) => setTimeout(r, 500)); // let requests already at Azurite finish
      const now = await landed(); // also asserts every committed blob is whole and right
      expect(now).toBeGreaterThanOrEqual(landedBefore);
      landedBefore = now;
      startAgent(config);
    }
    const finished = await waitFor(
      "the resumed import to finish",
      async () => {
        const line = output.split("\n").find((l) => l.includes('"drive import finished"'));
        return line ? (JSON.parse(line) as { bytesUploaded: number; status: string }) : undefined;
      },
      180_000,
    );
    expect(finished.status).toBe("Completed");
    expect(finished.bytesUploaded).toBeGreaterThan(0);
    // Everything that had landed stayed landed: the last run sent at most the rest.
    expect(finished.bytesUploaded).toBeLessThanOrEqual(total - landedBefore);
    console.log(
      `landed before the last restart: ${landedBefore} bytes; the last run uploaded ${finished.bytesUploaded} (${total - landedBefore - finished.bytesUploaded} bytes landed between the kill and the measurement)`,
    );

    for (const [name, data] of Object.entries(files)) {
      const blob = storage.client.getContainerClient("pages").getBlobClient(name);
      expect((await blob.downloadToBuffer()).equals(data), name).toBe(true);
      const props = await blob.getProperties();
      expect(props.blobType).toBe("PageBlob");
      expect(Buffer.from(props.contentMD5 ?? []).toString("base64"), `${name} Content-MD5`).toBe(
        createHash("md5").update(data).digest("base64"),
      );
    }
    const left: string[] = [];
    for await (const b of storage.client.getContainerClient("pages").listBlobsFlat()) left.push(b.name);
    expect(left.sort()).toEqual(Object.keys(files).sort());
    const job = await api(
      "GET",
      `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/pagejob?api-version=2021-01-01`,
      CUSTOMER_TOKEN,
    );
    expect(job.json.properties.driveList[0]).toMatchObject({
      state: "Completed",
      bytesSucceeded: total,
      percentComplete: 100,
    });
    expect(job.json.properties.state).toBe("Packaging");
  });
});
