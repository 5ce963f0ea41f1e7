/**
 * The auth gate: decided on the route the router matched, never on the URL text; deny by default.
 * Every operator route in the app's route table (so a route added later is covered without
 * editing this file) is tried under hostile spellings of its path, sent raw so no client
 * normalises them, with a customer token and with none. None may answer 2xx, and the stored
 * jobs and notices must be byte-for-byte what they were.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenAuthenticator } from "../../src/api/auth.js";
import { declaredRoutes, installGate } from "../../src/api/gate.js";
import type { DeclaredRoute } from "../../src/api/server.js";
import { isStationError } from "../../src/errors.js";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { actor, deliveryPackage, importSpec } from "../support/jobs.js";
import { rawRequest } from "../support/raw-http.js";
import { storedSnapshot } from "../support/stored.js";
import { useTempDir } from "../support/tmp.js";

const tempDir = useTempDir();
const KEY = { subscriptionId: "sub-1", resourceGroup: "rg-1", name: "job-1" };

const PARAMS: Record<string, string> = {
  subscriptionId: KEY.subscriptionId,
  resourceGroupName: KEY.resourceGroup,
  jobName: KEY.name,
  driveId: "DRIVE-A",
};

/** Bodies an operator route would accept, so a request that slipped through would succeed. */
const BODIES: [RegExp, object][] = [
  [/\/packages$/, { trackingNumber: "TRK-1", driveIds: ["DRIVE-A", "DRIVE-B"] }],
  [/\/fault$/, { reason: "ReturnAddressInvalid" }],
  [/\/shipBack$/, { carrierName: "FedEx", trackingNumber: "RET-1" }],
];
const bodyFor = (route: DeclaredRoute) =>
  route.method === "GET" || route.method === "HEAD"
    ? undefined
    : JSON.stringify(BODIES.find(([re]) => re.test(route.url))?.[1] ?? {});

const fill = (url: string) =>
  url.replace(/:(\w+)/g, (_, name: string) => {
    const v = PARAMS[name];
    if (v === undefined) throw new Error(`no test value for route parameter :${name} in ${url}`);
    return v;
  });

const hex = (c: string, upper = false) => {
  const h = c.charCodeAt(0).toString(16);
  return `%${upper ? h.toUpperCase() : h}`;
};

/** Spellings of `path` (`/station/v1/...`) that a URL-text check could get wrong. */
function hostileSpellings(path: string): { kind: string; path: string }[] {
  const rest = path.slice("/station".length); // "/v1/..."
  const tail = path.slice("/station/v1".length); // "/jobs/..."
  const last = path.lastIndexOf("/");
  return [
    { kind: "encoded letter", path: `/${hex("s")}tation${rest}` },
    { kind: "encoded letter (upper-case hex)", path: `/st${hex("a", true)}tion${rest}` },
    { kind: "encoded segment", path: `/${[..."station"].map((c) => hex(c, true)).join("")}${rest}` },
    { kind: "encoded letter in v1", path: `/station/${hex("v")}1${tail}` },
    { kind: "encoded slash %2F", path: `/station%2Fv1${tail}` },
    { kind: "encoded slash %2f", path: `/station%2fv1${tail}` },
    { kind: "leading encoded slash", path: `/%2Fstation${rest}` },
    { kind: "double-encoded letter", path: `/%2573tation${rest}` },
    { kind: "double-encoded slash", path: `/station%252Fv1${tail}` },
    { kind: "dot-dot segment", path: `/x/../station${rest}` },
    { kind: "dot segment", path: `/./station${rest}` },
    { kind: "inner dot segment", path: `/station/./v1${tail}` },
    { kind: "inner dot-dot segment", path: `/station/v1/x/..${tail}` },
    { kind: "encoded dot-dot", path: `/x/%2e%2e/station${rest}` },
    { kind: "encoded dot", path: `/%2E/station${rest}` },
    { kind: "doubled leading slash", path: `//station${rest}` },
    { kind: "doubled inner slash", path: `/station//v1${tail}` },
    { kind: "doubled slash before last segment", path: `${path.slice(0, last)}/${path.slice(last)}` },
    { kind: "mixed case", path: `/Station/V1${tail}` },
    { kind: "upper case", path: `/STATION${rest}` },
    {
      kind: "mixed-case last segment",
      path: `${path.slice(0, last + 1)}${path.slice(last + 1, last + 2).toUpperCase()}${path.slice(last + 2)}`,
    },
    { kind: "trailing slash", path: `${path}/` },
    { kind: "trailing doubled slash", path: `${path}//` },
    { kind: "trailing dot segment", path: `${path}/.` },
    { kind: "matrix parameter", path: `/station;x=1${rest}` },
    { kind: "encoded NUL", path: `${path}%00` },
    { kind: "trailing encoded space", path: `${path}%20` },
  ];
}

let dir: string;
let station: TestAgent;
let operatorRoutes: DeclaredRoute[];
const db = () => join(dir, "data", "jobs.db");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ds-gate-"));
  station = await startTestAgent(join(dir, "data"));
  const { service } = station.agent;
  await service.create(KEY, importSpec(), actor);
  await service.update(KEY, { deliveryPackage, state: "Shipping" }, actor);
  operatorRoutes = station.agent.routes.filter((r) => r.access === "operator");
});
afterAll(async () => {
  await station?.agent.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("one auth gate, deny by default", () => {
  it("finds every operator route in the route table, HEAD twins included", () => {
    const urls = operatorRoutes.map((r) => `${r.method} ${r.url}`);
    // The table is the app's own: these are a floor, not the list the test walks.
    expect(urls).toContain("GET /station/v1/attached");
    expect(urls).toContain("HEAD /station/v1/attached");
    expect(urls).toContain(
      "POST /station/v1/subscriptions/:subscriptionId/resourceGroups/:resourceGroupName/jobs/:jobName/close",
    );
    expect(operatorRoutes.length).toBeGreaterThanOrEqual(14);
    // Every route of the app declares an access level: nothing relies on a default.
    for (const r of station.agent.routes) expect(["public", "customer", "operator"]).toContain(r.access);
  });

  it("the plain spelling of every operator route: customer 403, no token 401, operator GET 200", async () => {
    const before = storedSnapshot(db());
    for (const r of operatorRoutes) {
      const path = fill(r.url);
      const body = bodyFor(r);
      const asCustomer = await rawRequest(station.agent.url, r.method, path, {
        token: CUSTOMER_TOKEN,
        ...(body ? { body } : {}),
      });
      expect(asCustomer.status, `${r.method} ${path} as customer`).toBe(403);
      if (r.method !== "HEAD") expect(JSON.parse(asCustomer.body).error.code).toBe("AuthorizationFailed");
      const anonymous = await rawRequest(station.agent.url, r.method, path, body ? { body } : {});
      expect(anonymous.status, `${r.method} ${path} without token`).toBe(401);
      if (r.method === "GET") {
        const asOperator = await rawRequest(station.agent.url, r.method, path, { token: OPERATOR_TOKEN });
        expect(asOperator.status, `${r.method} ${path} as operator`).toBe(200);
      }
    }
    expect(storedSnapshot(db())).toEqual(before);
  });

  it("no hostile spelling of any operator route answers 2xx to a customer or to no token, and nothing changes", async () => {
    const before = storedSnapshot(db());
    let tried = 0;
    const seen = new Map<string, number>();
    for (const r of operatorRoutes) {
      const body = bodyFor(r);
      for (const v of hostileSpellings(fill(r.url))) {
        const what = `${r.method} ${v.path} (${v.kind})`;
        const asCustomer = await rawRequest(station.agent.url, r.method, v.path, {
          token: CUSTOMER_TOKEN,
          ...(body ? { body } : {}),
        });
        // 403: the gate matched the operator route and refused; 404: no route matched at all.
        // Anything else (2xx, or a 400 from body validation) would mean the request got past the gate.
        expect([403, 404], `${what} as customer answered ${asCustomer.status}`).toContain(asCustomer.status);
        const anonymous = await rawRequest(station.agent.url, r.method, v.path, body ? { body } : {});
        expect(anonymous.status, `${what} without token`).toBe(401);
        seen.set(`${asCustomer.status}`, (seen.get(`${asCustomer.status}`) ?? 0) + 1);
        tried++;
      }
    }
    expect(tried).toBe(operatorRoutes.length * hostileSpellings("/station/v1/x").length);
    // Both answers occur: some spellings reach the operator route (the router decodes %73), and
    // the gate still refuses them.
    expect(seen.get("403")).toBeGreaterThan(0);
    expect(seen.get("404")).toBeGreaterThan(0);
    expect(storedSnapshot(db())).toEqual(before);
  });

  it("a backslash spelling is refused before any route runs", async () => {
    const r = await rawRequest(station.agent.url, "GET", "\\station\\v1\\attached", {
      token: CUSTOMER_TOKEN,
    });
    expect([400, 404]).toContain(r.status);
  });

  it("an unmatched route authenticates first: no token 401, a valid token 404", async () => {
    for (const path of ["/nothing-here", "/station/v1/nothing", "/%73tation/v1/nothing"]) {
      expect((await rawRequest(station.agent.url, "GET", path)).status, path).toBe(401);
      expect(
        (await rawRequest(station.agent.url, "GET", path, { token: "wrong-token-0123456789" })).status,
      ).toBe(401);
      expect((await rawRequest(station.agent.url, "GET", path, { token: CUSTOMER_TOKEN })).status).toBe(404);
      expect((await rawRequest(station.agent.url, "GET", path, { token: OPERATOR_TOKEN })).status).toBe(404);
    }
  });
});

describe("a route without an access declaration", () => {
  it("makes the API builder throw, naming the route", () => {
    const app = Fastify();
    installGate(app, new TokenAuthenticator([]), () => {});
    app.get("/declared", { config: { access: "operator" } }, async () => "ok");
    expect(() => app.get("/undeclared", async () => "x")).toThrow(/GET \/undeclared declares no access/);
    // A customer route that names an ARM scope in its path must say which action it checks.
    expect(() =>
      app.get("/subscriptions/:subscriptionId/things", { config: { access: "customer" } }, async () => "x"),
    ).toThrow(/declares no armAction/);
    expect(declaredRoutes(app).map((r) => r.url)).toEqual(["/declared", "/declared"]);
  });

  it("stops the agent from starting", async () => {
    const err = await startTestAgent(join(tempDir(), "data"), {
      apiRoutes: [(app) => app.get("/console/undeclared", async () => "x")],
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isStationError(err) && err.code).toBe("ConfigInvalid");
    expect((err as Error).message).toContain("GET /console/undeclared declares no access");
  });

  it("also when the route comes from a plugin registered later", async () => {
    const err = await startTestAgent(join(tempDir(), "data"), {
      apiRoutes: [
        (app) =>
          void app.register(async (child) => {
            child.get("/metrics-undeclared", async () => "x");
          }),
      ],
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).message).toContain("GET /metrics-undeclared declares no access");
  });

  it("a public route answers without a token; a declared operator route added by an extension is gated", async () => {
    const s = await startTestAgent(join(tempDir(), "data"), {
      apiRoutes: [
        (app) => {
          app.get("/extension-public", { config: { access: "public" } }, async () => ({ ok: true }));
          app.get("/station/v1/extension", { config: { access: "operator" } }, async () => ({ ok: true }));
        },
      ],
    });
    try {
      expect((await rawRequest(s.agent.url, "GET", "/extension-public")).status).toBe(200);
      expect(
        (await rawRequest(s.agent.url, "GET", "/station/v1/extension", { token: CUSTOMER_TOKEN })).status,
      ).toBe(403);
      expect(
        (await rawRequest(s.agent.url, "GET", "/%73tation/v1/extension", { token: CUSTOMER_TOKEN })).status,
      ).toBe(403);
      expect(
        (await rawRequest(s.agent.url, "GET", "/station/v1/extension", { token: OPERATOR_TOKEN })).status,
      ).toBe(200);
      expect(s.agent.routes.some((r) => r.url === "/station/v1/extension" && r.access === "operator")).toBe(
        true,
      );
    } finally {
      await s.agent.stop();
    }
  });
});
