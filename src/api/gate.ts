/**
 * The one auth gate. Every route declares who may call it in its options:
 *
 *   app.get("/station/v1/x", { config: { access: "operator" } }, handler)
 *   app.get(jobPath, { config: { access: "customer", armAction: "Microsoft.ImportExport/jobs/read" } }, h)
 *
 * The gate reads the declaration of the route the router MATCHED (never the URL text, which an
 * encoded or dot-segment spelling can disguise) and denies by default: a route declaring nothing
 * makes route registration throw, so the API (and the agent) cannot start with it. A request
 * that matches no route is still authenticated before it gets its 404.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodType } from "zod";
import { StationError } from "../errors.js";
import type { Authenticator, Principal } from "./auth.js";
import { type ArmAction, type ArmScope, authorize } from "./scope.js";

/** `public`: no token (health checks). `customer`: any valid token. `operator`: operator tokens. */
export type Access = "public" | "customer" | "operator";
const ACCESS: readonly Access[] = ["public", "customer", "operator"];

declare module "fastify" {
  interface FastifyContextConfig {
    access?: Access;
    /**
     * ARM routes: the action checked against the caller's role assignments over the scope named
     * by the route's `subscriptionId` / `resourceGroupName` / `jobName` parameters, before the
     * handler runs (and before the body is read). Also makes `api-version` required.
     */
    armAction?: ArmAction;
    /** Operator routes: the schemas the handler validates with (request.ts `declaredBody`), and the
     * one-line summary; /station/v1/openapi.json is generated from them (openapi.ts). */
    body?: ZodType;
    querystring?: ZodType;
    summary?: string;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

export interface DeclaredRoute {
  method: string;
  url: string;
  access: Access;
  armAction?: ArmAction;
  body?: ZodType;
  querystring?: ZodType;
  summary?: string;
}

const tables = new WeakMap<FastifyInstance, DeclaredRoute[]>();

/** Every route registered on the app with its declared access (HEAD twins included). */
export const declaredRoutes = (app: FastifyInstance): readonly DeclaredRoute[] => tables.get(app) ?? [];

type Params = Record<string, string | undefined>;

const scopeOf = (p: Params): ArmScope => ({
  ...(p.subscriptionId !== undefined ? { subscriptionId: p.subscriptionId } : {}),
  ...(p.resourceGroupName !== undefined ? { resourceGroup: p.resourceGroupName } : {}),
  ...(p.jobName !== undefined ? { jobName: p.jobName } : {}),
});

export function requireOperator(p: Principal): void {
  if (p.role !== "operator") {
    throw new StationError(
      "AuthorizationFailed",
      `The client '${p.name}' is a customer; station routes need an operator token.`,
    );
  }
}

/** Installs the gate. Must run before any route is registered (buildApi does it first). */
export function installGate(
  app: FastifyInstance,
  auth: Authenticator,
  onArmRequest: (req: FastifyRequest) => void,
): void {
  const table: DeclaredRoute[] = [];
  tables.set(app, table);

  app.addHook("onRoute", (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const where = `${methods.join(",")} ${route.url}`;
    const access = route.config?.access;
    if (!ACCESS.includes(access as Access)) {
      throw new StationError(
        "ConfigInvalid",
        `Route ${where} declares no access: add { config: { access: "operator" | "customer" | "public" } } to its options (ARCHITECTURE.md, "API access").`,
        { target: where },
      );
    }
    const armAction = route.config?.armAction;
    if (
      access !== "operator" &&
      /:(subscriptionId|resourceGroupName|jobName)\b/.test(route.url) &&
      !armAction
    ) {
      throw new StationError(
        "ConfigInvalid",
        `Route ${where} takes an ARM scope in its path but declares no armAction to check it against.`,
        { target: where },
      );
    }
    const { body, querystring, summary } = route.config ?? {};
    for (const method of methods) {
      table.push({
        method,
        url: route.url,
        access: access as Access,
        ...(armAction ? { armAction } : {}),
        ...(body ? { body } : {}),
        ...(querystring ? { querystring } : {}),
        ...(summary ? { summary } : {}),
      });
    }
  });

  app.addHook("onRequest", async (req) => {
    // No route matched: authenticate anyway, so a 404 tells an unknown caller nothing.
    if (req.is404) {
      req.principal = await auth.authenticate(req.headers.authorization);
      return;
    }
    const { access, armAction } = req.routeOptions.config;
    if (access === "public") return;
    req.principal = await auth.authenticate(req.headers.authorization);
    if (access === "operator") requireOperator(req.principal);
    else if (access !== "customer") {
      throw new StationError("AuthorizationFailed", "This route declares no access; it is closed.");
    }
    if (armAction) {
      authorize(req.principal, armAction, scopeOf(req.params as Params));
      onArmRequest(req);
    }
  });
}
