/**
 * Staged service events, with the agent as its own process and its embedded Azurite:
 * - a drive pulled mid-transfer (image moved out of the watched directory, loop device detached):
 *   the agent and API stay up, the dock shows it pulled; plugged in again it completes byte-exact;
 * - SIGTERM mid-transfer: exit 0 within the agent's own 20 s stop deadline (README), no child
 *   process and no mount left behind, and the restarted agent completes the drive `Completed`;
 * - kill -9: the embedded Azurite leaves by itself, and the next start runs its own.
 */
import { randomBytes } from "node:crypto";
import { existsSync, renameSync } from "node:fs";
import { join } from "node:path";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACCOUNT, ACCOUNT_KEY, freePort } from "../support/azurite.js";
import { type ChildStation, childrenOf, childStation } from "./child-agent.js";
import { attach, detach, preparedDrive, stagedDeadlines, stagedGate } from "./loop-images.js";

const RUN = stagedGate("service");
stagedDeadlines();
const MiB = 1024 * 1024;

let station: ChildStation;
let storagePort = 0;
const drives: Record<string, { files: Record<string, Buffer>; image: string }> = {};

const attached = async (driveId: string) =>
  ((await station.agent.api("GET", "/station/v1/attached")).json?.value ?? []).find(
    (d: { driveId?: string }) => d.driveId === driveId,
  );
const driveState = async (name: string) =>
  (await station.customer("GET", station.path(name))).json?.properties?.driveList?.[0];
const progressOf = async (driveId: string) => (await attached(driveId))?.progress?.bytesSucceeded ?? 0;

async function plugNewJob(name: string, driveId: string): Promise<void> {
  const d = drives[name]!;
  const entry = await preparedDrive({
    image: d.image,
    fs: "ext4",
    sizeMiB: 200,
    driveId,
    accountKey: ACCOUNT_KEY,
    workDir: station.root,
    sessions: [{ files: d.files, dest: `${name}/` }],
  });
  await station.ship(name, { jobType: "Import", driveList: [entry] }, `T-${name}`);
  d.image = station.plug(d.image, name);
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

describe.skipIf(!RUN)("staged: pulled drive, SIGTERM and kill -9 of the agent", () => {
  beforeAll(async () => {
    storagePort = await freePort();
    station = await childStation({
      prefix: "staged-service-",
      sub: "sub-service",
      storage: () => ({
        mode: "embedded",
        host: "127.0.0.1",
        port: storagePort,
        accounts: [{ name: ACCOUNT, key: ACCOUNT_KEY }],
      }),
    });
    for (const name of ["pulljob", "termjob"])
      drives[name] = {
        image: join(station.root, `${name}.img`),
        files: {
          "a.bin": randomBytes(40 * MiB),
          "b.bin": randomBytes(40 * MiB + 777),
          "c.bin": randomBytes(40 * MiB),
        },
      };
    station.agent.start();
    await station.agent.ready(60_000);
  });

  afterAll(async () => {
    await station?.cleanup();
  });

  it("a pulled drive pauses, the agent stays up, and a re-plug completes it byte-exact", async () => {
    const agent = station.agent;
    await plugNewJob("pulljob", "PULL-0001");
    await agent.waitFor("progress past 25 %", async () =>
      (await progressOf("PULL-0001")) >= 30 * MiB ? true : undefined,
    );
    // The pull: the image leaves the watched place and its loop device goes.
    const out = join(station.root, "pulljob-out.img");
    renameSync(drives.pulljob!.image, out);
    const device = agent.devices.at(-1)!;
    detach(device);
    const pulled = await agent.waitFor("the drive shown pulled", async () => {
      const d = await attached("PULL-0001");
      return d?.status === "pulled" ? d : undefined;
    });
    expect(pulled.message).toContain("pulled — plug it in again to resume");
    expect(agent.running).toBe(true);
    expect((await agent.api("GET", "/station/v1/jobs")).status).toBe(200);
    expect((await driveState("pulljob")).state).toBe("Transferring");
    // The old loop device is released once the agent let go of the drive.
    await agent.waitFor("the old loop device to go", async () =>
      existsSync(`/sys/block/${device.slice(5)}/loop/backing_file`) ? undefined : true,
    );

    renameSync(out, drives.pulljob!.image);
    agent.devices.push(attach(drives.pulljob!.image));
    await agent.waitFor(
      "the re-plugged drive to complete",
      async () => ((await driveState("pulljob"))?.state === "Completed" ? true : undefined),
      180_000,
    );
    expect(await driveState("pulljob")).toMatchObject({ state: "Completed", percentComplete: 100 });
    await byteExact("pulljob");
    expect(agent.output).not.toMatch(/uncaught exception/i);
    // Every transfer promise has an owner: the process net (agent/process-net.ts) catches nothing.
    const netCatches = agent.output.split("\n").filter((l) => l.includes("unhandled promise rejection"));
    expect(netCatches, "rejections the process net caught during the pull").toEqual([]);
  });

  it("SIGTERM mid-transfer exits 0 within the 20 s stop deadline leaving nothing behind; the restart completes the drive Completed", async () => {
    const agent = station.agent;
    await plugNewJob("termjob", "TERM-0001");
    await agent.waitFor("progress past 25 %", async () =>
      (await progressOf("TERM-0001")) >= 30 * MiB ? true : undefined,
    );
    const children = childrenOf(agent.pid);
    expect(children.length).toBeGreaterThan(0); // the embedded Azurite
    expect(agent.mounts().length).toBeGreaterThan(0);
    const exit = await agent.signal("SIGTERM", 30_000);
    // Exit code 0 is the clean stop; at its 20 s deadline (its own clock) the agent forces the
    // exit with code 1 and says so. The test's clock, on a loaded machine, decides nothing.
    expect(exit.code, agent.tail()).toBe(0);
    expect(agent.line("stopping")).toMatchObject({ deadlineMs: 20_000 });
    expect(agent.output).not.toContain("graceful stop did not finish in time");
    console.log(`SIGTERM to exit: ${exit.ms} ms`);
    for (const c of children) expect(existsSync(`/proc/${c}`), `child ${c} left behind`).toBe(false);
    expect(agent.mounts()).toEqual([]);

    agent.start();
    const finished = await agent.logged<{ status: string; bytesUploaded: number }>("drive import finished");
    expect(finished.status).toBe("Completed");
    expect(finished.bytesUploaded).toBeLessThan(120 * MiB); // it resumed; it did not start over
    expect(await driveState("termjob")).toMatchObject({ state: "Completed", percentComplete: 100 });
    await byteExact("termjob");
  });

  it("after kill -9 the embedded Azurite leaves by itself and the next start runs its own", async () => {
    const agent = station.agent;
    const children = childrenOf(agent.pid);
    expect(children.length).toBeGreaterThan(0);
    expect((await agent.kill()).signal).toBe("SIGKILL");
    await agent.waitFor("the orphan to leave", async () =>
      children.every((c) => !existsSync(`/proc/${c}`)) ? true : undefined,
    );
    await agent.restart();
    const next = childrenOf(agent.pid);
    expect(next.length).toBeGreaterThan(0);
    expect(next.some((c) => children.includes(c))).toBe(false);
  });
});
