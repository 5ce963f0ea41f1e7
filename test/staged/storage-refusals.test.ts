/**
 * Staged: credentials the account refuses — a wrong account key, a read-only SAS, an expired SAS,
 * a SAS signed for another container, a SAS for a container that does not exist — each on its
 * own drive and job, plugged in together with a normal drive. Each refused drive ends
 * CompletedMoreInfo (BlobRequestForbidden) within a minute, never an unexpected error or stuck
 * Transferring; the normal drive completes; Get Job shows the status although the copy log could
 * not be written; the operator notice names drive, job, cause and next step; no secret anywhere.
 */
import { randomBytes } from "node:crypto";
import {
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Credential } from "../../src/formats/manifest.js";
import type { JobKey } from "../../src/lifecycle/model.js";
import { OPERATOR_TOKEN } from "../support/agent.js";
import { ACCOUNT, ACCOUNT_KEY } from "../support/azurite.js";
import { stagedDeadlines, stagedGate } from "./loop-images.js";
import { BLOCK, type DriveBlob, type DriveEntry, StationFixture } from "./station-fixture.js";

const RUN = stagedGate("storage refusals");
stagedDeadlines();
const f = new StationFixture("staged-refusals-", "sub-import");

describe.skipIf(!RUN)("staged: storage refusals", () => {
  // Many blobs per refused drive: it must end at the first refusal, not blob by blob.
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
  const secrets: string[] = [WRONG_KEY, ACCOUNT_KEY];
  const drives: Record<string, { image: string; entry: DriveEntry }> = {};
  const refused: Record<string, { credential: Credential; container: string; cause: RegExp }> = {};

  beforeAll(async () => {
    await f.startStorage();
    for (const c of ["sasro", "sasexp", "sasmine", "sasother"]) await f.storage.client.createContainer(c);
    const future = new Date(Date.now() + 3600_000);
    const tokens = {
      readOnly: sas("sasro", "rl", future),
      expired: sas("sasexp", "rwdl", new Date(Date.now() - 3600_000)),
      otherContainer: sas("sasother", "rwdl", future),
      missing: sas("sasmissing", "rwdl", future),
    };
    for (const t of Object.values(tokens)) secrets.push(new URLSearchParams(t).get("sig")!);
    const sasCred = (container: string, token: string): Credential => ({
      kind: "containerSas",
      container,
      token,
    });
    refused.wrongkey = {
      credential: { kind: "accountKey", key: WRONG_KEY },
      container: "keyed",
      cause: /refused the drive's account key \(403 \w+\)/,
    };
    refused.readonly = {
      credential: sasCred("sasro", tokens.readOnly),
      container: "sasro",
      cause: /SAS.*\(403 \w+\)/,
    };
    refused.expired = {
      credential: sasCred("sasexp", tokens.expired),
      container: "sasexp",
      cause: /SAS.*\(403 \w+\)/,
    };
    refused.othersas = {
      credential: sasCred("sasmine", tokens.otherContainer),
      container: "sasmine",
      cause: /SAS.*\(403 \w+\)/,
    };
    refused.missing = {
      credential: sasCred("sasmissing", tokens.missing),
      container: "sasmissing",
      cause: /404 ContainerNotFound/,
    };
    const keyed = { kind: "accountKey", key: ACCOUNT_KEY } as const;
    drives.normal = await f.manifestDrive("normal", "NORMAL-0001", keyed, normalBlobs);
    for (const [name, r] of Object.entries(refused))
      drives[name] = await f.manifestDrive(
        name,
        `${name.toUpperCase()}-0001`,
        r.credential,
        refusedBlobs(r.container),
      );
    await f.startAgent();
  });

  afterAll(() => f.stop());

  it("each refused drive ends CompletedMoreInfo within a minute; a normal drive at the same time completes", async () => {
    await f.createJob("normal", drives.normal!.entry);
    for (const name of Object.keys(refused)) await f.createJob(name, drives[name]!.entry);
    const before = new Set(await f.everything());
    const started: Record<string, number> = {};
    started.normal = f.plugIn(drives.normal!.image);
    for (const name of Object.keys(refused)) started[name] = f.plugIn(drives[name]!.image);

    const ended = await Promise.all(
      Object.keys(refused).map(async (name) => {
        const d = await f.until(drives[name]!.image, 90_000);
        return { name, d, seconds: (Date.now() - started[name]!) / 1000 };
      }),
    );
    const normal = await f.until(drives.normal!.image);
    expect(normal.status, normal.message).toBe("done");

    for (const { name, d, seconds } of ended) {
      expect(d.status, `${name}: ${d.message}`).toBe("failed");
      expect(d.message).not.toMatch(/unexpected error/);
      expect(seconds, name).toBeLessThan(60);
      const { body, text } = await f.getJob(name);
      expect(body.properties.driveList[0], name).toMatchObject({
        state: "CompletedMoreInfo",
        copyStatus: "BlobRequestForbidden",
      });
      expect(body.properties.driveList[0]!.errorLogUri, name).toBeUndefined(); // the log could not be written
      expect(body.properties.state).toBe("Packaging");
      for (const s of secrets) expect(text).not.toContain(s);
      console.log(`${name}: CompletedMoreInfo/BlobRequestForbidden ${seconds.toFixed(1)} s after plug-in`);
    }

    // The normal drive: every byte landed.
    for (const b of normalBlobs) {
      const name = b.blobPath.slice("normal/".length);
      expect((await f.download("normal", name)).equals(b.data), b.blobPath).toBe(true);
    }
    expect((await f.getJob("normal")).body.properties.driveList[0]).toMatchObject({
      state: "Completed",
      copyStatus: "Completed",
    });

    // Nothing written with a refused credential: no new container, no blob outside 'normal/'.
    const added = (await f.everything()).filter(
      (p) => !before.has(p) && !p.startsWith("normal/") && !p.startsWith("waimportexport/"),
    );
    expect(added).toEqual([]);

    // One notice per refused drive: drive, job, cause, next step; and no secret anywhere.
    const res = await fetch(`${f.station.agent.url}/station/v1/notices?limit=100`, {
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
    });
    const noticesText = await res.text();
    const notices = (
      JSON.parse(noticesText) as {
        value: { code: string; driveId?: string; message: string; job?: JobKey }[];
      }
    ).value;
    for (const [name, r] of Object.entries(refused)) {
      const driveId = `${name.toUpperCase()}-0001`;
      const n = notices.filter((x) => x.code === "StorageRefused" && x.driveId === driveId);
      expect(n, name).toHaveLength(1);
      expect(n[0]!.job?.name).toBe(name);
      expect(n[0]!.message).toContain(driveId);
      expect(n[0]!.message).toContain(`${f.sub}/${f.rg}/${name}`);
      expect(n[0]!.message).toMatch(r.cause);
      expect(n[0]!.message).toMatch(/ask the customer for a valid (account key|SAS)/i);
    }
    const dockText = JSON.stringify(f.station.agent.dock!.list());
    for (const s of secrets) {
      expect(noticesText).not.toContain(s);
      expect(f.station.logText()).not.toContain(s);
      expect(dockText).not.toContain(s);
    }
  });
});
