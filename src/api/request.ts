/** What every route does with its request: api-version, $top and job name checks, the caller, route access options. */
import type { FastifyRequest } from "fastify";
import type { z } from "zod";
import { isStationError, StationError } from "../errors.js";
import type { Actor, JobKey } from "../lifecycle/model.js";
import type { Principal } from "./auth.js";
import { API_VERSIONS, JOB_NAME, parse } from "./schemas.js";
import type { ArmAction } from "./scope.js";

export const MAX_TOP = 100;

export type Query = Record<string, string | string[] | undefined>;
export const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

export function checkApiVersion(q: Query): void {
  const v = one(q["api-version"]);
  if (v === undefined || v === "") {
    throw new StationError(
      "MissingApiVersionParameter",
      `The api-version query parameter is required. Supported: ${API_VERSIONS.join(", ")}.`,
      {
        target: "api-version",
      },
    );
  }
  if (!(API_VERSIONS as readonly string[]).includes(v)) {
    throw new StationError(
      "InvalidApiVersionParameter",
      `api-version '${v}' is not supported. Supported: ${API_VERSIONS.join(", ")}.`,
      {
        target: "api-version",
      },
    );
  }
}

export function parseTop(q: Query): number {
  const raw = one(q.$top);
  if (raw === undefined) return MAX_TOP;
  const top = Number(raw);
  if (!Number.isInteger(top) || top < 1 || top > MAX_TOP) {
    throw new StationError(
      "InvalidRequestContent",
      `$top must be an integer from 1 to ${MAX_TOP}, not '${raw}'.`,
      { target: "$top" },
    );
  }
  return top;
}

export type JobParams = { subscriptionId: string; resourceGroupName: string; jobName: string };

export function jobKey(p: JobParams): JobKey {
  if (!JOB_NAME.test(p.jobName)) {
    throw new StationError(
      "InvalidRequestContent",
      `Job name '${p.jobName}' is invalid: 1-64 letters, digits, '-' or '_', starting with a letter or digit.`,
      {
        target: "jobName",
      },
    );
  }
  return { subscriptionId: p.subscriptionId, resourceGroup: p.resourceGroupName, name: p.jobName };
}

/** Route options: who may call. See gate.ts. */
export const operator = { config: { access: "operator" } } as const;

export const arm = (armAction: ArmAction) => ({ config: { access: "customer", armAction } }) as const;

export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new StationError("AuthenticationFailed", "The request was not authenticated.");
  return req.principal;
}

export const actorOf = (req: FastifyRequest): Actor => ({ name: principalOf(req).name, type: "User" });

/**
 * An operator route's options: its summary and the schemas its handler validates with
 * (`declaredBody`, `declaredQuery`); /station/v1/openapi.json is generated from them.
 */
export const operatorRoute = (summary: string, schemas: { body?: z.ZodType; querystring?: z.ZodType } = {}) =>
  ({ config: { access: "operator", summary, ...schemas } }) as const;

/**
 * The request body, parsed with `schema`, which must be the one the matched route declared: the
 * handler and the generated document cannot disagree.
 */
export const declaredBody = <S extends z.ZodType>(req: FastifyRequest, schema: S): z.output<S> =>
  parse(declared(req, "body", schema), req.body);

/** The query string, parsed with the schema the matched route declared. */
export const declaredQuery = <S extends z.ZodType>(req: FastifyRequest, schema: S): z.output<S> =>
  parse(declared(req, "querystring", schema), req.query, "query");

function declared<S extends z.ZodType>(req: FastifyRequest, part: "body" | "querystring", schema: S): S {
  if (req.routeOptions.config[part] !== schema) {
    throw new StationError(
      "InternalError",
      `Route ${req.routeOptions.url} parses its ${part} with a schema it does not declare.`,
    );
  }
  return schema;
}

/** Fastify's own errors (bad JSON, too large, wrong media type) become StationErrors. */
export function toStationError(err: unknown): StationError {
  if (isStationError(err)) return err;
  const e = err as { statusCode?: number; code?: string; message?: string };
  switch (e.statusCode) {
    case 400:
      return new StationError(
        "InvalidRequestContent",
        `The request body is not valid JSON: ${e.message ?? "parse error"}.`,
        { cause: err },
      );
    case 413:
      return new StationError("RequestTooLarge", "The request body is larger than this station accepts.", {
        cause: err,
      });
    case 415:
      return new StationError("UnsupportedMediaType", "Send the body as application/json.", { cause: err });
    default:
      return new StationError(
        "InternalError",
        "The station failed to process the request; it has been logged.",
        { cause: err },
      );
  }
}

/** The ARM nextLink: this request again with the page size and the next page's skip token. */
export function nextLink(
  req: FastifyRequest,
  top: number,
  skipToken: string | undefined,
): string | undefined {
  if (!skipToken) return undefined;
  const url = new URL(req.url, `${req.protocol}://${req.host}`);
  url.searchParams.set("$top", String(top));
  url.searchParams.set("$skiptoken", skipToken);
  return url.toString();
}
