/**
 * A staged station for the hostile-input suites: a real Azurite, the real agent watching a loop
 * image directory, and drives written like a customer's with any manifest at all (no
 * `station prepare`, which would refuse the hostile BlobPaths these suites need on a drive).
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DockedDrive } from "../../src/drives/door.js";
import type { Credential } from "../../src/formats/manifest.js";
import { ManifestWriter } from "../../src/formats/manifest-writer.js";
import type { JobSpec } from "../../src/lifecycle/machine.js";
import type { JobKey } from "../../src/lifecycle/model.js";
import { CUSTOMER_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { ACCOUNT, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, loopDrives, makeDriveImage } from "./loop-images.js";

export const BLOCK = 4 * 1024 * 1024;
export const md5Hex = (b: Buffer) => createHash("md5").update(b).digest("hex").toUpperCase();

export interface DriveBlob {
  blobPath: string;
  data: Buffer;
}

export interface DriveEntry {
  driveId: string;
  manifestFile: string;
  manifestHash: string;
}

export class StationFixture {
  root = "";
  images = "";
  station!: TestAgent;
  storage!: TestAzurite;
  private readonly devices: string[] = [];

  constructor(
    private readonly prefix: string,
    readonly sub: string,
    readonly rg = "rg",
  ) {}

  async startStorage(): Promise<void> {
    this.root = mkdtempSync(join(tmpdir(), this.prefix));
    this.images = join(this.root, "plugged");
    mkdirSync(this.images);
    mkdirSync(join(this.root, "shelf"));
    this.storage = await startTestAzurite(join(this.root, "azurite"));
  }

  async startAgent(): Promise<void> {
    this.station = await startTestAgent(join(this.root, "data"), {
      drives: loopDrives(this.images, this.root),
      storageEndpoint: this.storage.template,
      transfer: {
        concurrency: 4,
        blobConcurrency: 4,
        retry: { attempts: 12, baseMs: 250, maxMs: 2000 },
        outageRetrySeconds: 2,
      },
    });
  }

  async stop(): Promise<void> {
    await this.station?.agent.stop();
    for (const d of this.devices) detach(d);
    await this.storage?.stop();
    if (this.root) rmSync(this.root, { recursive: true, force: true });
  }

  key(name: string): JobKey {
    return { subscriptionId: this.sub, resourceGroup: this.rg, name };
  }

  /** A drive (files + DriveManifest.xml, 4 MiB blocks) on the shelf, with whatever BlobPaths it is given. */
  async manifestDrive(
    name: string,
    driveId: string,
    credential: Credential,
    blobs: DriveBlob[],
  ): Promise<{ image: string; entry: DriveEntry }> {
    const image = join(this.root, "shelf", `${name}.img`);
    let manifest = "";
    const w = new ManifestWriter(
      (c) => {
        manifest += c;
      },
      { driveId, kind: "import", credential },
    );
    w.blobList();
    for (const [i, b] of blobs.entries()) {
      const chunks = [];
      for (let off = 0; off < b.data.length; off += BLOCK) {
        const part = b.data.subarray(off, off + BLOCK);
        chunks.push({ offset: off, length: part.length, hash: md5Hex(part) });
      }
      w.blob({
        blobPath: b.blobPath,
        filePath: `\\files\\f${i}.bin`,
        length: b.data.length,
        kind: "block",
        chunks,
      });
    }
    w.end();
    await makeDriveImage(image, "ext4", 40, async (mnt) => {
      mkdirSync(join(mnt, "files"));
      for (const [i, b] of blobs.entries()) writeFileSync(join(mnt, "files", `f${i}.bin`), b.data);
      writeFileSync(join(mnt, "DriveManifest.xml"), manifest);
    });
    return {
      image,
      entry: { driveId, manifestFile: "\\DriveManifest.xml", manifestHash: md5Hex(Buffer.from(manifest)) },
    };
  }

  async createJob(name: string, drive: DriveEntry): Promise<void> {
    const spec: JobSpec = {
      location: "West US",
      type: "Import",
      storageAccountId: `/subscriptions/${this.sub}/resourceGroups/${this.rg}/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
      returnAddress,
      driveList: [drive],
      logLevel: "Verbose",
    };
    const actor = { name: "test", type: "User" as const };
    await this.station.agent.service.create(this.key(name), spec, actor);
    await this.station.agent.service.update(
      this.key(name),
      { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: `T-${name}` } },
      actor,
    );
  }

  /** Moves the image into the watched directory and attaches it; returns when (ms) it was plugged. */
  plugIn(image: string): number {
    const dest = join(this.images, image.split("/").pop()!);
    renameSync(image, dest);
    this.devices.push(attach(dest));
    return Date.now();
  }

  async until(image: string, timeoutMs = 120_000): Promise<DockedDrive> {
    const name = image.split("/").pop()!;
    const end = Date.now() + timeoutMs;
    for (;;) {
      const d = this.station.agent.dock!.list().find((x) => x.key.endsWith(`/${name}`));
      if (d && ["done", "failed", "error"].includes(d.status)) return d;
      if (Date.now() > end)
        throw new Error(
          `drive ${name}: still ${d?.status ?? "not seen"} after ${timeoutMs} ms (${d?.message ?? ""})`,
        );
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Get Job as the customer sees it: the raw text (for secret checks) and the parsed body. */
  async getJob(name: string) {
    const res = await fetch(
      `${this.station.agent.url}/subscriptions/${this.sub}/resourceGroups/${this.rg}/providers/Microsoft.ImportExport/jobs/${name}?api-version=2021-01-01`,
      { headers: { authorization: `Bearer ${CUSTOMER_TOKEN}` } },
    );
    const text = await res.text();
    return {
      text,
      body: JSON.parse(text) as { properties: { state: string; driveList: Record<string, unknown>[] } },
    };
  }

  /** Every container (`name/`) and every blob (`container/name`) of the account, sorted. */
  async everything(): Promise<string[]> {
    const out: string[] = [];
    for await (const c of this.storage.client.listContainers()) {
      out.push(`${c.name}/`);
      for await (const b of this.storage.client.getContainerClient(c.name).listBlobsFlat())
        out.push(`${c.name}/${b.name}`);
    }
    return out.sort();
  }

  download(container: string, name: string): Promise<Buffer> {
    return this.storage.client.getContainerClient(container).getBlobClient(name).downloadToBuffer();
  }

  async logBlob(uri: string): Promise<string> {
    const path = new URL(uri).pathname.split("/").slice(2); // /<account>/<container>/<blob…>
    return (await this.download(path[0]!, decodeURIComponent(path.slice(1).join("/")))).toString("utf8");
  }
}
