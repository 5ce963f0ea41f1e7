/**
 * /station/v1/openapi.json: generated from the route table, behind the operator gate, and in step
 * with the routes: every operator route the agent registers appears with its method, path
 * parameters, query parameters and body schema, and nothing else does. Each body schema, compiled
 * as JSON Schema 2020-12, agrees with the station on what it accepts.
 */
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { documentedRoutes, openApiPath } from "../../src/api/openapi.js";
import { checkInBody } from "../../src/api/schemas.js";
import { CUSTOMER_TOKEN, OPERATOR_TOKEN, startTestAgent, type TestAgent } from "../support/agent.js";
import { useTempDir } from "../support/tmp.js";

const tempDir = useTempDir();
let station: TestAgent;
// biome-ignore lint/suspicious/noExplicitAny: the document is JSON, checked field by field below
let doc: any;

const get = (path: string, token?: string) =>
  fetch(`${station.agent.url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

beforeAll(async () => {
  station = await startTestAgent(join(tempDir(), "data"));
  const res = await get("/station/v1/openapi.json", OPERATOR_TOKEN);
  expect(res.status).toBe(200);
  doc = await res.json();
});
afterAll(async () => {
  await station?.agent.stop();
});

describe("the operator API's OpenAPI document", () => {
  it("is served behind the operator gate", async () => {
    expect((await get("/station/v1/openapi.json")).status).toBe(401);
    const customer = await get("/station/v1/openapi.json", CUSTOMER_TOKEN);
    expect(customer.status).toBe(403);
    expect(((await customer.json()) as { error: { code: string } }).error.code).toBe("AuthorizationFailed");
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.components.securitySchemes.bearer).toEqual({ type: "http", scheme: "bearer" });
  });

  it("has every operator route, with its method, and nothing else", () => {
    const routes = documentedRoutes(station.agent.routes);
    // The routes this repository registers today, so an empty table cannot pass.
    const urls = routes.map((r) => `${r.method} ${r.url}`);
    for (const expected of [
      "GET /station/v1/jobs",
      "GET /station/v1/attached",
      "GET /station/v1/notices",
      "GET /station/v1/events",
      "GET /station/v1/openapi.json",
      "POST /station/v1/subscriptions/:subscriptionId/resourceGroups/:resourceGroupName/jobs/:jobName/packages",
      "POST /station/v1/subscriptions/:subscriptionId/resourceGroups/:resourceGroupName/jobs/:jobName/shipBack",
      "POST /station/v1/subscriptions/:subscriptionId/resourceGroups/:resourceGroupName/jobs/:jobName/exportPreview",
    ])
      expect(urls).toContain(expected);

    const documented: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>))
      for (const method of Object.keys(ops)) documented.push(`${method.toUpperCase()} ${path}`);
    expect(documented.sort()).toEqual(routes.map((r) => `${r.method} ${openApiPath(r.url).path}`).sort());
  });

  it("gives each route its path parameters, query parameters and body schema", () => {
    for (const r of documentedRoutes(station.agent.routes)) {
      const { path, params } = openApiPath(r.url);
      const o = doc.paths[path][r.method.toLowerCase()];
      const where = `${r.method} ${r.url}`;
      // A route without a summary (the console's event stream) is named by its method and path.
      expect(o.summary, where).toBe(r.summary ?? where);
      expect(
        (o.parameters ?? [])
          .filter((p: { in: string }) => p.in === "path")
          .map((p: { name: string }) => p.name),
        where,
      ).toEqual(params);
      const query = r.querystring
        ? Object.keys((z.toJSONSchema(r.querystring, { io: "input" }) as { properties: object }).properties)
        : [];
      expect(
        (o.parameters ?? [])
          .filter((p: { in: string }) => p.in === "query")
          .map((p: { name: string }) => p.name),
        where,
      ).toEqual(query);
      // Every POST declares the body schema its handler parses with.
      if (r.method === "POST") expect(r.body, `${where} declares no body schema`).toBeDefined();
      if (r.body) {
        const { $schema: _d, ...schema } = z.toJSONSchema(r.body, { io: "input", unrepresentable: "any" });
        expect(o.requestBody.content["application/json"].schema, where).toEqual(schema);
      } else expect(o.requestBody, where).toBeUndefined();
    }
    expect(doc.paths["/station/v1/jobs"].get.parameters.map((p: { name: string }) => p.name)).toEqual([
      "$top",
      "$skiptoken",
      "name",
    ]);
  });

  it("the check-in body schema and the station agree on what is valid", async () => {
    const path =
      "/station/v1/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/jobs/{jobName}/packages";
    const schema = doc.paths[path].post.requestBody.content["application/json"].schema;
    expect(schema.required).toEqual(["trackingNumber", "driveIds"]);
    const validate = new Ajv2020({ strict: false }).compile(schema);
    const cases = [
      { trackingNumber: "1Z999", driveIds: ["9CA995BB"] },
      { trackingNumber: "1Z999" },
      { trackingNumber: "1Z999", driveIds: ["has space"] },
      { trackingNumber: "", driveIds: [] },
    ];
    for (const body of cases) {
      // The document's verdict is the station's (unknown job: a valid body gets past parsing to 404).
      const res = await fetch(`${station.agent.url}${path.replace(/\{(\w+)\}/g, "x")}`, {
        method: "POST",
        headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const stationSays = res.status === 400 ? "invalid" : "valid";
      expect(validate(body) ? "valid" : "invalid", JSON.stringify(body)).toBe(stationSays);
      expect(checkInBody.safeParse(body).success ? "valid" : "invalid").toBe(stationSays);
    }
  });
});
