/**
 * The station's HTTP API: the ARM `Microsoft.ImportExport` job routes (reference §4.1), so
 * existing Azure clients work against it (arm-routes.ts), and the operator routes under /station/v1
 * (operator-routes.ts); request checks shared by both live in request.ts.
 * Every route declares who may call it (gate.ts); every failure is an ARM ErrorResponse.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import type { Logger } from "pino";
import { StationError } from "../errors.js";
import type { JobService } from "../jobs/service.js";
import type { NoticeLog } from "../jobs/store.js";
import type { ReturnAddress } from "../lifecycle/model.js";
import { registerArmRoutes } from "./arm-routes.js";
import type { Authenticator, RoleAssignment } from "./auth.js";
import { errorResponse, HTTP_STATUS } from "./errors.js";
import { type DeclaredRoute, installGate } from "./gate.js";
import { registerOperatorRoutes } from "./operator-routes.js";
import { checkApiVersion, type Query, toStationError } from "./request.js";

/** The station's own address (where customers ship drives), as the Locations API shows it. */
export interface StationLocation extends Omit<ReturnAddress, "email"> {
  /** Short id, e.g. `westus`. */
  id: string;
  /** Display name, e.g. `West US`. */
  name: string;
  additionalShippingInformation?: string;
  supportedCarriers: string[];
}

export interface ApiDeps {
  service: JobService;
  notices: NoticeLog;
  auth: Authenticator;
  location: StationLocation;
  log: Logger;
  bodyLimitBytes: number;
  tls?: { key: Buffer; cert: Buffer };
  /** The drives plugged into this station now. */
  dock?: { list(): unknown[] };
  /**
   * More routes (console, metrics, health, export preview). Each must declare its access in its
   * options (`{ config: { access: "operator" } }`), or building the API throws.
   */
  routes?: ((app: FastifyInstance) => void)[];
  /** The owner of a storage account the station holds a key for (export), by account name. */
  accountOwner?: (account: string) => RoleAssignment | undefined;
}

export type { DeclaredRoute };

export function buildApi(deps: ApiDeps): FastifyInstance {
  const { auth, log } = deps;
  const app = Fastify({
    logger: false,
    bodyLimit: deps.bodyLimitBytes,
    // Fastify's own replies to a bad or over-long URL quote the whole path (which may carry a
    // secret): an ARM error that names the problem instead.
    frameworkErrors: (err, _req, reply) => {
      const e = new StationError(
        "InvalidRequestContent",
        err.code === "FST_ERR_MAX_PARAM_LENGTH"
          ? "A path segment of the request URL is longer than this station accepts (100 characters)."
          : "The request URL is not valid: a path segment could not be decoded.",
        { target: "url" },
      );
      void (reply as unknown as FastifyReply).code(HTTP_STATUS[e.code]).send(errorResponse(e));
    },
    ...(deps.tls ? { https: { key: deps.tls.key, cert: deps.tls.cert } } : {}),
  });

  // The gate decides on the matched route's declared access, before the body is read: an
  // unknown or out-of-scope caller learns nothing and uploads nothing.
  installGate(app, auth, (req) => checkApiVersion(req.query as Query));

  app.addHook("onResponse", async (req, reply) => {
    log.info(
      {
        method: req.method,
        path: req.routeOptions.url ?? req.url.split("?")[0],
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        caller: req.principal?.name,
      },
      "api request",
    );
  });

  app.setErrorHandler((err, req, reply) => {
    const e = toStationError(err);
    const status = HTTP_STATUS[e.code];
    if (status >= 500) log.error({ err, path: req.url.split("?")[0] }, "api error");
    if (e.code === "AuthenticationFailed") reply.header("WWW-Authenticate", 'Bearer realm="drive-station"');
    void reply.code(status).send(errorResponse(e));
  });

  app.setNotFoundHandler((req, reply) => {
    const e = new StationError(
      "RouteNotFound",
      `No route ${req.method} ${req.url.split("?")[0]} on this station.`,
    );
    void reply.code(404).send(errorResponse(e));
  });

  registerArmRoutes(app, deps);
  registerOperatorRoutes(app, deps);
  for (const add of deps.routes ?? []) add(app);
  return app;
}
