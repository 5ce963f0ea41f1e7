/**
 * Staged, hostile storage input: real loop-image drives, the real agent, a real Azurite.
 * 1. Blob paths that try to leave their container (dot segments, encoded dots, backslashes,
 *    empty segments, look-alike dots, invalid containers): nothing lands outside the named
 *    container, each gets its copy-log status, the good blobs on the same drive land byte-exact.
 * 2. Credentials the account refuses (wrong key, read-only / expired / other container's SAS,
 *    a SAS for a missing container): each drive ends CompletedMoreInfo (BlobRequestForbidden)
 *    within a minute, while a normal drive imported at the same time completes; the operator
 *    notice names drive, job, cause and next step, and no secret appears anywhere.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DockedDrive } from "../../src/drives/door.js";
import { readDriveLog } from "../../src/formats/drive-log.js";
import type { Credential } from "../../src/formats/manifest.js";
import { ManifestWriter } from "../../src/formats/manifest-writer.js";
import type { JobSpec } from "../../src/lifecycle/machine.js";
import type { JobKey } from "../../src/lifecycle/model.js";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY, startTestAzurite, type TestAzurite } from "../support/azurite.js";
import { returnAddress } from "../support/jobs.js";
import { attach, detach, loopDrives, makeDriveImage, stagedGate } from "./loop-images.js";

const RUN = stagedGate("hostile storage input");
const SUB = "sub-hostile";
const RG = "rg";
const key = (name: string): JobKey => ({ subscriptionId: SUB, resourceGroup: RG, name });
const actor = { name: "test", type: "User" as const };
const BLOCK = 4 * 1024 * 1024;
const md5Hex = (b: Buffer) => createHash("md5").update(b).digest("hex").toUpperCase();

let root: string;
let images: string;
let station: TestAgent;
let storage: TestAzurite;
const devices: string[] = [];

interface DriveBlob {
  blobPath: string;
  data: Buffer;
}

/** A drive written like a customer's (files + DriveManifest.xml), with whatever BlobPaths it is given. */
async function manifestDrive(name: string, driveId: string, credential: Credential, blobs: DriveBlob[]) {
  const image = join(root, "shelf", `${name}.img`);
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
    for (let off = 0; off < b.data.length || (off === 0 && b.data.length === 0); off += BLOCK) {
      const part = b.data.subarray(off, off + BLOCK);
      chunks.push({ offset: off, length: part.length, hash: md5Hex(part) });
      if (b.data.length === 0) break;
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

async function createJob(
  name: string,
  drive: { driveId: string; manifestFile: string; manifestHash: string },
) {
  const spec: JobSpec = {
    location: "West US",
    type: "Import",
    storageAccountId: `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/${ACCOUNT}`,
    returnAddress,
    driveList: [drive],
    logLevel: "Verbose",
  };
  await station.agent.service.create(key(name), spec, actor);
  await station.agent.service.update(
    key(name),
    { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: `T-${name}` } },
    actor,
  );
}

function plugIn(image: string): number {
  const dest = join(images, image.split("/").pop()!);
  renameSync(image, dest);
  devices.push(attach(dest));
  return Date.now();
}

async function until(image: string, timeoutMs = 120_000): Promise<DockedDrive> {
  const name = image.split("/").pop()!;
  const end = Date.now() + timeoutMs;
  for (;;) {
    const d = station.agent.dock!.list().find((x) => x.key.endsWith(`/${name}`));
    if (d && ["done", "failed", "error"].includes(d.status)) return d;
    if (Date.now() > end)
      throw new Error(
        `drive ${name}: still ${d?.status ?? "not seen"} after ${timeoutMs} ms (${d?.message ?? ""})`,
      );
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function getJob(name: string) {
  const res = await fetch(
    `${station.agent.url}/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.ImportExport/jobs/${name}?api-version=2021-01-01`,
    { headers: { authorization: `Bearer ${CUSTOMER_TOKEN}` } },
  );
  return {
    text: await res.clone().text(),
    body: (await res.json()) as { properties: { state: string; driveList: Record<string, unknown>[] } },
  };
}

/** Every container and blob in the account, as `container/name`. */
async function everything(): Promise<string[]> {
  const out: string[] = [];
  for await (const c of storage.client.listContainers()) {
    for await (const b of storage.client.getContainerClient(c.name).listBlobsFlat())
      out.push(`${c.name}/${b.name}`);
    out.push(`${c.name}/`);
  }
  return out.sort();
}

async function download(container: string, name: string): Promise<Buffer> {
  return storage.client.getContainerClient(container).getBlobClient(name).downloadToBuffer();
}

async function logBlob(uri: string): Promise<string> {
  const path = new URL(uri).pathname.split("/").slice(2);
  return (await download(path[0]!, decodeURIComponent(path.slice(1).join("/")))).toString("utf8");
}

describe.skipIf(!RUN)("staged: hostile storage input", () => {
  const good: DriveBlob[] = [
    { blobPath: "mycontainer/good.txt", data: Buffer.from("good\n") },
    { blobPath: "mycontainer/dir/naïve 日本.txt", data: Buffer.from("unicode\n") },
    { blobPath: "mycontainer/caf\u00e9.txt", data: Buffer.from("NFC\n") },
    { blobPath: "mycontainer/cafe\u0301.txt", data: Buffer.from("NFD\n") },
    { blobPath: "mycontainer/q?x#y&z=1+2;'(!)*.txt", data: Buffer.from("reserved characters\n") },
    { blobPath: "mycontainer/.hidden", data: Buffer.from("leading dot\n") },
    { blobPath: "mycontainer/a..b/..c", data: Buffer.from("dots inside segments\n") },
    { blobPath: "mycontainer/multi-block.bin", data: randomBytes(2 * BLOCK + 123) },
  ];
  // Each hostile path, and what it would become if any layer normalised it.
  const hostile: DriveBlob[] = [
    "mycontainer/../other-container/dot-dot", // → other-container/dot-dot
    "mycontainer/a/../../other-container/deep", // → other-container/deep
    "mycontainer/./dot", // → mycontainer/dot
    "mycontainer/%2e%2e/other-container/encoded", // → other-container/encoded (a decoding layer)
    "mycontainer/%2E%2E%2Fother-container%2Fencoded-slash",
    "mycontainer/..\\other-container\\backslash", // WHATWG URLs read '\' as '/'
    "mycontainer/a//empty-segment", // → mycontainer/a/empty-segment
    "mycontainer/trailing-slash/",
    "mycontainer/trailing-dot.", // the service drops the dot
    "mycontainer/\uFF0E\uFF0E/other-container/fullwidth", // NFKC folds to '..'
    "mycontainer/tab\tname", // control character
    "Other-Container/upper-case", // invalid container name
    "my--container/double-hyphen",
    "$logs/system-container",
    "$root/a/b",
  ].map((blobPath, i) => ({ blobPath, data: Buffer.from(`hostile ${i}\n`) }));

  // A drive with many blobs per refused credential: it must end fast, not blob by blob.
  const refusedBlobs = (container: string): DriveBlob[] => [
    { blobPath: `${container}/big.bin`, data: randomBytes(3 * BLOCK) },
    ...Array.from({ length: 60 }, (_, i) => ({
      blobPath: `${container}/small-${i}.txt`,
      data: Buffer.from(`small ${i}\n`),
    })),
  ];
  const normalBlobs: DriveBlob[] = [
    { blobPath: "normal/big.bin", data: randomBytes(5 * BLOCK + 7) },
    ...Array.from({ length: 20 }, (_, i) => ({
      blobPath: `normal/small-${i}.txt`,
      data: Buffer.from(`normal ${i}\n`),
    })),
  ];
  const WRONG_KEY = Buffer.from("this-is-not-the-account-key-of-stationacct").toString("base64");
  const sas = (container: string, permissions: string, expiresOn: Date) =>
    generateBlobSASQueryParameters(
      {
        containerName: container,
        permissions: ContainerSASPermissions.parse(permissions),
        expiresOn,
        version: "2021-08-06",
      },
      new StorageSharedKeyCredential(ACCOUNT, ACCOUNT_KEY),
    ).toString();
  const future = new Date(Date.now() + 3600_000);
  const secrets: string[] = [WRONG_KEY, ACCOUNT_KEY];
  const drives: Record<
    string,
    { image: string; entry: { driveId: string; manifestFile: string; manifestHash: string } }
  > = {};
  const refused: Record<string, { credential: Credential; container: string; cause: RegExp }> = {};

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "staged-hostile-"));
    images = join(root, "plugged");
    mkdirSync(images);
    mkdirSync(join(root, "shelf"));
    storage = await startTestAzurite(join(root, "azurite"));
    for (const c of ["sasro", "sasexp", "sasmine", "sasother"]) await storage.client.createContainer(c);

    const tokens = {
      readOnly: sas("sasro", "rl", future),
      expired: sas("sasexp", "rwdl", new Date(Date.now() - 3600_000)),
      otherContainer: sas("sasother", "rwdl", future),
      missing: sas("sasmissing", "rwdl", future),
    };
    for (const t of Object.values(tokens)) secrets.push(new URLSearchParams(t).get("sig")!);
    refused.wrongkey = {
      credential: { kind: "accountKey", key: WRONG_KEY },
      container: "keyed",
      cause: /account key/,
    };
    refused.readonly = {
      credential: { kind: "containerSas", container: "sasro", token: tokens.readOnly },
      container: "sasro",
      cause: /SAS/,
    };
    refused.expired = {
      credential: { kind: "containerSas", container: "sasexp", token: tokens.expired },
      container: "sasexp",
      cause: /SAS/,
    };
    refused.othersas = {
      credential: { kind: "containerSas", container: "sasmine", token: tokens.otherContainer },
      container: "sasmine",
      cause: /SAS/,
    };
    refused.missing = {
      credential: { kind: "containerSas", container: "sasmissing", token: tokens.missing },
      container: "sasmissing",
      cause: /ContainerNotFound/,
    };

    drives.hostile = await manifestDrive(
      "hostile",
      "HOSTILE-0001",
      { kind: "accountKey", key: ACCOUNT_KEY },
      [...good.slice(0, 4), ...hostile, ...good.slice(4)],
    );
    drives.normal = await manifestDrive(
      "normal",
      "NORMAL-0001",
      { kind: "accountKey", key: ACCOUNT_KEY },
      normalBlobs,
    );
    for (const [name, r] of Object.entries(refused))
      drives[name] = await manifestDrive(
        name,
        `${name.toUpperCase()}-0001`,
        r.credential,
        refusedBlobs(r.container),
      );

    station = await startTestAgent(join(root, "data"), {
      drives: loopDrives(images, root),
      storageEndpoint: storage.template,
      transfer: {
        concurrency: 4,
        blobConcurrency: 4,
        retry: { attempts: 12, baseMs: 250, maxMs: 2000 },
        outageRetrySeconds: 2,
      },
    });
  }, 300_000);

  afterAll(async () => {
    await station?.agent.stop();
    for (const d of devices) detach(d);
    await storage?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("hostile blob paths: nothing outside the named container, each refused in the copy log, the good blobs byte-exact", async () => {
    await createJob("hostile", drives.hostile!.entry);
    plugIn(drives.hostile!.image);
    const d = await until(drives.hostile!.image);
    expect(d.status, d.message).toBe("done");

    // Every container and blob of the account: exactly the good blobs and the copy logs.
    const all = await everything();
    const logs = all.filter((p) => p.startsWith("waimportexport/"));
    expect(
      all.filter((p) => !p.startsWith("waimportexport/") && !/^sas(ro|exp|mine|other)\/$/.test(p)),
    ).toEqual(["mycontainer/", ...good.map((b) => b.blobPath)].sort());
    expect(logs.filter((p) => p !== "waimportexport/")).toHaveLength(2); // error + verbose log
    for (const b of good)
      expect(
        (await download("mycontainer", b.blobPath.slice("mycontainer/".length))).equals(b.data),
        b.blobPath,
      ).toBe(true);
    // NFC and NFD spellings are two blobs, each under exactly its own name.
    expect((await download("mycontainer", "caf\u00e9.txt")).toString()).toBe("NFC\n");
    expect((await download("mycontainer", "cafe\u0301.txt")).toString()).toBe("NFD\n");

    const { body } = await getJob("hostile");
    const drive = body.properties.driveList[0] as {
      state: string;
      copyStatus: string;
      verboseLogUri: string;
      errorLogUri: string;
    };
    expect(drive).toMatchObject({ state: "CompletedMoreInfo", copyStatus: "CompletedWithErrors" });
    const verbose = await readDriveLog(await logBlob(drive.verboseLogUri));
    const status = new Map(verbose.blobs.map((b) => [b.blobPath, b.status]));
    for (const b of hostile) expect(status.get(b.blobPath), b.blobPath).toBe("Failed");
    for (const b of good) expect(status.get(b.blobPath), b.blobPath).toBe("Completed");
    const errorLog = await readDriveLog(await logBlob(drive.errorLogUri));
    expect(errorLog.blobs.map((b) => b.blobPath).sort()).toEqual(hostile.map((b) => b.blobPath).sort());
    // The operator's log says why each was refused.
    expect(station.logText()).toMatch(/'\.\.' path segment/);
    expect(station.logText()).toMatch(/backslash/);
  }, 180_000);

  it("refused credentials end their drives CompletedMoreInfo within a minute; a normal drive at the same time completes", async () => {
    await createJob("normal", drives.normal!.entry);
    for (const name of Object.keys(refused)) await createJob(name, drives[name]!.entry);
    const before = new Set(await everything());
    const started: Record<string, number> = {};
    started.normal = plugIn(drives.normal!.image);
    for (const name of Object.keys(refused)) started[name] = plugIn(drives[name]!.image);

    const ended = await Promise.all(
      Object.keys(refused).map(async (name) => {
        const d = await until(drives[name]!.image, 90_000);
        return { name, d, seconds: (Date.now() - started[name]!) / 1000 };
      }),
    );
    const normal = await until(drives.normal!.image);
    expect(normal.status, normal.message).toBe("done");

    for (const { name, d, seconds } of ended) {
      expect(d.status, `${name}: ${d.message}`).toBe("failed");
      expect(d.message).not.toMatch(/unexpected error/);
      expect(seconds, name).toBeLessThan(60);
      const { body, text } = await getJob(name);
      expect(body.properties.driveList[0], name).toMatchObject({
        state: "CompletedMoreInfo",
        copyStatus: "BlobRequestForbidden",
      });
      expect(body.properties.state).toBe("Packaging");
      for (const s of secrets) expect(text).not.toContain(s);
      console.log(`${name}: ended CompletedMoreInfo/BlobRequestForbidden in ${seconds.toFixed(1)} s`);
    }

    // The normal drive: every byte landed.
    for (const b of normalBlobs) {
      const [c, ...rest] = b.blobPath.split("/");
      expect((await download(c!, rest.join("/"))).equals(b.data), b.blobPath).toBe(true);
    }
    expect((await getJob("normal")).body.properties.driveList[0]).toMatchObject({
      state: "Completed",
      copyStatus: "Completed",
    });

    // Nothing written with a refused credential: no new container, no new blob outside 'normal'.
    const added = (await everything()).filter(
      (p) => !before.has(p) && !p.startsWith("normal/") && !p.startsWith("waimportexport/"),
    );
    expect(added).toEqual([]);

    // The operator notice for each: drive, job, cause, next step; no secret.
    const res = await fetch(`${station.agent.url}/station/v1/notices?limit=100`, {
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
    });
    const noticesText = await res.text();
    const notices = (
      JSON.parse(noticesText) as {
        value: { code: string; driveId?: string; message: string; job?: JobKey }[];
      }
    ).value;
    for (const [name, r] of Object.entries(refused)) {
      const n = notices.find(
        (x) => x.code === "StorageRefused" && x.driveId === `${name.toUpperCase()}-0001`,
      );
      expect(n, name).toBeDefined();
      expect(n!.job?.name).toBe(name);
      expect(n!.message).toContain(`${name.toUpperCase()}-0001`);
      expect(n!.message).toContain(`${SUB}/${RG}/${name}`);
      expect(n!.message).toMatch(r.cause);
      expect(n!.message).toMatch(/ask the customer for a valid (key|SAS)/i);
    }
    for (const s of secrets) {
      expect(noticesText).not.toContain(s);
      expect(station.logText()).not.toContain(s);
      for (const d of station.agent.dock!.list()) expect(d.message ?? "").not.toContain(s);
    }
  });
});
