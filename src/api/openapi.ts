/**
 * The OpenAPI 3.1 document of the operator routes (/station/v1/...), generated from the route
 * table: each route's method, path, summary and the zod schemas its handler validates with
 * (`z.toJSONSchema`). Nothing in it is written by hand, so it cannot drift from the routes.
 */
import { z } from "zod";
import type { DeclaredRoute } from "./gate.js";

const OPERATOR_PREFIX = "/station/v1/";

/** The body schema as a client sends it (input side: defaults optional, transforms not applied). */
const jsonSchema = (schema: z.ZodType): Record<string, unknown> => {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" });
  return rest;
};

/** `/a/:id/b` -> `/a/{id}/b`, and the parameter names in order. */
export function openApiPath(url: string): { path: string; params: string[] } {
  const params: string[] = [];
  const path = url.replace(/:([A-Za-z0-9_]+)/g, (_m, name: string) => {
    params.push(name);
    return `{${name}}`;
  });
  return { path, params };
}

/** The routes the document covers: operator routes under /station/v1 (HEAD twins left out). */
export const documentedRoutes = (routes: readonly DeclaredRoute[]): DeclaredRoute[] =>
  routes.filter((r) => r.access === "operator" && r.url.startsWith(OPERATOR_PREFIX) && r.method !== "HEAD");

function operation(r: DeclaredRoute, pathParams: string[]) {
  const parameters: object[] = pathParams.map((name) => ({
    name,
    in: "path",
    required: true,
    schema: { type: "string" },
  }));
  if (r.querystring) {
    const q = jsonSchema(r.querystring) as { properties?: Record<string, object>; required?: string[] };
    for (const [name, schema] of Object.entries(q.properties ?? {})) {
      parameters.push({ name, in: "query", required: q.required?.includes(name) ?? false, schema });
    }
  }
  return {
    summary: r.summary ?? `${r.method} ${r.url}`,
    operationId: `${r.method.toLowerCase()}${openApiPath(r.url)
      .path.replace(/[{}]/g, "")
      .split(/[^A-Za-z0-9]+/)
      .filter(Boolean)
      .map((w) => w[0]!.toUpperCase() + w.slice(1))
      .join("")}`,
    ...(parameters.length ? { parameters } : {}),
    ...(r.body
      ? {
          requestBody: {
            required: true,
            content: { "application/json": { schema: jsonSchema(r.body) } },
          },
        }
      : {}),
    responses: {
      "200": { description: "OK" },
      default: {
        description: "The ARM ErrorResponse: error.code, error.message, error.target",
        content: { "application/json": { schema: { $ref: "#/components/schemas/ErrorResponse" } } },
      },
    },
  };
}

export function operatorOpenApi(routes: readonly DeclaredRoute[], version = "1") {
  const paths: Record<string, Record<string, object>> = {};
  for (const r of documentedRoutes(routes)) {
    const { path, params } = openApiPath(r.url);
    paths[path] ??= {};
    paths[path][r.method.toLowerCase()] = operation(r, params);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "drive-station operator API",
      version,
      description:
        "The station's own routes, for its operators (operator token). Generated from the schemas the station validates with.",
    },
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: { ErrorResponse: jsonSchema(errorResponse) },
    },
  };
}

/** The shape of errors.ts `errorResponse` (reference §4.12). */
const errorResponse = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    target: z.string().optional(),
    details: z.array(z.object({ code: z.string(), target: z.string(), message: z.string() })).optional(),
    innererror: z.object({}).optional(),
  }),
});
