/**
 * A fleet on one machine for the staged fleet tests: one real PostgreSQL, one real Azurite, and
 * several agents (the real composition root, in-process), each with its own data directory, API
 * port and loop-image directory (its "bays"). A drive is plugged into a station by attaching a
 * loop device to an image in that station's directory.
 */
import { linkSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { DockedDrive } from "../../src/drives/door.js";
import type { JobSpec } from "../../src/lifecycle/machine.js";
import type { JobKey } from "../../src/lifecycle/model.js";
import { OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { ACCOUNT, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { returnAddress } from "../support/jobs.js";
import { startTestPostgres, type TestPostgres } from "../support/postgres.js";
import { attach, detach, loopDrives } from "./loop-images.js";

export const SUB = "sub-fleet";
export const RG = "rg";
export const jobKey = (name: string): JobKey => ({ subscriptionId: SUB, resourceGroup: RG, name });

export interface Station extends TestAgent {
  id: string;
  bays: string;
}

export interface Fleet {
  root: string;
  shelf: string;
  pg: TestPostgres;
  /** The fleet's database URL. */
  url: string;
  storage: TestAzurite;
  stations: Station[];
  /** Plugs a shelf image into a station (a hard link in its bays, then a loop device); returns the device. */
  plug(station: Station, image: string): string;
  pull(device: string): void;
  docked(station: Station, image: string): DockedDrive | undefined;
  until(station: Station, image: string, statuses: string[], timeoutMs?: number): Promise<DockedDrive>;
  createJob(
    name: string,
    drives: { driveId: string; manifestFile: string; manifestHash: string }[],
  ): Promise<void>;
  getJob(station: Station, name: string): Promise<GetJob>;
  stop(): Promise<void>;
}

export interface GetJob {
  properties: {
    state: string;
    percentComplete: number;
    driveList: { driveId: string; state: string; bytesSucceeded?: number; copyStatus?: string }[];
  };
}

export async function startFleet(
  ids: string[],
  transfer: (id: string) => Record<string, unknown>,
  options: { leaseSeconds?: number; timerSeconds?: number } = {},
): Promise<Fleet> {
  const root = mkdtempSync(join(tmpdir(), "staged-fleet-"));
  const shelf = join(root, "shelf");
  mkdirSync(shelf);
  const devices = new Map<string, string>();
  const pulled = join(root, "pulled");
  mkdirSync(pulled);
  const pg = await startTestPostgres();
  const storage = await startTestAzurite(join(root, "azurite"));
  const url = await pg.createDatabase("fleet");
  const stations: Station[] = [];
  for (const id of ids) {
    const dir = join(root, id);
    const bays = join(dir, "bays");
    mkdirSync(bays, { recursive: true });
    const agent = await startTestAgent(join(dir, "data"), {
      drives: loopDrives(bays, dir),
      storageEndpoint: storage.template,
      transfer: transfer(id),
      store: { kind: "postgres", url, poolSize: 6, connectTimeoutSeconds: 2 },
      station: { id, leaseSeconds: options.leaseSeconds ?? 6 },
      timers: { intervalSeconds: options.timerSeconds ?? 1 },
    });
    stations.push({ ...agent, id, bays });
  }
  const find = (station: Station, image: string) =>
    station.agent.dock!.list().find((d) => d.key.endsWith(`/${basename(image)}`));
  const fleet: Fleet = {
    root,
    shelf,
    pg,
    url,
    storage,
    stations,
    plug(station, image) {
      const link = join(station.bays, basename(image));
      try {
        linkSync(image, link);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const device = attach(link);
      devices.set(device, link);
      return device;
    },
    pull(device) {
      // Out of the station's bays (a rename: the loop device's backing file moves with it), as drives.test does.
      const link = devices.get(device);
      if (link) renameSync(link, join(pulled, `${Date.now()}-${basename(link)}`));
      detach(device); // cleared once the station unmounts it
      devices.delete(device);
    },
    docked: find,
    async until(station, image, statuses, timeoutMs = 120_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const d = find(station, image);
        if (d && statuses.includes(d.status)) return d;
        if (Date.now() > end)
          throw new Error(
            `${station.id}: drive ${basename(image)} still ${d?.status ?? "not seen"} after ${timeoutMs} ms (${d?.message ?? ""})`,
          );
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async createJob(name, drives) {
      const spec: JobSpec = {
        location: "West US",
        type: "Import",
        storageAccountId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
        returnAddress,
        driveList: drives,
      };
      const actor = { name: "test", type: "User" as const };
      const service = stations[0]!.agent.service;
      await service.create(jobKey(name), spec, actor);
      await service.update(
        jobKey(name),
        { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: `T-${name}` } },
        actor,
      );
    },
    async getJob(station, name) {
      const res = await fetch(
        `${station.agent.url}/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.ImportExport/jobs/${name}?api-version=2021-01-01`,
        { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } },
      );
      if (res.status !== 200)
        throw new Error(`${station.id}: Get Job ${name} -> ${res.status} ${await res.text()}`);
      return (await res.json()) as GetJob;
    },
    async stop() {
      for (const s of stations) await s.agent.stop().catch(() => undefined);
      for (const d of devices.keys()) detach(d);
      await storage.stop().catch(() => undefined);
      pg.destroy();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return fleet;
}

/** Bytes that landed in storage for these blobs: committed blobs whole, plus staged (uncommitted) blocks. */
export async function landedBytes(storage: TestAzurite, container: string, names: string[]): Promise<number> {
  let landed = 0;
  const c = storage.client.getContainerClient(container);
  for (const name of names) {
    const blob = c.getBlockBlobClient(name);
    if (await blob.exists()) {
      landed += (await blob.getProperties()).contentLength ?? 0;
      continue;
    }
    try {
      const list = await blob.getBlockList("uncommitted");
      for (const b of list.uncommittedBlocks ?? []) landed += b.size;
    } catch {
      // no blocks staged yet
    }
  }
  return landed;
}
