/** The operator routes under /station/v1: job views, attached drives, notices, and the station events. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { StationEvent } from "../lifecycle/machine.js";
import { type JobParams, jobKey, nextLink, one, operator, parseTop, type Query } from "./request.js";
import { checkInBody, driveArrivedBody, faultBody, parse, resolveBody, shipBackBody } from "./schemas.js";
import type { ApiDeps } from "./server.js";
import { operatorView } from "./views.js";

export function registerOperatorRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { service, log } = deps;
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
}
