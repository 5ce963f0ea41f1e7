/**
 * Staged service events, with the agent as its own process and its embedded Azurite:
 * - a drive pulled mid-transfer (image moved out of the watched directory, loop device detached):
 *   the agent and API stay up, the dock shows it pulled; plugged in again it completes byte-exact;
 * - SIGTERM mid-transfer: exit 0 within 10 s, no child process and no mount left behind, and the
 *   restarted agent completes the drive `Completed`;
 * - kill -9: the embedded Azurite leaves by itself, and the next start runs its own.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, stationLocation } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, freePort } from "../support/azurite.js";
import { built } from "../support/built.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, preparedDrive, stagedGate } from "./loop-images.js";

const RUN = stagedGate("service");
const MiB = 1024 * 1024;
const SUB = "sub-service";

let root = "";
let agent: ChildProcess | undefined;
let output = "";
let url = "";
let config = "";
let storagePort = 0;
const devices: string[] = [];
const drives: Record<string, { files: Record<string, Buffer>; entry?: { driveId: string }; image: string }> =
  {};

function startAgent(): void {
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
      throw new Error(
        `timed out waiting for ${what}\n--- agent output ---\n${output
          .split("\n")
          .filter((l) => !l.includes("api request"))
          .join("\n")
          .slice(-6000)}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

const jobPath = (name: string) =>
  `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ImportExport/jobs/${name}?api-version=2021-01-01`;
const attached = async (driveId: string) =>
  ((await api("GET", "/station/v1/attached", OPERATOR_TOKEN)).json?.value ?? []).find(
    (d: { driveId?: string }) => d.driveId === driveId,
  );
const driveState = async (name: string) =>
  (await api("GET", jobPath(name), CUSTOMER_TOKEN)).json?.properties?.driveList?.[0];
const childrenOf = (pid: number) =>
  readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
const ourMounts = () =>
  readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1])
    .filter((m) => m?.startsWith(join(root, "mnt")));

async function plugNewJob(name: string, driveId: string): Promise<void> {
  const d = drives[name]!;
  const entry = await preparedDrive({
    image: d.image,
    fs: "ext4",
    sizeMiB: 200,
    driveId,
    accountKey: ACCOUNT_KEY,
    workDir: root,
    sessions: [{ files: d.files, dest: `${name}/` }],
  });
  d.entry = entry;
  const put = await api("PUT", jobPath(name), CUSTOMER_TOKEN, {
    location: "West US",
    properties: {
      storageAccountId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
      jobType: "Import",
      returnAddress,
      driveList: [entry],
    },
  });
  expect(put.status).toBe(201);
  const patch = await api("PATCH", jobPath(name), CUSTOMER_TOKEN, {
    properties: { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: `T-${name}` } },
  });
  expect(patch.status).toBe(200);
  const plugged = join(root, "plugged", `${name}.img`);
  renameSync(d.image, plugged);
  d.image = plugged;
  devices.push(attach(plugged));
}

async function byteExact(name: string): Promise<void> {
  const client = new BlobServiceClient(
    `http://127.0.0.1:${storagePort}/${ACCOUNT}`,
    new StorageSharedKeyCredential(ACCOUNT, ACCOUNT_KEY),
  );
  for (const [file, data] of Object.entries(drives[name]!.files)) {
    const got = await client.getContainerClient(name).getBlobClient(file).downloadToBuffer();
    expect(got.equals(data), `${name}/${file}`).toBe(true);
  }
}

const progressOf = async (driveId: string) => (await attached(driveId))?.progress?.bytesSucceeded ?? 0;

describe.skipIf(!RUN)("staged: pulled drive, SIGTERM and kill -9 of the agent", () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-service-"));
    mkdirSync(join(root, "plugged"));
    mkdirSync(join(root, "config"));
    for (const name of ["pulljob", "termjob"])
      drives[name] = {
        image: join(root, `${name}.img`),
        files: {
          "a.bin": randomBytes(40 * MiB),
          "b.bin": randomBytes(40 * MiB + 777),
          "c.bin": randomBytes(40 * MiB),
        },
      };
    const port = await freePort();
    storagePort = await freePort();
    url = `http://127.0.0.1:${port}`;
    config = join(root, "config", "agent.json");
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
          mode: "embedded",
          host: "127.0.0.1",
          port: storagePort,
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
    startAgent();
    await waitFor(
      "the agent API",
      async () => ((await api("GET", "/station/v1/jobs", OPERATOR_TOKEN)).status === 200 ? true : undefined),
      60_000,
    );
  }, 300_000);

  afterAll(async () => {
    if (agent && agent.exitCode === null) {
      const p = agent;
      const gone = new Promise((r) => p.once("exit", r));
      p.kill("SIGKILL");
      await gone;
    }
    for (const m of ourMounts()) spawn("umount", ["-l", m!]);
    for (const d of devices) detach(d);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("a pulled drive pauses, the agent stays up, and a re-plug completes it byte-exact", async () => {
    await plugNewJob("pulljob", "PULL-0001");
    await waitFor("progress past 25 %", async () =>
      (await progressOf("PULL-0001")) >= 30 * MiB ? true : undefined,
    );
    // The pull: the image leaves the watched place and its loop device goes.
    const out = join(root, "pulljob-out.img");
    renameSync(drives.pulljob!.image, out);
    detach(devices.at(-1)!);
    const pulled = await waitFor("the drive shown pulled", async () => {
      const d = await attached("PULL-0001");
      return d?.status === "pulled" ? d : undefined;
    });
    expect(pulled.message).toContain("pulled — plug it in again to resume");
    expect(agent!.exitCode).toBeNull();
    expect((await api("GET", "/station/v1/jobs", OPERATOR_TOKEN)).status).toBe(200);
    expect((await driveState("pulljob")).state).toBe("Transferring");
    // The old loop device is released once the agent let go of the drive.
    await waitFor(
      "the old loop device to go",
      async () => (existsSync(`/sys/block/${devices.at(-1)!.slice(5)}/loop/backing_file`) ? undefined : true),
      30_000,
    );

    renameSync(out, drives.pulljob!.image);
    devices.push(attach(drives.pulljob!.image));
    await waitFor(
      "the re-plugged drive to complete",
      async () => ((await driveState("pulljob"))?.state === "Completed" ? true : undefined),
      180_000,
    );
    expect(await driveState("pulljob")).toMatchObject({ state: "Completed", percentComplete: 100 });
    await byteExact("pulljob");
    expect(output).not.toMatch(/uncaught exception/i);
    // Every transfer promise has an owner: the process net (agent/process-net.ts) catches nothing.
    const netCatches = output.split("\n").filter((l) => l.includes("unhandled promise rejection"));
    expect(netCatches, "rejections the process net caught during the pull").toEqual([]);
  }, 400_000);

  it("SIGTERM mid-transfer exits 0 within 10 s leaving nothing behind; the restart completes the drive Completed", async () => {
    await plugNewJob("termjob", "TERM-0001");
    await waitFor("progress past 25 %", async () =>
      (await progressOf("TERM-0001")) >= 30 * MiB ? true : undefined,
    );
    const pid = agent!.pid!;
    const children = childrenOf(pid);
    expect(children.length).toBeGreaterThan(0); // the embedded Azurite
    expect(ourMounts().length).toBeGreaterThan(0);
    const p = agent!;
    const exited = new Promise<number | null>((r) => p.once("exit", (code) => r(code)));
    const t0 = Date.now();
    p.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    for (const c of children) expect(existsSync(`/proc/${c}`), `child ${c} left behind`).toBe(false);
    expect(ourMounts()).toEqual([]);

    startAgent();
    const finished = await waitFor(
      "the resumed import to finish",
      async () => {
        const line = output.split("\n").find((l) => l.includes('"drive import finished"'));
        return line ? (JSON.parse(line) as { status: string; bytesUploaded: number }) : undefined;
      },
      180_000,
    );
    expect(finished.status).toBe("Completed");
    expect(finished.bytesUploaded).toBeLessThan(120 * MiB); // it resumed; it did not start over
    expect(await driveState("termjob")).toMatchObject({ state: "Completed", percentComplete: 100 });
    await byteExact("termjob");
  }, 400_000);

  it("after kill -9 the embedded Azurite leaves by itself and the next start runs its own", async () => {
    const pid = agent!.pid!;
    const children = childrenOf(pid);
    expect(children.length).toBeGreaterThan(0);
    const p = agent!;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await exited;
    await waitFor(
      "the orphan to leave",
      async () => (children.every((c) => !existsSync(`/proc/${c}`)) ? true : undefined),
      15_000,
    );
    startAgent();
    await waitFor(
      "the agent API",
      async () => ((await api("GET", "/station/v1/jobs", OPERATOR_TOKEN)).status === 200 ? true : undefined),
      60_000,
    );
    const next = childrenOf(agent!.pid!);
    expect(next.length).toBeGreaterThan(0);
    expect(next.some((c) => children.includes(c))).toBe(false);
  }, 120_000);
});
