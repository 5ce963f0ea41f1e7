/** The ARM `Microsoft.ImportExport` routes (reference §4.1): operations, locations and jobs. */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { StationError } from "../errors.js";
import type { JobScope } from "../jobs/store.js";
import {
  actorOf,
  arm,
  type JobParams,
  jobKey,
  nextLink,
  one,
  parseTop,
  principalOf,
  type Query,
} from "./request.js";
import { parse, putJobBody, toJobPatch, toJobSpec, updateJobBody } from "./schemas.js";
import { accountName, authorizeLinkedAccount, checkAccountOwner, visibleResourceGroups } from "./scope.js";
import type { ApiDeps } from "./server.js";
import { jobResponse, OPERATIONS, PROVIDER } from "./views.js";

export function registerArmRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { service } = deps;
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
}
