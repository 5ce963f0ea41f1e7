/**
 * The station's HTTP API: the ARM `Microsoft.ImportExport` job routes (reference §4.1), so
 * existing Azure clients work against it, and the operator routes under /station/v1.
 * Every route declares who may call it (gate.ts); every failure is an ARM ErrorResponse.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { isStationError, StationError } from "../errors.js";
import type { JobService } from "../jobs/service.js";
import type { JobScope, NoticeLog } from "../jobs/store.js";
import type { StationEvent } from "../lifecycle/machine.js";
import type { Actor, JobKey } from "../lifecycle/model.js";
import type { Authenticator, Principal, RoleAssignment } from "./auth.js";
import { errorResponse, HTTP_STATUS } from "./errors.js";
import { type DeclaredRoute, installGate } from "./gate.js";
import {
  API_VERSIONS,
  checkInBody,
  driveArrivedBody,
  faultBody,
  JOB_NAME,
  parse,
  putJobBody,
  resolveBody,
  shipBackBody,
  toJobPatch,
  toJobSpec,
  updateJobBody,
} from "./schemas.js";
import {
  type ArmAction,
  accountName,
  authorizeLinkedAccount,
  checkAccountOwner,
  visibleResourceGroups,
} from "./scope.js";
import { jobResponse, OPERATIONS, operatorView, PROVIDER } from "./views.js";

export interface StationLocation {
  /** Short id, e.g. `westus`. */
  id: string;
  /** Display name, e.g. `West US`. */
  name: string;
  recipientName: string;
  streetAddress1: string;
  streetAddress2?: string;
  city: string;
  stateOrProvince?: string;
  postalCode: string;
  countryOrRegion: string;
  phone: string;
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

const MAX_TOP = 100;

type Query = Record<string, string | string[] | undefined>;
const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

function checkApiVersion(q: Query): void {
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

function parseTop(q: Query): number {
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

type JobParams = { subscriptionId: string; resourceGroupName: string; jobName: string };

function jobKey(p: JobParams): JobKey {
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
const operator = { config: { access: "operator" } } as const;
const arm = (armAction: ArmAction) => ({ config: { access: "customer", armAction } }) as const;

function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new StationError("AuthenticationFailed", "The request was not authenticated.");
  return req.principal;
}

const actorOf = (req: FastifyRequest): Actor => ({ name: principalOf(req).name, type: "User" });

/** Fastify's own errors (bad JSON, too large, wrong media type) become StationErrors. */
function toStationError(err: unknown): StationError {
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

export function buildApi(deps: ApiDeps): FastifyInstance {
  const { service, auth, log } = deps;
  const app = Fastify({
    logger: false,
    bodyLimit: deps.bodyLimitBytes,
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

  const nextLink = (req: FastifyRequest, top: number, skipToken: string | undefined): string | undefined => {
    if (!skipToken) return undefined;
    const url = new URL(req.url, `${req.protocol}://${req.host}`);
    url.searchParams.set("$top", String(top));
    url.searchParams.set("$skiptoken", skipToken);
    return url.toString();
  };

  // ---------------------------------------------------------------- provider-level routes

  const providerBase = `/providers/${PROVIDER}`;
  const locationView = () => {
    const { id, name, supportedCarriers, ...address } = deps.location;
    return {
      id: `${providerBase}/locations/${id}`,
      name,
      type: `${PROVIDER}/locations`,
      properties: { ...address, supportedCarriers, alternateLocations: [`${providerBase}/locations/${id}`] },
    };
  };
  const locationsRead = arm("Microsoft.ImportExport/locations/read");
  app.get(`${providerBase}/operations`, arm("Microsoft.ImportExport/operations/read"), async () => ({
    value: OPERATIONS,
  }));
  app.get(`${providerBase}/locations`, locationsRead, async () => ({ value: [locationView()] }));
  app.get<{ Params: { locationName: string } }>(
    `${providerBase}/locations/:locationName`,
    locationsRead,
    async (req) => {
      const wanted = req.params.locationName.replace(/\s+/g, "").toLowerCase();
      const here = deps.location;
      if (wanted !== here.id.toLowerCase() && wanted !== here.name.replace(/\s+/g, "").toLowerCase()) {
        throw new StationError(
          "RouteNotFound",
          `Location '${req.params.locationName}' is not served by this station (it serves ${here.name}).`,
          {
            target: "locationName",
          },
        );
      }
      return locationView();
    },
  );

  // ---------------------------------------------------------------- jobs

  // The gate has checked the scope; a list by subscription is narrowed to the resource groups the
  // caller was granted there, in the store, so pages and skip tokens only ever hold visible jobs.
  const list = async (req: FastifyRequest, scope: JobScope) => {
    const q = req.query as Query;
    const top = parseTop(q);
    const page = await service.list(scope, top, one(q.$skiptoken));
    return { value: page.jobs.map(jobResponse), nextLink: nextLink(req, top, page.skipToken) };
  };
  const jobsRead = arm("Microsoft.ImportExport/jobs/read");
  app.get<{ Params: { subscriptionId: string } }>(
    `/subscriptions/:subscriptionId${providerBase}/jobs`,
    jobsRead,
    (req) => {
      const groups = visibleResourceGroups(principalOf(req), req.params.subscriptionId);
      return list(req, {
        subscriptionId: req.params.subscriptionId,
        ...(groups ? { resourceGroups: groups } : {}),
      });
    },
  );
  app.get<{ Params: { subscriptionId: string; resourceGroupName: string } }>(
    `/subscriptions/:subscriptionId/resourceGroups/:resourceGroupName${providerBase}/jobs`,
    jobsRead,
    (req) =>
      list(req, { subscriptionId: req.params.subscriptionId, resourceGroup: req.params.resourceGroupName }),
  );

  const jobPath = `/subscriptions/:subscriptionId/resourceGroups/:resourceGroupName${providerBase}/jobs/:jobName`;

  app.get<{ Params: JobParams }>(jobPath, jobsRead, async (req) =>
    jobResponse(await service.get(jobKey(req.params))),
  );

  app.put<{ Params: JobParams }>(jobPath, arm("Microsoft.ImportExport/jobs/write"), async (req, reply) => {
    const key = jobKey(req.params);
    const spec = toJobSpec(parse(putJobBody, req.body), deps.location.name);
    authorizeLinkedAccount(principalOf(req), spec.storageAccountId);
    checkAccountOwner(spec.storageAccountId, deps.accountOwner?.(accountName(spec.storageAccountId)));
    const { job, created } = await service.create(key, spec, actorOf(req));
    return reply.code(created ? 201 : 200).send(jobResponse(job));
  });

  app.patch<{ Params: JobParams }>(jobPath, arm("Microsoft.ImportExport/jobs/write"), async (req) => {
    const key = jobKey(req.params);
    const patch = toJobPatch(parse(updateJobBody, req.body));
    return jobResponse(await service.update(key, patch, actorOf(req)));
  });

  app.delete<{ Params: JobParams }>(
    jobPath,
    arm("Microsoft.ImportExport/jobs/delete"),
    async (req, reply) => {
      await service.delete(jobKey(req.params));
      return reply.code(200).send();
    },
  );

  app.post<{ Params: JobParams }>(
    `${jobPath}/listBitLockerKeys`,
    arm("Microsoft.ImportExport/jobs/listBitLockerKeys/action"),
    async (req) => {
      const job = await service.get(jobKey(req.params));
      return {
        value: job.drives
          .filter((d) => d.bitLockerKey)
          .map((d) => ({ driveId: d.driveId, bitLockerKey: d.bitLockerKey })),
      };
    },
  );

  // ---------------------------------------------------------------- operator routes

  const opJob = "/station/v1/subscriptions/:subscriptionId/resourceGroups/:resourceGroupName/jobs/:jobName";
  type OpParams = JobParams & { driveId?: string };

  app.get<{ Querystring: Query }>("/station/v1/jobs", operator, async (req) => {
    const top = parseTop(req.query);
    const page = await service.list({}, top, one(req.query.$skiptoken));
    const name = one(req.query.name);
    const jobs = name ? page.jobs.filter((j) => j.name === name) : page.jobs;
    return { value: jobs.map(operatorView), nextLink: nextLink(req, top, page.skipToken) };
  });
  app.get<{ Params: OpParams }>(opJob, operator, async (req) =>
    operatorView(await service.get(jobKey(req.params))),
  );
  app.get("/station/v1/attached", operator, async () => ({ value: deps.dock?.list() ?? [] }));
  app.get<{ Querystring: Query }>("/station/v1/notices", operator, async (req) => {
    const limit = Math.min(Number(one(req.query.limit) ?? 50) || 50, 1000);
    return { value: await deps.notices.recent({ limit }) };
  });

  const stationRoute = (
    suffix: string,
    toEvent: (req: FastifyRequest<{ Params: OpParams }>) => StationEvent,
  ) => {
    app.post<{ Params: OpParams }>(
      `${opJob}${suffix}`,
      operator,
      async (req: FastifyRequest<{ Params: OpParams }>, reply: FastifyReply) => {
        const key = jobKey(req.params);
        const event = toEvent(req);
        const job = await service.station(key, event);
        log.info(
          {
            job: `${key.subscriptionId}/${key.resourceGroup}/${key.name}`,
            event: event.type,
            operator: req.principal?.name,
          },
          "operator action",
        );
        return reply.send(operatorView(job));
      },
    );
  };
  stationRoute("/packages", (req) => ({ type: "CheckInPackage", ...parse(checkInBody, req.body) }));
  stationRoute("/drives/:driveId/arrived", (req) => {
    const b = parse(driveArrivedBody, req.body);
    return {
      type: "DriveArrived",
      driveId: req.params.driveId!,
      ...(b.trackingNumber ? { trackingNumber: b.trackingNumber } : {}),
    };
  });
  stationRoute("/fault", (req) => {
    const b = parse(faultBody, req.body);
    return { type: "Fault", reason: b.reason, ...(b.driveId ? { driveId: b.driveId } : {}) };
  });
  stationRoute("/resolve", (req) => {
    const b = parse(resolveBody, req.body);
    return b.driveId ? { type: "Resolve", driveId: b.driveId } : { type: "Resolve" };
  });
  stationRoute("/shipBack", (req) => {
    const b = parse(shipBackBody, req.body);
    return {
      type: "ShipBack",
      returnPackage: {
        carrierName: b.carrierName,
        trackingNumber: b.trackingNumber,
        ...(b.driveCount !== undefined ? { driveCount: b.driveCount } : {}),
        ...(b.shipDate ? { shipDate: b.shipDate } : {}),
      },
    };
  });
  stationRoute("/close", () => ({ type: "CloseUnresponsive" }));

  for (const add of deps.routes ?? []) add(app);
  return app;
}
