/**
 * Operator routes of the export engine (mounted through `ApiDeps.routes`, access declared):
 *   POST …/jobs/:jobName/exportPreview {driveSize?: "500GB"} PreviewExport for the job (reference §6.8);
 *        a POST: the first preview lists the selection and fixes it for the export (leased blobs
 *        are snapshotted then)
 *   POST …/jobs/:jobName/drives/:driveId/confirmExport     write an export drive that holds data
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { StationError } from "../errors.js";
import type { JobService } from "../jobs/service.js";
import type { JobKey } from "../lifecycle/model.js";
import type { PreviewReport } from "../transfer/export/planner.js";
import { parseDriveSize } from "../transfer/export/preview.js";
import { declaredBody, operatorRoute } from "./request.js";
import { JOB_NAME, noBody } from "./schemas.js";

export interface ExportRouteDeps {
  service: JobService;
  preview(job: JobKey, driveSize: number | undefined): Promise<PreviewReport>;
  confirm(job: JobKey, driveId: string, by: string): Promise<{ started: boolean }>;
}

type Params = { subscriptionId: string; resourceGroupName: string; jobName: string; driveId?: string };
const previewBody = z.object({
  driveSize: z.union([z.string().max(32), z.number().nonnegative()]).nullish(),
});
const base = "/station/v1/subscriptions/:subscriptionId/resourceGroups/:resourceGroupName/jobs/:jobName";

function keyOf(p: Params): JobKey {
  if (!JOB_NAME.test(p.jobName))
    throw new StationError("InvalidRequestContent", `Job name '${p.jobName}' is invalid.`, {
      target: "jobName",
    });
  return { subscriptionId: p.subscriptionId, resourceGroup: p.resourceGroupName, name: p.jobName };
}

async function exportJob(service: JobService, key: JobKey) {
  const job = await service.get(key);
  if (job.type !== "Export")
    throw new StationError("InvalidJobState", `Job ${key.name} is an import job: it has nothing to export.`, {
      target: "jobName",
    });
  return job;
}

export function exportRoutes(deps: ExportRouteDeps): (app: FastifyInstance) => void {
  return (app) => {
    app.post<{ Params: Params }>(
      `${base}/exportPreview`,
      operatorRoute("PreviewExport: the drives the selection needs (the first preview fixes the selection)", {
        body: previewBody,
      }),
      async (req) => {
        const key = keyOf(req.params);
        const given = declaredBody(req, previewBody).driveSize;
        await exportJob(deps.service, key);
        const raw = given === undefined || given === null ? undefined : String(given);
        const size = raw === undefined ? undefined : parseDriveSize(raw);
        if (raw !== undefined && size === undefined)
          throw new StationError(
            "InvalidRequestContent",
            `driveSize '${raw}' is not a size: give bytes or a decimal unit, e.g. 500GB or 2TB (1 GB = 10^9 bytes).`,
            { target: "driveSize" },
          );
        return deps.preview(key, size);
      },
    );
    const confirm = operatorRoute("Write an export drive that already holds data", { body: noBody });
    app.post<{ Params: Params }>(`${base}/drives/:driveId/confirmExport`, confirm, async (req) => {
      const key = keyOf(req.params);
      declaredBody(req, noBody);
      const job = await exportJob(deps.service, key);
      const driveId = req.params.driveId!;
      if (!job.drives.some((d) => d.driveId === driveId))
        throw new StationError(
          "DriveNotFound",
          `Drive ${driveId} is not checked in for export job ${key.name}: check it in first ('station arrived ${key.name} ${driveId}').`,
          { target: driveId },
        );
      const r = await deps.confirm(key, driveId, req.principal?.name ?? "operator");
      return {
        driveId,
        confirmed: true,
        started: r.started,
        message: r.started
          ? `Drive ${driveId} is being written.`
          : `Confirmed: drive ${driveId} will be written when it is plugged in.`,
      };
    });
  };
}
