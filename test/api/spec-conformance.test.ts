/**
 * Every operation of each API version the station serves, as the official specification defines it
 * (test/support/arm-spec.ts): the request bodies the spec allows are accepted, including the
 * defaults SDKs serialize (`cancelRequested: false`, `state`, drive `state`, `backupDriveManifest:
 * false`), empty strings and nulls for optional fields; every answer, errors included, validates
 * against that version's response definitions with no property the spec does not name.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { SPEC_OPERATIONS, SPEC_VERSIONS, type SpecOperation, specValidators } from "../support/arm-spec.js";
import { useTempDir } from "../support/tmp.js";

const tempDir = useTempDir();
const SUB = "sub-1";
const BITLOCKER_A = "238810-662376-448998-450120-652806-203390-606320-483076";
const BITLOCKER_B = "111111-222222-333333-444444-555555-666666-777777-888888";
const returnAddress = {
  recipientName: "Test",
  streetAddress1: "Street1",
  streetAddress2: "street2",
  city: "Redmond",
  stateOrProvince: "wa",
  postalCode: "98007",
  countryOrRegion: "USA",
  phone: "4250000000",
  email: "Test@contoso.com",
};
const returnShipping = { carrierName: "FedEx", carrierAccountNumber: "989ffff" };
const deliveryPackage = {
  carrierName: "FedEx",
  trackingNumber: "123456789",
  driveCount: 2,
  shipDate: "8/11/2017 9:05:00 PM",
};

let station: TestAgent;
beforeAll(async () => {
  station = await startTestAgent(join(tempDir(), "data"));
});
afterAll(async () => {
  await station?.agent.stop();
});

/** A response body: validated against the spec before any field is read. */
// biome-ignore lint/suspicious/noExplicitAny: wire JSON, checked by the spec validators
type Wire = any;

async function call(method: string, path: string, body?: unknown, token = CUSTOMER_TOKEN) {
  const res = await fetch(path.startsWith("http") ? path : `${station.agent.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, text, json: text ? (JSON.parse(text) as Wire) : undefined };
}

describe.each(SPEC_VERSIONS)("api-version %s", (version) => {
  const spec = specValidators(version);
  const rg = `rg-${version}`;
  const storageAccountId = `/subscriptions/${SUB}/resourceGroups/${rg}/providers/Microsoft.Storage/storageAccounts/acct`;
  const jobsPath = `/subscriptions/${SUB}/resourceGroups/${rg}/providers/Microsoft.ImportExport/jobs`;
  const q = `api-version=${version}`;
  const jobUrl = (name: string, suffix = "") => `${jobsPath}/${name}${suffix}?${q}`;

  /** Calls an operation and checks the status and the body against the version's definitions. */
  async function op(name: SpecOperation, url: string, status: number, body?: unknown) {
    const o = SPEC_OPERATIONS[name];
    if ("body" in o && body !== undefined) expect(spec.request(o.body, body)).toBe("");
    const res = await call(o.method, url, body);
    expect(res.status, `${name}: ${res.text}`).toBe(status);
    const definition = (o.ok as Record<number, string | null>)[status];
    if (definition === null) expect(res.text).toBe("");
    else expect(spec.response(definition!, res.json)).toBe("");
    return res.json!;
  }

  /** What the Python SDK (and the CLI, generated alike) serializes for a create: its model defaults included. */
  const sdkImportBody = () => ({
    location: "West US",
    tags: {},
    properties: {
      storageAccountId,
      jobType: "Import",
      returnAddress,
      returnShipping,
      diagnosticsPath: "waimportexport",
      logLevel: "Verbose",
      backupDriveManifest: false,
      state: "Creating",
      cancelRequested: false,
      driveList: [
        {
          driveId: "9CA995BB",
          bitLockerKey: BITLOCKER_A,
          manifestFile: "\\DriveManifest.xml",
          manifestHash: "109B21108597EF36D5785F08303F3638",
          driveHeaderHash: "",
          state: "Specified",
        },
        {
          driveId: "9CA995BC",
          bitLockerKey: BITLOCKER_B,
          manifestFile: "\\DriveManifest.xml",
          manifestHash: "209B21108597EF36D5785F08303F3638",
          state: "Specified",
        },
      ],
      encryptionKey: { kekType: "MicrosoftManaged" },
    },
  });

  it("Operations_List answers Azure's operations with Azure's display texts", async () => {
    const body = await op("Operations_List", `/providers/Microsoft.ImportExport/operations?${q}`, 200);
    const byName = Object.fromEntries(body.value.map((o: Wire) => [o.name, o.display]));
    expect(Object.keys(byName)).toEqual([
      "Microsoft.ImportExport/locations/read",
      "Microsoft.ImportExport/jobs/write",
      "Microsoft.ImportExport/jobs/read",
      "Microsoft.ImportExport/jobs/listBitLockerKeys/action",
      "Microsoft.ImportExport/jobs/delete",
      "Microsoft.ImportExport/register/action",
    ]);
    expect(byName["Microsoft.ImportExport/jobs/write"]).toEqual({
      provider: "Microsoft Import/Export",
      resource: "Jobs",
      operation: "Create or Update Job",
      description:
        "Creates a job with the specified parameters or update the properties or tags for the specified job.",
    });
    expect(byName["Microsoft.ImportExport/locations/read"].operation).toBe("Get or List Locations");
    expect(byName["Microsoft.ImportExport/jobs/read"].operation).toBe("Get or List Jobs");
    expect(byName["Microsoft.ImportExport/jobs/listBitLockerKeys/action"].operation).toBe(
      "List BitLocker Keys",
    );
    expect(byName["Microsoft.ImportExport/jobs/delete"].description).toBe("Deletes an existing job.");
    expect(byName["Microsoft.ImportExport/register/action"].resource).toBe("Import/Export Resource Provider");
  });

  it("Locations_List and Locations_Get", async () => {
    const list = await op("Locations_List", `/providers/Microsoft.ImportExport/locations?${q}`, 200);
    expect(list.value.map((l: Wire) => l.name)).toEqual(["West US"]);
    const one = await op("Locations_Get", `/providers/Microsoft.ImportExport/locations/westus?${q}`, 200);
    expect(one.id).toBe("/providers/Microsoft.ImportExport/locations/westus");
  });

  it("Jobs_Create accepts the SDK's defaults (state, cancelRequested, drive state): 201, then 200", async () => {
    const created = await op("Jobs_Create", jobUrl("import1"), 201, sdkImportBody());
    expect(created.properties.state).toBe("Creating");
    expect(created.properties.cancelRequested).toBe(false);
    expect(created.properties.driveList.map((d: Wire) => [d.driveId, d.state])).toEqual([
      ["9CA995BB", "Specified"],
      ["9CA995BC", "Specified"],
    ]);
    expect(JSON.stringify(created)).not.toContain(BITLOCKER_A);
    await op("Jobs_Create", jobUrl("import1"), 200, sdkImportBody());
  });

  it("Jobs_Create takes empty strings for optional fields as not given", async () => {
    const body = {
      location: "West US",
      properties: {
        storageAccountId,
        jobType: "Export",
        returnAddress: { ...returnAddress, streetAddress2: "", stateOrProvince: "" },
        diagnosticsPath: "",
        logLevel: "",
        backupDriveManifest: false,
        state: "Creating",
        cancelRequested: false,
        export: { blobList: { blobPathPrefix: ["/"] }, blobListBlobPath: "" },
        encryptionKey: { kekType: "", kekUrl: "", kekVaultResourceID: "" },
      },
    };
    const created = await op("Jobs_Create", jobUrl("export1"), 201, body);
    expect(created.properties.logLevel).toBe("Error");
    expect(created.properties.diagnosticsPath).toBe("waimportexport");
    expect(created.properties.export).toEqual({ blobList: { blobPathPrefix: ["/"] } });
    expect(created.properties.encryptionKey).toEqual({ kekType: "MicrosoftManaged" });
  });

  it("Jobs_Create takes nulls for optional fields as not given (beyond the spec, as ARM does)", async () => {
    const res = await call("PUT", jobUrl("export2"), {
      location: null,
      tags: null,
      properties: {
        storageAccountId,
        jobType: "Export",
        returnAddress: { ...returnAddress, streetAddress2: null },
        returnShipping: null,
        deliveryPackage: null,
        diagnosticsPath: null,
        logLevel: null,
        driveList: null,
        export: { blobList: { blobPath: null, blobPathPrefix: ["/music/"] }, blobListBlobPath: null },
        encryptionKey: null,
      },
    });
    expect(res.status, res.text).toBe(201);
    expect(spec.response("JobResponse", res.json)).toBe("");
    expect(res.json!.location).toBe("West US");
  });

  it("Jobs_Get", async () => {
    const got = await op("Jobs_Get", jobUrl("import1"), 200);
    expect(got.name).toBe("import1");
    expect(got.properties.driveList).toHaveLength(2);
  });

  it("Jobs_Update accepts the spec example's body and the SDK's defaults, ships, and edits tags later", async () => {
    const example = await op("Jobs_Update", jobUrl("import1"), 200, {
      properties: { state: "", logLevel: "Verbose", backupDriveManifest: true },
    });
    expect(example.properties.backupDriveManifest).toBe(true);
    const shipped = await op("Jobs_Update", jobUrl("import1"), 200, {
      properties: { cancelRequested: false, backupDriveManifest: true, state: "Shipping", deliveryPackage },
    });
    expect(shipped.properties.state).toBe("Shipping");
    expect(shipped.properties.cancelRequested).toBe(false);
    const tagged = await op("Jobs_Update", jobUrl("import1"), 200, {
      tags: { team: "ingest" },
      properties: { cancelRequested: false, backupDriveManifest: true },
    });
    expect(tagged.tags).toEqual({ team: "ingest" });
    expect(tagged.properties.state).toBe("Shipping");
  });

  it("Jobs_ListByResourceGroup and Jobs_ListBySubscription, two a page, following nextLink", async () => {
    const walk = async (name: SpecOperation, first: string) => {
      const names: string[] = [];
      let url: string | undefined = first;
      let pages = 0;
      while (url) {
        const page = await op(name, url, 200);
        expect(page.value.length).toBeLessThanOrEqual(2);
        names.push(...page.value.map((j: Wire) => j.name));
        url = page.nextLink;
        pages++;
      }
      return { names: names.sort(), pages };
    };
    const byGroup = await walk("Jobs_ListByResourceGroup", `${jobsPath}?${q}&$top=2`);
    expect(byGroup).toEqual({ names: ["export1", "export2", "import1"], pages: 2 });
    const bySub = await walk(
      "Jobs_ListBySubscription",
      `/subscriptions/${SUB}/providers/Microsoft.ImportExport/jobs?${q}&$top=2`,
    );
    expect(bySub.names).toEqual(expect.arrayContaining(["export1", "export2", "import1"]));
  });

  it("BitLockerKeys_List", async () => {
    const keys = await op("BitLockerKeys_List", jobUrl("import1", "/listBitLockerKeys"), 200);
    expect(keys.value).toEqual([
      { driveId: "9CA995BB", bitLockerKey: BITLOCKER_A },
      { driveId: "9CA995BC", bitLockerKey: BITLOCKER_B },
    ]);
  });

  it("Jobs_Update cancels; the returned package the station fills validates as PackageInformation", async () => {
    const cancelled = await op("Jobs_Update", jobUrl("import1"), 200, {
      properties: { cancelRequested: true, backupDriveManifest: true },
    });
    expect(cancelled.properties.cancelRequested).toBe(true);
    // The package arrives: a cancelled job goes to Packaging and is shipped back at once.
    const station = `/station/v1/subscriptions/${SUB}/resourceGroups/${rg}/jobs/import1`;
    const checkIn = await call(
      "POST",
      `${station}/packages`,
      { trackingNumber: "123456789", driveIds: ["9CA995BB", "9CA995BC"] },
      OPERATOR_TOKEN,
    );
    expect(checkIn.status, checkIn.text).toBe(200);
    const back = await call(
      "POST",
      `${station}/shipBack`,
      { carrierName: "FedEx", trackingNumber: "RET-1" },
      OPERATOR_TOKEN,
    );
    expect(back.status, back.text).toBe(200);
    const got = await op("Jobs_Get", jobUrl("import1"), 200);
    expect(got.properties.returnPackage).toMatchObject({
      carrierName: "FedEx",
      trackingNumber: "RET-1",
      driveCount: 2,
    });
    // Tags edited after the job finished, with the SDK's defaults: still accepted.
    await op("Jobs_Update", jobUrl("import1"), 200, {
      tags: { done: "yes" },
      properties: { cancelRequested: false, backupDriveManifest: true, logLevel: "Verbose" },
    });
  });

  it("Jobs_Delete answers 200 with no body", async () => {
    const done = await op("Jobs_Update", jobUrl("export1"), 200, { properties: { cancelRequested: true } });
    expect(done.properties.state).toBe("Completed");
    await op("Jobs_Delete", jobUrl("export1"), 200);
    expect((await call("GET", jobUrl("export1"))).status).toBe(404);
  });

  it("every refusal is an ErrorResponse", async () => {
    const cases: [string, string, unknown, number][] = [
      ["GET", jobUrl("nope"), undefined, 404],
      ["PATCH", jobUrl("import1"), { properties: { cancelRequested: "yes" } }, 400],
      ["PATCH", jobUrl("export2"), { properties: { state: "Packaging" } }, 400],
      ["PUT", jobUrl("bad"), { properties: { jobType: "Import" } }, 400],
      ["GET", `${jobsPath}/import1`, undefined, 400],
    ];
    for (const [method, url, body, status] of cases) {
      const res = await call(method, url, body);
      expect(res.status, `${method} ${url}: ${res.text}`).toBe(status);
      expect(spec.response("ErrorResponse", res.json)).toBe("");
      expect(res.json!.error.code).toMatch(/^[A-Za-z]+$/);
    }
  });
});

describe("the spec validators themselves", () => {
  it("refuse a property the spec does not name, a missing required field and a wrong width", () => {
    const v2016 = specValidators("2016-11-01");
    expect(v2016.response("JobResponse", { name: "j", properties: { stateX: "Creating" } })).toMatch(
      /additional properties/,
    );
    expect(v2016.response("PackageInformation", { carrierName: "FedEx", trackingNumber: "1" })).toMatch(
      /driveCount/,
    );
    expect(v2016.response("JobDetails", { percentComplete: 2 ** 40 })).toMatch(/percentComplete/);
    expect(specValidators("2021-01-01").response("JobDetails", { percentComplete: 2 ** 40 })).toBe("");
    expect(v2016.request("PutJobParameters", { properties: { anything: 1 } })).toBe("");
  });
});
