/**
 * Tenant scope: customers A and B hold different subscriptions; C holds one resource group of A's
 * subscription. Every job route and every list answers per scope; B (and C) cannot read, change,
 * delete or list A's jobs or keys, get ARM's 403 that says nothing about whether the job exists,
 * and A's stored record is byte-for-byte unchanged after each attempt.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobKey } from "../../src/lifecycle/model.js";
import { makeCert, OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { armClient } from "../support/arm.js";
import { actor, importSpec } from "../support/jobs.js";
import { rawRequest } from "../support/raw-http.js";
import { storedJob, storedSnapshot } from "../support/stored.js";

const SUB_A = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa";
const SUB_B = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb";
const TOKEN_A = "customer-a-token-0123456789abcdef";
const TOKEN_B = "customer-b-token-0123456789abcdef";
const TOKEN_C = "customer-c-token-0123456789abcdef";
const TOKEN_A_UPPER = "customer-a-upper-0123456789abcdef";
const BITLOCKER = "111111-222222-333333-444444-555555-666666-777777-888888";
const V = "api-version=2021-01-01";

const A_JOB: JobKey = { subscriptionId: SUB_A, resourceGroup: "rg-a", name: "job-a" };
const B_JOB: JobKey = { subscriptionId: SUB_B, resourceGroup: "rg-b", name: "job-b" };
const C_JOB: JobKey = { subscriptionId: SUB_A, resourceGroup: "rg-c", name: "job-c" };

const jobUrl = (k: JobKey) =>
  `/subscriptions/${k.subscriptionId}/resourceGroups/${k.resourceGroup}/providers/Microsoft.ImportExport/jobs/${k.name}`;
const account = (k: Pick<JobKey, "subscriptionId" | "resourceGroup">) =>
  `/subscriptions/${k.subscriptionId}/resourceGroups/${k.resourceGroup}/providers/Microsoft.Storage/storageAccounts/acct`;
const specFor = (k: JobKey) => {
  const s = importSpec();
  s.storageAccountId = account(k);
  s.driveList![0]!.bitLockerKey = BITLOCKER;
  return s;
};
const putBody = (k: JobKey) =>
  JSON.stringify({
    location: "West US",
    properties: {
      storageAccountId: account(k),
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

let dir: string;
let station: TestAgent;
let ca: Buffer;
const db = () => join(dir, "data", "jobs.db");

const call = (method: string, path: string, token: string, body?: string) =>
  rawRequest(station.agent.url, method, path, { token, ca, ...(body !== undefined ? { body } : {}) });
const errorOf = (r: { body: string }) =>
  (JSON.parse(r.body) as { error: { code: string; message: string } }).error;

/** The job routes: [method, path suffix, ARM action, body]. */
const jobRoutes = (k: JobKey): [string, string, string, string | undefined][] => [
  ["GET", "", "Microsoft.ImportExport/jobs/read", undefined],
  ["PUT", "", "Microsoft.ImportExport/jobs/write", putBody(k)],
  ["PATCH", "", "Microsoft.ImportExport/jobs/write", JSON.stringify({ tags: { owned: "by-b" } })],
  ["DELETE", "", "Microsoft.ImportExport/jobs/delete", undefined],
  ["POST", "/listBitLockerKeys", "Microsoft.ImportExport/jobs/listBitLockerKeys/action", undefined],
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ds-scope-"));
  const tls = makeCert(dir);
  ca = readFileSync(tls.certFile);
  station = await startTestAgent(join(dir, "data"), {
    tls,
    // The station holds a key for A's account (export reads with it), owned by A's subscription.
    storageAccounts: [{ name: "accta", key: "c3RhdGlvbi1rZXktZm9yLWFjY3Rh", subscriptionId: SUB_A }],
    tokens: [
      { name: "op-alice", token: OPERATOR_TOKEN, role: "operator" },
      { name: "cust-a", token: TOKEN_A, role: "customer", scopes: [{ subscriptionId: SUB_A }] },
      { name: "cust-b", token: TOKEN_B, role: "customer", scopes: [{ subscriptionId: SUB_B }] },
      {
        name: "cust-c",
        role: "customer",
        // Stored as a digest: the config holds no usable secret.
        tokenSha256: createHash("sha256").update(TOKEN_C).digest("hex"),
        scopes: [{ subscriptionId: SUB_A, resourceGroup: "rg-c" }],
      },
      {
        name: "cust-a-upper",
        token: TOKEN_A_UPPER,
        role: "customer",
        scopes: [{ subscriptionId: SUB_A.toUpperCase(), resourceGroup: "RG-A" }],
      },
    ],
  });
  const { service } = station.agent;
  for (const k of [A_JOB, B_JOB, C_JOB]) await service.create(k, specFor(k), actor);
});
afterAll(async () => {
  await station?.agent.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("job routes answer per scope", () => {
  it("B gets ARM's 403 on every route of A's job, the same for a job that does not exist, and A's job is unchanged", async () => {
    const missing: JobKey = { ...A_JOB, name: "no-such-job" };
    for (const [method, suffix, action, body] of jobRoutes(A_JOB)) {
      const before = storedJob(db(), A_JOB);
      const r = await call(method, `${jobUrl(A_JOB)}${suffix}?${V}`, TOKEN_B, body);
      expect(r.status, `${method} ${suffix}`).toBe(403);
      const e = errorOf(r);
      expect(e.code).toBe("AuthorizationFailed");
      expect(e.message).toBe(
        `The client 'cust-b' does not have authorization to perform action '${action}' over scope '${jobUrl(A_JOB)}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
      );
      expect(r.body).not.toContain(BITLOCKER);
      expect(storedJob(db(), A_JOB)).toEqual(before);

      // A missing job gets the very same answer (only the name it was asked about differs).
      const m = await call(method, `${jobUrl(missing)}${suffix}?${V}`, TOKEN_B, body);
      expect(m.status).toBe(403);
      expect(m.body.replaceAll("no-such-job", A_JOB.name)).toBe(r.body);
    }
    expect(storedJob(db(), missing)).toBeUndefined();
  });

  it("C (one resource group of A's subscription) cannot touch A's job in another group; A's job is unchanged", async () => {
    const before = storedSnapshot(db());
    for (const [method, suffix, , body] of jobRoutes(A_JOB)) {
      const r = await call(method, `${jobUrl(A_JOB)}${suffix}?${V}`, TOKEN_C, body);
      expect(r.status, `${method} ${suffix}`).toBe(403);
      expect(errorOf(r).code).toBe("AuthorizationFailed");
    }
    expect(storedSnapshot(db())).toEqual(before);
    // ... but reads its own job in its own group.
    expect((await call("GET", `${jobUrl(C_JOB)}?${V}`, TOKEN_C)).status).toBe(200);
  });

  it("A reads its job and its keys; subscription and group compare case-insensitively, as in ARM", async () => {
    const got = await call("GET", `${jobUrl(A_JOB)}?${V}`, TOKEN_A);
    expect(got.status).toBe(200);
    const keys = await call("POST", `${jobUrl(A_JOB)}/listBitLockerKeys?${V}`, TOKEN_A);
    expect(JSON.parse(keys.body)).toEqual({ value: [{ driveId: "DRIVE-A", bitLockerKey: BITLOCKER }] });
    // Granted `AAAA.../RG-A`; asks for `aaaa.../rg-a` and the other way round.
    expect((await call("GET", `${jobUrl(A_JOB)}?${V}`, TOKEN_A_UPPER)).status).toBe(200);
    const upperPath = jobUrl({ ...A_JOB, subscriptionId: SUB_A.toUpperCase(), resourceGroup: "Rg-A" });
    // The gate lets it through (the store's keys are exact, so this spelling finds no job: 404).
    expect((await call("GET", `${upperPath}?${V}`, TOKEN_A)).status).toBe(404);
    // Case-insensitive compare never widens a grant: rg-c is still not RG-A.
    expect((await call("GET", `${jobUrl(C_JOB)}?${V}`, TOKEN_A_UPPER)).status).toBe(403);
  });

  it("PUT outside the scope creates nothing; a job naming a storage account outside the scope is refused", async () => {
    const before = storedSnapshot(db());
    const intoA: JobKey = { ...A_JOB, name: "planted-by-b" };
    const r = await call("PUT", `${jobUrl(intoA)}?${V}`, TOKEN_B, putBody(intoA));
    expect(r.status).toBe(403);
    expect(errorOf(r).message).toContain("'Microsoft.ImportExport/jobs/write'");
    // B creates in its own subscription but points the job at A's storage account.
    const linked: JobKey = { ...B_JOB, name: "reads-a-account" };
    const l = await call("PUT", `${jobUrl(linked)}?${V}`, TOKEN_B, putBody(A_JOB));
    expect(l.status).toBe(403);
    expect(errorOf(l).code).toBe("LinkedAuthorizationFailed");
    expect(storedSnapshot(db())).toEqual(before);
    // Its own account is fine.
    const ok = await call("PUT", `${jobUrl(linked)}?${V}`, TOKEN_B, putBody(B_JOB));
    expect(ok.status).toBe(201);
    await call("DELETE", `${jobUrl(linked)}?${V}`, TOKEN_B);
  });
});

describe("an account the station holds a key for", () => {
  it("cannot be named under another subscription to export it; its owner can", async () => {
    const exportBody = (storageAccountId: string) =>
      JSON.stringify({
        location: "West US",
        properties: { storageAccountId, jobType: "Export", export: { blobList: { blobPathPrefix: ["/"] } } },
      });
    const before = storedSnapshot(db());
    const stolen = `/subscriptions/${SUB_B}/resourceGroups/rg-b/providers/Microsoft.Storage/storageAccounts/accta`;
    const b = await call(
      "PUT",
      `${jobUrl({ ...B_JOB, name: "export-a" })}?${V}`,
      TOKEN_B,
      exportBody(stolen),
    );
    expect(b.status).toBe(403);
    expect(errorOf(b).code).toBe("LinkedAuthorizationFailed");
    // Spelling the name in capitals changes nothing (account names are DNS names).
    const upper = stolen.replace("accta", "ACCTA");
    expect(
      (await call("PUT", `${jobUrl({ ...B_JOB, name: "export-a" })}?${V}`, TOKEN_B, exportBody(upper)))
        .status,
    ).toBe(403);
    expect(storedSnapshot(db())).toEqual(before);
    const own = `/subscriptions/${SUB_A}/resourceGroups/rg-a/providers/Microsoft.Storage/storageAccounts/accta`;
    const a = await call("PUT", `${jobUrl({ ...A_JOB, name: "export-a" })}?${V}`, TOKEN_A, exportBody(own));
    expect(a.status).toBe(201);
    await call("DELETE", `${jobUrl({ ...A_JOB, name: "export-a" })}?${V}`, TOKEN_A);
  });
});

describe("lists answer per scope", () => {
  const listSub = (sub: string) => `/subscriptions/${sub}/providers/Microsoft.ImportExport/jobs?${V}`;
  const listRg = (sub: string, rg: string) =>
    `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.ImportExport/jobs?${V}`;
  const names = (r: { body: string }) =>
    (JSON.parse(r.body) as { value: { name: string }[] }).value.map((j) => j.name);

  it("a list by a subscription or group outside the scope is 403; inside it shows only what the scope covers", async () => {
    expect((await call("GET", listSub(SUB_A), TOKEN_B)).status).toBe(403);
    expect((await call("GET", listRg(SUB_A, "rg-a"), TOKEN_B)).status).toBe(403);
    expect((await call("GET", listRg(SUB_A, "rg-a"), TOKEN_C)).status).toBe(403);
    expect(names(await call("GET", listSub(SUB_B), TOKEN_B))).toEqual(["job-b"]);
    expect(names(await call("GET", listSub(SUB_A), TOKEN_A)).sort()).toEqual(["job-a", "job-c"]);
    // C holds only rg-c of SUB_A: the subscription list is narrowed to it.
    expect(names(await call("GET", listSub(SUB_A), TOKEN_C))).toEqual(["job-c"]);
    expect(names(await call("GET", listRg(SUB_A, "rg-c"), TOKEN_C))).toEqual(["job-c"]);
    expect(names(await call("GET", listSub(SUB_A), TOKEN_A_UPPER))).toEqual(["job-a"]);
    const op = await call("GET", "/station/v1/jobs", OPERATOR_TOKEN);
    expect(names(op).sort()).toEqual(["job-a", "job-b", "job-c"]);
  });

  it("paging through a narrowed list: pages and skip tokens hold only jobs in scope, even with a forged token", async () => {
    const { service } = station.agent;
    const made: JobKey[] = [];
    for (let i = 0; i < 6; i++) {
      for (const rg of ["rg-a", "rg-c"]) {
        const k = { subscriptionId: SUB_A, resourceGroup: rg, name: `page-${rg}-${i}` };
        await service.create(k, specFor(k), actor);
        made.push(k);
      }
    }
    const seen: string[] = [];
    const tokens: string[] = [];
    let next: string | undefined = `${listSub(SUB_A)}&$top=2`;
    while (next) {
      const r = await call("GET", next, TOKEN_C);
      expect(r.status).toBe(200);
      const page = JSON.parse(r.body) as { value: { name: string; id: string }[]; nextLink?: string };
      for (const j of page.value) {
        expect(j.id.toLowerCase()).toContain("/resourcegroups/rg-c/");
        seen.push(j.name);
      }
      if (page.nextLink) {
        const u = new URL(page.nextLink);
        tokens.push(u.searchParams.get("$skiptoken")!);
        next = `${u.pathname}${u.search}`;
      } else next = undefined;
    }
    expect(seen.sort()).toEqual(
      ["job-c", ...made.filter((k) => k.resourceGroup === "rg-c").map((k) => k.name)].sort(),
    );
    // The opaque tokens decode to C's own jobs, never a neighbour's name or group.
    for (const t of tokens) {
      const decoded = Buffer.from(t, "base64url").toString("utf8");
      expect(decoded).toContain("rg-c");
      expect(decoded).not.toContain("rg-a");
    }
    // A skip token forged to start at one of A's jobs still yields only C's jobs.
    const forged = Buffer.from(
      JSON.stringify({ c: "1970-01-01T00:00:00.000Z", s: SUB_A, r: "rg-a", n: "job-a" }),
    ).toString("base64url");
    const f = await call("GET", `${listSub(SUB_A)}&$skiptoken=${forged}`, TOKEN_C);
    expect(f.status).toBe(200);
    expect(names(f).every((n) => n.startsWith("page-rg-c-") || n === "job-c")).toBe(true);
    for (const k of made) await service.delete(k);
  });
});

describe("the real ARM client, as customer B against customer A", () => {
  it("cannot get, update, delete, list or read the keys of A's job; A's job is unchanged", async () => {
    const before = storedJob(db(), A_JOB);
    const b = armClient(station.agent.url, ca, TOKEN_B, SUB_A);
    const refused = { statusCode: 403, code: "AuthorizationFailed" };
    await expect(b.jobs.get(A_JOB.name, A_JOB.resourceGroup)).rejects.toMatchObject(refused);
    await expect(b.jobs.update(A_JOB.name, A_JOB.resourceGroup, { tags: { x: "y" } })).rejects.toMatchObject(
      refused,
    );
    await expect(b.jobs.delete(A_JOB.name, A_JOB.resourceGroup)).rejects.toMatchObject(refused);
    await expect(b.bitLockerKeys.list(A_JOB.name, A_JOB.resourceGroup).next()).rejects.toMatchObject(refused);
    await expect(b.jobs.listBySubscription().next()).rejects.toMatchObject(refused);
    await expect(b.jobs.listByResourceGroup(A_JOB.resourceGroup).next()).rejects.toMatchObject(refused);
    await expect(
      b.jobs.create("planted", A_JOB.resourceGroup, {
        location: "West US",
        properties: {
          storageAccountId: account(A_JOB),
          jobType: "Export",
          export: { blobPathPrefix: ["/"] },
        },
      }),
    ).rejects.toMatchObject(refused);
    expect(storedJob(db(), A_JOB)).toEqual(before);
    expect(storedJob(db(), { ...A_JOB, name: "planted" })).toBeUndefined();

    // A, with the same client, reads its own job and keys.
    const a = armClient(station.agent.url, ca, TOKEN_A, SUB_A);
    expect((await a.jobs.get(A_JOB.name, A_JOB.resourceGroup)).name).toBe("job-a");
    const keys: string[] = [];
    for await (const k of a.bitLockerKeys.list(A_JOB.name, A_JOB.resourceGroup)) keys.push(k.bitLockerKey!);
    expect(keys).toEqual([BITLOCKER]);
  });

  it("no token reaches a log line", () => {
    const log = station.logText();
    expect(log).toContain("api request");
    for (const secret of [
      TOKEN_A,
      TOKEN_B,
      TOKEN_C,
      TOKEN_A_UPPER,
      OPERATOR_TOKEN,
      BITLOCKER,
      "c3RhdGlvbi1rZXktZm9yLWFjY3Rh",
    ])
      expect(log).not.toContain(secret);
  });
});
