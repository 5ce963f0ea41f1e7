/**
 * The operator routes under /station/v1: job views, attached drives, notices, the station events,
 * and this API's own OpenAPI document (generated from the schemas each route declares, openapi.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { z } from "zod";
import type { StationEvent } from "../lifecycle/machine.js";
import { declaredRoutes } from "./gate.js";
import { operatorOpenApi } from "./openapi.js";
import {
  declaredBody,
  declaredQuery,
  type JobParams,
  jobKey,
  nextLink,
  operatorRoute,
  parseTop,
} from "./request.js";
import {
  checkInBody,
  driveArrivedBody,
  faultBody,
  jobsQuery,
  noBody,
  noticesQuery,
  resolveBody,
  shipBackBody,
} from "./schemas.js";
import type { ApiDeps } from "./server.js";
import { operatorView } from "./views.js";

export const OPENAPI_PATH = "/station/v1/openapi.json";

export function registerOperatorRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { service, log } = deps;
  // ---------------------------------------------------------------- operator routes

  const opJob = "/station/v1/subscriptions/:subscriptionId/resourceGroups/:resourceGroupName/jobs/:jobName";
  type OpParams = JobParams & { driveId?: string };

  app.get(
    "/station/v1/jobs",
    operatorRoute("Every job with the operator's view, a page at a time (nextLink)", {
      querystring: jobsQuery,
    }),
    async (req) => {
      const q = declaredQuery(req, jobsQuery);
      const top = parseTop(q);
      const page = await service.list({}, top, q.$skiptoken);
      const jobs = q.name ? page.jobs.filter((j) => j.name === q.name) : page.jobs;
      return { value: jobs.map(operatorView), nextLink: nextLink(req, top, page.skipToken) };
    },
  );
  app.get<{ Params: OpParams }>(
    opJob,
    operatorRoute("One job: the Get Job view plus faults, extra and held drives"),
    async (req) => operatorView(await service.get(jobKey(req.params))),
  );
  app.get("/station/v1/attached", operatorRoute("The drives plugged into this station now"), async () => ({
    value: deps.dock?.list() ?? [],
  }));
  app.get(
    "/station/v1/notices",
    operatorRoute("The latest notices that need a person, newest first", { querystring: noticesQuery }),
    async (req) => {
      const q = declaredQuery(req, noticesQuery);
      const limit = Math.min(Number(q.limit ?? 50) || 50, 1000);
      return { value: await deps.notices.recent({ limit }) };
    },
  );

  let openApi: object | undefined;
  app.get(
    OPENAPI_PATH,
    operatorRoute("This document: the operator routes, generated from their schemas"),
    async () => {
      openApi ??= operatorOpenApi(declaredRoutes(app));
      return openApi;
    },
  );

  const stationRoute = <S extends z.ZodType>(
    suffix: string,
    summary: string,
    body: S,
    toEvent: (req: FastifyRequest<{ Params: OpParams }>, b: z.output<S>) => StationEvent,
  ) => {
    app.post<{ Params: OpParams }>(
      `${opJob}${suffix}`,
      operatorRoute(summary, { body }),
      async (req: FastifyRequest<{ Params: OpParams }>, reply: FastifyReply) => {
        const key = jobKey(req.params);
        const event = toEvent(req, declaredBody(req, body));
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
  stationRoute(
    "/packages",
    "Check a package in: its tracking number and the drives in it",
    checkInBody,
    (_req, b) => ({
      type: "CheckInPackage",
      ...b,
    }),
  );
  stationRoute(
    "/drives/:driveId/arrived",
    "A drive that came later than its package (NeverReceived -> Received)",
    driveArrivedBody,
    (req, b) => ({
      type: "DriveArrived",
      driveId: req.params.driveId!,
      ...(b.trackingNumber ? { trackingNumber: b.trackingNumber } : {}),
    }),
  );
  stationRoute("/fault", "Fault the job, or one drive, with a reason", faultBody, (_req, b) => ({
    type: "Fault",
    reason: b.reason,
    ...(b.driveId ? { driveId: b.driveId } : {}),
  }));
  stationRoute("/resolve", "Resolve the job's fault, or one drive's", resolveBody, (_req, b) =>
    b.driveId ? { type: "Resolve", driveId: b.driveId } : { type: "Resolve" },
  );
  stationRoute("/shipBack", "Ship the drives back (the job is Packaging)", shipBackBody, (_req, b) => ({
    type: "ShipBack",
    returnPackage: {
      carrierName: b.carrierName,
      trackingNumber: b.trackingNumber,
      ...(b.driveCount !== undefined ? { driveCount: b.driveCount } : {}),
      ...(b.shipDate ? { shipDate: b.shipDate } : {}),
    },
  }));
  stationRoute("/close", "Close an overdue job whose customer stayed silent", noBody, () => ({
    type: "CloseUnresponsive",
  }));
}
