/**
 * Bad requests: each gets an ARM ErrorResponse with the right status and a message that says
 * what to fix, and nothing is written.
 */
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { returnAddress } from "../support/jobs.js";
import { useTempDir } from "../support/tmp.js";

const tempDir = useTempDir();
const SUB = "sub-1";
const base = `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ImportExport/jobs`;
const V = "api-version=2021-01-01";
let station: TestAgent;

const goodBody = () => ({
  location: "West US",
  properties: {
    storageAccountId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct`,
    jobType: "Import",
    driveList: [
      {
        driveId: "9CA995BB",
        manifestFile: "\\DriveManifest.xml",
        manifestHash: "109B21108597EF36D5785F08303F3638",
      },
    ],
  },
});

const withDrives = (driveList: unknown[]) => ({
  ...goodBody(),
  properties: { ...goodBody().properties, driveList },
});

async function call(
  method: string,
  path: string,
  opts: { token?: string | null; body?: string | object; contentType?: string } = {},
) {
  const headers: Record<string, string> = {};
  const token = opts.token === undefined ? CUSTOMER_TOKEN : opts.token;
  if (token) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
    headers["content-type"] = opts.contentType ?? "application/json";
  }
  const res = await fetch(`${station.agent.url}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    json: text
      ? (JSON.parse(text) as { error?: { code: string; message: string; target?: string } })
      : undefined,
    headers: res.headers,
  };
}

async function jobCount(): Promise<number> {
  return (await station.agent.service.list({}, 100)).jobs.length;
}

beforeEach(async () => {
  station = await startTestAgent(join(tempDir(), "data"), { bodyLimitBytes: 16 * 1024 });
});
afterEach(async () => {
  await station.agent.stop();
});

describe("bad input is refused cleanly and writes nothing", () => {
  type Case = {
    name: string;
    method: string;
    path: string;
    token?: string | null;
    body?: string | object;
    contentType?: string;
    status: number;
    code: string;
    message: RegExp;
  };
  const cases: Case[] = [
    {
      name: "malformed JSON",
      method: "PUT",
      path: `${base}/j1?${V}`,
      body: '{"location": "West US", "properties": {',
      status: 400,
      code: "InvalidRequestContent",
      message: /not valid JSON/,
    },
    {
      name: "unknown api-version",
      method: "PUT",
      path: `${base}/j1?api-version=2099-01-01`,
      body: goodBody(),
      status: 400,
      code: "InvalidApiVersionParameter",
      message: /2099-01-01.*Supported: 2016-11-01, 2020-08-01, 2021-01-01/,
    },
    {
      name: "missing api-version",
      method: "GET",
      path: `${base}/j1`,
      status: 400,
      code: "MissingApiVersionParameter",
      message: /required/,
    },
    {
      name: "missing storageAccountId",
      method: "PUT",
      path: `${base}/j1?${V}`,
      body: { properties: { jobType: "Import" } },
      status: 400,
      code: "InvalidRequestContent",
      message: /properties\.storageAccountId/,
    },
    {
      name: "missing properties",
      method: "PUT",
      path: `${base}/j1?${V}`,
      body: { location: "West US" },
      status: 400,
      code: "InvalidRequestContent",
      message: /properties/,
    },
    {
      name: "import without driveList",
      method: "PUT",
      path: `${base}/j1?${V}`,
      body: withDrives([]),
      status: 400,
      code: "InvalidRequestContent",
      message: /driveList/,
    },
    {
      name: "bad manifestHash",
      method: "PUT",
      path: `${base}/j1?${V}`,
      body: withDrives([{ driveId: "A1", manifestFile: "\\m.xml", manifestHash: "xyz" }]),
      status: 400,
      code: "InvalidRequestContent",
      message: /driveList\.0\.manifestHash/,
    },
    {
      name: "manifestFile escaping the drive",
      method: "PUT",
      path: `${base}/j1?${V}`,
      body: withDrives([
        {
          driveId: "A1",
          manifestFile: "\\..\\..\\etc\\passwd",
          manifestHash: "109B21108597EF36D5785F08303F3638",
        },
      ]),
      status: 400,
      code: "InvalidRequestContent",
      message: /inside the drive/,
    },
    {
      name: "bad job name",
      method: "PUT",
      path: `${base}/bad%20name?${V}`,
      body: goodBody(),
      status: 400,
      code: "InvalidRequestContent",
      message: /Job name/,
    },
    {
      name: "oversized body",
      method: "PUT",
      path: `${base}/j1?${V}`,
      body: { ...goodBody(), tags: { pad: "x".repeat(20_000) } },
      status: 413,
      code: "RequestTooLarge",
      message: /larger/,
    },
    {
      name: "wrong media type",
      method: "PUT",
      path: `${base}/j1?${V}`,
      body: "location=x",
      contentType: "application/x-www-form-urlencoded",
      status: 415,
      code: "UnsupportedMediaType",
      message: /application\/json/,
    },
    {
      name: "no token",
      method: "PUT",
      path: `${base}/j1?${V}`,
      token: null,
      body: goodBody(),
      status: 401,
      code: "AuthenticationFailed",
      message: /Missing bearer token/,
    },
    {
      name: "wrong token",
      method: "PUT",
      path: `${base}/j1?${V}`,
      token: "wrong-token-wrong-token",
      body: goodBody(),
      status: 401,
      code: "AuthenticationFailed",
      message: /not valid/,
    },
    {
      name: "customer token on an operator route",
      method: "POST",
      path: "/station/v1/subscriptions/sub-1/resourceGroups/rg/jobs/j1/packages",
      body: { trackingNumber: "T", driveIds: ["A"] },
      status: 403,
      code: "AuthorizationFailed",
      message: /operator token/,
    },
    {
      name: "$top over 100",
      method: "GET",
      path: `${base}?${V}&$top=101`,
      status: 400,
      code: "InvalidRequestContent",
      message: /\$top/,
    },
    {
      name: "forged $skiptoken",
      method: "GET",
      path: `${base}?${V}&$skiptoken=abc`,
      status: 400,
      code: "InvalidRequestContent",
      message: /skiptoken/,
    },
    {
      name: "unknown route",
      method: "GET",
      path: `/nothing-here?${V}`,
      status: 404,
      code: "RouteNotFound",
      message: /No route/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const res = await call(c.method, c.path, {
        ...(c.token !== undefined ? { token: c.token } : {}),
        ...(c.body !== undefined ? { body: c.body } : {}),
        ...(c.contentType ? { contentType: c.contentType } : {}),
      });
      expect(res.status).toBe(c.status);
      expect(res.json?.error?.code).toBe(c.code);
      expect(res.json?.error?.message).toMatch(c.message);
      expect(await jobCount()).toBe(0);
    });
  }

  it("a 401 carries WWW-Authenticate and echoes no token", async () => {
    const res = await call("GET", `${base}?${V}`, { token: "wrong-token-wrong-token" });
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(JSON.stringify(res.json)).not.toContain("wrong-token-wrong-token");
  });

  it("a refused update leaves the job exactly as it was", async () => {
    expect((await call("PUT", `${base}/j1?${V}`, { body: goodBody() })).status).toBe(201);
    const before = await call("GET", `${base}/j1?${V}`);
    for (const body of [
      { properties: { state: "Shipping" } },
      { properties: { state: "Packaging" } },
      { properties: { cancelRequested: "yes" } },
      "{broken",
    ]) {
      const res = await call("PATCH", `${base}/j1?${V}`, { body });
      expect(res.status).toBe(400);
    }
    expect((await call("GET", `${base}/j1?${V}`)).json).toEqual(before.json);
  });
});

describe("operator routes", () => {
  it("check in, mark arrivals, fault, resolve and ship back through the API", async () => {
    const op = (path: string, body: object) =>
      call("POST", `/station/v1/subscriptions/${SUB}/resourceGroups/rg/jobs/j1${path}`, {
        token: OPERATOR_TOKEN,
        body,
      });
    await call("PUT", `${base}/j1?${V}`, {
      body: {
        ...goodBody(),
        properties: {
          ...goodBody().properties,
          returnAddress,
        },
      },
    });

    const held = await op("/packages", { trackingNumber: "T1", driveIds: ["9CA995BB"] });
    expect(held.status).toBe(200);
    expect(
      (held.json as unknown as { station: { heldPackages: unknown[] } }).station.heldPackages,
    ).toHaveLength(1);

    await call("PATCH", `${base}/j1?${V}`, {
      body: {
        properties: { state: "Shipping", deliveryPackage: { carrierName: "FedEx", trackingNumber: "T1" } },
      },
    });
    const checked = await op("/packages", { trackingNumber: "T1", driveIds: ["9CA995BB", "EXTRA1"] });
    const view = checked.json as unknown as {
      properties: { state: string; driveList: { state: string }[] };
      station: { extraDrives: { driveId: string }[] };
    };
    expect(view.properties.state).toBe("Received");
    expect(view.properties.driveList[0]!.state).toBe("Received");
    expect(view.station.extraDrives.map((e) => e.driveId)).toEqual(["EXTRA1"]);

    expect((await op("/fault", { reason: "label unreadable", driveId: "9CA995BB" })).status).toBe(200);
    expect((await op("/resolve", { driveId: "9CA995BB" })).status).toBe(200);
    const early = await op("/shipBack", { carrierName: "FedEx", trackingNumber: "R1" });
    expect(early.status).toBe(409);
    expect(early.json?.error?.code).toBe("InvalidJobState");
    const notices = await call("GET", "/station/v1/notices", { token: OPERATOR_TOKEN });
    const codes = (notices.json as unknown as { value: { code: string }[] }).value.map((n) => n.code);
    expect(codes).toEqual(expect.arrayContaining(["PackageHeld", "ExtraDrive", "Faulted"]));
  });
});

describe("api versions", () => {
  it("accepts the early 2016-11-01 spelling blobListblobPath and emits blobListBlobPath", async () => {
    const body = {
      properties: {
        storageAccountId: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ClassicStorage/storageAccounts/acct`,
        jobType: "Export",
        export: { blobListblobPath: "lists/export.xml" },
      },
    };
    const res = await call("PUT", `${base}/old-client?api-version=2016-11-01`, { body });
    expect(res.status).toBe(201);
    const job = res.json as unknown as { location: string; properties: { export: Record<string, unknown> } };
    expect(job.properties.export).toEqual({ blobListBlobPath: "lists/export.xml" });
    expect(job.location).toBe("West US"); // defaults to the station's location
  });
});
