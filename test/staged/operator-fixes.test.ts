/**
 * Staged: an operator's or customer's fix takes effect on a drive already plugged in (no
 * re-plug), and a drive already imported is recognised by its manifest even without a serial.
 * Real loop images, real mounts, the agent's API.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DockedDrive } from "../../src/drives/door.js";
import type { JobKey } from "../../src/lifecycle/model.js";
import { prepareDrive } from "../../src/prepare/prepare-drive.js";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, loopDrives, makeDriveImage, stagedDeadlines, stagedGate } from "./loop-images.js";

const RUN = stagedGate("operator fixes");
stagedDeadlines();
const KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const SUB = "sub-1";
const RG = "rg-fix";
const key = (name: string): JobKey => ({ subscriptionId: SUB, resourceGroup: RG, name });

let root: string;
let station: TestAgent;
const devices: string[] = [];
type Entry = { driveId: string; manifestFile: string; manifestHash: string };

async function driveImage(
  name: string,
  driveId: string,
  serial?: string,
): Promise<{ image: string; entry: Entry }> {
  const image = join(root, "shelf", `${name}.img`);
  let entry: Entry | undefined;
  await makeDriveImage(image, "ext4", 24, async (mnt) => {
    const src = join(root, "src", name);
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, "a.txt"), `drive ${name}\n`);
    const r = await prepareDrive({
      driveRoot: mnt,
      source: src,
      sessionId: "session1",
      destination: "data/",
      driveId,
      credential: { kind: "accountKey", key: KEY },
    });
    entry = { driveId, manifestFile: r.manifestFile, manifestHash: r.manifestHash };
  });
  if (serial) writeFileSync(`${image}.serial`, serial);
  return { image, entry: entry! };
}

function plugIn(image: string): void {
  const dest = join(root, "plugged", image.split("/").pop()!);
  renameSync(image, dest);
  try {
    renameSync(`${image}.serial`, `${dest}.serial`);
  } catch {
    // no serial sidecar
  }
  devices.push(attach(dest));
}

async function dockedAs(image: string, status: string, timeoutMs = 20_000): Promise<DockedDrive> {
  const name = image.split("/").pop()!;
  const until = Date.now() + timeoutMs;
  for (;;) {
    await station.agent.dock!.settled();
    const d = station.agent.dock!.list().find((x) => x.key.endsWith(`/${name}`));
    if (d?.status === status) return d;
    if (Date.now() > until)
      throw new Error(`drive ${name} is ${d?.status ?? "not seen"}, not ${status}: ${d?.message}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function api(method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(`${station.agent.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
const arm = (name: string) =>
  `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.ImportExport/jobs/${name}?api-version=2021-01-01`;
const putJob = (name: string, drives: Entry[]) =>
  api("PUT", arm(name), CUSTOMER_TOKEN, {
    properties: {
      storageAccountId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/acct`,
      jobType: "Import",
      returnAddress,
      driveList: drives,
    },
  });
const ship = (name: string) =>
  api("PATCH", arm(name), CUSTOMER_TOKEN, {
    properties: { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: `T-${name}` } },
  });
const notices = async () =>
  (await api("GET", "/station/v1/notices?limit=1000", OPERATOR_TOKEN)).body.value as {
    code: string;
    message: string;
  }[];

describe.skipIf(!RUN)("staged: operator fixes reach plugged-in drives", () => {
  const img: Record<string, { image: string; entry: Entry }> = {};

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-fixes-"));
    for (const d of ["shelf", "plugged", "src"]) mkdirSync(join(root, d));
    img.early = await driveImage("early", "EARLY-0001", "EARLY-0001");
    img.held = await driveImage("held", "HELD-0002", "HELD-0002");
    img.done = await driveImage("done", "DONE-NOSERIAL");
    // transfers off: a ready drive stays ready, no storage needed
    station = await startTestAgent(join(root, "data"), {
      drives: loopDrives(join(root, "plugged"), root),
      transfer: { enabled: false },
    });
  });

  afterAll(async () => {
    await station?.agent.stop();
    for (const d of devices) detach(d);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("a drive plugged in before its job existed becomes ready once the customer creates and ships the job", async () => {
    plugIn(img.early!.image);
    const before = await dockedAs(img.early!.image, "unknown");
    expect(before.message).toContain("'station check-in'");
    expect((await putJob("job-early", [img.early!.entry])).status).toBe(201);
    expect((await ship("job-early")).status).toBe(200);
    const after = await dockedAs(img.early!.image, "ready");
    expect(after).toMatchObject({ driveId: "EARLY-0001", job: key("job-early") });
    expect((await station.agent.service.get(key("job-early"))).state).toBe("Received");
    // one UnknownDrive notice for the plugging (not one per look)
    expect(
      (await notices()).filter((n) => n.code === "UnknownDrive" && n.message.includes("EARLY")),
    ).toHaveLength(1);
  });

  it("a held drive is processed once its job ships, without a re-plug", async () => {
    expect((await putJob("job-held", [img.held!.entry])).status).toBe(201);
    plugIn(img.held!.image);
    const held = await dockedAs(img.held!.image, "held");
    expect(held.message).toContain("Creating, not Shipping");
    // an unrelated operator action does not touch it (its job still does not accept drives)
    expect((await putJob("job-other", [{ ...img.held!.entry, driveId: "OTHER-0001" }])).status).toBe(201);
    expect((await station.agent.service.get(key("job-held"))).heldPackages).toHaveLength(1);
    expect((await ship("job-held")).status).toBe(200);
    const ready = await dockedAs(img.held!.image, "ready");
    expect(ready.driveId).toBe("HELD-0002");
    expect((await station.agent.service.get(key("job-held"))).drives[0]!.state).toBe("Received");
  });

  it("a drive without a serial whose import completed is recognised by its manifest, not unknown", async () => {
    expect((await putJob("job-done", [img.done!.entry])).status).toBe(201);
    expect((await ship("job-done")).status).toBe(200);
    const k = key("job-done");
    const { service } = station.agent;
    await service.station(k, { type: "DriveArrived", driveId: "DONE-NOSERIAL" });
    await service.station(k, { type: "TransferStarted", driveId: "DONE-NOSERIAL" });
    await service.station(k, {
      type: "TransferFinished",
      driveId: "DONE-NOSERIAL",
      outcome: "Completed",
      copyStatus: "Completed",
      bytesSucceeded: 100,
    });
    const before = (await notices()).length;
    plugIn(img.done!.image);
    const d = await dockedAs(img.done!.image, "processed");
    expect(d.serial).toBeUndefined();
    expect(d).toMatchObject({ driveId: "DONE-NOSERIAL", job: k });
    expect(d.message).toContain("already processed");
    expect((await notices()).slice(0, (await notices()).length - before).map((n) => n.code)).not.toContain(
      "UnknownDrive",
    );
  });
});
