/**
 * Drives the API with the real Azure SDK client (@azure/arm-storageimportexport) over TLS, as a
 * customer's tooling would: create, get, list with paging, update, cancel, delete, keys.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JobResponse, StorageImportExport } from "@azure/arm-storageimportexport";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CUSTOMER_TOKEN,
  makeCert,
  OPERATOR_TOKEN,
  startTestAgent,
  stationLocation,
  type TestAgent,
} from "../support/agent.js";
import { armClient } from "../support/arm.js";

const SUB = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
const RG = "rg-import";

let dir: string;
let station: TestAgent;
let ca: Buffer;

function client(token: string, subscriptionId = SUB): StorageImportExport {
  // The station's self-signed certificate is trusted through a per-request agent.
  return armClient(station.agent.url, ca, token, subscriptionId);
}

const storageAccountId = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Storage/storageAccounts/custacct`;
const returnAddress = {
  recipientName: "Test",
  streetAddress1: "Street1",
  streetAddress2: "Street2",
  city: "Redmond",
  stateOrProvince: "wa",
  postalCode: "98007",
  countryOrRegion: "USA",
  phone: "4250000000",
  email: "Test@contoso.com",
};
const BITLOCKER = "238810-662376-448998-450120-652806-203390-606320-483076";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ds-arm-"));
  const tls = makeCert(dir);
  ca = readFileSync(tls.certFile);
  station = await startTestAgent(join(dir, "data"), { tls });
  expect(station.agent.url).toMatch(/^https:/);
});

afterAll(async () => {
  await station?.agent.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("the real ARM client against the station over TLS", () => {
  it("creates an import job (201) with every documented field, then replaces it while Creating (200)", async () => {
    const c = client(CUSTOMER_TOKEN);
    const body = {
      location: "West US",
      tags: { team: "ingest" },
      properties: {
        storageAccountId,
        jobType: "Import",
        returnAddress,
        returnShipping: { carrierName: "FedEx", carrierAccountNumber: "989ffff" },
        diagnosticsPath: "waimportexport",
        logLevel: "Verbose",
        backupDriveManifest: true,
        driveList: [
          {
            driveId: "9CA995BB",
            bitLockerKey: BITLOCKER,
            manifestFile: "\\DriveManifest.xml",
            manifestHash: "109b21108597ef36d5785f08303f3638",
            driveHeaderHash: "",
          },
        ],
      },
    };
    let statusCode = 0;
    const created = await c.jobs.create("myjob", RG, body, {
      onResponse: (r) => {
        statusCode = r.status;
      },
    });
    expect(statusCode).toBe(201);
    expect(created.id).toBe(
      `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.ImportExport/jobs/myjob`,
    );
    expect(created.name).toBe("myjob");
    expect(created.type).toBe("Microsoft.ImportExport/jobs");
    expect(created.location).toBe("West US");
    expect(created.tags).toEqual({ team: "ingest" });
    expect(created.identity?.type).toBe("None");
    expect(created.systemData?.createdBy).toBe("cust-bob");
    expect(created.systemData?.createdAt).toBeInstanceOf(Date);
    const p = created.properties!;
    expect(p.state).toBe("Creating");
    expect(p.jobType).toBe("Import");
    expect(p.storageAccountId).toBe(storageAccountId);
    expect(p.returnAddress).toEqual(returnAddress);
    expect(p.returnShipping).toEqual({ carrierName: "FedEx", carrierAccountNumber: "989ffff" });
    expect(p.shippingInformation?.recipientName).toBe(stationLocation.recipientName);
    expect(p.shippingInformation?.city).toBe(stationLocation.city);
    expect(p.diagnosticsPath).toBe("waimportexport");
    expect(p.logLevel).toBe("Verbose");
    expect(p.backupDriveManifest).toBe(true);
    expect(p.cancelRequested).toBe(false);
    expect(p.percentComplete).toBe(0);
    expect(p.provisioningState).toBe("Succeeded");
    expect(p.encryptionKey?.kekType).toBe("MicrosoftManaged");
    expect(p.driveList).toHaveLength(1);
    const d = p.driveList![0]!;
    expect(d).toMatchObject({
      driveId: "9CA995BB",
      manifestFile: "\\DriveManifest.xml",
      manifestHash: "109B21108597EF36D5785F08303F3638",
      driveHeaderHash: "",
      state: "Specified",
      percentComplete: 0,
      bytesSucceeded: 0,
    });
    expect(d.bitLockerKey).toBeUndefined();
    expect(d.copyStatus).toBeUndefined();

    const again = await c.jobs.create(
      "myjob",
      RG,
      { ...body, tags: { team: "ingest2" } },
      {
        onResponse: (r) => {
          statusCode = r.status;
        },
      },
    );
    expect(statusCode).toBe(200);
    expect(again.tags).toEqual({ team: "ingest2" });
  });

  it("creates an export job and reads its selection back", async () => {
    const c = client(CUSTOMER_TOKEN);
    const created = await c.jobs.create("myexport", RG, {
      location: "West US",
      properties: {
        storageAccountId,
        jobType: "Export",
        returnAddress,
        export: { blobPathPrefix: ["/"], blobPath: ["videos/story.mp4"] },
      },
    });
    expect(created.properties?.jobType).toBe("Export");
    expect(created.properties?.export).toEqual({ blobPathPrefix: ["/"], blobPath: ["videos/story.mp4"] });
    expect(created.properties?.driveList).toEqual([]);
    const got = await c.jobs.get("myexport", RG);
    expect(got.properties?.export?.blobPathPrefix).toEqual(["/"]);
  });

  it("gets a job, and a missing one is a 404 ErrorResponse", async () => {
    const c = client(CUSTOMER_TOKEN);
    const got = await c.jobs.get("myjob", RG);
    expect(got.properties?.driveList?.[0]?.driveId).toBe("9CA995BB");
    await expect(c.jobs.get("nope", RG)).rejects.toMatchObject({ statusCode: 404, code: "JobNotFound" });
  });

  it("lists by resource group and by subscription, following nextLink", async () => {
    const c = client(CUSTOMER_TOKEN);
    for (let i = 0; i < 5; i++) {
      await c.jobs.create(`page-${i}`, "rg-paging", {
        location: "West US",
        properties: { storageAccountId, jobType: "Export", export: { blobPathPrefix: ["/"] } },
      });
    }
    const pages: JobResponse[][] = [];
    for await (const page of c.jobs.listByResourceGroup("rg-paging", { top: 2 }).byPage()) pages.push(page);
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(
      pages
        .flat()
        .map((j) => j.name)
        .sort(),
    ).toEqual(["page-0", "page-1", "page-2", "page-3", "page-4"]);

    const all: string[] = [];
    for await (const j of c.jobs.listBySubscription({ top: 3 })) all.push(j.name!);
    expect(all.sort()).toEqual(["myexport", "myjob", "page-0", "page-1", "page-2", "page-3", "page-4"]);

    // An operator sees every subscription (this one is empty); the customer was not granted it.
    const other: string[] = [];
    for await (const j of client(
      OPERATOR_TOKEN,
      "00000000-0000-0000-0000-000000000000",
    ).jobs.listBySubscription())
      other.push(j.name!);
    expect(other).toEqual([]);
    await expect(
      client(CUSTOMER_TOKEN, "00000000-0000-0000-0000-000000000000").jobs.listBySubscription().next(),
    ).rejects.toMatchObject({ statusCode: 403, code: "AuthorizationFailed" });
  });

  it("refuses Shipping without deliveryPackage, accepts it with one", async () => {
    const c = client(CUSTOMER_TOKEN);
    await expect(c.jobs.update("myjob", RG, { state: "Shipping" })).rejects.toMatchObject({
      statusCode: 400,
      code: "ShippingInfoMissing",
    });
    expect((await c.jobs.get("myjob", RG)).properties?.state).toBe("Creating");
    const shipped = await c.jobs.update("myjob", RG, {
      state: "Shipping",
      deliveryPackage: {
        carrierName: "FedEx",
        trackingNumber: "123456789",
        driveCount: 1,
        shipDate: "2026-11-20",
      },
    });
    expect(shipped.properties?.state).toBe("Shipping");
    expect(shipped.properties?.deliveryPackage).toEqual({
      carrierName: "FedEx",
      trackingNumber: "123456789",
      driveCount: 1,
      shipDate: "2026-11-20",
    });
  });

  it("lists BitLocker keys, which Get never shows", async () => {
    const c = client(CUSTOMER_TOKEN);
    const keys = [];
    for await (const k of c.bitLockerKeys.list("myjob", RG)) keys.push(k);
    expect(keys).toEqual([{ driveId: "9CA995BB", bitLockerKey: BITLOCKER }]);
    expect(JSON.stringify(await c.jobs.get("myjob", RG))).not.toContain(BITLOCKER);
  });

  it("cancels, refuses to delete a Shipping job, deletes a Completed one", async () => {
    const c = client(CUSTOMER_TOKEN);
    await expect(c.jobs.delete("myjob", RG)).rejects.toMatchObject({
      statusCode: 409,
      code: "InvalidJobState",
    });
    const cancelled = await c.jobs.update("myjob", RG, { cancelRequested: true });
    expect(cancelled.properties?.cancelRequested).toBe(true);
    expect(cancelled.properties?.state).toBe("Shipping");

    // A cancelled export job that never shipped ends Completed at once and can be deleted.
    const done = await c.jobs.update("myexport", RG, { cancelRequested: true });
    expect(done.properties?.state).toBe("Completed");
    await c.jobs.delete("myexport", RG);
    await expect(c.jobs.get("myexport", RG)).rejects.toMatchObject({ statusCode: 404 });
  });

  it("serves locations and operations", async () => {
    const c = client(CUSTOMER_TOKEN);
    const locations = [];
    for await (const l of c.locations.list()) locations.push(l);
    expect(locations.map((l) => l.name)).toEqual(["West US"]);
    expect(locations[0]!.supportedCarriers).toEqual(["FedEx", "DHL"]);
    expect((await c.locations.get("westus")).id).toBe("/providers/Microsoft.ImportExport/locations/westus");
    expect((await c.locations.get("West US")).name).toBe("West US");
    const ops = [];
    for await (const o of c.operations.list()) ops.push(o.name);
    expect(ops).toContain("Microsoft.ImportExport/jobs/write");
    expect(ops).toHaveLength(6);
  });

  it("rejects a wrong token and never logs tokens or BitLocker keys", async () => {
    await expect(client("not-a-valid-token-at-all").jobs.get("myjob", RG)).rejects.toMatchObject({
      statusCode: 401,
      code: "AuthenticationFailed",
    });
    const log = station.logText();
    expect(log).toContain("api request");
    for (const secret of [CUSTOMER_TOKEN, OPERATOR_TOKEN, BITLOCKER, "not-a-valid-token-at-all"])
      expect(log).not.toContain(secret);
  });
});
